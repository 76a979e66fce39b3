package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		_, err := c.nodes[l].Propose(put(fmt.Sprint("k", i), fmt.Sprint("v", i)), within(5*time.Second))
		require.NoError(t, err)
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
