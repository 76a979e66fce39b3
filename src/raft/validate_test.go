package raft

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// observed is what a refused message must leave unchanged.
type observed struct {
	Term                           uint64
	Vote, Lead                     ID
	Role                           Role
	Commit, Applied, Last, Offset  uint64
	LastTerm, ReadRound, PendingRd uint64
	Progress                       []string
	Msgs                           int
}

func observe(n *Node) observed {
	o := observed{
		Term: n.term, Vote: n.vote, Lead: n.lead, Role: n.role,
		Commit: n.log.committed, Applied: n.log.applied, Last: n.log.lastIndex(), Offset: n.log.offset,
		LastTerm: n.log.lastTerm(), ReadRound: n.readRound, PendingRd: uint64(len(n.reads)), Msgs: len(n.msgs),
	}
	for _, p := range n.peers {
		if pr := n.prs[p]; pr != nil {
			o.Progress = append(o.Progress, fmt.Sprintf("%d: %s pending=%d active=%v probeSent=%v readAck=%d inflight=%d",
				p, pr, pr.PendingSnapshot, pr.RecentActive, pr.probeSent, pr.ReadAck, pr.inflight.size))
		}
	}
	return o
}

// newTwoTermCluster returns a quiet 3-node cluster whose log holds entries of
// two terms, all committed everywhere: node 0 led term 1 (no-op at 1,
// commands at 2..4), then handed leadership to node 1, which leads term 2
// (no-op at 5). Nodes 0 and 2 follow node 1.
func newTwoTermCluster(t *testing.T) *network {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	for i := range 3 {
		nw.propose(0, fmt.Sprint(i))
	}
	nw.stabilize()
	require.NoError(t, nw.nodes[0].TransferLeadership(1))
	nw.stabilize()
	nw.tick(1)
	require.Equal(t, ID(1), nw.leader())
	for _, id := range nw.ids() {
		n := nw.nodes[id]
		require.Equal(t, uint64(2), n.term, "node %d", id)
		require.Equal(t, uint64(5), n.log.committed, "node %d", id)
		require.Equal(t, uint64(5), n.log.lastIndex(), "node %d", id)
	}
	return nw
}

