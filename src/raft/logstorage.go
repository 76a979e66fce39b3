package raft

import (
	"errors"
	"fmt"
	"sort"
)

// LogStorage gives the core back entries it evicted from memory: the log
// window (Config.LogWindowEntries, Config.LogWindowBytes) keeps only recent
// entries, and a leader reads older ones here for a follower that lags
// behind (as etcd-io/raft's Storage does). The core calls it synchronously,
// in Step, Tick and Ready; it must return what the runtime made durable,
// which the core only asks of entries reported stable and applied.
//
// Failure contract: ErrCompacted means the runtime's snapshot already
// covers lo (the leader sends its snapshot instead). Any other error means
// the entries cannot be had now: the core sends nothing this time and
// tries again at the follower's next answer or heartbeat. A runtime whose
// disk failed must stop the node itself (the core cannot tell a failed disk
// from a slow one); see node's walReader.
type LogStorage interface {
	// Entries returns entries [lo, hi) in order, or a prefix of them of
	// at most maxBytes of Data but always at least one entry.
	Entries(lo, hi, maxBytes uint64) ([]Entry, error)
}

// ErrCompacted is returned by LogStorage.Entries for entries a snapshot
// already covers.
var ErrCompacted = errors.New("raft: entries compacted")

// MemoryLogStorage is a LogStorage over entries held in memory: the
// runtime's durable log in tests and in the simulator. Append after the
// runtime made entries durable; Compact after it saved a snapshot.
type MemoryLogStorage struct {
	// offset is the index of the entry before ents[0].
	offset uint64
	ents   []Entry
}

// Append stores entries that continue or replace a suffix of the log.
func (s *MemoryLogStorage) Append(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	if first <= s.offset {
		panic(fmt.Sprintf("raft: MemoryLogStorage append at %d inside the compacted %d", first, s.offset))
	}
	keep := min(int(first-s.offset-1), len(s.ents))
	s.ents = append(s.ents[:keep:keep], ents...)
}

// Compact forgets entries up to index.
func (s *MemoryLogStorage) Compact(index uint64) {
	if index <= s.offset {
		return
	}
	n := min(int(index-s.offset), len(s.ents))
	s.ents = append([]Entry(nil), s.ents[n:]...)
	s.offset = index
}

// Entries implements LogStorage.
func (s *MemoryLogStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo <= s.offset {
		return nil, ErrCompacted
	}
	if hi > s.offset+uint64(len(s.ents))+1 || lo >= hi {
		return nil, fmt.Errorf("raft: MemoryLogStorage has (%d, %d], asked [%d, %d)", s.offset, s.offset+uint64(len(s.ents)), lo, hi)
	}
	ents := s.ents[lo-s.offset-1 : hi-s.offset-1]
	var size uint64
	for i := range ents {
		size += uint64(len(ents[i].Data))
		if i > 0 && size > maxBytes {
			ents = ents[:i]
			break
		}
	}
	return append([]Entry(nil), ents...), nil
}

// termRun: entries from index on have term, up to the next run.
type termRun struct{ index, term uint64 }

// confEntry is a configuration entry evicted from the window.
type confEntry struct {
	index uint64
	conf  Membership
}

// evicted is what the core remembers of the entries (offset, start] it
// evicted from memory: their terms as runs (a handful: one per leader) and
// their configuration entries (rare), so that term, confAt and
// findConflictByTerm never need storage. Their data is read back through
// LogStorage only to send them to a follower.
type evicted struct {
	runs  []termRun
	confs []confEntry
}

// term returns the term of evicted entry i (offset < i <= start).
func (e *evicted) term(i uint64) uint64 {
	k := sort.Search(len(e.runs), func(k int) bool { return e.runs[k].index > i })
	if k == 0 {
		panic(fmt.Sprintf("raft: no term run for evicted entry %d", i))
	}
	return e.runs[k-1].term
}

