package raft

import (
	"errors"
	"fmt"
	"slices"
)

var (
	// ErrNotLeader: proposals and reads are accepted only by the leader.
	ErrNotLeader = errors.New("raft: not leader")
	// ErrProposalDropped: the leader is handing leadership over and takes no
	// new proposals until the transfer ends.
	ErrProposalDropped = errors.New("raft: proposal dropped during leadership transfer")
)

// Rand is the source of randomness for election timeouts. The caller seeds
// it, so a run is reproducible.
type Rand interface {
	// Intn returns a number in [0, n).
	Intn(n int) int
}

// Config describes one node. Durations are in ticks; the runtime decides how
// long a tick is.
type Config struct {
	ID ID
	// Incarnation is this node's data folder's (see membership.go): the
	// configuration must name it for this node to vote or campaign.
	Incarnation Incarnation
	// Peers is the configuration of a cluster that predates configurations
	// in the log: every voter, this node included, all of incarnation 0.
	// It is used only when the recovered snapshot and entries hold no
	// configuration; empty, such a node waits to be sent one (it joins).
	Peers []ID
	// PromoteLag: a learner within this many entries of the leader's last
	// index is caught up, and may become a voter.
	PromoteLag uint64
	// ElectionTicks is the minimum election timeout; each election waits a
	// random number of ticks in [ElectionTicks, 2*ElectionTicks).
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat interval; < ElectionTicks.
	HeartbeatTicks int
	Rand           Rand
	// MaxMsgEntries and MaxMsgBytes bound one AppendEntries message (the
	// bytes bound counts entry data and lets at least one entry through).
	MaxMsgEntries int
	MaxMsgBytes   uint64
	// MaxInflight bounds the unacknowledged AppendEntries per follower.
	MaxInflight int

	// LogStorage, when set, lets the core keep only a window of recent
	// entries in memory: entries beyond LogWindowEntries or
	// LogWindowBytes (of Data) that are applied and stable are evicted,
	// and read back through it for a follower that lags behind. nil keeps
	// the whole log since the snapshot in memory. A zero bound is the
	// default (defaultLogWindowEntries, defaultLogWindowBytes).
	LogStorage       LogStorage
	LogWindowEntries int
	LogWindowBytes   uint64

	// The recovered durable state: the newest snapshot (nil for none), the
	// hard state, and the log entries that follow the snapshot.
	Snapshot  *Snapshot
	HardState HardState
	Entries   []Entry
	// Applied is the highest index the state machine already reflects
	// (normally the snapshot's index; 0 restarts application from it).
	Applied uint64

	// Trace, when set, receives a line for every state change and message.
	// The simulator uses it for its replay trace.
	Trace func(string)
	// Planted is NoPlantedBug except in the simulator's self-test.
	Planted PlantedBug
}

// pendingRead is a ReadIndex request waiting for a quorum to confirm the
// leader's leadership in read round round.
type pendingRead struct {
	id, index, round uint64
}

// Node is one Raft participant as a deterministic state machine. It is not
// safe for concurrent use: one goroutine owns it (see doc.go).
type Node struct {
	id  ID
	inc Incarnation
	// peers are the IDs of every member (voters and learners), voters the
	// voters', both sorted; quorum is a majority of voters. They follow
	// the configuration in force (confChanged; confSeen is the log's
	// confGen they were derived from).
	peers    []ID
	voters   []ID
	confSeen uint64
	// prInc is the incarnation each Progress in prs was made for.
	prInc map[ID]Incarnation
	// rejoins: members that answered the leader under a new incarnation
	// (they lost their state), and that incarnation (maybeAutoChange).
	rejoins map[ID]Incarnation
	cfg     Config
	term    uint64
	vote    ID
	lead    ID
	role    Role
	log     raftLog
	prs     map[ID]*Progress
	votes   map[ID]bool
	msgs    []Message
	quorum  int
	// scratch holds one value per peer for quorumIndex, reused so that the
	// per-acknowledgement checks do not allocate.
	scratch []uint64
	trace   func(string)
	rand    Rand
	pending struct {
		snapshot  *Snapshot // received, to hand out in Ready
		append    bool      // new entries to broadcast at the next Ready
		readBcast bool      // reads wait for a heartbeat round
	}

	electionElapsed  int
	heartbeatElapsed int
	// randomizedTimeout is in [ElectionTicks, 2*ElectionTicks), drawn anew
	// at every reset of the election timer (Raft 5.2).
	randomizedTimeout int
	leadTransferee    ID

	readRound     uint64
	reads         []pendingRead
	readsWaitNoop []uint64
	readStates    []ReadState

	prevHard HardState
	prevSoft SoftState
}