// TestStepRefusesInvalidMessages sends each kind of message that no correct
// peer sends to a leader (node 1, term 2) or a follower (node 2) of
// newTwoTermCluster. Each must be refused with an error that wraps
// ErrInvalidMessage and names the field, and must change nothing: no term,
// vote, leader, role, commit or log change, and no message sent.
func TestStepRefusesInvalidMessages(t *testing.T) {
	const L, F = ID(1), ID(2)
	ents := func(pairs ...uint64) []Entry { // index, term, index, term...
		var es []Entry
		for i := 0; i < len(pairs); i += 2 {
			es = append(es, Entry{Index: pairs[i], Term: pairs[i+1]})
		}
		return es
	}
	cases := []struct {
		name string
		m    Message
		want string // in the error
	}{
		{"message of type 0", Message{Type: 0, From: L, To: F, Term: 2}, "unknown message type 0"},
		{"message of type 11", Message{Type: 11, From: L, To: F, Term: 2}, "unknown message type 11"},
		{"Heartbeat from unknown node 7", Message{Type: MsgHeartbeat, From: 7, To: F, Term: 2}, "From 7 claims to lead term 2, which node 1 leads"},
		{"Heartbeat from None", Message{Type: MsgHeartbeat, From: None, To: F, Term: 2}, "From -1 is not another node's ID"},
		{"Heartbeat from the receiver itself", Message{Type: MsgHeartbeat, From: F, To: F, Term: 2}, "From 2 is not another node's ID"},
		{"Heartbeat to another node", Message{Type: MsgHeartbeat, From: L, To: 0, Term: 2}, "To 0 is not this node 2"},
		{"App with Index 2^63", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 1 << 63, LogTerm: 2}, "Index 9223372036854775808 beyond the largest index"},
		{"Heartbeat with Commit 2^64-1", Message{Type: MsgHeartbeat, From: L, To: F, Term: 2, Commit: math.MaxUint64}, "Commit 18446744073709551615 beyond"},
		{"AppResp with RejectHint 2^63", Message{Type: MsgAppResp, From: F, To: L, Term: 2, Index: 5, Reject: true, RejectHint: 1 << 63}, "RejectHint 9223372036854775808 beyond the largest"},
		{"App with LogTerm above its term", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 3}, "LogTerm 3 above the message term"},
		{"Vote with LogTerm above its term", Message{Type: MsgVote, From: 0, To: F, Term: 3, Index: 9, LogTerm: 4, Force: true}, "LogTerm 4 above the message term"},

		{"App with a gap before its first entry", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 2, Entries: ents(7, 2)}, "Entries[0].Index 7, want 6"},
		{"App whose first entry repeats Index", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 2, Entries: ents(5, 2)}, "Entries[0].Index 5, want 6"},
		{"App with a gap between entries", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 2, Entries: ents(6, 2, 8, 2)}, "Entries[1].Index 8, want 7"},
		{"App with an entry term above its term", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 2, Entries: ents(6, 3)}, "Entries[0].Term 3 above the message term"},
		{"App with an entry term below LogTerm", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 5, LogTerm: 2, Entries: ents(6, 1)}, "Entries[0].Term 1 below the preceding term 2"},
		{"App whose entry terms go down", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 4, LogTerm: 1, Entries: ents(5, 2, 6, 1)}, "Entries[1].Term 1 below the preceding term 2"},
		{"App whose entries run past the index space", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: maxIndex, LogTerm: 2, Entries: ents(1<<63, 2)}, "1 entries after Index 9223372036854775807 run beyond"},
		{"App whose previous entry contradicts a committed one", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 4, LogTerm: 2}, "Index 4 LogTerm 2 contradicts committed entry 4 of term 1"},
		{"App that would overwrite a committed entry", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 3, LogTerm: 1, Entries: ents(4, 2)}, "Entries[0] 4/t2 contradicts committed entry of term 1"},
		{"App beyond commit with LogTerm below the committed term", Message{Type: MsgApp, From: L, To: F, Term: 2, Index: 6, LogTerm: 1}, "LogTerm 1 below the term 2 of committed entry 5"},
		{"App from a second leader of the term", Message{Type: MsgApp, From: 0, To: F, Term: 2, Index: 5, LogTerm: 2}, "From 0 claims to lead term 2, which node 1 leads"},
		{"App to the leader of its own term", Message{Type: MsgApp, From: 0, To: L, Term: 2, Index: 5, LogTerm: 2}, "From 0 claims to lead term 2, which this node leads"},
		{"Heartbeat to the leader of its own term", Message{Type: MsgHeartbeat, From: 0, To: L, Term: 2}, "which this node leads"},

		{"Snap with a nil snapshot", Message{Type: MsgSnap, From: L, To: F, Term: 2}, "Snapshot is nil"},
		{"Snap at index 0", Message{Type: MsgSnap, From: L, To: F, Term: 2, Snapshot: &Snapshot{Term: 1}}, "Snapshot.Index 0 out of range"},
		{"Snap of term 0", Message{Type: MsgSnap, From: L, To: F, Term: 2, Snapshot: &Snapshot{Index: 9}}, "Snapshot.Term 0 out of range"},
		{"Snap with a term above the message term", Message{Type: MsgSnap, From: L, To: F, Term: 2, Snapshot: &Snapshot{Index: 9, Term: 3}}, "Snapshot.Term 3 out of range"},
		{"Snap contradicting a committed entry", Message{Type: MsgSnap, From: L, To: F, Term: 2, Snapshot: &Snapshot{Index: 4, Term: 2}}, "Snapshot 4/t2 contradicts committed entry of term 1"},
		{"Snap beyond commit with a term below the committed term", Message{Type: MsgSnap, From: L, To: F, Term: 2, Snapshot: &Snapshot{Index: 9, Term: 1}}, "Snapshot 9/t1 below the term 2 of committed entry 5"},
		{"Snap from a second leader of the term", Message{Type: MsgSnap, From: 0, To: F, Term: 2, Snapshot: &Snapshot{Index: 9, Term: 2}}, "From 0 claims to lead term 2"},

		{"AppResp acknowledging an index beyond the leader's log", Message{Type: MsgAppResp, From: F, To: L, Term: 2, Index: 16}, "Index 16 beyond the leader's last index 5"},
		{"AppResp rejecting an index beyond the leader's log", Message{Type: MsgAppResp, From: F, To: L, Term: 2, Index: 16, Reject: true}, "Index 16 beyond the leader's last index 5"},
		{"AppResp with a hint beyond the rejected index", Message{Type: MsgAppResp, From: F, To: L, Term: 2, Index: 3, Reject: true, RejectHint: 4}, "RejectHint 4 beyond the rejected Index 3"},
		{"AppResp with a hint term above its term", Message{Type: MsgAppResp, From: F, To: L, Term: 2, Index: 5, Reject: true, RejectHint: 5, LogTerm: 3}, "LogTerm 3 above the message term"},
		{"HeartbeatResp for a read round not yet started", Message{Type: MsgHeartbeatResp, From: F, To: L, Term: 2, Context: 99}, "Context 99 beyond the leader's read round 0"},
		{"HeartbeatResp with a hint beyond the leader's log", Message{Type: MsgHeartbeatResp, From: F, To: L, Term: 2, Reject: true, RejectHint: 9}, "RejectHint 9 beyond the leader's last index 5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nw := newTwoTermCluster(t)
			n := nw.nodes[tc.m.To]
			if n == nil || tc.m.To == 0 {
				n = nw.nodes[F] // addressed elsewhere: deliver to F anyway
			}
			before := observe(n)
			var err error
			require.NotPanics(t, func() { err = n.Step(tc.m) })
			require.ErrorIs(t, err, ErrInvalidMessage)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), fmt.Sprintf("%s from %d to %d at term %d", tc.m.Type, tc.m.From, tc.m.To, tc.m.Term))
			assert.Equal(t, before, observe(n), "a refused message changed the node")
		})
	}
}

