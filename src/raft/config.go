package raft

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every problem Config validation reports.
var ErrInvalidConfig = errors.New("raft: invalid config")

// Defaults for the Config fields left zero.
const (
	defaultElectionTicks  = 10
	defaultHeartbeatTicks = 1
	defaultMaxMsgEntries  = 4096
	defaultMaxMsgBytes    = 1 << 20
	defaultMaxInflight    = 256
	// defaultPromoteLag: a learner this close to the leader's log catches
	// up within a round trip or two of AppendEntries, so promoting it does
	// not stall commits while it fetches the rest.
	defaultPromoteLag = 256
	// The log window (Config.LogStorage): enough recent entries that a
	// follower a few round trips behind is served from memory. The byte
	// bound binds on large entries only (a bulk load's transactions of 128
	// keys, 40 KB each): 16 MiB of them keep a node at a million keys under
	// 1.5 times its raw data, where 64 MiB was a fifth of it.
	defaultLogWindowEntries = 8192
	defaultLogWindowBytes   = 16 << 20
)

// setDefaults fills the fields left zero. Negative values stay, for validate
// to report.
func (c *Config) setDefaults() {
	if c.ElectionTicks == 0 {
		c.ElectionTicks = defaultElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = defaultHeartbeatTicks
	}
	if c.MaxMsgEntries == 0 {
		c.MaxMsgEntries = defaultMaxMsgEntries
	}
	if c.MaxMsgBytes == 0 {
		c.MaxMsgBytes = defaultMaxMsgBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = defaultMaxInflight
	}
	if c.PromoteLag == 0 {
		c.PromoteLag = defaultPromoteLag
	}
	if c.LogWindowEntries == 0 {
		c.LogWindowEntries = defaultLogWindowEntries
	}
	if c.LogWindowBytes == 0 {
		c.LogWindowBytes = defaultLogWindowBytes
	}
}

// Validate reports every problem with c at once, joined with errors.Join;
// each wraps ErrInvalidConfig and names the field and its value. Zero
// values stand for the defaults. NewNode runs the same checks.
func (c Config) Validate() error {
	c.setDefaults()
	return c.validate()
}

// validate checks a Config whose defaults are set: the tuning, the cluster,
// and the recovered state, which must be one a correct node could have
// persisted (Raft figure 2: a log of contiguous entries whose terms never go
// down, a commit index within it).
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...)))
	}

	// Tuning.
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ElectionTicks", c.ElectionTicks},
		{"HeartbeatTicks", c.HeartbeatTicks},
		{"MaxMsgEntries", c.MaxMsgEntries},
		{"MaxInflight", c.MaxInflight},
		{"LogWindowEntries", c.LogWindowEntries},
	} {
		if f.v < 0 {
			bad("%s %d is negative", f.name, f.v)
		}
	}
	if c.HeartbeatTicks > 0 && c.ElectionTicks > 0 && c.HeartbeatTicks >= c.ElectionTicks {
		// Followers would time out between heartbeats (Raft 5.2 wants
		// broadcastTime << electionTimeout).
		bad("HeartbeatTicks %d must be below ElectionTicks %d", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.Rand == nil {
		bad("Rand is nil: the caller seeds the source of election timeouts")
	}

	// The cluster.
	if c.ID < 0 {
		bad("ID %d is negative", c.ID)
	}
	seen := make(map[ID]bool, len(c.Peers))
	for i, p := range c.Peers {
		switch {
		case p < 0:
			bad("Peers[%d] %d is negative", i, p)
		case seen[p]:
			bad("Peers[%d] %d appears twice", i, p)
		}
		seen[p] = true
	}
	if len(c.Peers) > 0 && c.ID >= 0 && !seen[c.ID] {
		bad("ID %d is not among Peers %v", c.ID, c.Peers)
	}

	// The recovered state.
	var offset, offsetTerm uint64
	if s := c.Snapshot; !s.IsEmpty() {
		offset, offsetTerm = s.Index, s.Term
		if s.Term == 0 {
			bad("Snapshot.Term 0 at Snapshot.Index %d", s.Index)
		}
		if s.Index > maxIndex {
			bad("Snapshot.Index %d beyond the largest index %d", s.Index, uint64(maxIndex))
		}
	}
	last := offset
	if len(c.Entries) > 0 {
		prevTerm := offsetTerm
		for i, e := range c.Entries {
			if want := offset + 1 + uint64(i); e.Index != want {
				bad("Entries[%d].Index %d, want %d: the entries must continue the snapshot (index %d) without gaps", i, e.Index, want, offset)
				break
			}
			if e.Term == 0 {
				bad("Entries[%d].Term is 0 (index %d): terms start at 1", i, e.Index)
				break
			}
			if e.Term < prevTerm {
				// Log terms never go down (Raft 5.3: a leader appends only
				// its own term's entries after entries it already holds).
				bad("Entries[%d].Term %d below the preceding term %d (index %d)", i, e.Term, prevTerm, e.Index)
				break
			}
			prevTerm = e.Term
		}
		last = offset + uint64(len(c.Entries))
	}
	hs := c.HardState
	if hs.Term > maxTerm {
		bad("HardState.Term %d cannot be incremented", hs.Term)
	}
	if hs.Vote < None {
		bad("HardState.Vote %d is not a node's ID", hs.Vote)
	}
	if !c.Snapshot.IsEmpty() {
		if err := c.snapshotMeta().Membership.Validate(); err != nil {
			bad("Snapshot's configuration: %v", err)
		}
	}
	for i, e := range c.Entries {
		if e.Type > EntryConfig {
			bad("Entries[%d].Type %d unknown (index %d)", i, e.Type, e.Index)
		} else if e.Type == EntryConfig {
			if _, err := DecodeMembership(e.Data); err != nil {
				bad("Entries[%d] (index %d): %v", i, e.Index, err)
			}
		}
	}
	if hs.Commit > last {
		// A node commits only entries it holds, and they are durable
		// before the commit index is (see Ready).
		bad("HardState.Commit %d beyond the last recovered index %d", hs.Commit, last)
	}
	if committed := max(offset, min(hs.Commit, last)); c.Applied > committed {
		// The state machine can reflect only committed entries.
		bad("Applied %d beyond the recovered commit index %d", c.Applied, committed)
	}
	return errors.Join(errs...)
}

// snapshotMeta is the recovered snapshot's metadata with its configuration
// made explicit: a snapshot that predates configurations in the log names
// its voters in Peers, or if it names none, they are Config.Peers.
func (c *Config) snapshotMeta() *Snapshot {
	s := c.Snapshot
	if s.Membership == nil && len(s.Peers) == 0 {
		m := legacyMembership(c.Peers)
		return &Snapshot{Index: s.Index, Term: s.Term, Membership: &m}
	}
	return s.withoutData()
}
