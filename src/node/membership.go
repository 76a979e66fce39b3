package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"raftkv/src/raft"
	"raftkv/src/storage"
)

// Bootstrap and rejoin: how a node whose folder is empty tells "first start
// of a brand-new cluster" from "my disk was lost".
//
// An empty folder gets a new random incarnation (storage.Identity) and the
// node starts with no configuration: it neither campaigns nor votes, and
// counts for no one (raft/membership.go). It then asks every other node of
// the hostfile, over the Raft transport, whether it holds a configuration
// (msgProbe). The cluster is brand new only if every hostfile node answers
// that it holds none and its folder is empty: then each of them writes the
// same bootstrap configuration entry (index 1, term 1, committed), naming
// every node with the incarnation it reported, and they elect a leader as
// usual (Consul's bootstrap_expect = N). If any node answers that it holds
// a configuration, a cluster exists and this node lost its state: it waits,
// without a vote, until the leader hears it under its new incarnation and
// replaces the old one by it as a staging learner, catches it up and
// promotes it. Except in one case: a node that bootstrapped answers with
// its bootstrap entry, and a node that entry names under its current
// incarnation (its folder still empty since it answered "empty") writes it
// too: it is the same node, which has promised nothing, and without it the
// first election could lack a majority.
//
// Why that is safe: a node that ever held a configuration never answers
// "empty", and a node that lost its disk only says so while it holds
// nothing, so a bootstrap happens only when every hostfile node's folder is
// empty, i.e. when there is no data left to lose. An empty node that hears
// of an existing cluster has no vote and no weight until the leader has
// given it the whole log. Two nodes bootstrapping at the same time write
// the same entry: it is a function of the hostfile and of incarnations
// that never change. The one case this cannot see is a cluster that grew
// beyond its hostfile and lost every hostfile node at once while the added
// nodes still hold the data: keep the hostfile naming at least one live
// member.
//
// A folder written before incarnations existed (state, no identity file)
// keeps incarnation 0, and its configuration, until one is in the log, is
// the hostfile's nodes, all of incarnation 0 (raft.Config.Peers): such a
// cluster upgrades by restarting its nodes, with no operator step.

const (
	// msgProbe asks a node whether it holds a configuration; msgProbeResp
	// answers with Reject set if it does (or its folder is not empty, or
	// it heard that a cluster exists) and with its incarnation. The core
	// never sees these types: the loop takes them first (see step).
	msgProbe     raft.MessageType = 100
	msgProbeResp raft.MessageType = 101
)

// memberMeta is what a configuration records about a member for the
// runtime (raft.Member.Meta). The bootstrap configuration holds only the
// name: the hostfile gives the addresses, and hostfiles may differ in the
// addresses of other nodes but every node must write the same entry.
//
// A member added by `raftkv member add` also has its addresses (the add
// request's fields, httpapi.AddMemberRequest): a node outside the hostfile
// is reached at them (peers.go).
type memberMeta struct {
	Name     string `json:"name"`
	Host     string `json:"host,omitempty"`
	RaftPort int    `json:"raft_port,omitempty"`
	HTTPPort int    `json:"http_port,omitempty"`
}

// bootstrapState is the loop's view of an empty node deciding whether to
// bootstrap or to join. Loop-owned.
type bootstrapState struct {
	// waiting: the node has no configuration yet.
	waiting bool
	// joining: some node said a cluster exists; this node waits for its
	// leader and no longer probes.
	joining bool
	// empty: the folder held nothing at start (only then may it bootstrap).
	empty bool
	// incs are the incarnations of the hostfile nodes that answered that
	// they are empty too.
	incs map[raft.ID]raft.Incarnation
	// ticks counts loop ticks, to probe every few of them.
	ticks int
	// entry is the bootstrap configuration entry, when this node holds it
	// (in its log from index 1): a probe's answer carries it.
	entry *raft.Entry
}

// probeEvery: an unbootstrapped node asks its peers every this many ticks.
const probeEvery = 5

// initBootstrap sets the bootstrap state after recovery.
func (s *Node) initBootstrap(rec *storage.Recovered) {
	conf, _ := s.core.Membership()
	// "Empty" here is: no entry and no snapshot. A term alone promises
	// nothing: a node with no configuration never votes, but it may have
	// heard the term of a peer that bootstrapped first and asked for votes.
	empty := rec.Snapshot == nil && len(rec.Entries) == 0
	s.boot = bootstrapState{waiting: conf.IsEmpty(), empty: empty, incs: map[raft.ID]raft.Incarnation{}}
	if rec.Snapshot == nil && len(rec.Entries) > 0 && rec.Entries[0].Index == 1 && rec.Entries[0].Type == raft.EntryConfig {
		e := rec.Entries[0]
		s.boot.entry = &e
	}
	if !s.boot.waiting {
		return
	}
	if int(s.cfg.ID) >= s.cfg.Bootstrap {
		// Marked join in the hostfile: added to a running cluster, never
		// one of its founders, whatever the others answer.
		s.boot.joining = true
		s.lg.Info("a node marked join: waiting for the leader to take this node in (raftkv member add)",
			zap.Stringer("incarnation", s.inc))
		return
	}
	if s.boot.empty {
		s.lg.Info("empty data folder: asking the hostfile's nodes whether a cluster exists",
			zap.Stringer("incarnation", s.inc))
	} else {
		// State but no configuration under a new incarnation: it heard a
		// term but never got the log. Not a bootstrap candidate.
		s.boot.joining = true
		s.lg.Info("no configuration yet: waiting for the leader to take this node in", zap.Stringer("incarnation", s.inc))
	}
}