// TestHeartbeatCommitBeyondLog: a heartbeat never carries a commit index
// beyond the entries the follower acknowledged, so one beyond its log means
// the follower's log went backwards (or the message is forged). The follower
// commits nothing, answers with where its log ends, and reports the message.
func TestHeartbeatCommitBeyondLog(t *testing.T) {
	nw := newTwoTermCluster(t)
	f := nw.nodes[2]
	err := f.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 9, Context: 0})
	require.ErrorIs(t, err, ErrInvalidMessage)
	assert.Contains(t, err.Error(), "Commit 9 beyond this node's last index 5")
	assert.Equal(t, uint64(5), f.log.committed)
	assert.Equal(t, uint64(2), f.term)
	require.Len(t, f.msgs, 1)
	assert.Equal(t, Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 2, Reject: true, RejectHint: 5}, f.msgs[0])
}

// TestStepAcceptsLegitimateEdgeCases guards against validation refusing what
// a correct cluster does send.
func TestStepAcceptsLegitimateEdgeCases(t *testing.T) {
	cases := []struct {
		name string
		to   ID
		m    Message
	}{
		{"stale App below the commit index", 2, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 1}}, Commit: 5}},
		{"App whose Commit is beyond its entries", 2, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 5, LogTerm: 2, Commit: 50}},
		{"App from a new leader of a later term", 2, Message{Type: MsgApp, From: 0, To: 2, Term: 3, Index: 5, LogTerm: 2, Entries: []Entry{{Index: 6, Term: 3}}}},
		{"Heartbeat at the follower's last index", 2, Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 5}},
		{"duplicate AppResp", 1, Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 5}},
		{"stale reject at the commit index", 1, Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 4, Reject: true, RejectHint: 3, LogTerm: 1}},
		{"PreVoteResp at term 0 from a fresh node", 1, Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 0, Reject: true}},
		{"Vote at term 2^64-2", 2, Message{Type: MsgVote, From: 0, To: 2, Term: maxTerm, Index: 5, LogTerm: 2, Force: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nw := newTwoTermCluster(t)
			assert.NoError(t, nw.nodes[tc.to].Step(tc.m))
		})
	}
}