// add records entry x as evicted.
func (e *evicted) add(x *Entry) {
	if len(e.runs) == 0 || e.runs[len(e.runs)-1].term != x.Term {
		e.runs = append(e.runs, termRun{index: x.Index, term: x.Term})
	}
	if x.Type == EntryConfig {
		e.confs = append(e.confs, confEntry{index: x.Index, conf: mustDecodeMembership(*x)})
	}
}

// compact forgets entries up to index (a snapshot covers them). The run
// that covers index+1 stays, starting at index+1.
func (e *evicted) compact(index uint64) {
	k := sort.Search(len(e.runs), func(k int) bool { return e.runs[k].index > index })
	if k > 0 {
		e.runs[k-1].index = index + 1
		k--
	}
	e.runs = append(e.runs[:0:0], e.runs[k:]...)
	c := sort.Search(len(e.confs), func(c int) bool { return e.confs[c].index > index })
	e.confs = append(e.confs[:0:0], e.confs[c:]...)
}

// confAt returns the newest evicted configuration entry at or below i.
func (e *evicted) confAt(i uint64) (confEntry, bool) {
	c := sort.Search(len(e.confs), func(c int) bool { return e.confs[c].index > i })
	if c == 0 {
		return confEntry{}, false
	}
	return e.confs[c-1], true
}

// findConflictByTerm is raftLog.findConflictByTerm over the evicted
// entries up to index (<= start): the largest index <= index whose term is
// <= term, or false if none.
func (e *evicted) findConflictByTerm(index, term, start uint64) (uint64, bool) {
	for k := len(e.runs) - 1; k >= 0; k-- {
		r := e.runs[k]
		if r.index > index {
			continue
		}
		end := start
		if k+1 < len(e.runs) {
			end = e.runs[k+1].index - 1
		}
		if r.term <= term {
			return min(index, end), true
		}
	}
	return 0, false
}

// evict drops entries from the front of the in-memory window while it is
// over its bounds, never beyond the applied and stable indexes (those
// entries are needed to apply and to persist) and only when there is
// storage to read them back from.
func (l *raftLog) evict() {
	if l.reader == nil {
		return
	}
	limit := min(l.applied, l.stable)
	n := 0
	for l.start+uint64(n) < limit && (len(l.entries)-n > l.windowEntries || l.memBytes > l.windowBytes) {
		e := &l.entries[n]
		l.gone.add(e)
		l.memBytes -= uint64(len(e.Data))
		n++
	}
	if n == 0 {
		return
	}
	l.entries = l.entries[n:]
	l.start += uint64(n)
	// The evicted entries stay in the array's prefix (Ready batches and
	// messages may share it, so they are not cleared) until the window is
	// copied into a fresh array; copying once the prefix outgrows the
	// window keeps memory within about twice the window, in amortized
	// constant time per entry.
	l.deadPrefix += n
	if l.deadPrefix > max(len(l.entries), 64) {
		l.entries = append(make([]Entry, 0, len(l.entries)+len(l.entries)/2+64), l.entries...)
		l.deadPrefix = 0
	}
}

// readBack reads evicted entries [lo, min(hi, start+1)) from storage,
// within maxEntries and maxBytes.
func (l *raftLog) readBack(lo, hi uint64, maxEntries int, maxBytes uint64) ([]Entry, error) {
	hi = min(hi, l.start+1, lo+uint64(maxEntries))
	ents, err := l.reader.Entries(lo, hi, maxBytes)
	if err != nil {
		return nil, err
	}
	// The storage is outside the core: what it gives back must be the
	// entries asked for, or a follower would be sent a wrong log.
	if len(ents) == 0 || uint64(len(ents)) > hi-lo {
		return nil, fmt.Errorf("raft: storage gave %d entries for [%d, %d)", len(ents), lo, hi)
	}
	for i := range ents {
		if ents[i].Index != lo+uint64(i) || ents[i].Term != l.gone.term(ents[i].Index) {
			return nil, fmt.Errorf("raft: storage gave entry %d/t%d at %d (term %d)", ents[i].Index, ents[i].Term, lo+uint64(i), l.gone.term(lo+uint64(i)))
		}
	}
	return ents, nil
}
