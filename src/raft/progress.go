package raft

import "fmt"

// progressState is how a leader currently replicates to one follower.
type progressState uint8

const (
	// stateProbe: the leader does not know where the follower's log matches
	// its own. It sends one AppendEntries at a time and waits for the answer
	// (or a heartbeat response) before sending the next.
	stateProbe progressState = iota
	// stateReplicate: the logs match up to Match; the leader streams entries
	// optimistically, with at most maxInflight messages unacknowledged.
	stateReplicate
	// stateSnapshot: the follower needs entries the leader has compacted; a
	// snapshot is on its way and nothing else is sent until it is answered
	// or an election timeout passes.
	stateSnapshot
)

func (s progressState) String() string {
	return [...]string{"probe", "replicate", "snapshot"}[s]
}

// Progress is a leader's view of one follower (Raft figure 2: nextIndex and
// matchIndex).
//
// Invariants: Match < Next <= the leader's lastIndex()+1; Match <= the
// leader's lastIndex(). They hold because the leader's log only grows and
// Step refuses any MsgAppResp whose Index is beyond it (validate): every
// index that reaches maybeUpdate and maybeDecrTo is one the leader holds.
type Progress struct {
	Match, Next uint64
	State       progressState
	// PendingSnapshot is the index of the snapshot sent in stateSnapshot.
	PendingSnapshot uint64
	// RecentActive is set by any response from the follower and cleared at
	// each check-quorum round.
	RecentActive bool
	// probeSent pauses a probing leader until the follower answers.
	probeSent bool
	// snapshotWait counts ticks spent in stateSnapshot.
	snapshotWait int
	// ReadAck is the newest read round the follower has acknowledged.
	ReadAck  uint64
	inflight inflights
}

func (pr *Progress) String() string {
	return fmt.Sprintf("%s match=%d next=%d", pr.State, pr.Match, pr.Next)
}

func (pr *Progress) becomeProbe() {
	if pr.State == stateSnapshot {
		pr.Next = max(pr.Match+1, pr.PendingSnapshot+1)
	} else {
		pr.Next = pr.Match + 1
	}
	pr.State = stateProbe
	pr.PendingSnapshot = 0
	pr.probeSent = false
	pr.inflight.reset()
}

func (pr *Progress) becomeReplicate() {
	pr.State = stateReplicate
	pr.Next = pr.Match + 1
	pr.PendingSnapshot = 0
	pr.probeSent = false
	pr.inflight.reset()
}

func (pr *Progress) becomeSnapshot(index uint64) {
	pr.State = stateSnapshot
	pr.PendingSnapshot = index
	pr.snapshotWait = 0
	pr.inflight.reset()
}

// maybeUpdate records that the follower's log matches up to n, which must be
// at most the leader's last index. It reports whether Match advanced.
func (pr *Progress) maybeUpdate(n uint64) bool {
	updated := false
	if pr.Match < n {
		pr.Match = n
		updated = true
		pr.probeSent = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the AppendEntries whose previous index
// was rejected; matchHint is the leader's best guess (from the follower's
// hint) of the last index where the logs agree. Both are at most the
// leader's last index, and matchHint <= rejected. It reports whether the
// rejection was current (not a stale or duplicated answer).
func (pr *Progress) maybeDecrTo(rejected, matchHint uint64) bool {
	if pr.State == stateReplicate {
		if rejected <= pr.Match {
			// Stale: the answer to a message sent before the follower
			// caught up, delivered late or twice. (A follower that lost
			// entries looks the same here; its next reject, of an index
			// beyond Match, or its heartbeat answer tells.)
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	if pr.Next-1 != rejected {
		return false
	}
	if rejected <= pr.Match {
		// The follower rejects the very probe it should match: it no longer
		// holds an entry it acknowledged, so its log went backwards (a lost
		// or restored disk; outside Raft's fault model). Forget what it
		// acknowledged and probe down from its hint; if that reaches
		// compacted entries, sendAppend sends the snapshot. (A reordered
		// duplicate can look the same; then this costs one round trip.)
		pr.Match = 0
	}
	pr.Next = max(min(rejected, matchHint+1), pr.Match+1)
	pr.probeSent = false
	return true
}

// lostEntries handles a follower that says its log ends at last, before its
// Match (see stepFollower's heartbeat case): it forgets what the follower
// acknowledged and probes from the follower's last index. last < Match.
func (pr *Progress) lostEntries(last uint64) {
	pr.Match = 0
	pr.becomeProbe()
	pr.Next = last + 1
}

// isPaused reports whether the leader must hold back AppendEntries.
func (pr *Progress) isPaused() bool {
	switch pr.State {
	case stateProbe:
		return pr.probeSent
	case stateReplicate:
		return pr.inflight.full()
	}
	return true
}

// inflights is a bounded FIFO of the last indexes of unacknowledged
// AppendEntries messages: the pipelining window.
type inflights struct {
	buf         []uint64
	start, size int
}

func newInflights(n int) inflights { return inflights{buf: make([]uint64, n)} }

func (in *inflights) full() bool { return in.size == len(in.buf) }

func (in *inflights) add(last uint64) {
	if in.full() {
		panic("raft: inflight window overflow")
	}
	in.buf[(in.start+in.size)%len(in.buf)] = last
	in.size++
}

// freeLE acknowledges every message whose last index is <= to.
func (in *inflights) freeLE(to uint64) {
	for in.size > 0 && in.buf[in.start] <= to {
		in.start = (in.start + 1) % len(in.buf)
		in.size--
	}
}

func (in *inflights) freeFirst() {
	if in.size > 0 {
		in.start = (in.start + 1) % len(in.buf)
		in.size--
	}
}

func (in *inflights) reset() { in.start, in.size = 0, 0 }