// TestTermOverflowRefused: a message whose term cannot be incremented would
// let the next election wrap the term to 0 (the fault campaign saw a vote at
// 2^64-1 accepted and a leader elected at term 1 later). It is refused and
// changes nothing, at a follower and at the leader.
func TestTermOverflowRefused(t *testing.T) {
	const top = math.MaxUint64
	msgs := []Message{
		{Type: MsgVote, Term: top, Index: 5, LogTerm: 2, Force: true},
		{Type: MsgPreVote, Term: top, Index: 5, LogTerm: 2, Force: true},
		{Type: MsgApp, Term: top, Index: 5, LogTerm: 2},
		{Type: MsgHeartbeat, Term: top, Commit: 5},
		{Type: MsgSnap, Term: top, Snapshot: &Snapshot{Index: 9, Term: top}},
		{Type: MsgTimeoutNow, Term: top},
		{Type: MsgVoteResp, Term: top, Reject: true},
	}
	for _, to := range []ID{1, 2} {
		for _, m := range msgs {
			m.From, m.To = 0, to
			t.Run(fmt.Sprintf("%s at term 2^64-1 to node %d", m.Type, to), func(t *testing.T) {
				nw := newTwoTermCluster(t)
				n := nw.nodes[to]
				before := observe(n)
				err := n.Step(m)
				require.ErrorIs(t, err, ErrInvalidMessage)
				assert.Contains(t, err.Error(), "Term 18446744073709551615 cannot be incremented")
				assert.Equal(t, before, observe(n))
			})
		}
	}
}

// TestNoCampaignIntoWrappedTerm: a node at the highest usable term does not
// campaign, whatever asks it to: its term would reach 2^64-1, and the next
// election would wrap to 0.
func TestNoCampaignIntoWrappedTerm(t *testing.T) {
	t.Run("election timeouts at term 2^64-2", func(t *testing.T) {
		nw := newNetwork(t, 3, nil)
		for _, id := range nw.ids() {
			nw.disk[id].hs = HardState{Term: maxTerm, Vote: None}
			nw.start(id)
		}
		nw.filter = func(m Message) bool {
			assert.LessOrEqual(t, m.Term, uint64(maxTerm), "sent %s", m)
			return true
		}
		nw.tick(50)
		nw.nodes[0].Campaign()
		nw.stabilize()
		for _, id := range nw.ids() {
			assert.Equal(t, uint64(maxTerm), nw.nodes[id].term, "node %d", id)
			assert.Equal(t, RoleFollower, nw.nodes[id].role, "node %d", id)
		}
	})
	t.Run("TimeoutNow at term 2^64-2", func(t *testing.T) {
		nw := newTwoTermCluster(t)
		n := nw.nodes[2]
		require.NoError(t, n.Step(Message{Type: MsgTimeoutNow, From: 1, To: 2, Term: maxTerm}))
		assert.Equal(t, uint64(maxTerm), n.term)
		assert.Equal(t, RoleFollower, n.role)
		assert.Empty(t, n.msgs)
	})
	t.Run("vote at term 2^64-1 then TimeoutNow", func(t *testing.T) {
		// The sequence the fault campaign reported. Whatever Step accepts,
		// the term must never go down.
		nw := newTwoTermCluster(t)
		n := nw.nodes[2]
		_ = n.Step(Message{Type: MsgVote, From: 0, To: 2, Term: math.MaxUint64, Index: 5, LogTerm: 2, Force: true})
		t1 := n.term
		_ = n.Step(Message{Type: MsgTimeoutNow, From: 0, To: 2, Term: n.term})
		assert.GreaterOrEqual(t, n.term, t1, "term went backwards")
		assert.LessOrEqual(t, n.term, uint64(maxTerm))
	})
	t.Run("recovered at term 2^64-1", func(t *testing.T) {
		_, err := NewNode(Config{ID: 0, Peers: []ID{0, 1, 2}, Rand: rand.New(rand.NewSource(1)),
			HardState: HardState{Term: math.MaxUint64, Vote: None}})
		assert.ErrorContains(t, err, "cannot be incremented")
	})
}

