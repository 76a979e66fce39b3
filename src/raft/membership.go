package raft

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Membership changes, one server at a time (Raft thesis 4.1, with the fix
// of its errata: a leader commits an entry of its own term before it appends
// a configuration entry).
//
// The configuration lives in the log: an EntryConfig entry holds the whole
// new Membership, and a node uses the latest one in its log, committed or
// not, from the moment it appends it (thesis 4.1); a snapshot carries the
// configuration as of its index. Two consecutive configurations differ in at
// most one voter, so every majority of the old one overlaps every majority
// of the new one, and at most one change is pending (appended, not yet
// committed) at a time: the leader refuses a second one until the first
// commits. Together these give election safety and leader completeness
// across changes with no joint consensus.
//
// Incarnations (Alagappan et al., FAST'18, "Protocol-Aware Recovery"): each
// data folder gets a random incarnation when it is created. A member is an
// (ID, Incarnation) pair; a node that lost its disk comes back under the
// same ID with a new incarnation, so every promise the old incarnation made
// (votes, acknowledged entries) is known to be void. Votes and
// acknowledgements count only from the incarnation the configuration names
// (see acceptSender); a node whose own incarnation is not a member neither
// campaigns nor votes. The leader replaces such a node's old incarnation by
// the new one as a staging learner (a voter removed: a single-server
// change), replicates the log to it and promotes it once it is caught up.

var (
	// ErrConfChangePending: a configuration change is appended but not
	// committed, or the leader has not yet committed an entry of its term
	// (the errata fix). Retry later.
	ErrConfChangePending = errors.New("raft: a configuration change is pending")
	// ErrInvalidConfChange wraps every reason a proposed configuration is
	// refused: malformed, or more than one voter changed.
	ErrInvalidConfChange = errors.New("raft: invalid membership")
	// ErrNotCaughtUp: a learner may become a voter only once its log is
	// within Config.PromoteLag entries of the leader's.
	ErrNotCaughtUp = errors.New("raft: learner not caught up")
)

// Incarnation names one life of a node's data folder: random, made when
// the folder is created. 0 is the incarnation of every node of a cluster
// that predates configurations in the log (see Config.Peers). In JSON it is
// 16 hex digits, so that no JSON reader rounds it to a float.
type Incarnation uint64

// MarshalText writes 16 hex digits.
func (i Incarnation) MarshalText() ([]byte, error) { return fmt.Appendf(nil, "%016x", uint64(i)), nil }

// UnmarshalText reads up to 16 hex digits.
func (i *Incarnation) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil || len(b) == 0 || len(b) > 16 {
		return fmt.Errorf("raft: incarnation %q is not 1 to 16 hex digits", b)
	}
	*i = Incarnation(v)
	return nil
}

func (i Incarnation) String() string { return fmt.Sprintf("%016x", uint64(i)) }

// Suffrage is what a member does in the cluster (hashicorp/raft's word).
type Suffrage uint8

const (
	// Voter votes in elections and counts towards commitment.
	Voter Suffrage = iota
	// Learner receives the log and snapshots but neither votes nor counts
	// towards commitment; it stays so until promoted by hand.
	Learner
	// Staging is a learner that the leader promotes to voter on its own as
	// soon as its log is within Config.PromoteLag of the leader's (Consul's
	// autopilot): a node added as a voter, or one that rejoins after losing
	// its disk, starts so.
	Staging
)

var suffrageNames = [...]string{"voter", "learner", "staging"}

func (s Suffrage) String() string {
	if int(s) < len(suffrageNames) {
		return suffrageNames[s]
	}
	return fmt.Sprintf("Suffrage(%d)", uint8(s))
}

// MarshalText writes the suffrage's name.
func (s Suffrage) MarshalText() ([]byte, error) {
	if int(s) >= len(suffrageNames) {
		return nil, fmt.Errorf("raft: unknown suffrage %d", uint8(s))
	}
	return []byte(suffrageNames[s]), nil
}

// UnmarshalText reads a suffrage's name.
func (s *Suffrage) UnmarshalText(b []byte) error {
	i := slices.Index(suffrageNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("raft: unknown suffrage %q (want voter, learner or staging)", b)
	}
	*s = Suffrage(i)
	return nil
}

