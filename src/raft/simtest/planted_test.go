package simtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/node"
)

// TestPlantedSendBeforePersistIsCaught proves the simulator's power over the
// runtime's own Ready handling (node.Handler): with an ordering bug planted
// into it, fixed seeds fail, each with the invariant that caught it. The
// seeds are pinned: a change that makes one of them pass has weakened the
// simulator (or changed its schedules: then pick the new first failing seeds
// and say so in the commit).
func TestPlantedSendBeforePersistIsCaught(t *testing.T) {
	tests := []struct {
		name string
		bug  node.PlantedBug
		// noPromiseCheck: caught by the bug's consequences after a crash,
		// not by the check of each message against the durable state.
		noPromiseCheck bool
		seeds          []int64
		want           string
	}{
		// The bug, thesis 3.8: a vote reply sent before the vote is
		// on disk. In 2000 seeds its consequence (a second vote in the same
		// term after a crash, then two leaders) never showed: it takes a
		// split vote, a crash inside that one write and the other
		// candidate's request arriving after the restart. So every message
		// is checked against its sender's durable state when it leaves.
		{"vote reply before its write", node.PlantVoteRespBeforePersist, false,
			[]int64{1, 2, 3}, "grants its vote in term 1, but its durable term and vote are t0/-1"},
		{"every message before the write", node.PlantAllBeforePersist, false,
			[]int64{1, 2, 3}, "asks for votes in term"},
		// Without that check, acknowledgements sent before the write and
		// lost in a crash inside it are caught end to end: a leader commits
		// on a copy that is gone. (Seeds re-pinned when the core began to
		// keep one read round in flight, which changed the schedules.)
		{"every message before the write, end to end", node.PlantAllBeforePersist, true,
			[]int64{9, 11, 17, 20}, "its log lost acknowledged entries"},
		{"every message before the write, leader completeness", node.PlantAllBeforePersist, true,
			[]int64{324}, "leader n1 of term 4 lacks entry 35/t1 committed by term 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, seed := range tt.seeds {
				opts := optionsFor(seed)
				opts.Planted, opts.noPromiseCheck = tt.bug, tt.noPromiseCheck
				err := New(opts).Run()
				require.Error(t, err, "seed %d: the planted bug went unnoticed", seed)
				assert.Contains(t, err.Error(), tt.want, "seed %d", seed)
				// The same seed passes without the bug: the failure is the bug's.
				opts.Planted = node.NoPlantedBug
				assert.NoError(t, New(opts).Run(), "seed %d without the bug", seed)
			}
		})
	}
}