// bootstrapTick probes the peers while the node waits to bootstrap.
func (s *Node) bootstrapTick() error {
	b := &s.boot
	if !b.waiting {
		return nil
	}
	if conf, _ := s.core.Membership(); !conf.IsEmpty() {
		// The leader sent us the log: we were taken in.
		b.waiting = false
		s.lg.Info("received a configuration from the leader", zap.Stringer("configuration", conf))
		return nil
	}
	if b.ticks++; b.ticks%probeEvery != 1 {
		return nil
	}
	if !b.joining && len(b.incs) == s.cfg.Bootstrap-1 {
		return s.bootstrap()
	}
	// A joining node keeps asking too: a peer that bootstrapped with this
	// node's incarnation answers with the entry (see onProbe). Only the
	// bootstrap configuration's nodes are asked: the answer of a node
	// marked join says nothing about a bootstrap.
	var msgs []raft.Message
	for i := range s.cfg.Bootstrap {
		if id := raft.ID(i); id != s.cfg.ID {
			msgs = append(msgs, raft.Message{Type: msgProbe, From: s.cfg.ID, To: id, Incarnation: s.inc})
		}
	}
	s.tr.Send(msgs)
	return nil
}

// onProbe handles the two bootstrap messages.
func (s *Node) onProbe(m raft.Message) error {
	if int(m.From) < 0 || int(m.From) >= len(s.cfg.Peers) || m.From == s.cfg.ID {
		return nil
	}
	switch m.Type {
	case msgProbe:
		conf, _ := s.core.Membership()
		// "Not empty" if we hold a configuration, or anything at all, or
		// know that a cluster exists.
		busy := !conf.IsEmpty() || !s.boot.empty || s.boot.joining
		resp := raft.Message{Type: msgProbeResp, From: s.cfg.ID, To: m.From, Incarnation: s.inc, Reject: busy}
		if s.boot.entry != nil {
			resp.Entries = []raft.Entry{*s.boot.entry}
		}
		s.tr.Send([]raft.Message{resp})
	case msgProbeResp:
		b := &s.boot
		if !b.waiting || int(m.From) >= s.cfg.Bootstrap {
			return nil
		}
		if m.Reject && len(m.Entries) == 1 && s.namesMe(m.Entries[0]) && b.empty {
			return s.bootstrapWith(m.Entries[0], "a peer bootstrapped with this node's incarnation: writing the same entry")
		}
		if b.joining {
			return nil
		}
		if m.Reject {
			b.joining = true
			s.lg.Info("a cluster exists: waiting for its leader to take this node in under its new incarnation",
				zap.String("told_by", s.cfg.Peers[m.From].Name), zap.Stringer("incarnation", s.inc))
			return nil
		}
		b.incs[m.From] = m.Incarnation
		if len(b.incs) == s.cfg.Bootstrap-1 {
			return s.bootstrap()
		}
	}
	return nil
}

// bootstrap writes the bootstrap configuration entry, which every node of
// the hostfile writes the same, and restarts the core on it.
func (s *Node) bootstrap() error {
	names := make([]string, s.cfg.Bootstrap)
	incs := make([]raft.Incarnation, s.cfg.Bootstrap)
	for i, p := range s.cfg.Peers[:s.cfg.Bootstrap] {
		names[i], incs[i] = p.Name, s.boot.incs[raft.ID(i)]
	}
	incs[s.cfg.ID] = s.inc
	conf := BootstrapMembership(names, incs)
	entry := raft.Entry{Term: 1, Index: 1, Type: raft.EntryConfig, Data: raft.EncodeMembership(conf)}
	return s.bootstrapWith(entry, "bootstrapped a new cluster: every hostfile node was empty")
}

// BootstrapMembership is the first configuration of a cluster whose nodes,
// in hostfile order (the position is the ID), are called names and have
// the incarnations incs: every node a voter. A bootstrap writes it in the
// first log entry; `raftkv snapshot restore` in the seeded snapshots.
func BootstrapMembership(names []string, incs []raft.Incarnation) raft.Membership {
	var conf raft.Membership
	for i, name := range names {
		meta, _ := json.Marshal(memberMeta{Name: name})
		conf.Members = append(conf.Members, raft.Member{ID: raft.ID(i), Incarnation: incs[i], Meta: meta})
	}
	return conf
}

