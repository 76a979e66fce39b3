package simtest

import (
	"fmt"

	"raftkv/src/raft"
)

// Membership in the simulation: an operator adds nodes (as learners, or as
// staging learners the leader promotes once caught up), promotes learners,
// removes members (the leader too), and a fault wipes a node's disk, after
// which it comes back empty under a new incarnation and must be taken back
// by the leader on its own. The slots beyond Options.Nodes start absent;
// a node removed by a committed configuration is retired and its slot
// reused later by a brand-new node (a replacement).

// spareSlots: node slots beyond Options.Nodes, for the nodes the operator
// adds.
const spareSlots = 2

// minVotersToWipe: a disk is wiped only while every configuration that may
// still decide has at least this many voters, and only when no earlier
// wipe is outstanding, so that the wiped voters are always a minority and
// every committed entry keeps a holder that was not wiped.
const minVotersToWipe = 3

type confRec struct {
	index uint64
	conf  raft.Membership
}

func (s *Sim) newInc() raft.Incarnation {
	for {
		if inc := raft.Incarnation(s.rng.Uint64()); inc != 0 {
			return inc
		}
	}
}

// committedConf records a configuration entry seen committed (in index
// order: recordCommit calls it as the committed history grows) and
// resolves the wipes it settles: a wiped voter is back when a committed
// configuration has its new incarnation as a voter, or no longer has it.
// A committed configuration also makes its incarnations members.
func (s *Sim) committedConf(e raft.Entry) error {
	if e.Index <= s.confs[len(s.confs)-1].index {
		return nil // the bootstrap entry, recorded from the start
	}
	m, err := raft.DecodeMembership(e.Data)
	if err != nil {
		return fmt.Errorf("committed configuration entry %d: %v", e.Index, err)
	}
	s.confs = append(s.confs, confRec{index: e.Index, conf: m})
	s.tracef("committed configuration %s at %d", m, e.Index)
	if err := s.checkLostIncarnations(m, e.Index); err != nil {
		return err
	}
	for _, sn := range s.nodes {
		if x, ok := m.Member(sn.id); ok && x.Incarnation == sn.inc {
			sn.member = true
		}
	}
	s.resolveWipes()
	return nil
}

// checkLostIncarnations: once a committed configuration has dropped the
// incarnation of a wiped disk (replaced it, or removed the node), no later
// one names it again. A ghost back among the members would count for a
// quorum that can never answer (a leader once took a delayed answer of a
// replaced incarnation for a request to rejoin).
func (s *Sim) checkLostIncarnations(m raft.Membership, index uint64) error {
	named := map[raft.Incarnation]bool{}
	for _, x := range m.Members {
		named[x.Incarnation] = true
	}
	for inc, droppedAt := range s.lost {
		switch {
		case named[inc] && droppedAt > 0:
			return fmt.Errorf("committed configuration %s at %d names incarnation %s again, whose disk was wiped and which the configuration at %d dropped", m, index, inc, droppedAt)
		case !named[inc] && droppedAt == 0:
			s.lost[inc] = index
		}
	}
	return nil
}

// resolveWipes ends the wipes that no configuration that may still decide
// depends on: the wiped node is back as a voter under its new incarnation
// in the newest committed configuration, or no undecided configuration
// names its old incarnation any more.
func (s *Sim) resolveWipes() {
	if len(s.wiped) == 0 {
		return
	}
	confs := s.undecidedConfs()
	for id, old := range s.wiped {
		if x, ok := confs[0].Member(id); ok && x.Incarnation == s.nodes[id].inc && x.Suffrage == raft.Voter {
			s.tracef("wipe of n%d resolved: a voter again", id)
			delete(s.wiped, id)
			continue
		}
		named := false
		for _, c := range confs {
			if x, ok := c.Member(id); ok && x.Incarnation == old {
				named = true
			}
		}
		if !named {
			s.tracef("wipe of n%d resolved: its old incarnation is in no configuration", id)
			delete(s.wiped, id)
		}
	}
}

// lastConf is the newest committed configuration.
func (s *Sim) lastConf() raft.Membership { return s.confs[len(s.confs)-1].conf }

// liveMembers are the running nodes whose incarnation the newest committed
// configuration names.
func (s *Sim) liveMembers() []*simNode {
	var out []*simNode
	for _, x := range s.lastConf().Members {
		if sn := s.nodes[x.ID]; sn.n != nil && sn.inc == x.Incarnation {
			out = append(out, sn)
		}
	}
	return out
}

// settled reports what still keeps the membership from being whole after
// healing: a staging learner not yet promoted, or a member whose
// incarnation is gone (a wiped node not yet taken back). (Sim.wiped is
// not asked: it only gates new wipes, conservatively.)
func (s *Sim) settled() error {
	for _, x := range s.lastConf().Members {
		switch {
		case x.Suffrage == raft.Staging:
			return fmt.Errorf("n%d still staging in %s", x.ID, s.lastConf())
		case s.nodes[x.ID].inc != x.Incarnation:
			return fmt.Errorf("n%d's incarnation %s is gone from %s", x.ID, x.Incarnation, s.lastConf())
		}
	}
	return nil
}

// retire stops the nodes that a committed configuration removed (an
// operator would shut them down), and frees their slots.
func (s *Sim) retire() {
	conf := s.lastConf()
	for _, sn := range s.nodes {
		if sn.absent || !sn.member {
			continue
		}
		if _, ok := conf.Member(sn.id); !ok {
			s.tracef("retire n%d: removed from %s", sn.id, conf)
			if sn.n != nil {
				s.crash(sn, false)
			}
			sn.absent, sn.member = true, false
		}
	}
}

