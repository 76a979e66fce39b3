package raft

// Ready is a batch of work for the runtime: what to persist, send, apply and
// answer. The runtime must handle a Ready in this order:
//
//  1. Send EarlyMessages: a leader's AppendEntries, heartbeats and
//     snapshots, which may go out while the leader writes the same entries
//     to its own disk (Raft thesis 10.2.1): the leader counts itself towards
//     a quorum only after Advance, and followers promise durability only in
//     their replies.
//  2. Persist. If Snapshot is set, save it and restore the state machine
//     from it. Then append Entries (which may replace the stored log from
//     Entries[0].Index on) and save HardState, in one durable write: when
//     MustSync is true, fsync before going on.
//  3. Send Messages. Only now: a vote or a vote request, and a reply to
//     AppendEntries, promise that the term, the vote or the entries are on
//     disk (Raft thesis 3.8).
//  4. Apply CommittedEntries in order, then serve the ReadStates whose index
//     is applied.
//  5. Call Advance with this Ready.
//
// Between Ready and Advance the runtime must not call any other method of the
// Node. Messages may be lost, duplicated or reordered by the network; the
// core tolerates that.
type Ready struct {
	// SoftState is non-nil when the role or the known leader changed.
	SoftState *SoftState
	// HardState is empty when unchanged.
	HardState HardState
	// Snapshot, when non-nil, was received from the leader and replaces the
	// whole state machine and log.
	Snapshot *Snapshot
	// Entries are to be appended to stable storage.
	Entries []Entry
	// MustSync is true when Entries or the term or vote changed: these must
	// be durable before Messages are sent. A change of commit index alone
	// need not be synced.
	MustSync bool
	// EarlyMessages may be sent before or during the persistence step.
	EarlyMessages []Message
	// Messages are to be sent after the persistence step.
	Messages []Message
	// CommittedEntries are to be applied to the state machine, in order.
	CommittedEntries []Entry
	// ReadStates are linearizable reads confirmed by a quorum.
	ReadStates []ReadState
}

// flush turns the work batched since the last Ready into messages: one
// AppendEntries per follower for all new entries, and one heartbeat round
// for all new reads.
func (n *Node) flush() {
	if n.role != RoleLeader {
		n.pending.append, n.pending.readBcast = false, false
		return
	}
	if n.pending.append {
		n.pending.append = false
		n.bcastAppend()
	}
	if n.readBcastDue() {
		n.pending.readBcast = false
		n.readRound++
		n.heartbeatElapsed = 0
		n.bcastHeartbeat()
	}
}

// HasReady reports whether Ready has anything for the runtime.
func (n *Node) HasReady() bool {
	return n.softState() != n.prevSoft ||
		n.hardState() != n.prevHard ||
		n.pending.snapshot != nil ||
		n.pending.append || n.readBcastDue() ||
		len(n.msgs) > 0 ||
		len(n.readStates) > 0 ||
		n.log.stable < n.log.lastIndex() ||
		n.log.applied < n.log.committed
}

// Ready returns the next batch of work. See the type's doc for the contract.
func (n *Node) Ready() Ready {
	n.flush()
	rd := Ready{
		Snapshot:         n.pending.snapshot,
		Entries:          n.log.unstable(),
		Messages:         n.msgs,
		CommittedEntries: n.log.toApply(),
		ReadStates:       n.readStates,
	}
	if ss := n.softState(); ss != n.prevSoft {
		rd.SoftState = &ss
	}
	if hs := n.hardState(); hs != n.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote
	}
	rd.MustSync = rd.MustSync || len(rd.Entries) > 0 || rd.Snapshot != nil
	if n.role == RoleLeader {
		rd.EarlyMessages, rd.Messages = splitEarly(rd.Messages)
	}
	n.msgs = nil
	n.readStates = nil
	return rd
}

// splitEarly separates a leader's replication traffic, which depends on
// nothing the leader has yet to persist, from the rest.
func splitEarly(msgs []Message) (early, late []Message) {
	for _, m := range msgs {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			early = append(early, m)
		default:
			late = append(late, m)
		}
	}
	return early, late
}

// Advance tells the core that rd has been handled: persisted, sent and
// applied.
func (n *Node) Advance(rd Ready) {
	if rd.SoftState != nil {
		n.prevSoft = *rd.SoftState
	}
	if !rd.HardState.IsEmpty() {
		n.prevHard = rd.HardState
	}
	if rd.Snapshot != nil && n.pending.snapshot == rd.Snapshot {
		n.pending.snapshot = nil
		// The runtime has saved it: keep only the metadata (see Compact).
		if n.log.snapshot == rd.Snapshot {
			n.log.snapshot = rd.Snapshot.withoutData()
		}
	}
	if k := len(rd.Entries); k > 0 {
		n.log.stable = max(n.log.stable, rd.Entries[k-1].Index)
	}
	if k := len(rd.CommittedEntries); k > 0 {
		n.log.applied = max(n.log.applied, rd.CommittedEntries[k-1].Index)
	}
	n.log.evict()
	if n.role == RoleLeader {
		// The leader's own copy counts towards a quorum only once durable.
		// Followers learn the new commit index from the next AppendEntries
		// or heartbeat; nothing extra is sent for it.
		if n.prs[n.id].maybeUpdate(n.log.stable) {
			n.maybeCommit()
		}
	}
}

// Status is a snapshot of the node's state for monitoring.
type Status struct {
	ID            ID
	Term          uint64
	Vote          ID
	Lead          ID
	Role          Role
	Commit        uint64
	Applied       uint64
	LastIndex     uint64
	SnapshotIndex uint64
	// Progress is the leader's view of each follower; nil on followers.
	Progress map[ID]Progress
}

// BasicStatus returns the node's current state without Progress; it does
// not allocate.
func (n *Node) BasicStatus() Status {
	return Status{
		ID: n.id, Term: n.term, Vote: n.vote, Lead: n.lead, Role: n.role,
		Commit: n.log.committed, Applied: n.log.applied, LastIndex: n.log.lastIndex(),
		SnapshotIndex: n.log.offset,
	}
}

// Status returns the node's current state, with the leader's view of every
// follower.
func (n *Node) Status() Status {
	s := n.BasicStatus()
	if n.role == RoleLeader {
		s.Progress = make(map[ID]Progress, len(n.prs))
		for id, pr := range n.prs {
			s.Progress[id] = *pr
		}
	}
	return s
}