// TestProgressFollowerLogWentBackwards covers how a leader's view of one
// follower moves on rejections, for a follower whose log went backwards and
// for stale answers, and that Next never leaves [Match+1, last+1].
func TestProgressFollowerLogWentBackwards(t *testing.T) {
	cases := []struct {
		name      string
		pr        Progress
		decr      func(*Progress) bool
		wantOK    bool
		wantMatch uint64
		wantNext  uint64
		wantState progressState
	}{
		{"probe rejected at Match, hint 0: restart from 1",
			Progress{Match: 15, Next: 16, State: stateProbe, probeSent: true},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 0) }, true, 0, 1, stateProbe},
		{"probe rejected at Match, hint 10: probe at 10",
			Progress{Match: 15, Next: 16, State: stateProbe, probeSent: true},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 10) }, true, 0, 11, stateProbe},
		{"probe rejected beyond Match: fast backtracking to the hint",
			Progress{Match: 5, Next: 16, State: stateProbe, probeSent: true},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 8) }, true, 5, 9, stateProbe},
		{"probe rejected beyond Match, hint below Match: Next stays above Match",
			Progress{Match: 5, Next: 16, State: stateProbe, probeSent: true},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 2) }, true, 5, 6, stateProbe},
		{"stale probe answer ignored",
			Progress{Match: 5, Next: 9, State: stateProbe, probeSent: true},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 2) }, false, 5, 9, stateProbe},
		{"replicate: stale reject at or below Match ignored",
			Progress{Match: 15, Next: 20, State: stateReplicate},
			func(pr *Progress) bool { return pr.maybeDecrTo(15, 0) }, false, 15, 20, stateReplicate},
		{"replicate: reject beyond Match falls back to Match+1",
			Progress{Match: 15, Next: 20, State: stateReplicate},
			func(pr *Progress) bool { return pr.maybeDecrTo(17, 3) }, true, 15, 16, stateReplicate},
		{"heartbeat says the log ends at 3, in replicate",
			Progress{Match: 15, Next: 20, State: stateReplicate},
			func(pr *Progress) bool { pr.lostEntries(3); return true }, true, 0, 4, stateProbe},
		{"heartbeat says the log is empty, in snapshot",
			Progress{Match: 15, Next: 16, State: stateSnapshot, PendingSnapshot: 30},
			func(pr *Progress) bool { pr.lostEntries(0); return true }, true, 0, 1, stateProbe},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr := tc.pr
			pr.inflight = newInflights(4)
			assert.Equal(t, tc.wantOK, tc.decr(&pr))
			assert.Equal(t, tc.wantMatch, pr.Match, "Match")
			assert.Equal(t, tc.wantNext, pr.Next, "Next")
			assert.Equal(t, tc.wantState, pr.State, "State")
			assert.Less(t, pr.Match, pr.Next, "Match < Next")
		})
	}
}

