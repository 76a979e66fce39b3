package localcluster

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/linearizability"
)

// snapRaceDuration is how long TestFollowerBurstsDuringLargeSnapshots runs
// its faults: RAFTKV_SNAPRACE_SECONDS, default 10.
func snapRaceDuration(t *testing.T) time.Duration {
	return envSeconds(t, "RAFTKV_SNAPRACE_SECONDS", 10)
}

// TestFollowerBurstsDuringLargeSnapshots is the outside fault campaign's
// reproduction of "snapshot N to send is not the newest saved one": a
// multi-megabyte state (40 keys of 100-200 kB), a snapshot every 50
// entries, and followers killed and restarted in bursts while writes go
// on. A restarted follower needs InstallSnapshot while the leader is often
// writing a newer snapshot in the background; the leader used to stop
// itself when the file it found was newer than the one its core asked for.
// At the end every node must still be running, the small keys' history
// must be linearizable, every big key must hold its last acknowledged
// value (or a later one whose outcome was unknown), and all state machines
// must agree.
func TestFollowerBurstsDuringLargeSnapshots(t *testing.T) {
	c := startCluster(t, 3, "--snapshot-every", "50")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), snapRaceDuration(t))
	defer cancel()

	rec := linearizability.NewRecorder()
	big := make([]*bigWriter, 2)
	var wg sync.WaitGroup
	for id := range big {
		big[id] = &bigWriter{id: id, keys: 20, last: map[string]bigWrite{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			big[id].run(ctx, c, rand.New(rand.NewSource(seed+int64(id))))
		}()
	}
	for id := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLinClient(ctx, c, rec, id, rand.New(rand.NewSource(seed+100+int64(id))))
		}()
	}
	faults := killFollowerBursts(ctx, t, c, rand.New(rand.NewSource(seed)))
	wg.Wait()
	t.Logf("faults: %v", faults)

	for i := range c.Nodes {
		require.True(t, c.Running(i), "node %s exited during the run", c.Nodes[i].Name)
	}
	sent, newer := 0, 0
	for i := range c.Nodes {
		for _, line := range strings.Split(c.Log(i), "\n") {
			if strings.Contains(line, "sending snapshot") {
				sent++
				if !sentRequested(line) {
					newer++
				}
			}
		}
	}
	// Whether a newer snapshot than requested was sent depends on timing;
	// the count shows how often this run met the race.
	t.Logf("snapshots sent to restarted followers: %d, %d of them newer than the core asked for", sent, newer)
	require.Positive(t, sent, "no follower needed InstallSnapshot: the run did not exercise the race")

	ops := rec.Ops()
	res := linearizability.Check(ops, 2*time.Minute)
	t.Logf("small keys: %d operations: %s", len(ops), res)
	require.True(t, res.Linearizable, "history is not linearizable: %s", res)

	acked := 0
	for _, w := range big {
		for key, lw := range w.snapshot() {
			if lw.acked == "" {
				continue
			}
			acked++
			r := linearizableGet(t, c, key)
			require.Equal(t, http.StatusOK, r.code, "acknowledged write to %s lost", key)
			tag, _, _ := strings.Cut(r.value, ":")
			assert.Contains(t, append([]string{lw.acked}, lw.unknownAfter...), tag,
				"big key %s holds %q: neither its last acknowledged write nor a later unknown one", key, tag)
		}
	}
	t.Logf("big keys with an acknowledged write: %d", acked)
	require.Positive(t, acked, "no big write was acknowledged")
	stopAllAndCompare(t, c)
}

// bigWrite is what a bigWriter knows of one key: the tag of its last
// acknowledged value, and the tags of the writes after it whose outcome is
// unknown (any of them may be the final value).
type bigWrite struct {
	acked        string
	unknownAfter []string
}

// bigWriter puts values of 100-200 kB on its own keys, one at a time,
// through random nodes. A value starts with a tag "b<id>.<n>:".
type bigWriter struct {
	id, keys int
	mu       sync.Mutex
	last     map[string]bigWrite
}

var bigClient *http.Client // set by TestMain

func (w *bigWriter) run(ctx context.Context, c *Cluster, rng *rand.Rand) {
	pad := strings.Repeat("x", 200<<10)
	for n := 1; ctx.Err() == nil; n++ {
		key := fmt.Sprintf("big-%d-%d", w.id, rng.Intn(w.keys))
		tag := fmt.Sprintf("b%d.%d", w.id, n)
		val := tag + ":" + pad[:100<<10+rng.Intn(100<<10)]
		ep := c.Nodes[rng.Intn(len(c.Nodes))].HTTPAddr
		r, err := doWith(bigClient, http.MethodPut, ep, key, "", []byte(val), session(fmt.Sprintf("big-%d", w.id), uint64(n)))
		w.mu.Lock()
		lw := w.last[key]
		switch {
		case err == nil && r.code == http.StatusOK:
			lw = bigWrite{acked: tag}
		case err == nil && r.code == http.StatusServiceUnavailable:
			// Not applied (the server's contract for 503).
		default:
			lw.unknownAfter = append(lw.unknownAfter, tag)
		}
		w.last[key] = lw
		w.mu.Unlock()
	}
}

func (w *bigWriter) snapshot() map[string]bigWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]bigWrite, len(w.last))
	for k, v := range w.last {
		m[k] = v
	}
	return m
}

// killFollowerBursts kills a follower and restarts it after a short
// outage, sometimes twice in quick succession, until ctx ends; the leader
// is never touched, and every node is running when it returns.
func killFollowerBursts(ctx context.Context, t *testing.T, c *Cluster, rng *rand.Rand) []string {
	var log []string
	wait := func(d time.Duration) bool { return waitOrDone(ctx, d) }
	for wait(time.Duration(200+rng.Intn(800)) * time.Millisecond) {
		l, err := c.WaitLeader(ctx)
		if err != nil {
			break
		}
		f := (l + 1 + rng.Intn(len(c.Nodes)-1)) % len(c.Nodes)
		for range 1 + rng.Intn(2) {
			log = append(log, "kill "+c.Nodes[f].Name)
			require.NoError(t, c.Kill(f))
			// Long enough for the leader to take a snapshot or two meanwhile.
			wait(time.Duration(300+rng.Intn(1200)) * time.Millisecond)
			require.NoError(t, c.StartNode(f))
			wait(time.Duration(50+rng.Intn(300)) * time.Millisecond)
		}
	}
	return log
}

// sentRequested reports whether a "sending snapshot" log line sent the
// index the core asked for.
func sentRequested(line string) bool {
	field := func(name string) string {
		_, rest, ok := strings.Cut(line, `"`+name+`": `)
		if !ok {
			return ""
		}
		v, _, _ := strings.Cut(rest, ",")
		return v
	}
	return field("index") == field("requested")
}