// NewNode builds a node from its configuration and recovered state.
func NewNode(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		id:             cfg.ID,
		inc:            cfg.Incarnation,
		cfg:            cfg,
		vote:           None,
		lead:           None,
		trace:          cfg.Trace,
		rand:           cfg.Rand,
		leadTransferee: None,
	}
	hs := cfg.HardState
	if !cfg.Snapshot.IsEmpty() {
		n.log.restore(cfg.snapshotMeta())
	} else if len(cfg.Peers) > 0 {
		n.log.snapConf = legacyMembership(cfg.Peers)
		n.log.conf = n.log.snapConf
	}
	// validate checked that the entries continue the snapshot, that the
	// commit index is in the log and that Applied is committed, and that
	// every configuration entry decodes.
	n.log.entries = slices.Clone(cfg.Entries)
	for i := range n.log.entries {
		n.log.memBytes += uint64(len(n.log.entries[i].Data))
	}
	n.log.reader, n.log.windowEntries, n.log.windowBytes = cfg.LogStorage, cfg.LogWindowEntries, cfg.LogWindowBytes
	n.log.planted = cfg.Planted
	n.log.stable = n.log.lastIndex()
	n.log.conf, n.log.confIndex = n.log.confAt(n.log.lastIndex())
	n.log.confGen++
	n.confChanged()
	n.log.committed = max(n.log.offset, hs.Commit)
	n.log.applied = max(n.log.offset, cfg.Applied)
	if !hs.IsEmpty() {
		n.term, n.vote = hs.Term, hs.Vote
	}
	// The recovered state now lives in n.log; holding it in n.cfg too would
	// keep a second copy of the log alive.
	n.cfg.Snapshot, n.cfg.Entries = nil, nil
	n.log.evict()
	n.prevHard = n.hardState()
	n.becomeFollower(n.term, None)
	n.prevSoft = n.softState()
	return n, nil
}

func (n *Node) tracef(format string, args ...any) {
	if n.trace != nil {
		n.trace(fmt.Sprintf("n%d t%d %s: ", n.id, n.term, n.role) + fmt.Sprintf(format, args...))
	}
}

func (n *Node) hardState() HardState {
	return HardState{Term: n.term, Vote: n.vote, Commit: n.log.committed}
}

func (n *Node) softState() SoftState { return SoftState{Lead: n.lead, Role: n.role} }

func (n *Node) send(m Message) {
	m.From = n.id
	m.Incarnation = n.inc
	if m.Type == MsgAppResp || m.Type == MsgHeartbeatResp {
		// Also while the configuration that names this incarnation is not
		// committed: a leader that never saw it (its author lost the
		// election) still names the old one, and would otherwise ignore
		// every answer of this node, whose log it then cannot repair
		// (simulator seeds 7939 and 16357 of an earlier version).
		_, member := n.self()
		m.Rejoin = !member || n.log.confIndex > n.log.committed
	}
	if m.Term == 0 {
		m.Term = n.term
	}
	if n.trace != nil {
		n.tracef("send %s", m)
	}
	n.msgs = append(n.msgs, m)
}

// --- role transitions -------------------------------------------------------

func (n *Node) reset(term uint64) {
	if n.term != term {
		n.term = term
		n.vote = None
	}
	n.lead = None
	n.electionElapsed = 0
	n.heartbeatElapsed = 0
	n.randomizedTimeout = n.cfg.ElectionTicks + n.rand.Intn(n.cfg.ElectionTicks)
	n.leadTransferee = None
	n.votes = map[ID]bool{}
	n.prs = nil
	n.reads = nil
	n.readsWaitNoop = nil
}

func (n *Node) becomeFollower(term uint64, lead ID) {
	n.reset(term)
	n.role = RoleFollower
	n.lead = lead
	n.tracef("became follower of %d", lead)
}

