package raft

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestElectionAndNoop(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	for _, id := range nw.ids() {
		n := nw.nodes[id]
		assert.Equal(t, uint64(1), n.term, "node %d term", id)
		assert.Equal(t, ID(0), n.lead, "node %d leader", id)
	}
	// The new leader's first entry is a no-op of its term, committed everywhere
	// (followers learn the commit at the next heartbeat).
	nw.tick(1)
	for _, id := range nw.ids() {
		require.Len(t, nw.applied[id], 1, "node %d", id)
		assert.Equal(t, EntryNoop, nw.applied[id][0].Type)
		assert.Equal(t, uint64(1), nw.applied[id][0].Term)
	}
}

func TestRandomizedElectionTimeout(t *testing.T) {
	seen := map[int]bool{}
	for seed := range int64(50) {
		n, err := NewNode(Config{ID: 0, Peers: []ID{0, 1, 2}, ElectionTicks: 10, Rand: rand.New(rand.NewSource(seed))})
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n.randomizedTimeout, 10)
		assert.Less(t, n.randomizedTimeout, 20)
		seen[n.randomizedTimeout] = true
	}
	assert.Greater(t, len(seen), 3, "timeouts are not randomized")
}

func TestElectionRestriction(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	// Node 2 misses an entry that nodes 0 and 1 commit.
	nw.isolate(2)
	nw.propose(0, "x")
	nw.stabilize()
	nw.heal()
	// Node 0 goes away; node 2 times out first but its log is behind, so
	// node 1 refuses it and wins later itself.
	nw.isolate(0)
	nw.nodes[1].electionElapsed = 0
	for range 25 {
		nw.nodes[2].Tick()
		nw.stabilize()
	}
	assert.NotEqual(t, RoleLeader, nw.nodes[2].role, "a node without a committed entry became leader")
	nw.elect(1)
	assert.Equal(t, RoleLeader, nw.nodes[1].role)
}

func TestPreVoteKeepsTermOfIsolatedNode(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.isolate(2)
	nw.tick(100, 2)
	assert.Equal(t, uint64(1), nw.nodes[2].term, "pre-vote must keep a cut-off node's term")
	assert.Equal(t, RolePreCandidate, nw.nodes[2].role)
	// Back on the network, it does not depose the healthy leader.
	nw.heal()
	nw.tick(30)
	assert.Equal(t, ID(0), nw.leader())
	assert.Equal(t, uint64(1), nw.nodes[0].term)
	assert.Equal(t, ID(0), nw.nodes[2].lead)
}

func TestLeaseIgnoresDisruptiveCandidate(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	// A vote request for a higher term from a node that is not forced: a
	// follower that heard from the leader recently ignores it.
	err := nw.nodes[1].Step(Message{Type: MsgVote, From: 2, To: 1, Term: 5, Index: 100, LogTerm: 1})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), nw.nodes[1].term)
	assert.Empty(t, nw.nodes[1].msgs)
}

func TestCheckQuorumStepsDown(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.isolate(0)
	nw.tick(2*10, 0)
	assert.Equal(t, RoleFollower, nw.nodes[0].role, "an isolated leader must step down within two election timeouts")
}

func TestCommitOnlyCurrentTermByCounting(t *testing.T) {
	// Figure 8 of the Raft paper: a leader must not commit an entry of an
	// earlier term just because a majority stores it.
	nw := newNetwork(t, 3, nil)
	for _, id := range nw.ids() {
		d := nw.disk[id]
		d.hs = HardState{Term: 2, Vote: None}
		d.ents = []Entry{{Term: 1, Index: 1}, {Term: 2, Index: 2, Data: []byte("old")}}
		nw.start(id)
	}
	nw.nodes[0].campaign(true)
	// Deliver only the votes; hold back every AppendEntries.
	nw.filter = func(m Message) bool { return m.Type != MsgApp }
	nw.stabilize()
	require.Equal(t, RoleLeader, nw.nodes[0].role)
	l := nw.nodes[0]
	require.Equal(t, uint64(3), l.term)
	// Follower 1 reports it matches up to index 2 (the term-2 entry).
	require.NoError(t, l.Step(Message{Type: MsgAppResp, From: 1, To: 0, Term: 3, Index: 2}))
	assert.Equal(t, uint64(0), l.log.committed, "committed a previous-term entry by counting replicas")
	// Once the no-op of term 3 (index 3) is on a majority, everything commits.
	require.NoError(t, l.Step(Message{Type: MsgAppResp, From: 1, To: 0, Term: 3, Index: 3}))
	assert.Equal(t, uint64(3), l.log.committed)
}

