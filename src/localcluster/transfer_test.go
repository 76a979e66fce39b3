package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/client"
)

// clientLoad writes unique keys through the Go client (which retries
// refused and unanswered writes, as any client should) and counts the
// writes that failed for good.
type clientLoad struct {
	mu     sync.Mutex
	acked  map[string]string
	failed []error
	n      atomic.Int64
}

func (l *clientLoad) run(ctx context.Context, t *testing.T, c *Cluster, id int) {
	tlsCfg, tok, err := c.ClientAuth(TokenReadWrite)
	require.NoError(t, err)
	cl, err := client.New(client.Config{Endpoints: c.Endpoints(), TLS: tlsCfg, Token: tok})
	require.NoError(t, err)
	defer cl.Close()
	for n := 0; ctx.Err() == nil; n++ {
		key, val := fmt.Sprintf("t%d-%d", id, n), fmt.Sprintf("v%d", n)
		// Each write gets 10 s, whatever the load's context does: a write
		// cut short by the end of the test is no failure of the cluster.
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cl.Put(wctx, key, val)
		cancel()
		l.mu.Lock()
		if err != nil {
			l.failed = append(l.failed, fmt.Errorf("put %s: %w", key, err))
		} else {
			l.acked[key] = val
		}
		l.mu.Unlock()
		l.n.Add(1)
	}
}

func (l *clientLoad) done() int { return int(l.n.Load()) }

// otherLeader polls the running nodes until one that is not old says it
// leads and the others agree, and returns it.
func otherLeader(t *testing.T, c *Cluster, old int, within time.Duration) int {
	t.Helper()
	nl := -1
	eventually(t, within, func() bool {
		i, ok := c.agreedLeader()
		nl = i
		return ok && i != old
	}, "no new leader within %v", within)
	return nl
}

// TestRollingRestartHandsOverLeadership stops the leader with SIGTERM
// three times under client load, restarting it each time (a rolling
// restart): each stopping leader hands over before it exits (its log says
// so), another node leads well within an election timeout of the signal,
// and no client write fails.
func TestRollingRestartHandsOverLeadership(t *testing.T) {
	c := startCluster(t, 3)
	l := &clientLoad{acked: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := range 4 {
		wg.Go(func() { l.run(ctx, t, c, id) })
	}
	defer func() { cancel(); wg.Wait() }()
	eventually(t, 15*time.Second, func() bool { return l.done() >= 50 }, "no progress")
	for round := range 3 {
		old := waitLeader(t, c, 10*time.Second)
		before := l.done()
		signalled := time.Now()
		require.NoError(t, c.Stop(old, 15*time.Second), "round %d: %s did not stop cleanly", round, c.Nodes[old].Name)
		nl := otherLeader(t, c, old, 5*time.Second)
		took := time.Since(signalled)
		assert.Contains(t, c.Log(old), "handed leadership over before shutdown", "round %d: %s stopped without handing over", round, c.Nodes[old].Name)
		// The stopped leader saw its successor's term before it exited:
		// it stepped down first, then stopped.
		out, code := raftkvCmd(t, "inspect", c.DataDir(old))
		require.Equal(t, 0, code, out)
		var in struct{ HardState struct{ Term uint64 } }
		require.NoError(t, json.Unmarshal([]byte(out), &in), out)
		st, err := c.NodeStatus(nl)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, in.HardState.Term, st.Term, "round %d: %s stopped before it saw the new leader's term", round, c.Nodes[old].Name)
		t.Logf("round %d: %s stopped, %s leads, %v after SIGTERM", round, c.Nodes[old].Name, c.Nodes[nl].Name, took.Round(time.Millisecond))
		// Without a handover the others would wait out an election timeout
		// (500 ms here) from the last heartbeat, then elect.
		assert.Less(t, took, 2*time.Second, "round %d: no new leader soon after SIGTERM", round)
		eventually(t, 15*time.Second, func() bool { return l.done() >= before+30 }, "round %d: no progress after the handover", round)
		require.NoError(t, c.StartNode(old))
		eventually(t, 15*time.Second, func() bool {
			st, err := c.NodeStatus(old)
			return err == nil && st.Leader != "" && st.AppliedIndex > 0
		}, "round %d: %s did not rejoin", round, c.Nodes[old].Name)
	}
	cancel()
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Empty(t, l.failed, "client writes failed during the rolling restart")
	t.Logf("%d writes acknowledged, %d failed", len(l.acked), len(l.failed))
	checkAcked(t, c, l.acked)
}

// TestTransferLeaderCommand moves leadership with `raftkv transfer-leader`
// to a named node and to the most caught-up follower, and checks the
// endpoint's refusals.
func TestTransferLeaderCommand(t *testing.T) {
	c := startCluster(t, 3)
	old := waitLeader(t, c, 5*time.Second)
	target := (old + 1) % 3
	out, code := raftkvCmd(t, "transfer-leader", c.Nodes[target].Name, "--hostfile", c.Hostfile)
	require.Equal(t, 0, code, out)
	assert.Equal(t, fmt.Sprintf("OK (leader %s -> %s)\n", c.Nodes[old].Name, c.Nodes[target].Name), out)
	assert.Equal(t, target, waitLeader(t, c, 5*time.Second))

	out, code = raftkvCmd(t, "transfer-leader", c.Nodes[target].Name, "--hostfile", c.Hostfile)
	require.Equal(t, 0, code, out)
	assert.Equal(t, c.Nodes[target].Name+" already leads\n", out)

	out, code = raftkvCmd(t, "transfer-leader", "--hostfile", c.Hostfile)
	require.Equal(t, 0, code, out)
	nl := waitLeader(t, c, 5*time.Second)
	assert.NotEqual(t, target, nl, out)
	assert.Contains(t, out, "-> "+c.Nodes[nl].Name)

	out, code = raftkvCmd(t, "transfer-leader", "nobody", "--hostfile", c.Hostfile)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "not a node of this cluster")

	ep := c.Nodes[(nl+1)%3].HTTPAddr // a follower: forwards
	for _, tc := range []struct {
		method, query string
		code          int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "to=r0&to=r1", http.StatusBadRequest},
		{http.MethodPost, "x=1", http.StatusBadRequest},
		{http.MethodPost, "to=nobody", http.StatusBadRequest},
	} {
		u := "https://" + ep + "/v1/leader/transfer"
		if tc.query != "" {
			u += "?" + tc.query
		}
		req, err := http.NewRequest(tc.method, u, nil)
		require.NoError(t, err)
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, tc.code, resp.StatusCode, "%s %s", tc.method, tc.query)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"))
	}
}