func (n *Node) becomePreCandidate() {
	// A pre-candidate keeps its term and vote (Raft thesis 9.6): only a real
	// election, which it may never get to, would disturb the cluster.
	n.role = RolePreCandidate
	n.votes = map[ID]bool{}
	n.lead = None
	n.tracef("became pre-candidate")
}

func (n *Node) becomeCandidate() {
	if n.term >= maxTerm {
		panic(fmt.Sprintf("raft: node %d at term %d campaigns into an overflowing term", n.id, n.term))
	}
	n.reset(n.term + 1)
	n.vote = n.id
	n.role = RoleCandidate
	n.tracef("became candidate")
}

func (n *Node) becomeLeader() {
	n.reset(n.term)
	n.role = RoleLeader
	n.lead = n.id
	n.prs = make(map[ID]*Progress, len(n.peers))
	n.prInc = make(map[ID]Incarnation, len(n.peers))
	n.rejoins = nil
	last := n.log.lastIndex()
	for _, x := range n.log.conf.Members {
		n.prs[x.ID] = &Progress{Next: last + 1, inflight: newInflights(n.cfg.MaxInflight), RecentActive: true}
		n.prInc[x.ID] = x.Incarnation
	}
	if n.prs[n.id] == nil {
		// Elected while its latest configuration, not yet committed,
		// removes it (mayCampaign): it tracks its own log all the same.
		n.prs[n.id] = &Progress{Next: last + 1, inflight: newInflights(n.cfg.MaxInflight)}
	}
	n.prs[n.id].Match = n.log.stable
	// A no-op starts each term (Raft thesis 6.4): a leader may count replicas
	// only of current-term entries (5.4.2), so committing this one commits
	// everything before it and tells the leader its commit index.
	n.appendEntry(Entry{Type: EntryNoop})
	n.tracef("became leader at last index %d", last)
}

// --- inputs ----------------------------------------------------------------

// Tick advances the logical clock by one tick.
func (n *Node) Tick() {
	if n.role == RoleLeader {
		n.tickHeartbeat()
	} else {
		n.tickElection()
	}
}

// learnerCampaignDelay: a learner waits this many election timeouts more
// than a voter before it campaigns.
const learnerCampaignDelay = 2

func (n *Node) tickElection() {
	n.electionElapsed++
	timeout := n.randomizedTimeout
	if _, member := n.self(); member && !n.isVoter() {
		// A learner campaigns only when the voters could not elect anyone
		// for a while (see mayCampaign).
		timeout += learnerCampaignDelay * n.cfg.ElectionTicks
	}
	if n.electionElapsed >= timeout {
		if !n.mayCampaign() {
			// A node waiting to join: it starts no election, and the
			// clock stays expired, so that it no longer holds a silent
			// leader's lease against the candidates that must replace it
			// (their pre-votes need its answer).
			n.electionElapsed = timeout
			return
		}
		n.electionElapsed = 0
		n.campaign(false)
	}
}

func (n *Node) tickHeartbeat() {
	n.heartbeatElapsed++
	n.electionElapsed++
	if n.electionElapsed >= n.cfg.ElectionTicks {
		n.electionElapsed = 0
		// Check-quorum (Raft thesis 6.2): a leader that has not heard from a
		// majority for an election timeout steps down, so clients stop
		// waiting on it and its lease-like guarantee to followers holds.
		if !n.quorumActive() {
			n.tracef("steps down: no quorum heard in an election timeout")
			n.becomeFollower(n.term, None)
			return
		}
		if n.leadTransferee != None {
			n.tracef("abandons transfer to %d", n.leadTransferee)
			n.leadTransferee = None
		}
	}
	for _, p := range n.peers {
		if pr := n.prs[p]; p != n.id && pr.State == stateSnapshot {
			pr.snapshotWait++
			if pr.snapshotWait >= n.cfg.ElectionTicks {
				// The snapshot or its answer was lost: try again.
				pr.becomeProbe()
			}
		}
	}
	if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
		n.heartbeatElapsed = 0
		n.bcastHeartbeat()
		n.maybeAutoChange()
	}
}