func TestFastBacktracking(t *testing.T) {
	// Follower 2 holds 50 entries of an old term that the leader never had;
	// it must be repaired in a few round trips, not 50.
	nw := newNetwork(t, 3, nil)
	var stale []Entry
	for i := uint64(1); i <= 50; i++ {
		stale = append(stale, Entry{Term: 1, Index: i})
	}
	nw.disk[2].hs = HardState{Term: 1, Vote: None}
	nw.disk[2].ents = stale
	for _, id := range []ID{0, 1} {
		nw.disk[id].hs = HardState{Term: 2, Vote: None}
		nw.disk[id].ents = []Entry{{Term: 2, Index: 1}}
	}
	for _, id := range nw.ids() {
		nw.start(id)
	}
	rejects := 0
	nw.filter = func(m Message) bool {
		if m.Type == MsgAppResp && m.Reject {
			rejects++
		}
		return true
	}
	nw.elect(0)
	nw.tick(2)
	assert.LessOrEqual(t, rejects, 3, "too many rejections to find the match point")
	assert.Equal(t, nw.nodes[0].log.lastIndex(), nw.nodes[2].log.lastIndex())
	assert.Equal(t, nw.disk[0].ents, nw.disk[2].ents)
}

func TestBatchingAndInflightWindow(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.MaxMsgEntries = 64; c.MaxInflight = 2 })
	nw.elect(0)
	nw.tick(1)
	l := nw.nodes[0]
	// Hold every message: count what the leader sends.
	var apps []Message
	nw.filter = func(m Message) bool {
		if m.Type == MsgApp && m.To == 1 {
			apps = append(apps, m)
		}
		return false
	}
	// 100 proposals before one Ready go out as two messages of 64 and 36
	// entries: batching by the entry bound.
	for i := range 100 {
		nw.propose(0, fmt.Sprint(i))
	}
	nw.stabilize()
	require.Len(t, apps, 2)
	assert.Len(t, apps[0].Entries, 64)
	assert.Len(t, apps[1].Entries, 36)
	// The window of two is full: more proposals send nothing to follower 1
	// until it acknowledges.
	firstLast := apps[0].Entries[63].Index
	apps = nil
	nw.propose(0, "more")
	nw.stabilize()
	assert.Empty(t, apps, "sent beyond the in-flight window")
	// An acknowledgement of the first message opens the window by one.
	require.NoError(t, l.Step(Message{Type: MsgAppResp, From: 1, To: 0, Term: l.term, Index: firstLast}))
	nw.stabilize()
	require.Len(t, apps, 1)
	assert.Equal(t, "more", string(apps[0].Entries[0].Data))
}

func TestMaxMsgBytes(t *testing.T) {
	nw := newNetwork(t, 3, func(c *Config) { c.MaxMsgBytes = 1000 })
	nw.elect(0)
	nw.tick(1)
	var sizes []int
	nw.filter = func(m Message) bool {
		if m.Type == MsgApp && m.To == 1 && len(m.Entries) > 0 {
			sizes = append(sizes, len(m.Entries))
		}
		return true
	}
	for range 10 {
		nw.nodes[0].Propose(make([]byte, 300))
	}
	nw.stabilize()
	for _, s := range sizes {
		assert.LessOrEqual(t, s, 3, "a message carried more than 1000 bytes of entries")
	}
	assert.Equal(t, nw.nodes[0].log.committed, nw.nodes[0].log.lastIndex())
}

func TestReadIndexNeedsQuorumRound(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.tick(1)
	l := nw.nodes[0]
	nw.propose(0, "x")
	nw.stabilize()
	commit := l.log.committed

	require.NoError(t, l.ReadIndex(7))
	nw.stabilize()
	require.Len(t, nw.reads[0], 1)
	assert.Equal(t, ReadState{RequestID: 7, Index: commit}, nw.reads[0][0])

	// Cut off, the old leader cannot confirm a read: no answer.
	nw.isolate(0)
	require.NoError(t, l.ReadIndex(8))
	nw.tick(5, 0)
	assert.Len(t, nw.reads[0], 1, "an isolated leader answered a read")
	assert.ErrorIs(t, nw.nodes[1].ReadIndex(9), ErrNotLeader)
}

func TestReadIndexWaitsForNoop(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	for _, id := range nw.ids() {
		nw.disk[id].hs = HardState{Term: 2, Vote: None}
		nw.disk[id].ents = []Entry{{Term: 1, Index: 1}, {Term: 2, Index: 2}}
		nw.start(id)
	}
	// Node 0 wins term 3, but its no-op does not get through yet: until it
	// commits, the leader does not know the commit index and holds reads.
	nw.filter = func(m Message) bool { return m.Type != MsgApp }
	nw.nodes[0].campaign(true)
	nw.stabilize()
	l := nw.nodes[0]
	require.Equal(t, RoleLeader, l.role)
	require.NoError(t, l.ReadIndex(1))
	nw.tick(3)
	assert.Empty(t, nw.reads[0])
	nw.filter = nil
	nw.tick(3)
	require.Len(t, nw.reads[0], 1)
	assert.Equal(t, ReadState{RequestID: 1, Index: 3}, nw.reads[0][0])
}