// Member is one node of a configuration.
type Member struct {
	ID          ID          `json:"id"`
	Incarnation Incarnation `json:"incarnation"`
	Suffrage    Suffrage    `json:"suffrage"`
	// Meta is the runtime's description of the member (its name and
	// addresses), carried and never read by the core.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Membership is a cluster configuration. Invariant (validate): Members are
// sorted by ID, with no ID twice, and at least one is a voter.
type Membership struct {
	Members []Member `json:"members"`
	// Retired are the latest incarnations that a configuration dropped
	// (removed, or replaced by a new incarnation of the same node), newest
	// last, at most maxRetired: a request to rejoin from one of them is a
	// delayed message of a node that is gone, never taken back (see
	// acceptSender). The core keeps it; a proposed configuration's own
	// list is ignored.
	Retired []Incarnation `json:"retired,omitempty"`
}

// maxRetired bounds Membership.Retired: a message delayed across this many
// changes is beyond any network's reordering.
const maxRetired = 16

// withRetired returns next with the incarnations of old that it drops
// added to old's Retired list.
func withRetired(old, next Membership) Membership {
	next.Retired = slices.Clone(old.Retired)
	for _, x := range old.Members {
		if y, ok := next.Member(x.ID); (!ok || y.Incarnation != x.Incarnation) && x.Incarnation != 0 {
			next.Retired = append(next.Retired, x.Incarnation)
		}
	}
	if extra := len(next.Retired) - maxRetired; extra > 0 {
		next.Retired = next.Retired[extra:]
	}
	return next
}

// IsEmpty reports whether m names no member: a node that has never seen a
// configuration (an empty data folder waiting to join or to bootstrap).
func (m Membership) IsEmpty() bool { return len(m.Members) == 0 }

// Member returns the member with this ID.
func (m Membership) Member(id ID) (Member, bool) {
	i, ok := slices.BinarySearchFunc(m.Members, id, func(x Member, id ID) int { return int(x.ID) - int(id) })
	if !ok {
		return Member{}, false
	}
	return m.Members[i], true
}

// Voters returns the IDs of the voters, sorted.
func (m Membership) Voters() []ID {
	var ids []ID
	for _, x := range m.Members {
		if x.Suffrage == Voter {
			ids = append(ids, x.ID)
		}
	}
	return ids
}

// IDs returns the IDs of every member, sorted.
func (m Membership) IDs() []ID {
	ids := make([]ID, len(m.Members))
	for i, x := range m.Members {
		ids[i] = x.ID
	}
	return ids
}

// Clone returns a deep copy of m.
func (m Membership) Clone() Membership {
	c := Membership{Members: slices.Clone(m.Members), Retired: slices.Clone(m.Retired)}
	for i := range c.Members {
		c.Members[i].Meta = slices.Clone(c.Members[i].Meta)
	}
	return c
}

func (m Membership) String() string {
	s := "{"
	for i, x := range m.Members {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d:%s", x.ID, x.Incarnation.String()[12:])
		if x.Suffrage != Voter {
			s += "/" + x.Suffrage.String()
		}
	}
	return s + "}"
}

// Validate reports what makes m unusable as a configuration.
func (m Membership) Validate() error {
	if len(m.Members) == 0 {
		return fmt.Errorf("%w: no members", ErrInvalidConfChange)
	}
	voters := 0
	for i, x := range m.Members {
		switch {
		case x.ID < 0:
			return fmt.Errorf("%w: member %d has a negative ID %d", ErrInvalidConfChange, i, x.ID)
		case i > 0 && x.ID <= m.Members[i-1].ID:
			return fmt.Errorf("%w: members are not sorted by ID, or ID %d appears twice", ErrInvalidConfChange, x.ID)
		case int(x.Suffrage) >= len(suffrageNames):
			return fmt.Errorf("%w: member %d has an unknown suffrage %d", ErrInvalidConfChange, x.ID, x.Suffrage)
		case len(x.Meta) > 0 && !json.Valid(x.Meta):
			return fmt.Errorf("%w: member %d's meta is not JSON", ErrInvalidConfChange, x.ID)
		}
		if x.Suffrage == Voter {
			voters++
		}
	}
	if voters == 0 {
		return fmt.Errorf("%w: no voter", ErrInvalidConfChange)
	}
	return nil
}

// EncodeMembership is the Data of an EntryConfig entry.
func EncodeMembership(m Membership) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("raft: encode membership: %v", err)) // only plain fields: cannot fail
	}
	return b
}

// DecodeMembership reads and validates an EntryConfig entry's Data.
func DecodeMembership(data []byte) (Membership, error) {
	var m Membership
	if err := json.Unmarshal(data, &m); err != nil {
		return Membership{}, fmt.Errorf("%w: %v", ErrInvalidConfChange, err)
	}
	return m, m.Validate()
}