func (n *Node) quorumActive() bool {
	active := 0
	for _, p := range n.voters {
		if p == n.id || n.prs[p].RecentActive {
			active++
		}
	}
	for _, pr := range n.prs {
		pr.RecentActive = false
	}
	return active >= n.quorum
}

// Campaign starts a pre-vote at once, as if the election timer had fired.
// The runtime may call it when it has strong evidence that the leader is
// gone (its connection to us broke); pre-vote still asks a majority first,
// so a wrong guess cannot depose a healthy leader.
func (n *Node) Campaign() {
	if n.role != RoleLeader {
		n.electionElapsed = 0
		n.campaign(false)
	}
}

// ExpireLease forgets the current leader's lease early, as a follower whose
// connection from the leader broke: it lets this node grant pre-votes
// without waiting a full election timeout.
func (n *Node) ExpireLease() {
	if n.role == RoleFollower {
		n.electionElapsed = max(n.electionElapsed, n.cfg.ElectionTicks)
	}
}

// campaign starts a pre-vote, or with transfer an immediate real election.
func (n *Node) campaign(transfer bool) {
	if n.role == RoleLeader {
		return
	}
	if !n.mayCampaign() {
		n.tracef("does not campaign: not a voter of %s", n.log.conf)
		return
	}
	if n.term >= maxTerm {
		// Both a pre-vote (at term+1) and an election would need a term
		// beyond maxTerm, and the next one would wrap to 0. Terms must never
		// go backwards (Raft 5.1), so this node cannot lead again; in
		// practice only a forged or corrupted term gets here.
		n.tracef("cannot campaign: term %d cannot be incremented", n.term)
		return
	}
	var t MessageType
	var term uint64
	if transfer {
		n.becomeCandidate()
		t, term = MsgVote, n.term
	} else {
		n.becomePreCandidate()
		t, term = MsgPreVote, n.term+1
	}
	if n.poll(n.id, true) {
		return
	}
	for _, p := range n.voters {
		if p != n.id {
			n.send(Message{Type: t, To: p, Term: term, Index: n.log.lastIndex(), LogTerm: n.log.lastTerm(), Force: transfer})
		}
	}
}

// poll records a vote and acts on the outcome; it reports whether the
// election ended.
func (n *Node) poll(from ID, granted bool) bool {
	if _, voter := slices.BinarySearch(n.voters, from); !voter {
		// A learner's answer (it may not know it is one): not a vote.
		return false
	}
	if _, seen := n.votes[from]; !seen {
		n.votes[from] = granted
	}
	yes, no := 0, 0
	for _, g := range n.votes {
		if g {
			yes++
		} else {
			no++
		}
	}
	switch {
	case yes >= n.quorum:
		if n.role == RolePreCandidate {
			n.campaign(true)
		} else {
			n.becomeLeader()
		}
		return true
	case no >= n.quorum || len(n.voters)-no < n.quorum:
		n.becomeFollower(n.term, None)
		return true
	}
	return false
}

// Step feeds the node a message from a peer. A message that no correct peer
// sends (see validate) is dropped: Step returns an error wrapping
// ErrInvalidMessage and the node's state is unchanged, except as described
// at stepFollower for a heartbeat that shows this node's log went backwards.
// No message, however malformed, makes Step panic.
func (n *Node) Step(m Message) error {
	if n.trace != nil {
		n.tracef("recv %s", m)
	}
	if err := n.validate(&m); err != nil {
		if n.trace != nil {
			n.tracef("drops: %v", err)
		}
		return err
	}
	if !n.acceptSender(&m) {
		return nil
	}
	switch {
	case m.Term > n.term:
		if (m.Type == MsgVote || m.Type == MsgPreVote) && !m.Force &&
			n.lead != None && n.electionElapsed < n.cfg.ElectionTicks {
			// We heard from a leader within the minimum election timeout:
			// ignore the candidate (Raft thesis 4.2.3). This is what keeps a
			// node that was cut off and comes back from deposing a healthy
			// leader.
			n.tracef("ignores %s from %d: leader %d is alive", m.Type, m.From, n.lead)
			return nil
		}
		switch {
		case m.Type == MsgPreVote:
			// Pre-votes never change our term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term we would campaign for.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			n.becomeFollower(m.Term, m.From)
		default:
			n.becomeFollower(m.Term, None)
		}
	case m.Term < n.term:
		switch m.Type {
		case MsgApp, MsgHeartbeat:
			// A stale leader: tell it our term so it steps down, rather than
			// let it wait for a check-quorum round.
			n.send(Message{Type: MsgAppResp, To: m.From})
		case MsgPreVote:
			n.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true})
		}
		return nil
	}

	switch m.Type {
	case MsgPreVote, MsgVote:
		n.handleVote(m)
		return nil
	}
	switch n.role {
	case RoleLeader:
		n.stepLeader(m)
		return nil
	case RoleCandidate, RolePreCandidate:
		return n.stepCandidate(m)
	default:
		return n.stepFollower(m)
	}
}

