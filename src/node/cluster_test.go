package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"raftkv/src/kv"
	"raftkv/src/raft"
)

// In-process runtime tests (hashicorp/raft's MakeCluster style): whole
// nodes in this test process, each on real storage in t.TempDir(), talking
// over the real transport on 127.0.0.1. No HTTP: the tests call Propose and
// Read as the HTTP API does, and poll with deadlines, never sleep.

// cluster is a test cluster of runtimes.
type cluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*Node // nil while stopped
	logs  *observer.ObservedLogs
}

// testConfig is one node alone, with fast timing.
func testConfig(t testing.TB) Config {
	return newConfigs(t, 1, zaptest.NewLogger(t))[0]
}

func newConfigs(t testing.TB, n int, lg *zap.Logger) []Config {
	t.Helper()
	peers := make([]Peer, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())
		peers[i] = Peer{Name: fmt.Sprintf("r%d", i), RaftAddr: func() string { return addr }}
	}
	dir := t.TempDir()
	cfgs := make([]Config, n)
	for i := range n {
		cfgs[i] = Config{
			ID: raft.ID(i), Peers: peers, ClusterID: "test",
			DataDir:    filepath.Join(dir, peers[i].Name),
			RaftListen: peers[i].RaftAddr(),
			Heartbeat:  10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			Logger: lg,
		}
	}
	return cfgs
}

// makeCluster starts n nodes (tweak may change each configuration first)
// and stops the running ones at the end of the test.
func makeCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	obs, logs := observer.New(zap.InfoLevel)
	lg := zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), obs))
	c := &cluster{t: t, cfgs: newConfigs(t, n, lg), nodes: make([]*Node, n), logs: logs}
	for i := range c.cfgs {
		if tweak != nil {
			tweak(&c.cfgs[i])
		}
		c.start(i)
	}
	t.Cleanup(func() {
		for i, n := range c.nodes {
			if n != nil {
				assert.NoError(t, n.Stop(), "stop node %d", i)
			}
		}
	})
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	n, err := New(c.cfgs[i])
	require.NoError(c.t, err)
	require.NoError(c.t, n.Start())
	c.nodes[i] = n
}

func (c *cluster) stop(i int) {
	c.t.Helper()
	require.NoError(c.t, c.nodes[i].Stop())
	c.nodes[i] = nil
}

// leader waits until one running node leads and every running node knows
// it, and returns it.
func (c *cluster) leader() int {
	c.t.Helper()
	lead := -1
	eventually(c.t, 10*time.Second, "a leader known to all", func() bool {
		lead = -1
		for i, n := range c.nodes {
			if n != nil && n.Status().Role == raft.RoleLeader {
				lead = i
			}
		}
		if lead < 0 {
			return false
		}
		for _, n := range c.nodes {
			if n != nil && n.Status().Lead != raft.ID(lead) {
				return false
			}
		}
		return true
	})
	return lead
}

// eventually polls cond until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		<-time.After(2 * time.Millisecond) // a poll interval, bounded by the deadline
	}
}

func put(key, value string) []byte {
	return kv.EncodeCommand(kv.Command{Op: kv.OpPut, Key: key, Value: value})
}

// within is a deadline channel for Propose and Read.
func within(d time.Duration) <-chan time.Time { return time.After(d) }

// TestWriteAnsweredOnlyAfterApply: Propose returns only once the leader's
// state machine applied the command, at the index it reports; the
// followers apply it too.
func TestWriteAnsweredOnlyAfterApply(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	for i := range 20 {
		res, err := c.nodes[l].Propose(put("k", fmt.Sprint(i)), within(5*time.Second))
		require.NoError(t, err)
		require.NoError(t, res.Err)
		assert.GreaterOrEqual(t, c.nodes[l].AppliedIndex(), res.Index, "answered before apply")
		v, ok := c.nodes[l].Get("k")
		assert.True(t, ok)
		assert.Equal(t, fmt.Sprint(i), v, "the answer came before its command applied")
	}
	for i, n := range c.nodes {
		eventually(t, 5*time.Second, fmt.Sprintf("node %d applies", i), func() bool {
			v, _ := n.Get("k")
			return v == "19"
		})
	}
}

