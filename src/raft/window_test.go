package raft

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// diskReader reads a network node's durable log back (LogStorage), and
// counts the reads.
type diskReader struct {
	nw    **network // set once newNetwork returns
	id    ID
	reads *int
}

func (r diskReader) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	*r.reads++
	d := (*r.nw).disk[r.id]
	var s MemoryLogStorage
	if d.snap != nil {
		s.offset = d.snap.Index
	}
	s.ents = d.ents
	return s.Entries(lo, hi, maxBytes)
}

// TestWindowServesLaggingFollowerFromStorage: a leader that keeps two
// entries in memory brings a follower 300 entries behind up to date with
// entries read back from its durable log, and they are the right ones.
func TestWindowServesLaggingFollowerFromStorage(t *testing.T) {
	reads := 0
	var nw *network
	nw = newNetwork(t, 3, func(c *Config) {
		c.LogStorage = diskReader{&nw, c.ID, &reads}
		c.LogWindowEntries, c.LogWindowBytes = 2, 1<<30
		c.MaxMsgEntries = 7
	})
	nw.elect(0)
	nw.isolate(2)
	for i := range 300 {
		nw.propose(0, fmt.Sprintf("x%d", i))
		nw.stabilize()
	}
	l := &nw.nodes[0].log
	assert.LessOrEqual(t, len(l.entries), 2+64, "the leader's memory holds the window only")
	assert.Greater(t, l.start, uint64(290), "the leader evicted the old entries")
	assert.Zero(t, reads)
	nw.heal()
	nw.tick(3)
	assert.Greater(t, reads, 300/7-1, "the follower's entries came from storage")
	require.Equal(t, len(nw.applied[0]), len(nw.applied[2]))
	for i := range nw.applied[0] {
		assert.Equal(t, nw.applied[0][i], nw.applied[2][i], "entry %d", i)
	}
	assert.Equal(t, nw.disk[0].ents, nw.disk[2].ents)
}

// TestWindowCompactedFallsBackToSnapshot: entries the runtime's snapshot
// already covers (ErrCompacted) make the leader send the snapshot.
func TestWindowCompactedFallsBackToSnapshot(t *testing.T) {
	reads := 0
	var nw *network
	nw = newNetwork(t, 3, func(c *Config) {
		c.LogStorage = diskReader{&nw, c.ID, &reads}
		c.LogWindowEntries, c.LogWindowBytes = 2, 1<<30
	})
	nw.elect(0)
	nw.isolate(2)
	for i := range 50 {
		nw.propose(0, fmt.Sprintf("x%d", i))
		nw.stabilize()
	}
	// The disk's snapshot moves ahead of what the core was told.
	d := nw.disk[0]
	conf, _ := nw.nodes[0].log.confAt(40)
	d.snap = &Snapshot{Index: 40, Term: d.ents[39].Term, Membership: &conf, Data: []byte("state@40")}
	d.ents = d.ents[40:]
	require.NoError(t, nw.nodes[0].Compact(30)) // an older one reached the core
	nw.heal()
	nw.tick(3)
	assert.Equal(t, nw.nodes[0].log.lastIndex(), nw.nodes[2].log.lastIndex())
	assert.Equal(t, uint64(40), nw.nodes[2].log.offset, "the follower got the disk's snapshot")
}

