package raft

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrInvalidMessage is wrapped by the error Step returns for a message that
// no correct peer sends: a forged or corrupted message, or one from a node
// whose log went backwards (a lost disk). The node drops such a message; the
// error says which field is wrong and why, for the runtime to log and count.
var ErrInvalidMessage = errors.New("raft: invalid message")

const (
	// maxTerm is the highest term a node may hold. A message at a higher term
	// (math.MaxUint64) is invalid and a node at maxTerm does not campaign, so
	// no term+1 ever wraps around to 0: terms never go backwards (Raft 5.1).
	maxTerm = math.MaxUint64 - 1
	// maxIndex bounds every log index a message may carry. At a million
	// entries a second a log reaches it in 292,000 years; the bound leaves
	// room so that index+1 and index+len(entries) never wrap.
	maxIndex = math.MaxInt64
)

// invalidf builds the error for an invalid message: type, sender, receiver
// and term, then the field at fault and its value. It runs only on the
// invalid path; it takes m by pointer so that valid messages do not escape
// to the heap.
func invalidf(m *Message, format string, args ...any) error {
	return fmt.Errorf("%w: %s from %d to %d at term %d: %s",
		ErrInvalidMessage, m.Type, m.From, m.To, m.Term, fmt.Sprintf(format, args...))
}

// validate reports whether m is a message some correct peer could have sent
// to this node in its current state, and returns an error wrapping
// ErrInvalidMessage if not. It changes nothing and does not allocate unless
// m is invalid. Everything Step does after it may assume what it checks; in
// particular no later index arithmetic on m's fields can wrap or panic.
//
// Checks that depend on this node's state are made only for messages at our
// term or newer: older ones are only answered with our term.
func (n *Node) validate(m *Message) error {
	if m.Type < MsgPreVote || m.Type > MsgTimeoutNow {
		return invalidf(m, "unknown message type %d", uint8(m.Type))
	}
	// A sender outside our configuration is not invalid: it may lead a
	// configuration we have not seen yet (see acceptSender).
	if m.From < 0 || m.From == n.id {
		return invalidf(m, "From %d is not another node's ID", m.From)
	}
	if m.To != n.id {
		return invalidf(m, "To %d is not this node %d", m.To, n.id)
	}
	if m.Term > maxTerm {
		return invalidf(m, "Term %d cannot be incremented", m.Term)
	}
	switch {
	case m.Index > maxIndex:
		return invalidf(m, "Index %d beyond the largest index %d", m.Index, uint64(maxIndex))
	case m.Commit > maxIndex:
		return invalidf(m, "Commit %d beyond the largest index %d", m.Commit, uint64(maxIndex))
	case m.RejectHint > maxIndex:
		return invalidf(m, "RejectHint %d beyond the largest index %d", m.RejectHint, uint64(maxIndex))
	case m.LogTerm > m.Term:
		// Every LogTerm names the term of an entry in the sender's log, and
		// no node holds an entry from a term later than its own.
		return invalidf(m, "LogTerm %d above the message term", m.LogTerm)
	}
	switch m.Type {
	case MsgApp:
		if err := validateEntries(m); err != nil {
			return err
		}
	case MsgAppResp:
		// A follower's hint is at most the index it rejected (see
		// handleAppend).
		if m.Reject && m.RejectHint > m.Index {
			return invalidf(m, "RejectHint %d beyond the rejected Index %d", m.RejectHint, m.Index)
		}
	case MsgSnap:
		s := m.Snapshot
		switch {
		case s == nil:
			return invalidf(m, "Snapshot is nil")
		case s.Index == 0 || s.Index > maxIndex:
			return invalidf(m, "Snapshot.Index %d out of range [1, %d]", s.Index, uint64(maxIndex))
		case s.Term == 0 || s.Term > m.Term:
			return invalidf(m, "Snapshot.Term %d out of range [1, message term]", s.Term)
		case s.Membership != nil:
			if err := s.Membership.Validate(); err != nil {
				return invalidf(m, "Snapshot.Membership: %v", err)
			}
		}
		for i, p := range s.Peers {
			if p < 0 || slices.Contains(s.Peers[:i], p) {
				return invalidf(m, "Snapshot.Peers %v: %d is negative or twice", s.Peers, p)
			}
		}
	}
	if m.Term < n.term {
		return nil
	}
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		if m.Term == n.term {
			// Election safety (Raft 5.2): one leader per term. We lead this
			// term, or follow another leader in it.
			if n.role == RoleLeader {
				return invalidf(m, "From %d claims to lead term %d, which this node leads", m.From, m.Term)
			}
			if n.lead != None && n.lead != m.From {
				return invalidf(m, "From %d claims to lead term %d, which node %d leads", m.From, m.Term, n.lead)
			}
		}
		switch m.Type {
		case MsgApp:
			return n.validateAppendAgainstLog(m)
		case MsgSnap:
			return n.validateSnapshotAgainstLog(m)
		}
	case MsgAppResp, MsgHeartbeatResp:
		if n.role != RoleLeader || m.Term != n.term {
			// Not for us as leader: ignored, or it makes us step down.
			return nil
		}
		// A follower acknowledges or rejects only indexes we sent it, and a
		// leader's log only grows.
		last := n.log.lastIndex()
		switch {
		case m.Index > last:
			return invalidf(m, "Index %d beyond the leader's last index %d", m.Index, last)
		case m.RejectHint > last:
			return invalidf(m, "RejectHint %d beyond the leader's last index %d", m.RejectHint, last)
		case m.Type == MsgHeartbeatResp && m.Context > n.readRound:
			// Acknowledging a read round not yet started would confirm
			// reads that no quorum confirmed (Raft thesis 6.4).
			return invalidf(m, "Context %d beyond the leader's read round %d", m.Context, n.readRound)
		}
	}
	return nil
}

