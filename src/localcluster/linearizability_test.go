package localcluster

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/linearizability"
)

// linDuration is how long the clients run: RAFTKV_LIN_SECONDS, default 20.
func linDuration(t *testing.T) time.Duration { return envSeconds(t, "RAFTKV_LIN_SECONDS", 20) }

// envSeconds reads a test's duration in whole seconds from the variable
// name, def when it is unset.
func envSeconds(t *testing.T, name string, def int) time.Duration {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, name)
		return time.Duration(n) * time.Second
	}
	return time.Duration(def) * time.Second
}

// TestLinearizableUnderFaults runs 5 clients, three doing put / append /
// get on 3 shared keys and two compare-and-swap, listings and transactions
// on 3 others, while nodes are killed, paused and restarted, and checks the
// recorded history with porcupine. A timed-out write is recorded as
// possibly applied; a 503 means "not applied" (the server's contract).
func TestLinearizableUnderFaults(t *testing.T) {
	c := startCluster(t, 3)
	rec := linearizability.NewRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), linDuration(t))
	defer cancel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)

	var wg sync.WaitGroup
	for id := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(id)))
			if id >= 3 { // two clients of the second-wave API (kvapi_lin_test.go)
				runLinKVClient(ctx, c, rec, id, rng)
				return
			}
			runLinClient(ctx, c, rec, id, rng)
		}()
	}
	faults := runNemesis(ctx, t, c, rand.New(rand.NewSource(seed)))
	wg.Wait()
	t.Logf("faults: %v", faults)

	ops := rec.Ops()
	res := linearizability.Check(ops, 2*time.Minute)
	ok := 0
	for _, op := range ops {
		if op.Ok {
			ok++
		}
	}
	t.Logf("history: %d operations (%d acknowledged): %s", len(ops), ok, res)
	t.Logf("second-wave operations: %s", kvOpCounts(ops))
	require.Greater(t, ok, 100, "too few operations succeeded to say anything")
	if !res.Linearizable {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-linearizability-%d.html", seed))
		if err := linearizability.Visualize(ops, path); err == nil {
			t.Logf("visualization: %s", path)
		}
		t.Fatalf("history is not linearizable (or the checker timed out): %s", res)
	}
}

var linClient *http.Client // set by TestMain

func runLinClient(ctx context.Context, c *Cluster, rec *linearizability.Recorder, id int, rng *rand.Rand) {
	keys := []string{"x", "y", "z"}
	node := rng.Intn(len(c.Nodes))
	clientID := fmt.Sprintf("lin-%d", id)
	var seq uint64
	pace := time.NewTicker(15 * time.Millisecond)
	defer pace.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
		key := keys[rng.Intn(len(keys))]
		ep := c.Nodes[node].HTTPAddr
		switch r := rng.Intn(10); {
		case r < 4:
			p := rec.Begin(id, api.OpGet, key, "")
			rp, err := doWith(linClient, http.MethodGet, ep, key, "", nil, nil)
			switch {
			case err == nil && rp.code == http.StatusOK:
				p.Ok(rp.value, true)
			case err == nil && rp.code == http.StatusNotFound:
				p.Ok("", false)
			default:
				p.Unknown()
				node = rng.Intn(len(c.Nodes))
			}
		default:
			kind, query, method := api.OpPut, "", http.MethodPut
			if r < 8 {
				kind, query = api.OpAppend, "op=append"
			}
			val := fmt.Sprintf("%d.%d;", id, n)
			seq++
			p := rec.Begin(id, kind, key, val)
			rp, err := doWith(linClient, method, ep, key, query, []byte(val), session(clientID, seq))
			switch {
			case err == nil && rp.code == http.StatusOK:
				p.Ok("", false)
			case err == nil && rp.code == http.StatusServiceUnavailable:
				p.Failed()
				node = rng.Intn(len(c.Nodes))
			default:
				p.Unknown()
				node = rng.Intn(len(c.Nodes))
			}
		}
	}
}

// runNemesis kills, restarts and pauses nodes at random until ctx ends,
// never more than one node at a time, and leaves every node running.
func runNemesis(ctx context.Context, t *testing.T, c *Cluster, rng *rand.Rand) []string {
	var log []string
	wait := func(d time.Duration) bool { return waitOrDone(ctx, d) }
	for wait(time.Duration(500+rng.Intn(1500)) * time.Millisecond) {
		i := rng.Intn(len(c.Nodes))
		switch rng.Intn(2) {
		case 0:
			log = append(log, "kill "+c.Nodes[i].Name)
			require.NoError(t, c.Kill(i))
			wait(time.Duration(200+rng.Intn(1500)) * time.Millisecond)
			require.NoError(t, c.StartNode(i))
		case 1:
			log = append(log, "pause "+c.Nodes[i].Name)
			require.NoError(t, c.Pause(i))
			wait(time.Duration(200+rng.Intn(1500)) * time.Millisecond)
			require.NoError(t, c.Resume(i))
		}
	}
	return log
}

// waitOrDone waits d and reports true, or reports false as soon as ctx ends.
func waitOrDone(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
