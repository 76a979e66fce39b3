package raft

import "fmt"

// raftLog is a node's log from its snapshot onward. The runtime persists
// what Ready hands out. Entries (start, lastIndex()] are in memory; with a
// LogStorage, older ones (offset, start] are evicted once applied and
// stable (the window, see evict) and read back through it only to be sent
// to a lagging follower; their terms and configurations stay known (gone).
//
// Invariants:
//
//	offset <= start <= min(applied, stable)
//	offset <= applied <= committed <= lastIndex()
//	offset <= stable <= lastIndex()
//	entries[i].Index == start+1+i
type raftLog struct {
	// snapshot is the newest snapshot this node holds (taken locally or
	// received); it is what a leader sends a follower that needs compacted
	// entries. nil until the first snapshot.
	snapshot *Snapshot
	// offset and offsetTerm are the index and term of the last entry the
	// snapshot covers (0, 0 without a snapshot).
	offset, offsetTerm uint64
	// start is the index of the last entry not in memory: offset, or the
	// last evicted one; gone remembers the terms and configurations of
	// (offset, start].
	start   uint64
	entries []Entry
	gone    evicted
	// reader reads evicted entries back; nil keeps every entry in memory.
	// The window holds at most windowEntries entries and windowBytes of
	// Data beyond what is not yet applied or stable; memBytes is the Data
	// in entries.
	reader        LogStorage
	windowEntries int
	windowBytes   uint64
	memBytes      uint64
	// deadPrefix counts evicted entries still held by entries' array.
	deadPrefix int
	planted    PlantedBug
	// committed is the highest index known to be committed (Raft figure 2).
	committed uint64
	// applied is the highest index handed to the runtime to apply.
	applied uint64
	// stable is the highest index the runtime has reported durable (Advance).
	stable uint64
	// conf is the configuration in force: that of the last EntryConfig
	// entry in the log, committed or not (Raft thesis 4.1), else snapConf.
	// confIndex is that entry's index (offset when conf is snapConf).
	// Invariant: confIndex <= lastIndex().
	conf      Membership
	confIndex uint64
	// confGen changes whenever conf may have: the node re-derives its
	// voters then (a truncation may replace a configuration by another at
	// the same index, so confIndex alone does not tell).
	confGen uint64
	// snapConf is the configuration as of offset: the snapshot's, or for a
	// log that starts at 0 the bootstrap (legacy) one or none.
	snapConf Membership
}

func (l *raftLog) lastIndex() uint64 { return l.start + uint64(len(l.entries)) }

func (l *raftLog) lastTerm() uint64 {
	t, _ := l.term(l.lastIndex())
	return t
}

// term returns the term of the entry at i, and false when i is compacted
// away (below the snapshot) or beyond the end of the log.
func (l *raftLog) term(i uint64) (uint64, bool) {
	switch {
	case i == l.offset:
		return l.offsetTerm, true
	case i < l.offset || i > l.lastIndex():
		return 0, false
	case i <= l.start:
		return l.gone.term(i), true
	}
	return l.entries[i-l.start-1].Term, true
}

func (l *raftLog) matchTerm(i, term uint64) bool {
	t, ok := l.term(i)
	return ok && t == term
}

// isUpToDate implements the election restriction (Raft 5.4.1): a candidate's
// log is at least as up-to-date as ours if its last term is greater, or the
// same with an index at least as large.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	lt := l.lastTerm()
	return lastTerm > lt || (lastTerm == lt && lastIndex >= l.lastIndex())
}

// slice returns entries [lo, hi) limited to maxEntries and maxBytes of Data,
// but always at least one entry when lo < hi. The result must not be
// modified; it may share memory with the log. Evicted entries are read
// back from storage (one read never mixes them with the window's); its
// error is the storage's (see LogStorage).
func (l *raftLog) slice(lo, hi uint64, maxEntries int, maxBytes uint64) ([]Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	if lo <= l.offset || hi > l.lastIndex()+1 {
		panic(fmt.Sprintf("raft: slice [%d, %d) out of log (%d, %d]", lo, hi, l.offset, l.lastIndex()))
	}
	if lo <= l.start {
		if l.planted != PlantWindowServesEvicted {
			return l.readBack(lo, hi, maxEntries, maxBytes)
		}
		// The bug: the window serves what it holds in place of the
		// evicted entries.
		lo = l.start + 1
		if lo >= hi {
			return nil, nil
		}
	}
	ents := l.entries[lo-l.start-1 : hi-l.start-1]
	if len(ents) > maxEntries {
		ents = ents[:maxEntries]
	}
	var size uint64
	for i := range ents {
		size += uint64(len(ents[i].Data))
		if i > 0 && size > maxBytes {
			return ents[:i:i], nil
		}
	}
	return ents[:len(ents):len(ents)], nil
}

// append adds entries that continue the log at lastIndex()+1 or replace a
// suffix of it. Replacing a committed entry is a bug.
func (l *raftLog) append(ents ...Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	switch {
	case first <= l.committed:
		panic(fmt.Sprintf("raft: overwriting committed entry %d (committed %d)", first, l.committed))
	case first > l.lastIndex()+1:
		panic(fmt.Sprintf("raft: gap in log: appending %d after %d", first, l.lastIndex()))
	case first <= l.lastIndex():
		// Truncate. The three-index slice forces a fresh array so that earlier
		// Ready batches and messages that share the old one never change.
		n := int(first - l.start - 1)
		for i := n; i < len(l.entries); i++ {
			l.memBytes -= uint64(len(l.entries[i].Data))
		}
		l.entries = append(l.entries[:n:n], ents...)
		l.stable = min(l.stable, first-1)
		if l.confIndex >= first {
			// The configuration came from a removed entry: fall back to
			// the latest one before it (thesis 4.1).
			l.conf, l.confIndex = l.confAt(first - 1)
			l.confGen++
		}
	default:
		l.entries = append(l.entries, ents...)
	}
	for i := range ents {
		l.memBytes += uint64(len(ents[i].Data))
	}
	for i := len(ents) - 1; i >= 0; i-- {
		if ents[i].Type == EntryConfig {
			l.conf, l.confIndex = mustDecodeMembership(ents[i]), ents[i].Index
			l.confGen++
			break
		}
	}
}