// validateEntries checks that an AppendEntries request's entries continue the
// sender's log at Index+1 without gaps, and that their terms never go down
// from LogTerm and do not exceed the leader's term (log terms only grow, and
// a leader creates entries only in its own term: Raft 5.3, 5.4).
func validateEntries(m *Message) error {
	if uint64(len(m.Entries)) > maxIndex-m.Index {
		return invalidf(m, "%d entries after Index %d run beyond the largest index", len(m.Entries), m.Index)
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		switch {
		case e.Index != m.Index+1+uint64(i):
			return invalidf(m, "Entries[%d].Index %d, want %d", i, e.Index, m.Index+1+uint64(i))
		case e.Term < prevTerm:
			return invalidf(m, "Entries[%d].Term %d below the preceding term %d", i, e.Term, prevTerm)
		case e.Term > m.Term:
			return invalidf(m, "Entries[%d].Term %d above the message term", i, e.Term)
		case e.Type > EntryConfig:
			return invalidf(m, "Entries[%d].Type %d unknown", i, e.Type)
		case e.Type == EntryConfig:
			if _, err := DecodeMembership(e.Data); err != nil {
				return invalidf(m, "Entries[%d] (index %d): %v", i, e.Index, err)
			}
		}
		prevTerm = e.Term
	}
	return nil
}

// validateAppendAgainstLog checks that an AppendEntries request agrees with
// our committed entries. Leader completeness (Raft 5.4) puts every committed
// entry in the log of every later leader, so a correct leader's request
// never contradicts one; the follower must not overwrite one either (its
// commit index would lie). Entries covered by our snapshot cannot be
// checked: their terms are gone.
func (n *Node) validateAppendAgainstLog(m *Message) error {
	c := n.log.committed
	if m.Index <= c {
		if t, ok := n.log.term(m.Index); ok && t != m.LogTerm {
			return invalidf(m, "Index %d LogTerm %d contradicts committed entry %d of term %d", m.Index, m.LogTerm, m.Index, t)
		}
		for i := range m.Entries {
			e := &m.Entries[i]
			if e.Index > c {
				break
			}
			if t, ok := n.log.term(e.Index); ok && t != e.Term {
				return invalidf(m, "Entries[%d] %d/t%d contradicts committed entry of term %d", i, e.Index, e.Term, t)
			}
		}
		return nil
	}
	// Beyond our commit index, the leader's log has terms at least as high
	// as that of our last committed entry.
	if ct, _ := n.log.term(c); m.LogTerm < ct {
		return invalidf(m, "Index %d LogTerm %d below the term %d of committed entry %d", m.Index, m.LogTerm, ct, c)
	}
	return nil
}

// validateSnapshotAgainstLog checks a snapshot against our committed entries
// as validateAppendAgainstLog does for entries.
func (n *Node) validateSnapshotAgainstLog(m *Message) error {
	s, c := m.Snapshot, n.log.committed
	if s.Index <= c {
		if t, ok := n.log.term(s.Index); ok && t != s.Term {
			return invalidf(m, "Snapshot %d/t%d contradicts committed entry of term %d", s.Index, s.Term, t)
		}
		return nil
	}
	if ct, _ := n.log.term(c); s.Term < ct {
		return invalidf(m, "Snapshot %d/t%d below the term %d of committed entry %d", s.Index, s.Term, ct, c)
	}
	return nil
}