// legacyMembership is the configuration of a cluster that predates
// configurations in the log: the given voters, all of incarnation 0.
func legacyMembership(ids []ID) Membership {
	var m Membership
	for _, id := range ids {
		m.Members = append(m.Members, Member{ID: id, Suffrage: Voter})
	}
	slices.SortFunc(m.Members, func(a, b Member) int { return int(a.ID) - int(b.ID) })
	return m
}

// checkChange enforces the single-server rule between the configuration in
// force and a proposed one: their voters, as (ID, incarnation) pairs,
// differ by at most one (Raft thesis 4.1). A new incarnation of a voter is
// therefore never a voter at once: it replaces the old one as a learner.
func checkChange(old, next Membership) error {
	if err := next.Validate(); err != nil {
		return err
	}
	diff := 0
	isVoter := func(m Membership, x Member) bool {
		y, ok := m.Member(x.ID)
		return ok && y.Suffrage == Voter && y.Incarnation == x.Incarnation
	}
	for _, x := range old.Members {
		if x.Suffrage == Voter && !isVoter(next, x) {
			diff++
		}
	}
	for _, x := range next.Members {
		if x.Suffrage == Voter && !isVoter(old, x) {
			diff++
		}
	}
	if diff > 1 {
		return fmt.Errorf("%w: %d voters change at once (from %s to %s); change one at a time", ErrInvalidConfChange, diff, old, next)
	}
	return nil
}

// Membership returns the configuration in force (the latest in the log) and
// the index of the entry that holds it (the snapshot's index when it comes
// from the snapshot). The result must not be modified.
func (n *Node) Membership() (Membership, uint64) { return n.log.conf, n.log.confIndex }

// self returns this node's entry in the configuration, if its incarnation
// is a member.
func (n *Node) self() (Member, bool) {
	x, ok := n.log.conf.Member(n.id)
	return x, ok && x.Incarnation == n.inc
}

// isVoter reports whether this incarnation is a voter: only a voter
// campaigns, and a leader that is not one any more steps down once that is
// committed.
func (n *Node) isVoter() bool {
	x, ok := n.self()
	return ok && x.Suffrage == Voter
}

// mayCampaign reports whether this node may start an election: a member
// under its own incarnation may, a voter at once and a learner only after
// a longer silence (see tickElection); a node whose incarnation the
// configuration does not name (it lost its state and waits to be taken
// back) may not, nor one that never saw a configuration. A node that its
// latest configuration removes may still campaign while that
// configuration is not committed (hashicorp/raft does the same): it may
// hold the longest log, which the remaining voters need to elect anyone,
// and if it wins it counts only their votes and steps down once its
// removal commits.
//
// A learner campaigns for the same reason: a change that promotes it may
// sit uncommitted in another node's log, whose holder then needs its vote,
// while its own log is the longer one (a later term from a leader that
// died). Neither could win, and the voters of its configuration could
// not either (simulator seeds 33654, 58871 and 79025 of an earlier
// version). The election restriction keeps a learner that wins safe: it
// counts only voters' votes, leads until an entry of its term commits,
// which settles the log, then hands over to a voter
// (maybeStepDownRemoved). Pre-vote keeps it from disturbing a live leader.
func (n *Node) mayCampaign() bool {
	if n.log.conf.IsEmpty() {
		return false
	}
	if _, member := n.self(); member {
		return true
	}
	if n.log.confIndex <= n.log.committed {
		return false
	}
	_, listed := n.log.conf.Member(n.id)
	return !listed
}