// confAt returns the configuration in force at index i (offset <= i <=
// lastIndex()) and the index of the entry that holds it.
func (l *raftLog) confAt(i uint64) (Membership, uint64) {
	for ; i > l.start; i-- {
		if e := &l.entries[i-l.start-1]; e.Type == EntryConfig {
			return mustDecodeMembership(*e), e.Index
		}
	}
	if c, ok := l.gone.confAt(i); ok {
		return c.conf, c.index
	}
	return l.snapConf, l.offset
}

// mustDecodeMembership decodes a configuration entry that validation has
// already accepted (NewNode's of the recovered log, Step's of every
// message, ProposeMembership's of a proposal).
func mustDecodeMembership(e Entry) Membership {
	m, err := DecodeMembership(e.Data)
	if err != nil {
		panic(fmt.Sprintf("raft: configuration entry %d/t%d passed validation but does not decode: %v", e.Index, e.Term, err))
	}
	return m
}

// maybeAppend handles the entries of an AppendEntries request whose previous
// entry is (prevIndex, prevTerm). It returns the index of the last entry
// the request covers and whether the log matched (Raft figure 2, receiver
// rules 2-5).
func (l *raftLog) maybeAppend(prevIndex, prevTerm, leaderCommit uint64, ents []Entry) (uint64, bool) {
	if !l.matchTerm(prevIndex, prevTerm) {
		return 0, false
	}
	lastNew := prevIndex + uint64(len(ents))
	// Skip the entries we already have; an old, duplicated or reordered
	// request must not truncate entries that a newer one added.
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			l.append(ents[i:]...)
			break
		}
	}
	l.commitTo(min(leaderCommit, lastNew))
	return lastNew, true
}

func (l *raftLog) commitTo(c uint64) bool {
	if c <= l.committed {
		return false
	}
	if c > l.lastIndex() {
		panic(fmt.Sprintf("raft: commit %d is beyond the last index %d", c, l.lastIndex()))
	}
	l.committed = c
	return true
}

// findConflictByTerm returns the largest index <= index whose term is <=
// term, or the snapshot index if there is none. It lets a follower and a
// leader skip a whole term of disagreeing entries per round trip instead of
// one entry (Raft 5.3, the optimization at the end of the section).
func (l *raftLog) findConflictByTerm(index, term uint64) uint64 {
	index = min(index, l.lastIndex())
	for ; index > l.start; index-- {
		if l.entries[index-l.start-1].Term <= term {
			return index
		}
	}
	if i, ok := l.gone.findConflictByTerm(index, term, l.start); ok && index > l.offset {
		return i
	}
	return l.offset
}

// unstable returns the entries not yet reported durable.
func (l *raftLog) unstable() []Entry {
	if l.stable >= l.lastIndex() {
		return nil
	}
	ents := l.entries[l.stable-l.start:]
	return ents[:len(ents):len(ents)]
}

// toApply returns the committed entries not yet handed out for applying.
func (l *raftLog) toApply() []Entry {
	if l.applied >= l.committed {
		return nil
	}
	ents := l.entries[l.applied-l.start : l.committed-l.start]
	return ents[:len(ents):len(ents)]
}

// compact drops the entries covered by snap, which the runtime has taken of
// its applied state and made durable.
func (l *raftLog) compact(snap *Snapshot) {
	if snap.Index <= l.offset {
		return
	}
	if snap.Index > l.applied {
		panic(fmt.Sprintf("raft: compact to %d beyond applied %d", snap.Index, l.applied))
	}
	l.offset, l.offsetTerm = snap.Index, snap.Term
	l.snapshot = snap
	l.snapConf = *snap.Membership
	if snap.Index <= l.start {
		// The snapshot covers only evicted entries: memory keeps its window.
		l.gone.compact(snap.Index)
		return
	}
	l.gone = evicted{}
	n := snap.Index - l.start
	for i := range n {
		l.memBytes -= uint64(len(l.entries[i].Data))
	}
	rest := l.entries[n:]
	// Copy so the compacted prefix can be freed. Room for as many entries
	// as the log held: it will grow back to about that before the next
	// compaction, and growing by doubling would copy it several times.
	l.entries = append(make([]Entry, 0, max(len(rest)+64, len(l.entries))), rest...)
	l.start, l.deadPrefix = snap.Index, 0
}

// restore replaces the whole log with snap (a follower too far behind),
// whose Membership is set.
func (l *raftLog) restore(snap *Snapshot) {
	l.snapshot = snap
	l.offset, l.offsetTerm = snap.Index, snap.Term
	l.start, l.entries, l.gone, l.memBytes, l.deadPrefix = snap.Index, nil, evicted{}, 0, 0
	l.committed, l.applied, l.stable = snap.Index, snap.Index, snap.Index
	l.snapConf = *snap.Membership
	l.conf, l.confIndex = l.snapConf, snap.Index
	l.confGen++
}
