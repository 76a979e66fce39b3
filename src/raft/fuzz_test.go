package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
)

// FuzzStep runs a live 3-node cluster (a leader elected, a few entries
// committed) and decodes the input into a schedule of arbitrary messages
// (any type, sender, receiver, term, indexes, entries, snapshot) fed to Step,
// interleaved with ticks, proposals, compactions, restarts, wiped nodes and
// the delivery (in any order, possibly twice) of the real traffic.
//
// Raft's safety properties cannot be promised against forged messages: a
// message that speaks for a peer can grant votes it never gave or carry
// entries no leader wrote. Keeping forgers out is peer authentication's job
// (a later issue). What every node must keep whatever it is sent, checked
// after every step: Step does not panic and returns only ErrInvalidMessage
// errors; a node's term never goes down and never reaches 2^64-1; its
// commit index never goes down; its log and (as leader) its view of each
// follower keep their invariants (log.go, progress.go).
func FuzzStep(f *testing.F) {
	// A few schedules: forged messages of each type against each node,
	// traffic delivered in order, and a wiped follower.
	f.Add([]byte{})
	f.Add([]byte{0, 5, 1, 1, 0, 10, 10, 10, 10, 10, 10, 10, 10, 4, 0, 4, 0, 4, 0, 5, 3})
	f.Add([]byte{6, 0, 3, 0, 4, 0, 4, 0, 4, 0, 3, 0, 4, 0, 4, 0, 5, 3, 3, 3})
	f.Add([]byte{7, 2, 1, 3, 3, 3, 3, 3, 5, 4, 0, 4, 0, 4, 0, 4, 0, 5})
	for typ := byte(0); typ < 12; typ++ {
		f.Add([]byte{0, typ, 2, 1, 2, 1, 2, 1, 1, 2, 1, 3, 1, 3, 2, 1, 1, 1, 9, 4, 0, 5})
		f.Add([]byte{1, typ, 1, 3, 2, 3, 1, 3, 2, 3, 2, 1, 0, 0, 1, 1, 6, 2, 5, 4, 0})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nw := newNetwork(t, 3, func(c *Config) { c.MaxMsgEntries = 3; c.MaxInflight = 3 })
		nw.elect(0)
		for i := range 4 {
			nw.propose(0, fmt.Sprint(i))
		}
		nw.stabilize()
		nw.tick(1)
		nw.stepErr = func(m Message, err error) {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("Step(%s): error does not wrap ErrInvalidMessage: %v", m, err)
			}
		}
		r := &fuzzReader{data: data}
		seen := map[ID]seenState{}
		check := func(what string) {
			t.Helper()
			for _, id := range nw.ids() {
				checkNode(t, what, nw.nodes[id], seen)
			}
		}
		check("start")
		for step := 0; step < 500 && !r.done(); step++ {
			var what string
			switch op := r.byte() % 8; op {
			case 0, 1, 2:
				to := nw.nodes[ID(r.byte()%3)]
				m := r.message(to)
				what = "forged " + m.String()
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("Step(%#v) panicked: %v", m, p)
						}
					}()
					if err := to.Step(m); err != nil && !errors.Is(err, ErrInvalidMessage) {
						t.Fatalf("Step(%s): error does not wrap ErrInvalidMessage: %v", m, err)
					}
				}()
			case 3:
				what = "tick"
				for _, id := range nw.ids() {
					if r.byte()%4 != 0 {
						nw.nodes[id].Tick()
					}
				}
			case 4:
				// Deliver one queued message, any of them (reordering),
				// sometimes keeping it for later (duplication).
				if len(nw.queue) == 0 {
					continue
				}
				i := int(r.byte()) % len(nw.queue)
				m := nw.queue[i]
				if r.byte()%4 != 0 {
					nw.queue = append(nw.queue[:i], nw.queue[i+1:]...)
				}
				what = "deliver " + m.String()
				nw.deliver(m)
			case 5:
				what = "ready"
				nw.ready()
			case 6:
				id := ID(r.byte() % 3)
				if r.byte()%2 == 0 {
					what = fmt.Sprintf("propose at %d", id)
					_, _, _ = nw.nodes[id].Propose([]byte("p"))
				} else {
					what = fmt.Sprintf("compact %d", id)
					nw.compact(id)
				}
			case 7:
				id := ID(r.byte() % 3)
				if r.byte()%2 == 0 {
					what = fmt.Sprintf("restart %d", id)
					nw.start(id)
				} else {
					what = fmt.Sprintf("wipe %d", id)
					nw.wipe(id)
				}
				delete(seen, id)
			}
			check(what)
		}
	})
}

type seenState struct {
	n            *Node
	term, commit uint64
}