func (n *Node) handleVote(m Message) {
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	// A node that never saw a configuration (an empty folder that waits to
	// join) knows nothing and votes for no one. Any other node votes, even
	// one that is not a voter in its own latest configuration: that
	// configuration may not be committed, and the candidate's may still
	// count this node (thesis 4.1: servers answer without consulting their
	// configuration). What keeps the vote of a node that lost its disk
	// from counting is the candidate's side: it counts only the
	// incarnation its configuration names (acceptSender), and a wiped disk
	// comes back under a new one (FAST'18).
	member := !n.log.conf.IsEmpty() || n.cfg.Planted == PlantCountAnyIncarnation
	canVote := member && (n.vote == m.From ||
		(n.vote == None && n.lead == None) ||
		(m.Type == MsgPreVote && m.Term > n.term))
	// The election restriction (Raft 5.4.1) keeps every committed entry in
	// the log of any future leader.
	if canVote && n.log.isUpToDate(m.Index, m.LogTerm) {
		n.send(Message{Type: resp, To: m.From, Term: m.Term})
		if m.Type == MsgVote {
			// Only a granted vote resets the timer (Raft 5.2); the vote is
			// made durable before the reply leaves (see Ready).
			n.electionElapsed = 0
			n.vote = m.From
		}
		return
	}
	n.send(Message{Type: resp, To: m.From, Reject: true})
}

// stepFollower handles a message to a follower. Its only error is for a
// heartbeat whose commit index is beyond our log: see there.
func (n *Node) stepFollower(m Message) error {
	switch m.Type {
	case MsgApp:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleAppend(m)
	case MsgHeartbeat:
		n.electionElapsed = 0
		n.lead = m.From
		if last := n.log.lastIndex(); m.Commit > last {
			if _, member := n.self(); !member {
				// A node that lost its disk (or was never a member) and
				// waits to be taken back: the leader still holds the old
				// incarnation's Match. Nothing is wrong; say where our log
				// ends. The leader ignores the answer of this incarnation
				// but notes it as a request to rejoin.
				n.send(Message{Type: MsgHeartbeatResp, To: m.From, Reject: true, RejectHint: last})
				return nil
			}
			// A leader sends at most the follower's Match: entries we once
			// acknowledged as durable. Having fewer, our log went backwards
			// (a lost or restored disk, outside Raft's fault model), or the
			// message is forged. Our entries may not be the leader's, so
			// commit nothing; tell the leader where our log ends so that it
			// probes again from there (Progress.lostEntries). The leader is
			// current, so we follow it; the error is for the operator.
			n.send(Message{Type: MsgHeartbeatResp, To: m.From, Reject: true, RejectHint: last})
			return invalidf(&m, "Commit %d beyond this node's last index %d: its log lost acknowledged entries", m.Commit, last)
		}
		n.log.commitTo(m.Commit)
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
	case MsgSnap:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleSnapshot(m)
	case MsgTimeoutNow:
		n.tracef("campaigns at once: leadership transfer from %d", m.From)
		n.campaign(true)
	}
	return nil
}

func (n *Node) stepCandidate(m Message) error {
	want := MsgVoteResp
	if n.role == RolePreCandidate {
		want = MsgPreVoteResp
	}
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader exists for this term (Raft 5.2).
		n.becomeFollower(m.Term, m.From)
		return n.stepFollower(m)
	case want:
		n.poll(m.From, !m.Reject)
	}
	return nil
}