// namesMe reports whether e is a bootstrap configuration entry that names
// this node under its current incarnation.
func (s *Node) namesMe(e raft.Entry) bool {
	if e.Index != 1 || e.Term != 1 || e.Type != raft.EntryConfig {
		return false
	}
	conf, err := raft.DecodeMembership(e.Data)
	if err != nil {
		return false
	}
	x, ok := conf.Member(s.cfg.ID)
	return ok && x.Incarnation == s.inc && x.Suffrage == raft.Voter
}

// bootstrapWith persists the bootstrap entry, committed, and restarts the
// core on it. The term never goes back: a node may have heard a higher one
// (a peer that bootstrapped first campaigned); it never voted (a node with
// no configuration does not), but its vote, if any, is kept.
func (s *Node) bootstrapWith(entry raft.Entry, why string) error {
	st := s.core.BasicStatus()
	hs := raft.HardState{Term: max(st.Term, 1), Vote: raft.None, Commit: 1}
	if st.Term >= 1 {
		hs.Vote = st.Vote
	}
	if err := s.disk.Save(hs, []raft.Entry{entry}); err != nil {
		return fmt.Errorf("persist bootstrap configuration: %w", err)
	}
	core, err := raft.NewNode(s.coreConfig(hs, []raft.Entry{entry}, nil, 0, nil))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.core, s.ready.Node = core, core
	s.boot.waiting = false
	s.boot.entry = &entry
	conf, _ := core.Membership()
	s.lg.Info(why, zap.Stringer("configuration", conf))
	return nil
}

// coreConfig is the core's configuration for the recovered state.
func (s *Node) coreConfig(hs raft.HardState, ents []raft.Entry, snap *raft.Snapshot, applied uint64, legacyPeers []raft.ID) raft.Config {
	return raft.Config{
		ID: s.cfg.ID, Incarnation: s.inc, Peers: legacyPeers,
		ElectionTicks: int(s.cfg.ElectionTimeout / s.cfg.Heartbeat), HeartbeatTicks: 1,
		Rand:     s.rand,
		Snapshot: snap, HardState: hs, Entries: ents, Applied: applied,
		LogStorage: walReader{s}, LogWindowEntries: s.cfg.LogWindowEntries, LogWindowBytes: s.cfg.LogWindowBytes,
	}
}

// applyConfig records a committed configuration entry as the one of the
// state machine's applied index (what snapshots carry).
func (s *Node) applyConfig(e raft.Entry) {
	conf, err := raft.DecodeMembership(e.Data)
	if err != nil {
		// The core validated it before appending it.
		panic(fmt.Sprintf("node: applied configuration entry %d does not decode: %v", e.Index, err))
	}
	s.appliedConf = conf
	s.lg.Info("configuration applied", zap.Uint64("index", e.Index), zap.Stringer("configuration", conf))
}

// legacyConf is the configuration of a cluster that predates configurations
// in the log: every hostfile node a voter of incarnation 0.
func (s *Node) legacyConf() raft.Membership {
	var conf raft.Membership
	for i := range s.cfg.Bootstrap {
		conf.Members = append(conf.Members, raft.Member{ID: raft.ID(i)})
	}
	return conf
}

// hostfileIDs are the IDs of the hostfile's nodes of the bootstrap
// configuration (not marked join).
func (s *Node) hostfileIDs() []raft.ID {
	ids := make([]raft.ID, s.cfg.Bootstrap)
	for i := range ids {
		ids[i] = raft.ID(i)
	}
	return slices.Clip(ids)
}

// ChangeMembership changes the configuration, one server at a time (see
// raft.Node.ProposeMembership): the loop calls edit with the configuration
// in force and proposes what it returns, and ChangeMembership waits until
// that entry is applied here, or failed, or deadline fired. It returns the
// entry's index.
//
// Errors: an error of edit, as it returned it; ErrNotLeader, ErrBusy (not
// proposed); raft.ErrConfChangePending and raft.ErrNotCaughtUp (not
// proposed, retry later); raft.ErrInvalidConfChange (not proposed);
// ErrLost (not applied); ErrTimeout, ErrStopping, ErrUnknownOutcome
// (outcome unknown).
func (s *Node) ChangeMembership(edit func(raft.Membership) (raft.Membership, error), deadline <-chan time.Time) (uint64, error) {
	p := &proposal{edit: edit, done: make(chan proposalResult, 1)}
	select {
	case s.propc <- p:
	case <-deadline:
		return 0, ErrBusy
	}
	select {
	case r := <-p.done:
		return p.index, r.err
	case <-deadline:
		return 0, ErrTimeout
	}
}

// proposeMembership is the loop's side of ChangeMembership.
func (s *Node) proposeMembership(p *proposal) {
	cur, _ := s.core.Membership()
	next, err := p.edit(cur.Clone())
	if err != nil {
		p.done <- proposalResult{err: err}
		return
	}
	idx, term, err := s.core.ProposeMembership(next)
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			err = ErrNotLeader
		}
		p.done <- proposalResult{err: err}
		return
	}
	p.index, p.term = idx, term
	s.waiters[idx] = p
	s.lg.Info("configuration change proposed", zap.Uint64("index", idx), zap.Stringer("configuration", next))
}