// acceptSender reports whether m comes from someone this node listens to.
// Votes and acknowledgements count only from the incarnation the
// configuration names (FAST'18: a node that lost its disk must not vote or
// acknowledge as if it had not): a message from another incarnation of a
// member is ignored, even at a higher term. A leader that hears an answer
// from another incarnation of a member that asks to rejoin (Message.Rejoin)
// notes it: that node lost its state. Only an explicit request counts: a
// delayed answer from an incarnation the leader already replaced would
// otherwise bring back a disk that no longer exists (simulator seeds 41462
// and 57336 of an earlier version put such a ghost back among the voters),
// and so would a request to rejoin delayed past the change that dropped
// its incarnation (Membership.Retired; seed 38130).
//
// A leader's messages are heard from anyone. A node our configuration does
// not name at all may also ask for votes, as Raft thesis 4.1 says ("servers
// process incoming RPC requests without consulting their current
// configurations"): a leader's messages, and vote requests too, may come
// from a member of a configuration we have not seen yet, or from one
// that a change in our log, not committed, removes; ignoring them
// deadlocked elections in the simulator (seeds 920 and 4530 of an earlier
// version). A removed node does not disturb the cluster: once it knows of
// its removal it does not campaign (mayCampaign), and before, its
// pre-vote needs a majority whose logs are not ahead of its own, which a
// committed removal rules out. Answers from such nodes are ignored: only
// members' votes and acknowledgements count.
func (n *Node) acceptSender(m *Message) bool {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		// A leader's word stands whoever we think it is: a node that lost
		// its disk, came back and was promoted may lead a configuration we
		// have not seen yet. Leaders are made safe by the votes they got.
		return true
	case MsgVote, MsgPreVote:
		// So does a request for votes, from any incarnation: granting a
		// vote promises only not to grant another in the term, and the
		// election restriction still guards the log. A new incarnation
		// that campaigns is a voter in its own latest configuration, which
		// this node may not have seen yet; refusing it deadlocked the
		// cluster when that candidate held the longest log (simulator
		// seed 41462 of an earlier version). Only the answers count by
		// incarnation, on the candidate's side.
		return true
	}
	x, ok := n.log.conf.Member(m.From)
	switch {
	case ok && x.Incarnation == m.Incarnation:
		return true
	case !ok:
		return false
	case n.role == RoleLeader && m.Term == n.term && (m.Rejoin || n.cfg.Planted == PlantRejoinOnAnyAnswer) &&
		(m.Type == MsgAppResp || m.Type == MsgHeartbeatResp):
		if slices.Contains(n.log.conf.Retired, m.Incarnation) && n.cfg.Planted != PlantRejoinOnAnyAnswer {
			break
		}
		if n.rejoins == nil {
			n.rejoins = map[ID]Incarnation{}
		}
		n.rejoins[m.From] = m.Incarnation
	}
	if ok && n.cfg.Planted == PlantCountAnyIncarnation {
		return true
	}
	if n.trace != nil {
		n.tracef("ignores %s from %d/%s: not a member of %s", m.Type, m.From, m.Incarnation.String()[12:], n.log.conf)
	}
	return false
}

// confChangeAllowed reports why the leader may not append a configuration
// entry now, or nil.
func (n *Node) confChangeAllowed() error {
	switch {
	case n.role != RoleLeader:
		return ErrNotLeader
	case n.leadTransferee != None:
		return ErrProposalDropped
	case n.log.confIndex > n.log.committed:
		return fmt.Errorf("%w: the change at index %d is not committed yet", ErrConfChangePending, n.log.confIndex)
	case !n.committedInTerm() && n.cfg.Planted != PlantConfChangeBeforeTermCommit:
		// The errata of the thesis: without this, a leader could append a
		// change while an uncommitted change of a previous term sits in
		// its log, and two configurations that differ in two voters could
		// both decide.
		return fmt.Errorf("%w: the leader has not committed an entry of its term yet", ErrConfChangePending)
	}
	return nil
}

// ProposeMembership appends a configuration entry holding next, which must
// differ from the configuration in force in at most one voter; a learner
// becomes a voter only if its log is within PromoteLag of the leader's. It
// returns the entry's index and term, as Propose does. Errors:
// ErrNotLeader, ErrProposalDropped, ErrConfChangePending (retry later),
// ErrInvalidConfChange, ErrNotCaughtUp.
func (n *Node) ProposeMembership(next Membership) (index, term uint64, err error) {
	if err := n.confChangeAllowed(); err != nil {
		return 0, 0, err
	}
	if err := checkChange(n.log.conf, next); err != nil {
		return 0, 0, err
	}
	for _, x := range next.Members {
		old, ok := n.log.conf.Member(x.ID)
		if x.Suffrage != Voter || (ok && old.Suffrage == Voter && old.Incarnation == x.Incarnation) || x.ID == n.id {
			continue
		}
		if !ok || old.Incarnation != x.Incarnation || !n.caughtUp(x.ID) {
			return 0, 0, fmt.Errorf("%w: node %d is not a caught-up learner (add it as a learner first)", ErrNotCaughtUp, x.ID)
		}
	}
	return n.appendEntry(Entry{Type: EntryConfig, Data: EncodeMembership(withRetired(n.log.conf, next.Clone()))}), n.term, nil
}

// caughtUp reports whether the leader's view of a member's log is within
// PromoteLag of its own last index.
func (n *Node) caughtUp(id ID) bool {
	pr := n.prs[id]
	return pr != nil && pr.Match > 0 && pr.Match+n.cfg.PromoteLag >= n.log.lastIndex()
}