func (n *Node) handleAppend(m Message) {
	if m.Index < n.log.committed {
		// Everything up to our commit index matches any leader's log.
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
		return
	}
	if last, ok := n.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries); ok {
		n.confChanged()
		n.send(Message{Type: MsgAppResp, To: m.From, Index: last})
		return
	}
	hint := n.log.findConflictByTerm(min(m.Index, n.log.lastIndex()), m.LogTerm)
	hintTerm, _ := n.log.term(hint)
	n.send(Message{Type: MsgAppResp, To: m.From, Index: m.Index, Reject: true, RejectHint: hint, LogTerm: hintTerm})
}

func (n *Node) handleSnapshot(m Message) {
	s := m.Snapshot
	switch {
	case s == nil || s.Index <= n.log.committed:
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
	case n.log.matchTerm(s.Index, s.Term):
		// We have the snapshot's last entry: the log up to it is committed.
		n.log.commitTo(s.Index)
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
	default:
		n.tracef("restores snapshot %d/t%d", s.Index, s.Term)
		if s.Membership == nil {
			// From a runtime that predates configurations in the log: its
			// Peers were the voters, or if none are named, the
			// configuration stays as it is.
			c := *s
			m := n.log.conf
			if len(s.Peers) > 0 {
				m = legacyMembership(s.Peers)
			}
			c.Membership = &m
			s = &c
		}
		n.log.restore(s)
		n.confChanged()
		n.pending.snapshot = s
		n.send(Message{Type: MsgAppResp, To: m.From, Index: s.Index})
	}
}

func (n *Node) stepLeader(m Message) {
	pr := n.prs[m.From]
	switch m.Type {
	case MsgAppResp:
		pr.RecentActive = true
		if m.Reject {
			hint := m.RejectHint
			if m.LogTerm > 0 {
				hint = n.log.findConflictByTerm(m.RejectHint, m.LogTerm)
			}
			if pr.maybeDecrTo(m.Index, hint) {
				if pr.State == stateReplicate {
					pr.becomeProbe()
				}
				n.sendAppend(m.From, false)
			}
			return
		}
		if pr.maybeUpdate(m.Index) {
			switch {
			case pr.State == stateProbe:
				pr.becomeReplicate()
			case pr.State == stateSnapshot && pr.Match >= pr.PendingSnapshot:
				pr.becomeReplicate()
			}
			if n.maybeCommit() && n.role != RoleLeader {
				return // it committed its own removal (maybeStepDownRemoved)
			}
		}
		if pr.State == stateReplicate {
			pr.inflight.freeLE(m.Index)
		}
		n.sendAppends(m.From)
		if m.From == n.leadTransferee && pr.Match == n.log.lastIndex() {
			n.sendTimeoutNow(m.From)
		}
	case MsgHeartbeatResp:
		pr.RecentActive = true
		pr.probeSent = false
		if m.Reject && m.RejectHint < pr.Match {
			// The follower's log ends before entries it acknowledged: see
			// stepFollower.
			n.tracef("follower %d lost entries: last index %d, match was %d", m.From, m.RejectHint, pr.Match)
			pr.lostEntries(m.RejectHint)
		}
		if pr.State == stateReplicate && pr.inflight.full() {
			// Messages may have been lost; let one more through.
			pr.inflight.freeFirst()
		}
		if pr.Match < n.log.lastIndex() {
			n.sendAppend(m.From, true)
		}
		if m.Context > pr.ReadAck {
			pr.ReadAck = m.Context
			n.releaseReads()
		}
	}
}

// sendAppends streams the follower what it lacks, as many messages as its
// in-flight window allows (pipelining).
func (n *Node) sendAppends(to ID) {
	for n.sendAppend(to, false) && n.prs[to].State == stateReplicate {
	}
}

