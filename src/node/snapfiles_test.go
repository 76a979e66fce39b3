package node

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"raftkv/src/kv"
)

// TestDeltaSnapshotsInCluster: with snapshots every few entries, the nodes
// write deltas on a base (storage's delta files) and now and then a new
// base; what a running node's folder recovers to (Inspect, as a restart
// after kill -9 would) is its state; a clean stop leaves a base only, and a
// restart from it holds every key.
func TestDeltaSnapshotsInCluster(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery = 20 })
	for i := range 400 {
		cmd := put(fmt.Sprint("k", i%50), fmt.Sprint("v", i))
		if i%7 == 3 {
			cmd = kv.EncodeCommand(kv.Command{Op: kv.OpDelete, Key: fmt.Sprint("k", (i+5)%50)})
		}
		c.propose(cmd)
	}
	l := c.leader()
	deltas := func() int { return c.logs.FilterMessage("snapshot taken").FilterField(zap.Bool("delta", true)).Len() }
	eventually(t, 10*time.Second, "the nodes write delta snapshots", func() bool { return deltas() > 3 })
	commit := c.nodes[l].Status().Commit
	for i := range c.nodes {
		eventually(t, 10*time.Second, "every node applies everything", func() bool { return c.nodes[i].kv.AppliedIndex() >= commit })
		want, err := c.nodes[i].kv.Snapshot()
		require.NoError(t, err)
		ins, err := Inspect(c.cfgs[i].DataDir)
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(ins.SM), "node %d", i)
	}
	f := (l + 1) % 3
	c.stop(f)
	files, err := filepath.Glob(filepath.Join(c.cfgs[f].DataDir, "delta-*.jsonl"))
	require.NoError(t, err)
	assert.Empty(t, files, "a clean stop merges the deltas into a base")
	c.start(f)
	c.propose(put("after", "restart"))
	l = c.leader()
	eventually(t, 10*time.Second, "the restarted follower catches up", func() bool {
		v, ok := c.nodes[f].Get("after")
		return ok && v == "restart"
	})
	want, err := c.nodes[l].kv.Snapshot()
	require.NoError(t, err)
	eventually(t, 10*time.Second, "it holds the leader's state", func() bool {
		got, err := c.nodes[f].kv.Snapshot()
		return err == nil && string(got) == string(want)
	})
}

// propose commits cmd through whichever node leads, again after a change
// of leader (the machine may be slow enough, under -race, for one).
func (c *cluster) propose(cmd []byte) {
	c.t.Helper()
	var err error
	eventually(c.t, 20*time.Second, "a proposal commits", func() bool {
		_, err = c.nodes[c.leader()].Propose(cmd, within(5*time.Second))
		return err == nil || !errorsIsAny(err, ErrNotLeader, ErrLost, ErrBusy, ErrTimeout, ErrStopping)
	})
	require.NoError(c.t, err)
}

// TestRestartedFollowerCatchesUpFromLog: a follower stopped while the
// leader takes a snapshot catches up from the leader's log, without a
// snapshot transfer, because the leader keeps the log back to its previous
// snapshot (finishSnapshot; for large states, lowered here). Without that margin the leader would have
// compacted past the follower's log and sent it the whole state.
func TestRestartedFollowerCatchesUpFromLog(t *testing.T) {
	// The margin is kept for large states only; this one is small.
	defer func(v uint64) { catchUpMarginMinState = v }(catchUpMarginMinState)
	catchUpMarginMinState = 0
	c := makeCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery = 20 })
	l := c.leader()
	for i := range 30 {
		c.propose(put(fmt.Sprint("k", i), "v"))
	}
	l = c.leader()
	taken := func() int {
		return c.logs.FilterMessage("snapshot taken").FilterField(zap.String("node", c.cfgs[l].Peers[l].Name)).Len()
	}
	eventually(t, 10*time.Second, "the leader takes a snapshot", func() bool { return taken() >= 1 })
	f := (l + 1) % 3
	c.stop(f)
	before := taken()
	// Write until the leader took one snapshot (not two: the margin is one
	// interval), which compacts its log past the follower's last index.
	i := 30
	eventually(t, 10*time.Second, "the leader takes a snapshot while the follower is down", func() bool {
		_, err := c.nodes[l].Propose(put(fmt.Sprint("k", i), "v"), within(5*time.Second))
		require.NoError(t, err)
		i++
		return taken() > before
	})
	_, err := c.nodes[l].Propose(put("k59", "v"), within(5*time.Second))
	require.NoError(t, err)
	sent := c.logs.FilterMessage("sending snapshot").Len()
	c.start(f)
	eventually(t, 10*time.Second, "the follower catches up", func() bool {
		v, ok := c.nodes[f].Get("k59")
		return ok && v == "v"
	})
	assert.Equal(t, sent, c.logs.FilterMessage("sending snapshot").Len(), "a snapshot was sent to a follower whose log overlapped")
}

// TestFewLargeEntriesTakeASnapshot: a node snapshots after
// maxLogBytesBetweenSnapshots of log even when far fewer entries than
// SnapshotEvery were applied (a bulk load of large entries), so that the
// log a restart replays stays bounded.
func TestFewLargeEntriesTakeASnapshot(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery = 1 << 30 })
	big := strings.Repeat("x", 512<<10)
	taken := func() int { return c.logs.FilterMessage("snapshot taken").Len() }
	// Twice the bound (the nodes' thresholds are staggered up to 1.5x).
	for i := range 2 * maxLogBytesBetweenSnapshots / len(big) {
		c.propose(put(fmt.Sprint("k", i%8), big))
	}
	eventually(t, 10*time.Second, "every node snapshots", func() bool { return taken() >= 3 })
}