// maybeAutoChange is the leader's own membership work, once per heartbeat:
// replace a member that answers under another incarnation (it lost its
// state, or it was added under a placeholder incarnation, 0, before its
// own was known) by that incarnation, a voter as a staging learner, or
// promote a staging learner that caught up. One change at a time, like any
// other.
func (n *Node) maybeAutoChange() {
	if n.confChangeAllowed() != nil {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(n.rejoins)) {
		inc := n.rejoins[id]
		delete(n.rejoins, id)
		x, ok := n.log.conf.Member(id)
		if !ok || x.Incarnation == inc || id == n.id {
			continue
		}
		next := n.log.conf.Clone()
		i, _ := slices.BinarySearchFunc(next.Members, id, func(x Member, id ID) int { return int(x.ID) - int(id) })
		next.Members[i].Incarnation = inc
		if next.Members[i].Suffrage == Voter {
			// It comes back as a learner, which the leader promotes once
			// caught up; a learner stays one.
			next.Members[i].Suffrage = Staging
		}
		if next.Validate() != nil {
			continue // it was the last voter: nothing to replace it with
		}
		n.tracef("replaces %d/%s by its new incarnation %s", id, x.Incarnation.String()[12:], inc.String()[12:])
		n.appendEntry(Entry{Type: EntryConfig, Data: EncodeMembership(withRetired(n.log.conf, next))})
		return
	}
	for i, x := range n.log.conf.Members {
		if x.Suffrage == Staging && n.caughtUp(x.ID) {
			next := n.log.conf.Clone()
			next.Members[i].Suffrage = Voter
			n.tracef("promotes %d: caught up", x.ID)
			n.appendEntry(Entry{Type: EntryConfig, Data: EncodeMembership(next)})
			return
		}
	}
}

// confChanged brings the node's derived state in line with the
// configuration in force after the log changed (an append, a truncation, a
// snapshot): the voters and the quorum; on a leader, the followers it
// replicates to, and the commit index and reads, which a smaller quorum
// may release.
func (n *Node) confChanged() {
	if n.log.confGen == n.confSeen {
		return
	}
	n.confSeen = n.log.confGen
	n.peers = n.log.conf.IDs()
	n.voters = n.log.conf.Voters()
	n.quorum = len(n.voters)/2 + 1
	if len(n.scratch) < len(n.voters) {
		n.scratch = make([]uint64, len(n.voters))
	}
	n.tracef("configuration %s at %d", n.log.conf, n.log.confIndex)
	if n.role != RoleLeader {
		return
	}
	last := n.log.lastIndex()
	for id := range n.prs {
		if x, ok := n.log.conf.Member(id); id != n.id && (!ok || x.Incarnation != n.prInc[id]) {
			// Removed, or another incarnation: what the old one
			// acknowledged says nothing about the new one's log.
			delete(n.prs, id)
			delete(n.prInc, id)
		}
	}
	for _, x := range n.log.conf.Members {
		if _, ok := n.prs[x.ID]; !ok {
			n.prs[x.ID] = &Progress{Next: last + 1, inflight: newInflights(n.cfg.MaxInflight), RecentActive: true}
			n.prInc[x.ID] = x.Incarnation
		}
	}
	if n.leadTransferee != None && !slices.Contains(n.voters, n.leadTransferee) {
		n.leadTransferee = None
	}
	if n.maybeCommit() && n.role != RoleLeader {
		return
	}
	n.releaseReads()
}

// maybeStepDownRemoved ends the leadership of a leader that is no longer a
// voter, once the configuration that says so is committed (thesis 4.2.2:
// until then it manages the cluster without counting itself). It hands
// over to the most up-to-date voter at once rather than leave the cluster
// to an election timeout.
func (n *Node) maybeStepDownRemoved() {
	if n.role != RoleLeader || n.isVoter() || n.log.committed < n.log.confIndex || !n.committedInTerm() {
		// A learner elected leader (mayCampaign) leads until an entry of
		// its term commits: that settles which log the voters keep.
		return
	}
	best, bestMatch := None, uint64(0)
	for _, v := range n.voters {
		if pr := n.prs[v]; pr != nil && pr.Match >= bestMatch {
			best, bestMatch = v, pr.Match
		}
	}
	n.tracef("steps down: no longer a voter of %s", n.log.conf)
	if best != None && bestMatch == n.log.lastIndex() {
		n.sendTimeoutNow(best)
	}
	n.becomeFollower(n.term, None)
}