// sendAppend sends the follower one AppendEntries with the entries it lacks,
// or with sendIfEmpty an empty one that checks where its log stands. It
// reports whether it sent entries.
func (n *Node) sendAppend(to ID, sendIfEmpty bool) bool {
	pr := n.prs[to]
	if pr.isPaused() {
		return false
	}
	prev := pr.Next - 1
	prevTerm, ok := n.log.term(prev)
	if !ok {
		n.sendSnapshot(to)
		return false
	}
	ents, err := n.log.slice(pr.Next, n.log.lastIndex()+1, n.cfg.MaxMsgEntries, n.cfg.MaxMsgBytes)
	switch {
	case errors.Is(err, ErrCompacted):
		// The runtime's snapshot already covers them.
		n.sendSnapshot(to)
		return false
	case err != nil:
		// Not to be had now: the next answer or heartbeat tries again.
		n.tracef("cannot read entries from %d for %d: %v", pr.Next, to, err)
		return false
	case len(ents) == 0 && !sendIfEmpty:
		return false
	}
	n.send(Message{Type: MsgApp, To: to, Index: prev, LogTerm: prevTerm, Entries: ents, Commit: n.log.committed})
	switch pr.State {
	case stateReplicate:
		if len(ents) > 0 {
			last := ents[len(ents)-1].Index
			pr.Next = last + 1
			pr.inflight.add(last)
		}
	case stateProbe:
		pr.probeSent = true
	}
	return len(ents) > 0
}

func (n *Node) sendSnapshot(to ID) {
	snap := n.log.snapshot
	if snap == nil {
		// Without a snapshot nothing is compacted (offset 0), so this means
		// Next left [1, lastIndex+1]: a bug, since Step validates every
		// index a follower reports.
		panic(fmt.Sprintf("raft: follower %d needs entry %d but there is no snapshot (%s, last index %d)",
			to, n.prs[to].Next, n.prs[to], n.log.lastIndex()))
	}
	n.prs[to].becomeSnapshot(snap.Index)
	n.tracef("sends snapshot %d/t%d to %d", snap.Index, snap.Term, to)
	n.send(Message{Type: MsgSnap, To: to, Snapshot: snap})
}

func (n *Node) sendTimeoutNow(to ID) {
	n.send(Message{Type: MsgTimeoutNow, To: to})
}

func (n *Node) bcastAppend() {
	for _, p := range n.peers {
		if p != n.id {
			n.sendAppends(p)
		}
	}
}

func (n *Node) bcastHeartbeat() {
	for _, p := range n.peers {
		if p != n.id {
			// A follower may only learn a commit index it holds the entries
			// for; Match guarantees that.
			commit := min(n.prs[p].Match, n.log.committed)
			n.send(Message{Type: MsgHeartbeat, To: p, Commit: commit, Context: n.readRound})
		}
	}
}

// maybeCommit advances the commit index to the highest index stored on a
// quorum, but only if that entry is from the current term (Raft 5.4.2,
// figure 8: counting replicas of an older term's entry is not enough).
func (n *Node) maybeCommit() bool {
	// Only voters count, and the leader only while it is one (thesis 4.2.2).
	counted := n.voters
	if n.cfg.Planted == PlantCountLearners {
		counted = n.peers
		if len(n.scratch) < len(counted) {
			n.scratch = make([]uint64, len(counted))
		}
	}
	matches := n.scratch[:len(counted)]
	for i, p := range counted {
		matches[i] = n.prs[p].Match
	}
	mci := quorumIndex(matches, n.quorum)
	if t, _ := n.log.term(mci); mci <= n.log.committed || t != n.term {
		return false
	}
	first := !n.committedInTerm()
	n.log.commitTo(mci)
	if first {
		// Reads that waited for this term's first commit can now start.
		for _, id := range n.readsWaitNoop {
			n.addRead(id)
		}
		n.readsWaitNoop = nil
	}
	n.maybeStepDownRemoved()
	return true
}

func (n *Node) committedInTerm() bool {
	t, _ := n.log.term(n.log.committed)
	return t == n.term
}

func (n *Node) appendEntry(e Entry) uint64 {
	e.Term = n.term
	e.Index = n.log.lastIndex() + 1
	n.log.append(e)
	n.pending.append = true
	if e.Type == EntryConfig {
		n.confChanged()
	}
	return e.Index
}

// Propose appends a command to the leader's log. It returns the entry's
// index and term: the command is committed when an entry with that index
// and term is applied. If another entry shows up at that index, the
// proposal was lost with a change of leader and its outcome is known: not
// applied.
func (n *Node) Propose(data []byte) (index, term uint64, err error) {
	if n.role != RoleLeader {
		return 0, 0, ErrNotLeader
	}
	if n.leadTransferee != None {
		return 0, 0, ErrProposalDropped
	}
	return n.appendEntry(Entry{Type: EntryNormal, Data: data}), n.term, nil
}

