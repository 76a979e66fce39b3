package raft

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// validConfig is a config NewNode accepts: node 1 of {0, 1, 2}, recovered
// from a snapshot at 5/t2 and entries 6..8.
func validConfig() Config {
	return Config{
		ID: 1, Peers: []ID{0, 1, 2}, ElectionTicks: 10, HeartbeatTicks: 2,
		Rand:      rand.New(rand.NewSource(1)),
		Snapshot:  &Snapshot{Index: 5, Term: 2, Peers: []ID{0, 1, 2}},
		HardState: HardState{Term: 3, Vote: 0, Commit: 7},
		Entries:   []Entry{{Index: 6, Term: 2}, {Index: 7, Term: 3}, {Index: 8, Term: 3}},
		Applied:   6,
	}
}

func TestConfigValid(t *testing.T) {
	cfg := validConfig()
	require.NoError(t, cfg.Validate())
	n, err := NewNode(cfg)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), n.log.committed)
	assert.Equal(t, uint64(6), n.log.applied)
	// Zero values are defaults, and a fresh node has nothing recovered.
	require.NoError(t, Config{ID: 0, Peers: []ID{0}, Rand: rand.New(rand.NewSource(1))}.Validate())
	// A commit index older than the snapshot is fine: the snapshot is
	// committed.
	cfg.HardState.Commit = 2
	cfg.Applied = 5
	require.NoError(t, cfg.Validate())
}

// TestConfigRules has one case per rule: the change to a valid config and
// the message it must produce, naming the field and its value.
func TestConfigRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"negative election", func(c *Config) { c.ElectionTicks = -1 }, "ElectionTicks -1 is negative"},
		{"negative heartbeat", func(c *Config) { c.HeartbeatTicks = -2 }, "HeartbeatTicks -2 is negative"},
		{"negative max entries", func(c *Config) { c.MaxMsgEntries = -3 }, "MaxMsgEntries -3 is negative"},
		{"negative inflight", func(c *Config) { c.MaxInflight = -4 }, "MaxInflight -4 is negative"},
		{"heartbeat = election", func(c *Config) { c.HeartbeatTicks = 10 }, "HeartbeatTicks 10 must be below ElectionTicks 10"},
		{"heartbeat > default election", func(c *Config) { c.ElectionTicks = 0; c.HeartbeatTicks = 11 }, "HeartbeatTicks 11 must be below ElectionTicks 10"},
		{"nil rand", func(c *Config) { c.Rand = nil }, "Rand is nil"},
		{"negative ID", func(c *Config) { c.ID = -2 }, "ID -2 is negative"},
		{"bad configuration entry", func(c *Config) { c.Entries[1].Type = EntryConfig; c.Entries[1].Data = []byte(`{"members":[]}`) }, "Entries[1] (index 7): raft: invalid membership: no members"},
		{"negative peer", func(c *Config) { c.Peers = []ID{0, 1, -1} }, "Peers[2] -1 is negative"},
		{"duplicate peer", func(c *Config) { c.Peers = []ID{0, 1, 2, 1} }, "Peers[3] 1 appears twice"},
		{"ID not a peer", func(c *Config) { c.ID = 7 }, "ID 7 is not among Peers [0 1 2]"},
		{"snapshot without term", func(c *Config) { c.Snapshot.Term = 0; c.Entries[0].Term = 3 }, "Snapshot.Term 0 at Snapshot.Index 5"},
		{"snapshot index overflow", func(c *Config) {
			c.Snapshot.Index = math.MaxUint64
			c.Entries = nil
			c.HardState.Commit = 0
			c.Applied = 0
		}, "Snapshot.Index 18446744073709551615 beyond the largest index"},
		{"entries after a gap", func(c *Config) { c.Entries[0].Index = 7 }, "Entries[0].Index 7, want 6"},
		{"entries with a hole", func(c *Config) { c.Entries[2].Index = 9 }, "Entries[2].Index 9, want 8"},
		{"entries overlap the snapshot", func(c *Config) { c.Entries = append([]Entry{{Index: 5, Term: 2}}, c.Entries...) }, "Entries[0].Index 5, want 6"},
		{"entry term 0", func(c *Config) {
			c.Snapshot = nil
			c.Entries = []Entry{{Index: 1}}
			c.HardState.Commit = 0
			c.Applied = 0
		}, "Entries[0].Term is 0 (index 1)"},
		{"entry term goes down", func(c *Config) { c.Entries[2].Term = 2 }, "Entries[2].Term 2 below the preceding term 3 (index 8)"},
		{"entry term below snapshot", func(c *Config) { c.Entries[0].Term = 1 }, "Entries[0].Term 1 below the preceding term 2 (index 6)"},
		{"term overflow", func(c *Config) { c.HardState.Term = math.MaxUint64 }, "HardState.Term 18446744073709551615 cannot be incremented"},
		{"vote for no node", func(c *Config) { c.HardState.Vote = -5 }, "HardState.Vote -5 is not a node's ID"},
		{"commit beyond log", func(c *Config) { c.HardState.Commit = 9 }, "HardState.Commit 9 beyond the last recovered index 8"},
		{"applied beyond commit", func(c *Config) { c.Applied = 8 }, "Applied 8 beyond the recovered commit index 7"},
		{"applied beyond snapshot", func(c *Config) { c.Entries = nil; c.HardState.Commit = 5; c.Applied = 6 }, "Applied 6 beyond the recovered commit index 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 1, strings.Count(err.Error(), "raft: invalid config"), "one problem, one error: %v", err)
			_, nerr := NewNode(cfg)
			assert.Equal(t, err.Error(), nerr.Error(), "NewNode must refuse the same way")
		})
	}
}

// TestConfigReportsEveryProblem: a config with many problems gets one error
// per problem, not just the first.
func TestConfigReportsEveryProblem(t *testing.T) {
	cfg := Config{
		ID: 4, Peers: []ID{0, 1, 1}, ElectionTicks: -1, HeartbeatTicks: -1, MaxInflight: -1,
		HardState: HardState{Term: 2, Vote: 1, Commit: 3},
		Entries:   []Entry{{Index: 2, Term: 1}},
		Applied:   3,
	}
	err := cfg.Validate()
	require.Error(t, err)
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	var got []string
	for _, e := range joined.Unwrap() {
		assert.ErrorIs(t, e, ErrInvalidConfig)
		got = append(got, strings.TrimPrefix(e.Error(), "raft: invalid config: "))
	}
	assert.Equal(t, []string{
		"ElectionTicks -1 is negative",
		"HeartbeatTicks -1 is negative",
		"MaxInflight -1 is negative",
		"Rand is nil: the caller seeds the source of election timeouts",
		"Peers[2] 1 appears twice",
		"ID 4 is not among Peers [0 1 1]",
		"Entries[0].Index 2, want 1: the entries must continue the snapshot (index 0) without gaps",
		"HardState.Commit 3 beyond the last recovered index 1",
		"Applied 3 beyond the recovered commit index 1",
	}, got)
}