func TestSnapshotToLaggingFollower(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.isolate(2)
	for i := range 20 {
		nw.propose(0, fmt.Sprint(i))
	}
	nw.stabilize()
	l := nw.nodes[0]
	nw.disk[0].snap = &Snapshot{Index: l.log.applied, Term: l.term, Data: []byte("state")}
	require.NoError(t, l.Compact(l.log.applied))
	assert.Nil(t, l.log.snapshot.Data, "the core keeps no snapshot data")
	assert.Empty(t, l.log.entries)
	nw.heal()
	nw.tick(3)
	f := nw.nodes[2]
	require.NotNil(t, nw.disk[2].snap, "follower did not receive the snapshot")
	assert.Equal(t, []byte("state"), nw.disk[2].snap.Data)
	assert.Equal(t, l.log.lastIndex(), f.log.lastIndex())
	assert.Equal(t, l.log.committed, f.log.committed)
	// It restarts from the snapshot.
	n := nw.start(2)
	assert.Equal(t, f.log.lastIndex(), n.log.lastIndex())
}

func TestLeadershipTransfer(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.isolate(2)
	nw.propose(0, "x")
	nw.stabilize()
	nw.heal()
	// The target is behind: the leader catches it up, then it campaigns at
	// once, without waiting for any timer.
	require.NoError(t, nw.nodes[0].TransferLeadership(2))
	_, _, err := nw.nodes[0].Propose([]byte("y"))
	assert.ErrorIs(t, err, ErrProposalDropped)
	nw.stabilize()
	assert.Equal(t, ID(2), nw.leader())
	assert.Equal(t, uint64(2), nw.nodes[2].term)
}

func TestReadyContract(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	n := nw.nodes[0]
	n.campaign(true)
	rd := n.Ready()
	// A vote for itself and the vote requests come in one Ready: the vote is
	// to be synced before the requests leave.
	assert.True(t, rd.MustSync)
	assert.Equal(t, ID(0), rd.HardState.Vote)
	assert.NotEmpty(t, rd.Messages)
	n.Advance(rd)
	assert.False(t, n.HasReady())
}

func TestRestartKeepsTermVoteAndLog(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.propose(0, "x")
	nw.stabilize()
	before := nw.nodes[1]
	n := nw.start(1)
	assert.Equal(t, before.term, n.term)
	assert.Equal(t, before.vote, n.vote)
	assert.Equal(t, before.log.lastIndex(), n.log.lastIndex())
}

// TestOneReadRoundInFlight: reads that arrive while a read round is in
// flight start no round of their own; they share the next one, which
// starts as soon as the first is acknowledged (the runtime relies on this
// to cost a round per round trip under a stream of reads).
func TestOneReadRoundInFlight(t *testing.T) {
	nw := newNetwork(t, 3, nil)
	nw.elect(0)
	nw.tick(1)
	nw.stabilize()
	l := nw.nodes[0]
	heartbeats := func(rd Ready) (out []Message) {
		for _, m := range append(rd.EarlyMessages, rd.Messages...) {
			if m.Type == MsgHeartbeat {
				out = append(out, m)
			}
		}
		return out
	}

	require.NoError(t, l.ReadIndex(1))
	rd := l.Ready()
	round := heartbeats(rd)
	require.Len(t, round, 2, "a read starts a heartbeat round")
	l.Advance(rd)

	require.NoError(t, l.ReadIndex(2))
	require.NoError(t, l.ReadIndex(3))
	assert.False(t, l.HasReady(), "a second round started while the first is in flight")

	for _, m := range round {
		require.NoError(t, l.Step(Message{Type: MsgHeartbeatResp, From: m.To, To: m.From, Term: m.Term, Context: m.Context}))
	}
	rd = l.Ready()
	require.Len(t, rd.ReadStates, 1)
	assert.Equal(t, uint64(1), rd.ReadStates[0].RequestID)
	next := heartbeats(rd)
	require.Len(t, next, 2, "the waiting reads start the next round")
	assert.Equal(t, round[0].Context+1, next[0].Context)
	l.Advance(rd)
	for _, m := range next {
		require.NoError(t, l.Step(Message{Type: MsgHeartbeatResp, From: m.To, To: m.From, Term: m.Term, Context: m.Context}))
	}
	rd = l.Ready()
	require.Len(t, rd.ReadStates, 2, "both reads share the second round")
	l.Advance(rd)
}