// ReadIndex asks for a linearizable read (Raft thesis 6.4). When the leader
// has confirmed with a quorum that it was still leader after the request
// arrived, a ReadState with id and the commit index at arrival appears in a
// Ready; the read may be served once that index is applied. A read is lost,
// with no ReadState, if the node stops being leader: the caller times it out
// or watches SoftState.
func (n *Node) ReadIndex(id uint64) error {
	if n.role != RoleLeader {
		return ErrNotLeader
	}
	if !n.committedInTerm() {
		// Until its no-op commits, a new leader does not know the commit
		// index of the previous term.
		n.readsWaitNoop = append(n.readsWaitNoop, id)
		return nil
	}
	n.addRead(id)
	return nil
}

func (n *Node) addRead(id uint64) {
	if len(n.voters) == 1 && n.voters[0] == n.id {
		n.readStates = append(n.readStates, ReadState{RequestID: id, Index: n.log.committed})
		return
	}
	// Every read that arrives before the next heartbeat broadcast shares its
	// round: one quorum check serves them all.
	n.reads = append(n.reads, pendingRead{id: id, index: n.log.committed, round: n.readRound + 1})
	n.pending.readBcast = true
}

// readBcastDue reports whether reads wait for a new heartbeat round that
// may start now. At most one read round is in flight: reads that arrive
// while one is (their round is readRound+1) wait until it ends and then
// share the next, so a steady stream of reads costs a round per round
// trip, not one per Ready. A round whose heartbeat was lost still ends at
// the next periodic heartbeat, which carries the same round number.
func (n *Node) readBcastDue() bool {
	return n.pending.readBcast && (len(n.reads) == 0 || n.reads[0].round > n.readRound)
}

// releaseReads hands out every read whose round a quorum has acknowledged.
func (n *Node) releaseReads() {
	if len(n.reads) == 0 {
		return
	}
	acks := n.scratch[:len(n.voters)]
	for i, p := range n.voters {
		if p == n.id {
			acks[i] = n.readRound
		} else {
			acks[i] = n.prs[p].ReadAck
		}
	}
	acked := quorumIndex(acks, n.quorum)
	i := 0
	for ; i < len(n.reads) && n.reads[i].round <= acked; i++ {
		n.readStates = append(n.readStates, ReadState{RequestID: n.reads[i].id, Index: n.reads[i].index})
	}
	n.reads = n.reads[i:]
}

// TransferLeadership hands leadership to another node (Raft thesis 3.10):
// the leader stops taking proposals, brings the target's log up to date,
// then tells it to campaign at once. It gives up after an election timeout.
func (n *Node) TransferLeadership(to ID) error {
	if n.role != RoleLeader {
		return ErrNotLeader
	}
	if _, voter := slices.BinarySearch(n.voters, to); !voter || to == n.id {
		return fmt.Errorf("raft: cannot transfer leadership to %d: not another voter", to)
	}
	n.leadTransferee = to
	n.electionElapsed = 0
	n.tracef("transfers leadership to %d", to)
	if n.prs[to].Match == n.log.lastIndex() {
		n.sendTimeoutNow(to)
	} else {
		n.sendAppend(to, true)
	}
	return nil
}

// Compact tells the core that the runtime has durably saved a snapshot of
// its state machine at index (which it has applied). The core drops the
// entries the snapshot covers and sends the snapshot to followers that need
// them. The core keeps no snapshot data (it may be large): a MsgSnap leaves
// with Snapshot.Data nil and the runtime attaches the data of its newest
// saved snapshot, which has that index, before sending.
func (n *Node) Compact(index uint64) error {
	if index <= n.log.offset {
		return nil
	}
	if index > n.log.applied {
		return fmt.Errorf("raft: cannot compact to %d beyond applied %d", index, n.log.applied)
	}
	term, _ := n.log.term(index)
	conf, _ := n.log.confAt(index)
	n.log.compact(&Snapshot{Index: index, Term: term, Membership: &conf})
	return nil
}