// TestFollowerLogWentBackwards replaces a follower by a new node with empty
// state and the same ID, as when its data folder is wiped and it restarts.
// A log going backwards is outside Raft's fault model: a node that loses
// what it acknowledged may have been part of the quorum for a committed
// entry, so safety is not promised (Raft 5.4 assumes durable state; see
// Alagappan et al., FAST'18). The membership issue will make such a node
// rejoin as a learner. This tests only liveness and that nothing crashes:
// the leader must not panic and must bring the node back up to date, with
// and without a compacted log, whether it is idle (only heartbeats tell it)
// or busy (only AppendEntries rejections tell it).
func TestFollowerLogWentBackwards(t *testing.T) {
	for _, tc := range []struct {
		name          string
		compact, idle bool
	}{
		{"whole log, idle leader", false, true},
		{"whole log, busy leader", false, false},
		{"compacted log, idle leader", true, true},
		{"compacted log, busy leader", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetwork(t, 3, nil)
			var errs []error
			nw.stepErr = func(m Message, err error) {
				assert.ErrorIs(t, err, ErrInvalidMessage, "%s", m)
				errs = append(errs, err)
			}
			nw.elect(0)
			for i := range 20 {
				nw.propose(0, fmt.Sprint(i))
			}
			nw.stabilize()
			nw.tick(1)
			l := nw.nodes[0]
			require.Equal(t, l.log.lastIndex(), nw.nodes[2].log.committed)
			if tc.compact {
				nw.compact(0)
				require.Equal(t, l.log.lastIndex(), l.log.offset)
			}

			f := nw.wipe(2)
			require.NotPanics(t, func() {
				if tc.idle {
					nw.tick(3)
				} else {
					for i := range 5 {
						nw.propose(0, fmt.Sprint("after", i))
						nw.stabilize()
					}
				}
			})
			assert.Equal(t, ID(0), nw.leader())
			assert.Equal(t, uint64(1), l.term)
			assert.Equal(t, l.log.lastIndex(), f.log.lastIndex(), "the wiped follower did not catch up")
			if tc.compact {
				require.NotNil(t, nw.disk[2].snap, "no snapshot sent")
				assert.Equal(t, nw.disk[0].snap.Data, nw.disk[2].snap.Data)
			} else {
				assert.Equal(t, nw.disk[0].ents, nw.disk[2].ents)
			}
			nw.tick(1)
			assert.Equal(t, l.log.committed, f.log.committed)
			if tc.idle {
				require.NotEmpty(t, errs, "the wiped follower should report the leader's commit beyond its log")
				assert.ErrorContains(t, errs[0], "lost acknowledged entries")
			}
			// It applies what it lacks, on top of the snapshot if there was one.
			var want []Entry
			for _, e := range nw.applied[0] {
				if nw.disk[2].snap == nil || e.Index > nw.disk[2].snap.Index {
					want = append(want, e)
				}
			}
			assert.Equal(t, want, nw.applied[2])
		})
	}
}

// TestValidateDoesNotAllocate: Step is on the hot path; checking a valid
// message must cost no allocation, nor may Step make its argument escape.
func TestValidateDoesNotAllocate(t *testing.T) {
	nw := newTwoTermCluster(t)
	l, f := nw.nodes[1], nw.nodes[2]
	ents := make([]Entry, 64)
	for i := range ents {
		ents[i] = Entry{Index: 6 + uint64(i), Term: 2, Data: []byte("x")}
	}
	for _, tc := range []struct {
		n *Node
		m Message
	}{
		{f, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 5, LogTerm: 2, Entries: ents, Commit: 5}},
		{f, Message{Type: MsgApp, From: 1, To: 2, Term: 2, Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 1}, {Index: 4, Term: 1}}}},
		{f, Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 5}},
		{f, Message{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: &Snapshot{Index: 9, Term: 2}}},
		{f, Message{Type: MsgVote, From: 0, To: 2, Term: 3, Index: 5, LogTerm: 2}},
		{l, Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 5}},
		{l, Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 5, Reject: true, RejectHint: 3, LogTerm: 1}},
		{l, Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 2}},
	} {
		require.NoError(t, tc.n.validate(&tc.m), "%s", tc.m)
		assert.Zero(t, testing.AllocsPerRun(100, func() { _ = tc.n.validate(&tc.m) }), "validate %s", tc.m)
	}
	// A duplicate acknowledgement goes all the way through Step and sends
	// nothing.
	dup := Message{Type: MsgAppResp, From: 2, To: 1, Term: 2, Index: 5}
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = l.Step(dup) }), "Step")
	assert.Empty(t, l.msgs)
}