// TestNotLeaderVersusTimeout: a follower refuses at once (ErrNotLeader: not
// proposed, the HTTP API's 503 or a forward); a leader that lost its
// followers after taking the command cannot tell its fate (ErrTimeout:
// 504), and neither can a read be confirmed.
func TestNotLeaderVersusTimeout(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	_, err := c.nodes[f].Propose(put("k", "v"), within(5*time.Second))
	assert.ErrorIs(t, err, ErrNotLeader)
	assert.ErrorIs(t, c.nodes[f].Read(within(5*time.Second)), ErrNotLeader)

	c.stop(f)
	c.stop((l + 2) % 3)
	_, err = c.nodes[l].Propose(put("k", "v"), within(300*time.Millisecond))
	if err != nil {
		// Check-quorum may have deposed the leader before it took the
		// command: then it was refused, never proposed.
		assert.True(t, errorsIsAny(err, ErrTimeout, ErrNotLeader), "got %v", err)
	} else {
		t.Fatal("a command committed with two of three nodes down")
	}
	err = c.nodes[l].Read(within(300 * time.Millisecond))
	assert.True(t, errorsIsAny(err, ErrTimeout, ErrNotLeader), "a read was confirmed without a quorum: %v", err)
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// TestReadWaitsForQuorumAndApply: a read on the leader returns once a
// quorum confirmed its leadership and its state machine holds every write
// acknowledged before; many concurrent reads all complete.
func TestReadWaitsForQuorumAndApply(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	res, err := c.nodes[l].Propose(put("k", "v"), within(5*time.Second))
	require.NoError(t, err)
	const readers = 64
	errs := make(chan error, readers)
	for range readers {
		go func() { errs <- c.nodes[l].Read(within(5 * time.Second)) }()
	}
	for range readers {
		require.NoError(t, <-errs)
	}
	assert.GreaterOrEqual(t, c.nodes[l].AppliedIndex(), res.Index)
}

// TestFollowerCatchesUpBySnapshot: a follower that was down while the
// leader compacted its log past the follower's end is sent a snapshot
// ("sending snapshot"), installs it ("installed snapshot") and then holds
// every key.
func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery = 10 })
	l := c.leader()
	f := (l + 1) % 3
	c.stop(f)
	for i := range 100 {
		_, err := c.nodes[l].Propose(put(fmt.Sprint("k", i), "v"), within(5*time.Second))
		require.NoError(t, err)
	}
	eventually(t, 10*time.Second, "the leader compacts its log", func() bool {
		return c.nodes[l].Status().SnapshotIndex > 50
	})
	// The transport keeps messages for a peer until a dial to it fails, then
	// drops them; had the backlog survived, the follower would catch up from
	// it. Wait for a drop after the compaction, and write once more, so that
	// what is left starts past the follower's log.
	dropped := c.nodes[l].tr.Stats()[raft.ID(f)].Dropped
	eventually(t, 10*time.Second, "the leader drops its backlog for the follower", func() bool {
		return c.nodes[l].tr.Stats()[raft.ID(f)].Dropped > dropped
	})
	_, err := c.nodes[l].Propose(put("k100", "v"), within(5*time.Second))
	require.NoError(t, err)
	c.start(f)
	eventually(t, 10*time.Second, "the follower catches up", func() bool {
		v, ok := c.nodes[f].Get("k100")
		return ok && v == "v"
	})
	assert.Positive(t, c.logs.FilterMessage("sending snapshot").Len())
	assert.Positive(t, c.logs.FilterMessage("installed snapshot").Len())
}

// TestStopFailsPendingAndWritesStateMachine: a command still waiting when
// the node stops gets ErrStopping (its outcome unknown), and the stop
// leaves statemachine.json with everything applied.
func TestStopFailsPendingAndWritesStateMachine(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	res, err := c.nodes[l].Propose(put("done", "yes"), within(5*time.Second))
	require.NoError(t, err)
	c.stop((l + 1) % 3)
	c.stop((l + 2) % 3)

	last := c.nodes[l].Status().LastIndex
	pending := make(chan error, 1)
	go func() {
		_, err := c.nodes[l].Propose(put("pending", "x"), nil) // no deadline
		pending <- err
	}()
	eventually(t, 5*time.Second, "the leader takes the command", func() bool {
		return c.nodes[l].Status().LastIndex > last || c.nodes[l].Status().Role != raft.RoleLeader
	})
	c.stop(l)
	select {
	case err := <-pending:
		assert.True(t, errorsIsAny(err, ErrStopping, ErrNotLeader), "got %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("a pending command was not answered at stop")
	}

	b, err := os.ReadFile(filepath.Join(c.cfgs[l].DataDir, StateMachineFile))
	require.NoError(t, err)
	var sm struct {
		Index        uint64
		StateMachine struct{ Contents map[string]string }
	}
	require.NoError(t, json.Unmarshal(b, &sm))
	assert.GreaterOrEqual(t, sm.Index, res.Index)
	assert.Equal(t, "yes", sm.StateMachine.Contents["done"])
}

// manualTicker is a clock the test drives.
type manualTicker struct{ c chan time.Time }

func (m manualTicker) Chan() <-chan time.Time { return m.c }
func (m manualTicker) Stop()                  {}

// TestInjectedTicker: the loop's only clock is the injected ticker. A
// single node whose clock does not tick never campaigns; ticked by hand
// past its election timeout, it leads.
func TestInjectedTicker(t *testing.T) {
	tk := manualTicker{c: make(chan time.Time)}
	c := makeCluster(t, 1, func(cfg *Config) { cfg.NewTicker = func(time.Duration) Ticker { return tk } })
	n := c.nodes[0]
	assert.Equal(t, raft.RoleFollower, n.Status().Role)
	// 2 * ElectionTicks is the longest randomized election timeout.
	for range 2 * 10 {
		tk.c <- time.Time{}
	}
	eventually(t, 5*time.Second, "the ticked node leads", func() bool { return n.Status().Role == raft.RoleLeader })
}