// checkNode asserts what a node must keep whatever it is sent.
func checkNode(t *testing.T, what string, n *Node, seen map[ID]seenState) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after %s: node %d (%s t%d): %s", what, n.id, n.role, n.term, fmt.Sprintf(format, args...))
	}
	if s, ok := seen[n.id]; ok && s.n == n {
		if n.term < s.term {
			fail("term went down from %d", s.term)
		}
		if n.log.committed < s.commit {
			fail("commit went down from %d to %d", s.commit, n.log.committed)
		}
	}
	seen[n.id] = seenState{n: n, term: n.term, commit: n.log.committed}
	if n.term > maxTerm {
		fail("term %d cannot be incremented", n.term)
	}
	l := &n.log
	last := l.lastIndex()
	if !(l.offset <= l.applied && l.applied <= l.committed && l.committed <= last) {
		fail("log: offset %d applied %d committed %d last %d", l.offset, l.applied, l.committed, last)
	}
	if l.stable < l.offset || l.stable > last {
		fail("log: stable %d outside [%d, %d]", l.stable, l.offset, last)
	}
	prev := l.offsetTerm
	for i, e := range l.entries {
		if e.Index != l.offset+1+uint64(i) {
			fail("log: entry %d at position of %d", e.Index, l.offset+1+uint64(i))
		}
		if e.Term < prev {
			fail("log: term goes down at %d", e.Index)
		}
		if e.Term > n.term {
			fail("log: entry %d of term %d beyond the node's term", e.Index, e.Term)
		}
		prev = e.Term
	}
	if n.role == RoleLeader {
		for _, p := range n.peers {
			pr := n.prs[p]
			if pr.Match > last || pr.Match >= pr.Next || pr.Next > last+1 {
				fail("progress of %d: %s, last index %d", p, pr, last)
			}
		}
	}
}

// fuzzReader decodes fuzz input; past its end it reads zeros.
type fuzzReader struct {
	data []byte
	pos  int
}

func (r *fuzzReader) done() bool { return r.pos >= len(r.data) }

func (r *fuzzReader) byte() byte {
	if r.pos >= len(r.data) {
		return 0
	}
	b := r.data[r.pos]
	r.pos++
	return b
}

func (r *fuzzReader) u64() uint64 {
	var buf [8]byte
	for i := range buf {
		buf[i] = r.byte()
	}
	return binary.LittleEndian.Uint64(buf[:])
}

func sat(a uint64, d uint64) uint64 {
	if a < d {
		return 0
	}
	return a - d
}

// index picks an index interesting to node n: small, near its last, commit
// or snapshot index, near the limits, or anything.
func (r *fuzzReader) index(n *Node) uint64 {
	b := r.byte()
	d := uint64(b>>3) % 4
	switch b % 8 {
	case 0:
		return uint64(b >> 3)
	case 1:
		return sat(n.log.lastIndex(), d)
	case 2:
		return n.log.lastIndex() + d
	case 3:
		return sat(n.log.committed, d) + uint64(b>>5)
	case 4:
		return sat(n.log.offset, d) + uint64(b>>5)
	case 5:
		return math.MaxUint64 - d
	case 6:
		return maxIndex - 2 + d
	}
	return r.u64()
}

// term picks a term interesting to node n.
func (r *fuzzReader) term(n *Node) uint64 {
	b := r.byte()
	d := uint64(b>>3) % 3
	switch b % 8 {
	case 0:
		return d
	case 1:
		return sat(n.term, d)
	case 2, 3:
		return n.term + d
	case 4:
		return sat(n.log.lastTerm(), d)
	case 5:
		return math.MaxUint64 - d
	case 6:
		return n.term
	}
	return r.u64()
}

func (r *fuzzReader) id(to *Node) ID {
	if b := r.byte(); b%8 != 0 {
		return ID(int(b) % 3)
	}
	return ID(int(r.byte()%6) - 2) // None, unknown, out of range
}

// message decodes an arbitrary message to node to.
func (r *fuzzReader) message(to *Node) Message {
	m := Message{Type: MessageType(r.byte() % 12), From: r.id(to), To: to.id}
	if r.byte()%8 == 0 {
		m.To = r.id(to)
	}
	m.Term = r.term(to)
	m.LogTerm = r.term(to)
	m.Index = r.index(to)
	m.Commit = r.index(to)
	flags := r.byte()
	m.Reject, m.Force = flags&1 != 0, flags&2 != 0
	m.RejectHint = r.index(to)
	if flags&4 != 0 {
		m.Context = uint64(r.byte() % 4)
	} else {
		m.Context = to.readRound + uint64(r.byte()%3)
	}
	k := int(r.byte() % 5)
	contiguous := flags&8 != 0
	et := m.LogTerm
	for i := range k {
		var e Entry
		if contiguous {
			e.Index = m.Index + 1 + uint64(i)
			if r.byte()%4 == 0 {
				et++
			}
			e.Term = et
		} else {
			e.Index, e.Term = r.index(to), r.term(to)
		}
		e.Type = EntryType(r.byte() % 3)
		m.Entries = append(m.Entries, e)
	}
	if flags&16 != 0 {
		m.Snapshot = &Snapshot{Index: r.index(to), Term: r.term(to), Peers: to.peers, Data: []byte("forged")}
	}
	return m
}