// TestEvictedMatchesWholeLog compares a log that evicted a prefix with the
// same log held whole: terms, conflict search and configurations agree
// everywhere (a property test over random logs).
func TestEvictedMatchesWholeLog(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for iter := range 500 {
		var ents []Entry
		term := uint64(1)
		n := 1 + rng.Intn(60)
		for i := 1; i <= n; i++ {
			if rng.Intn(5) == 0 {
				term += uint64(1 + rng.Intn(2))
			}
			e := Entry{Index: uint64(i), Term: term, Data: []byte{byte(i)}}
			if rng.Intn(8) == 0 {
				e.Type, e.Data = EntryConfig, EncodeMembership(legacyMembership([]ID{0, ID(1 + i%3)}))
			}
			ents = append(ents, e)
		}
		whole := raftLog{entries: append([]Entry(nil), ents...), snapConf: legacyMembership([]ID{0})}
		cut := raftLog{entries: append([]Entry(nil), ents...), snapConf: whole.snapConf,
			reader: &MemoryLogStorage{}, windowEntries: rng.Intn(4), windowBytes: 1 << 30}
		whole.committed, whole.applied, whole.stable = uint64(n), uint64(n), uint64(n)
		cut.committed, cut.applied, cut.stable = uint64(n), uint64(n), uint64(n)
		cut.evict()
		if c := uint64(rng.Intn(n)); c > 0 && rng.Intn(2) == 0 {
			conf, _ := whole.confAt(c)
			snap := &Snapshot{Index: c, Term: ents[c-1].Term, Membership: &conf}
			whole.compact(snap)
			cut.compact(snap)
		}
		require.LessOrEqual(t, len(cut.entries), max(cut.windowEntries, 0)+1, "iter %d", iter)
		for i := whole.offset; i <= uint64(n); i++ {
			wt, wok := whole.term(i)
			ct, cok := cut.term(i)
			require.Equal(t, wt, ct, "iter %d: term(%d)", iter, i)
			require.Equal(t, wok, cok, "iter %d: term(%d) ok", iter, i)
			wc, wi := whole.confAt(i)
			cc, ci := cut.confAt(i)
			require.Equal(t, wi, ci, "iter %d: confAt(%d)", iter, i)
			require.Equal(t, wc, cc, "iter %d: confAt(%d)", iter, i)
			for q := uint64(0); q <= term+1; q++ {
				require.Equal(t, whole.findConflictByTerm(i, q), cut.findConflictByTerm(i, q), "iter %d: findConflictByTerm(%d, %d)", iter, i, q)
			}
		}
	}
}

// TestLogWindowMemory measures what one core holds for a log of 100,000
// entries of 256-byte commands since its snapshot, with the whole log in
// memory and with the default window (8192 entries), and checks that the
// window's cost does not grow with the log. The numbers are logged
// (go test -run TestLogWindowMemory -v ./src/raft).
func TestLogWindowMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a measurement of 100,000 entries: run it without the race detector (go test -run TestLogWindowMemory -v ./src/raft)")
	}
	heldBy := func(window bool) uint64 {
		var st MemoryLogStorage
		cfg := Config{ID: 0, Peers: []ID{0}, ElectionTicks: 10, HeartbeatTicks: 1, Rand: rand.New(rand.NewSource(1))}
		if window {
			cfg.LogStorage = &st
		}
		n, err := NewNode(cfg)
		require.NoError(t, err)
		for n.role != RoleLeader {
			n.Tick()
		}
		cmd := make([]byte, 256)
		for i := range 100000 {
			_, _, err := n.Propose(append([]byte(nil), cmd...))
			require.NoError(t, err)
			if i%64 == 63 {
				for n.HasReady() {
					rd := n.Ready()
					if window {
						st.Append(rd.Entries)
					}
					n.Advance(rd)
				}
			}
		}
		for n.HasReady() {
			rd := n.Ready()
			if window {
				st.Append(rd.Entries)
			}
			n.Advance(rd)
		}
		st = MemoryLogStorage{} // the runtime's copy is its disk, not memory
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		n.log.entries, n.log.gone = nil, evicted{}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return before - ms.HeapAlloc
	}
	whole, windowed := heldBy(false), heldBy(true)
	t.Logf("log of 100,000 entries of 256 bytes: whole %.1f MiB, window of 8192 %.1f MiB", float64(whole)/(1<<20), float64(windowed)/(1<<20))
	assert.Greater(t, whole, uint64(100000*256))
	assert.Less(t, windowed, uint64(3*8192*(256+64)), "the window holds about its bound")
}
