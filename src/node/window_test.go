package node

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
	"raftkv/src/snapstream"
)

// TestLaggingFollowerServedFromWAL: with a log window of four entries and
// no snapshot, a follower that was down while 300 commands committed is
// caught up with entries the leader reads back from its WAL segments
// (walReader), and it ends with every key.
func TestLaggingFollowerServedFromWAL(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotEvery = 1 << 30
		cfg.LogWindowEntries, cfg.LogWindowBytes = 4, 1<<30
	})
	l := c.leader()
	f := (l + 1) % 3
	c.stop(f)
	for i := range 300 {
		l = c.putRetry(put(fmt.Sprint("k", i), fmt.Sprint("v", i)))
	}
	c.start(f)
	eventually(t, 10*time.Second, "the follower catches up", func() bool {
		return c.nodes[f].AppliedIndex() >= c.nodes[l].AppliedIndex()
	})
	for i := range 300 {
		v, ok := c.nodes[f].Get(fmt.Sprint("k", i))
		require.True(t, ok, "k%d", i)
		assert.Equal(t, fmt.Sprint("v", i), v)
	}
	assert.Zero(t, c.logs.FilterMessage("sending snapshot").Len(), "caught up from the log, not a snapshot")
	assert.Zero(t, c.nodes[l].Status().SnapshotIndex)
}

// TestSnapshotStreamedInChunks: a follower far behind a compacted leader
// receives the snapshot in many small chunks (256 bytes, two in flight),
// verifies and installs it, and ends with every key; no message carried
// the whole state.
func TestSnapshotStreamedInChunks(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) {
		cfg.SnapshotEvery = 10
		cfg.SnapshotStream = snapstream.Config{ChunkBytes: 256, WindowChunks: 2}
	})
	l := c.leader()
	f := (l + 1) % 3
	c.stop(f)
	for i := range 200 {
		l = c.putRetry(put(fmt.Sprint("k", i), fmt.Sprint("v", i)))
	}
	eventually(t, 10*time.Second, "the leader compacts its log", func() bool {
		return c.nodes[l].Status().SnapshotIndex > 150
	})
	dropped := c.nodes[l].tr.Stats()[raft.ID(f)].Dropped
	eventually(t, 10*time.Second, "the leader drops its backlog for the follower", func() bool {
		return c.nodes[l].tr.Stats()[raft.ID(f)].Dropped > dropped
	})
	l = c.putRetry(put("last", "v"))
	c.start(f)
	eventually(t, 10*time.Second, "the follower catches up", func() bool {
		v, ok := c.nodes[f].Get("last")
		return ok && v == "v"
	})
	for i := range 200 {
		v, ok := c.nodes[f].Get(fmt.Sprint("k", i))
		require.True(t, ok, "k%d", i)
		assert.Equal(t, fmt.Sprint("v", i), v)
	}
	sent := c.logs.FilterMessage("sending snapshot").AllUntimed()
	require.NotEmpty(t, sent)
	bytes := sent[0].ContextMap()["bytes"].(int64)
	assert.Greater(t, bytes, int64(10*256), "the snapshot spans many chunks")
	assert.Positive(t, c.logs.FilterMessage("snapshot sent").Len())
	assert.Positive(t, c.logs.FilterMessage("snapshot received").Len())
	assert.Positive(t, c.logs.FilterMessage("installed snapshot").Len())
	// The follower's folder holds the installed snapshot, no staging file.
	_, err := os.Stat(filepath.Join(c.cfgs[f].DataDir, wholeSnapshotFile))
	assert.True(t, os.IsNotExist(err), "staged file left behind: %v", err)
}

// putRetry proposes an idempotent command until a leader applies it
// (leadership may move while a node is down, under the race detector
// especially), and returns that leader.
func (c *cluster) putRetry(cmd []byte) int {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		l := c.leader()
		_, err := c.nodes[l].Propose(cmd, within(5*time.Second))
		if err == nil {
			return l
		}
		if attempt > 20 || !errorsIsAny(err, ErrNotLeader, ErrTimeout, ErrLost, ErrUnknownOutcome) {
			require.NoError(c.t, err)
		}
	}
}