// leader is a running, unpaused leader of the highest term, or nil.
func (s *Sim) leader() *simNode {
	var best *simNode
	for _, sn := range s.nodes {
		if sn.n == nil || s.paused(sn) {
			continue
		}
		if st := sn.n.BasicStatus(); st.Role == raft.RoleLeader && (best == nil || st.Term > best.n.BasicStatus().Term) {
			best = sn
		}
	}
	return best
}

// operate is the operator: one membership change proposed to the leader.
// Refusals (a change pending, not caught up) are part of the game.
func (s *Sim) operate() {
	l := s.leader()
	if l == nil {
		return
	}
	cur, _ := l.n.Membership()
	next := cur.Clone()
	switch s.rng.Intn(3) {
	case 0:
		// Add a brand-new node in a free slot (or reuse one whose add
		// never committed).
		var sn *simNode
		for _, c := range s.nodes {
			if c.absent || (!c.member && c.addedAt > 0 && s.now-c.addedAt > 20*electionTicks && s.wiped[c.id] == 0) {
				if _, inConf := cur.Member(c.id); !inConf {
					sn = c
					break
				}
			}
		}
		if sn == nil {
			return
		}
		suffrage := raft.Staging
		if s.rng.Intn(3) == 0 {
			suffrage = raft.Learner
		}
		s.fresh(sn)
		sn.addedAt = s.now
		next.Members = append(next.Members, raft.Member{ID: sn.id, Incarnation: sn.inc, Suffrage: suffrage})
		sortMembers(&next)
		s.tracef("operator: add n%d/%s as %s", sn.id, sn.inc.String()[12:], suffrage)
	case 1:
		var learners []int
		for i, x := range next.Members {
			if x.Suffrage == raft.Learner {
				learners = append(learners, i)
			}
		}
		if len(learners) == 0 {
			return
		}
		i := learners[s.rng.Intn(len(learners))]
		next.Members[i].Suffrage = raft.Voter
		s.tracef("operator: promote n%d", next.Members[i].ID)
	case 2:
		i := s.rng.Intn(len(next.Members))
		x := next.Members[i]
		if x.Suffrage == raft.Voter && len(s.wiped) > 0 {
			// Removing a voter while a wiped one is not back could leave
			// the wiped voters a majority.
			return
		}
		next.Members = append(next.Members[:i], next.Members[i+1:]...)
		s.tracef("operator: remove n%d (leader n%d)", x.ID, l.id)
	}
	if _, _, err := l.n.ProposeMembership(next); err != nil {
		s.tracef("operator: refused: %v", err)
	}
}

func sortMembers(m *raft.Membership) {
	ms := m.Members
	for i := len(ms) - 1; i > 0 && ms[i].ID < ms[i-1].ID; i-- {
		ms[i], ms[i-1] = ms[i-1], ms[i]
	}
}

// fresh (re)starts a slot as a brand-new node: empty disk, new incarnation.
func (s *Sim) fresh(sn *simNode) {
	if sn.n != nil {
		s.crash(sn, false)
	}
	sn.inc = s.newInc()
	sn.disk = durable{hs: raft.HardState{Vote: raft.None}}
	sn.absent, sn.member = false, false
	sn.pausedUntil = 0
	s.start(sn)
}

// wipe destroys one node's disk: it restarts empty under a new
// incarnation. See minVotersToWipe for when that is allowed.
func (s *Sim) wipe() {
	if len(s.wiped) > 0 {
		return
	}
	confs := s.undecidedConfs()
	for _, c := range confs {
		if len(c.Voters()) < minVotersToWipe {
			return
		}
	}
	sn := s.nodes[s.rng.Intn(len(s.nodes))]
	if sn.absent {
		return
	}
	// A learner counts too: the leader may promote the old incarnation on
	// the strength of what it acknowledged before the wipe.
	wasMember := false
	for _, c := range confs {
		if x, ok := c.Member(sn.id); ok && x.Incarnation == sn.inc {
			wasMember = true
		}
	}
	old := sn.inc
	s.tracef("wipe n%d/%s", sn.id, old.String()[12:])
	s.lost[old] = 0
	if sn.n != nil {
		s.crash(sn, false)
	}
	sn.inc = s.newInc()
	sn.disk = durable{hs: raft.HardState{Vote: raft.None}}
	sn.member = false
	if wasMember {
		s.wiped[sn.id] = old
	}
}

// undecidedConfs are the configurations that may still decide: the newest
// committed one (first) and every configuration entry beyond the committed
// history in any node's log.
func (s *Sim) undecidedConfs() []raft.Membership {
	out := []raft.Membership{s.lastConf()}
	committed := uint64(len(s.commits))
	for _, sn := range s.nodes {
		if sn.absent {
			continue
		}
		for _, e := range sn.disk.ents {
			if e.Index > committed && e.Type == raft.EntryConfig {
				m, err := raft.DecodeMembership(e.Data)
				if err != nil {
					panic(err)
				}
				out = append(out, m)
			}
		}
	}
	return out
}

// committedInTerm reports whether the leader's commit index is at an entry
// of its own term, as far as the recorded history tells.
func (s *Sim) committedInTerm(l *simNode) bool {
	st := l.n.BasicStatus()
	return st.Commit > 0 && int(st.Commit) <= len(s.commits) && s.commits[st.Commit-1].term == st.Term
}
