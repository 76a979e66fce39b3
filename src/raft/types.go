package raft

import "fmt"

// ID names a node: its position in the hostfile's "raft" list (0, 1, 2, ...).
// IDs are never addresses.
type ID int

// None is the ID of no node: no vote cast, no leader known.
const None ID = -1

// EntryType tells the state machine what an entry carries.
type EntryType uint8

const (
	// EntryNormal carries a client command in Data.
	EntryNormal EntryType = iota
	// EntryNoop is appended by every new leader at the start of its term
	// (Raft thesis 6.4): committing it commits everything before it and lets
	// the leader learn its commit index before serving reads.
	EntryNoop
	// EntryConfig carries a whole new configuration in Data
	// (EncodeMembership); it takes effect when appended (see membership.go).
	EntryConfig
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfig:
		return "config"
	}
	return fmt.Sprintf("EntryType(%d)", uint8(t))
}

// Entry is one record of the replicated log.
type Entry struct {
	Term  uint64    `json:"term"`
	Index uint64    `json:"index"`
	Type  EntryType `json:"type"`
	Data  []byte    `json:"data,omitempty"`
}

// HardState is the part of a node's state that must be durable before the
// node answers anyone (Raft figure 2: currentTerm, votedFor), plus the commit
// index, which is persisted only to shorten replay after a restart.
type HardState struct {
	Term   uint64 `json:"term"`
	Vote   ID     `json:"vote"`
	Commit uint64 `json:"commit"`
}

// IsEmpty reports whether hs is the zero value that Ready uses for "unchanged".
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// Snapshot is the state machine as of Index, the term of the entry at Index,
// and the configuration in force at Index. Data is opaque to the core.
type Snapshot struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Membership is the configuration as of Index. A snapshot written
	// before configurations were in the log has none: its Peers were the
	// voters, all of incarnation 0 (see Config.Peers).
	Membership *Membership `json:"membership,omitempty"`
	Peers      []ID        `json:"peers,omitempty"`
	Data       []byte      `json:"data,omitempty"`
}

// withoutData returns a copy of s's metadata, with the configuration made
// explicit for a snapshot that predates configurations in the log.
func (s *Snapshot) withoutData() *Snapshot {
	c := &Snapshot{Index: s.Index, Term: s.Term, Membership: s.Membership, Peers: s.Peers}
	if c.Membership == nil {
		m := legacyMembership(s.Peers)
		c.Membership = &m
	}
	return c
}

// IsEmpty reports whether s holds no snapshot.
func (s *Snapshot) IsEmpty() bool { return s == nil || s.Index == 0 }

// MessageType names a Raft message.
type MessageType uint8

const (
	MsgPreVote MessageType = iota + 1
	MsgPreVoteResp
	MsgVote
	MsgVoteResp
	MsgApp
	MsgAppResp
	MsgHeartbeat
	MsgHeartbeatResp
	MsgSnap
	MsgTimeoutNow
)

var msgNames = [...]string{
	MsgPreVote:       "PreVote",
	MsgPreVoteResp:   "PreVoteResp",
	MsgVote:          "Vote",
	MsgVoteResp:      "VoteResp",
	MsgApp:           "App",
	MsgAppResp:       "AppResp",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgSnap:          "Snap",
	MsgTimeoutNow:    "TimeoutNow",
}

func (t MessageType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is everything nodes say to each other. Step refuses a message
// whose fields make no sense (see ErrInvalidMessage). Which fields mean what
// depends on Type:
//
//	PreVote/Vote:      Index, LogTerm = candidate's last log index and term;
//	                   Force = sent on a leadership transfer (ignores leases).
//	PreVoteResp/VoteResp: Reject.
//	App:               Index, LogTerm = the entry before Entries; Commit.
//	AppResp:           Index = last index now matching (accept) or the
//	                   rejected Index; on reject, RejectHint and LogTerm point
//	                   at the follower's best guess of where logs agree.
//	Heartbeat:         Commit; Context = the leader's read round.
//	HeartbeatResp:     Context echoed; Reject with RejectHint = the
//	                   follower's last index when the heartbeat's Commit
//	                   was beyond it (its log went backwards).
//	Snap:              Snapshot.
type Message struct {
	Type       MessageType `json:"type"`
	From       ID          `json:"from"`
	To         ID          `json:"to"`
	Term       uint64      `json:"term"`
	LogTerm    uint64      `json:"log_term,omitempty"`
	Index      uint64      `json:"index,omitempty"`
	Entries    []Entry     `json:"entries,omitempty"`
	Commit     uint64      `json:"commit,omitempty"`
	Reject     bool        `json:"reject,omitempty"`
	RejectHint uint64      `json:"reject_hint,omitempty"`
	Context    uint64      `json:"context,omitempty"`
	Force      bool        `json:"force,omitempty"`
	Snapshot   *Snapshot   `json:"snapshot,omitempty"`
	// Incarnation is the sender's (set by the core on every message): votes
	// and acknowledgements count only from the incarnation the
	// configuration names (see acceptSender).
	Incarnation Incarnation `json:"incarnation,omitempty"`
	// Rejoin marks an answer to a leader (MsgAppResp, MsgHeartbeatResp)
	// from a node whose incarnation its own configuration does not name:
	// it lost its state, or was added before its incarnation was known,
	// and asks to be taken back under this incarnation (see acceptSender).
	// An explicit request, so that a delayed answer of an incarnation
	// that is gone is never mistaken for one.
	Rejoin bool `json:"rejoin,omitempty"`
}

func (m Message) String() string {
	s := fmt.Sprintf("%d->%d %s t%d", m.From, m.To, m.Type, m.Term)
	if m.Incarnation != 0 {
		s = fmt.Sprintf("%d/%s->%d %s t%d", m.From, m.Incarnation.String()[12:], m.To, m.Type, m.Term)
	}
	switch m.Type {
	case MsgPreVote, MsgVote:
		s += fmt.Sprintf(" last=%d/t%d", m.Index, m.LogTerm)
		if m.Force {
			s += " force"
		}
	case MsgPreVoteResp, MsgVoteResp:
		if m.Reject {
			s += " reject"
		} else {
			s += " grant"
		}
	case MsgApp:
		s += fmt.Sprintf(" prev=%d/t%d n=%d commit=%d", m.Index, m.LogTerm, len(m.Entries), m.Commit)
	case MsgAppResp:
		if m.Reject {
			s += fmt.Sprintf(" reject=%d hint=%d/t%d", m.Index, m.RejectHint, m.LogTerm)
		} else {
			s += fmt.Sprintf(" match=%d", m.Index)
		}
	case MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d ctx=%d", m.Commit, m.Context)
	case MsgHeartbeatResp:
		s += fmt.Sprintf(" ctx=%d", m.Context)
	case MsgSnap:
		if m.Snapshot != nil {
			s += fmt.Sprintf(" snap=%d/t%d", m.Snapshot.Index, m.Snapshot.Term)
		}
	}
	return s
}

// Role is what a node currently is.
type Role uint8

const (
	RoleFollower Role = iota
	RolePreCandidate
	RoleCandidate
	RoleLeader
)

var roleNames = [...]string{"follower", "pre-candidate", "candidate", "leader"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// SoftState is volatile state that callers may want to show or react to.
// It need not be persisted.
type SoftState struct {
	Lead ID
	Role Role
}

// ReadState says that the read identified by RequestID may be served once the
// local state machine has applied Index (Raft thesis 6.4, ReadIndex).
type ReadState struct {
	RequestID uint64
	Index     uint64
}
