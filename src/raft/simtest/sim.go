// Package simtest drives a whole simulated Raft cluster in one goroutine
// from one seed: a hostile network (loss, delay, reordering, duplication,
// symmetric and asymmetric partitions), crashes that lose what was not
// durable, and clients proposing and reading throughout. Raft's safety
// properties are checked after every step; after the faults heal, the
// cluster must elect a leader and commit new commands within a bound.
//
// Each node runs the runtime's own Ready handling (node.Handler, the code
// node.Node runs) over an in-memory storage that may crash the node inside
// a write, an in-memory network that checks every message against its
// sender's durable state (Raft thesis 3.8), and a hash-chain state machine.
// So the simulator proves the runtime's order of persist, send and apply,
// not a copy of it; TestPlantedSendBeforePersistIsCaught shows it catches a
// planted ordering bug.
//
// Everything random comes from the seed, so a failing run replays exactly:
// see sim_test.go for the flags.
package simtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand"
	"slices"

	"raftkv/src/node"
	"raftkv/src/raft"
)

// Options shape one simulated run.
type Options struct {
	Seed  int64
	Nodes int
	// ChaosTicks is how long faults are injected; HealTicks bounds how long
	// the healed cluster may take to elect a leader and commit new commands.
	ChaosTicks, HealTicks int
	// SnapshotEvery: each node compacts its log after this many applied
	// entries, so InstallSnapshot is exercised too.
	SnapshotEvery uint64
	// LogWindow > 0 keeps only this many recent entries in each core's
	// memory (raft.Config.LogStorage): a leader reads older ones back from
	// the node's durable log (simStorage.Entries). 0 keeps the whole log.
	LogWindow int
	// Trace receives a readable line per event; nil for none.
	Trace func(string)
	// Planted runs the Ready handling with an ordering bug planted on
	// purpose, to show that the simulator catches it; PlantedCore does the
	// same with a membership bug in the core.
	Planted     node.PlantedBug
	PlantedCore raft.PlantedBug
	// noPromiseCheck turns off the check that messages promise only durable
	// state, to see whether a planted bug is caught by its consequences too.
	noPromiseCheck bool
}

const (
	electionTicks  = 10
	heartbeatTicks = 1
)

type envelope struct {
	m  raft.Message
	at int
}

// durable is what survives a crash.
type durable struct {
	hs   raft.HardState
	snap *raft.Snapshot
	ents []raft.Entry
	// unsyncedCommit is a commit index written without fsync; a crash may
	// lose it.
	unsyncedCommit uint64
}

type simNode struct {
	id raft.ID
	// inc is the incarnation of the node's disk: a wiped disk comes back
	// under a new one.
	inc raft.Incarnation
	// absent: the slot holds no node (never added, or retired after its
	// removal committed); it does not restart.
	absent bool
	// member: this incarnation has been seen in a committed configuration
	// (so a committed configuration without it retires it); addedAt is
	// when the operator started it to be added.
	member  bool
	addedAt int
	// smConf is the configuration as of the state machine's applied index:
	// what a snapshot of it carries.
	smConf raft.Membership
	n      *raft.Node // nil while crashed
	// ready is the runtime's Ready handling, driving n.
	ready   node.Handler
	disk    durable
	restart int // tick at which a crashed node comes back
	// pausedUntil: a paused node (as under SIGSTOP) neither ticks nor reads
	// its messages, which wait for it, until this tick.
	pausedUntil int
	// campaignAt > 0: the runtime saw its leader's connection break and
	// will campaign at this tick (fast failover, as src/node does).
	campaignAt int
	// The state machine: a hash chain over applied entries.
	smIndex uint64
	smHash  uint64
	// commitTerm bookkeeping for the leader-completeness check.
	seenCommit uint64
}

type committed struct {
	term, hash uint64
	// observedTerm is the term of the first node seen to consider the entry
	// committed: an upper bound on the term in which it was committed.
	observedTerm uint64
}

type logKey struct{ index, term uint64 }
type logVal struct{ hash, prevTerm uint64 }

// Sim is one simulated cluster.
type Sim struct {
	opts  Options
	rng   *rand.Rand
	nodes []*simNode
	ids   []raft.ID
	net   []envelope
	now   int

	// sendErr is the first message that promised what was not durable.
	sendErr error
	// chaos: faults are being injected (crashes inside writes included).
	chaos             bool
	dropRate, dupRate float64
	maxDelay          int
	blocked           map[[2]raft.ID]bool

	// Checker state.
	leaders  map[uint64]raft.ID // term -> the leader seen in it
	commits  []committed        // index-1 -> the committed entry
	smHashes []uint64           // index-1 -> state-machine hash after applying it
	logs     map[logKey]logVal  // every (index, term) ever stored anywhere
	reads    map[uint64]uint64  // read id -> highest known commit when it was asked
	nextRead uint64
	nextCmd  int
	// pending: commands proposed after healing and not yet applied, with the
	// term they were last proposed in.
	pending map[string]uint64

	// Membership (see membership.go). confs are the committed configuration
	// entries in index order, from the bootstrap one on; wiped holds the
	// members whose disk was wiped and who are not back as voters under
	// their new incarnation (or removed) in a committed configuration.
	confs      []confRec
	wiped      map[raft.ID]raft.Incarnation
	promoteLag uint64
	// lost holds every incarnation whose disk was wiped, with the index of
	// the first committed configuration that no longer names it (0 while
	// every one still does): no later one may name it again.
	lost map[raft.Incarnation]uint64
}

// New builds a cluster from opts.
func New(opts Options) *Sim {
	s := &Sim{
		opts:    opts,
		rng:     rand.New(rand.NewSource(opts.Seed)),
		blocked: map[[2]raft.ID]bool{},
		leaders: map[uint64]raft.ID{},
		logs:    map[logKey]logVal{},
		reads:   map[uint64]uint64{},
		pending: map[string]uint64{},
	}
	for i := range opts.Nodes + spareSlots {
		s.ids = append(s.ids, raft.ID(i))
	}
	s.dropRate = s.rng.Float64() * 0.3
	s.dupRate = s.rng.Float64() * 0.1
	s.maxDelay = s.rng.Intn(6)
	s.promoteLag = 1 + uint64(s.rng.Intn(8))
	s.wiped = map[raft.ID]raft.Incarnation{}
	s.lost = map[raft.Incarnation]uint64{}
	s.tracef("sim seed=%d nodes=%d drop=%.2f dup=%.2f maxDelay=%d", opts.Seed, opts.Nodes, s.dropRate, s.dupRate, s.maxDelay)
	// A brand-new cluster: every node's disk holds the same bootstrap
	// configuration entry, committed, naming every node's incarnation.
	var boot raft.Membership
	for _, id := range s.ids {
		sn := &simNode{id: id, inc: s.newInc(), absent: int(id) >= opts.Nodes}
		s.nodes = append(s.nodes, sn)
		if !sn.absent {
			boot.Members = append(boot.Members, raft.Member{ID: id, Incarnation: sn.inc})
			sn.member = true
		}
	}
	bootEntry := raft.Entry{Term: 1, Index: 1, Type: raft.EntryConfig, Data: raft.EncodeMembership(boot)}
	s.confs = []confRec{{index: 1, conf: boot}}
	for _, sn := range s.nodes {
		sn.disk = durable{hs: raft.HardState{Vote: raft.None}}
		if !sn.absent {
			sn.disk = durable{hs: raft.HardState{Term: 1, Vote: raft.None, Commit: 1}, ents: []raft.Entry{bootEntry}}
			s.start(sn)
		}
	}
	return s
}

func (s *Sim) tracef(format string, args ...any) {
	if s.opts.Trace != nil {
		s.opts.Trace(fmt.Sprintf("[%5d] ", s.now) + fmt.Sprintf(format, args...))
	}
}

// start (re)creates a node from its durable state, as after a crash.
func (s *Sim) start(sn *simNode) {
	var trace func(string)
	if s.opts.Trace != nil {
		trace = func(line string) { s.opts.Trace(fmt.Sprintf("[%5d]   ", s.now) + line) }
	}
	var applied uint64
	if sn.disk.snap != nil {
		applied = sn.disk.snap.Index
	}
	cfg := raft.Config{
		ID: sn.id, Incarnation: sn.inc, PromoteLag: s.promoteLag, Planted: s.opts.PlantedCore,
		ElectionTicks: electionTicks, HeartbeatTicks: heartbeatTicks,
		Rand:          rand.New(rand.NewSource(s.rng.Int63())),
		MaxMsgEntries: 2 + s.rng.Intn(16), MaxMsgBytes: 64, MaxInflight: 2 + s.rng.Intn(6),
		Snapshot: sn.disk.snap, HardState: sn.disk.hs, Entries: slices.Clone(sn.disk.ents),
		Applied: applied,
		Trace:   trace,
	}
	if s.opts.LogWindow > 0 {
		cfg.LogStorage = simStorage{s, sn}
		cfg.LogWindowEntries, cfg.LogWindowBytes = s.opts.LogWindow, 1<<30
	}
	n, err := raft.NewNode(cfg)
	if err != nil {
		panic(err)
	}
	sn.n = n
	sn.ready = node.Handler{
		Node: n, Storage: simStorage{s, sn}, Sender: simSender{s, sn}, App: simApp{s, sn},
		Planted: s.opts.Planted,
	}
	sn.smIndex, sn.smHash = 0, 0
	sn.smConf = raft.Membership{}
	if sn.disk.snap != nil {
		sn.smIndex, sn.smHash = decodeSnap(sn.disk.snap.Data)
		sn.smConf = *sn.disk.snap.Membership
	}
	sn.seenCommit = 0
	sn.campaignAt = 0
}

func (s *Sim) crash(sn *simNode, keepUnsynced bool) {
	s.tracef("crash n%d", sn.id)
	// The crashed node's connections break: most of its followers notice.
	for _, o := range s.nodes {
		if o != sn && o.n != nil && o.n.BasicStatus().Lead == sn.id && s.rng.Float64() < 0.7 {
			s.connectionLost(o)
		}
	}
	sn.n = nil
	if !keepUnsynced {
		sn.disk.unsyncedCommit = 0
	}
	if sn.disk.unsyncedCommit > sn.disk.hs.Commit {
		sn.disk.hs.Commit = sn.disk.unsyncedCommit
	}
	sn.disk.unsyncedCommit = 0
	sn.restart = s.now + 1 + s.rng.Intn(4*electionTicks)
}

// Run plays the whole schedule and returns the first violation found.
func (s *Sim) Run() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tick %d: panic: %v", s.now, r)
		}
	}()
	for s.now = 0; s.now < s.opts.ChaosTicks; s.now++ {
		s.fault()
		if err := s.step(true); err != nil {
			return fmt.Errorf("tick %d: %w", s.now, err)
		}
	}
	s.heal()
	return s.liveness()
}

// fault maybe changes the network or crashes or restarts a node.
func (s *Sim) fault() {
	for _, sn := range s.nodes {
		if sn.n == nil && !sn.absent && s.now >= sn.restart {
			s.tracef("restart n%d", sn.id)
			s.start(sn)
		}
	}
	s.retire()
	s.resolveWipes()
	if l := s.leader(); l != nil && !s.committedInTerm(l) && s.rng.Float64() < 0.3 {
		// Operators race elections: a change asked of a leader that has
		// not committed anything in its term yet (thesis 4.1's errata).
		s.operate()
	}
	switch r := s.rng.Float64(); {
	case r < 0.01:
		// Symmetric partition into two random sides.
		clear(s.blocked)
		side := make([]bool, len(s.ids))
		for i := range side {
			side[i] = s.rng.Intn(2) == 0
		}
		for i := range s.ids {
			for j := range s.ids {
				if side[i] != side[j] {
					s.blocked[[2]raft.ID{s.ids[i], s.ids[j]}] = true
				}
			}
		}
		s.tracef("partition %v", side)
	case r < 0.02:
		// Asymmetric: one direction of one link.
		a, b := s.ids[s.rng.Intn(len(s.ids))], s.ids[s.rng.Intn(len(s.ids))]
		if a != b {
			s.blocked[[2]raft.ID{a, b}] = true
			s.tracef("block %d->%d", a, b)
		}
	case r < 0.035:
		clear(s.blocked)
		s.tracef("network healed")
	case r < 0.045:
		if sn := s.nodes[s.rng.Intn(len(s.nodes))]; sn.n != nil {
			s.crash(sn, s.rng.Intn(2) == 0)
		}
	case r < 0.055:
		// A connection breaks although its leader lives on.
		if sn := s.nodes[s.rng.Intn(len(s.nodes))]; sn.n != nil && sn.n.BasicStatus().Role == raft.RoleFollower {
			s.connectionLost(sn)
		}
	case r < 0.06:
		if sn := s.nodes[s.rng.Intn(len(s.nodes))]; sn.n != nil && !s.paused(sn) {
			sn.pausedUntil = s.now + 5 + s.rng.Intn(6*electionTicks)
			s.tracef("pause n%d until %d", sn.id, sn.pausedUntil)
		}
	case r < 0.08:
		s.operate()
	case r < 0.083:
		s.wipe()
	}
}

// connectionLost does what the runtime does when a follower's connection
// from its leader breaks: expire the lease now, campaign a little later.
func (s *Sim) connectionLost(sn *simNode) {
	s.tracef("n%d lost its leader's connection", sn.id)
	sn.n.ExpireLease()
	sn.campaignAt = s.now + s.rng.Intn(3)
}

// heal ends the faults: every node up, every link open, no loss.
func (s *Sim) heal() {
	s.tracef("heal")
	clear(s.blocked)
	s.dropRate, s.dupRate = 0, 0
	for _, sn := range s.nodes {
		sn.pausedUntil = 0
	}
	s.maxDelay = min(s.maxDelay, 2)
	for _, sn := range s.nodes {
		if sn.n == nil && !sn.absent {
			s.start(sn)
		}
	}
}

// step runs one tick: clocks, deliveries, client traffic, Ready handling,
// then every invariant.
func (s *Sim) step(chaos bool) error {
	s.chaos = chaos
	for _, sn := range s.nodes {
		if sn.n != nil && !s.paused(sn) {
			sn.n.Tick()
			if sn.campaignAt > 0 && s.now >= sn.campaignAt {
				sn.campaignAt = 0
				sn.n.Campaign()
			}
		}
	}
	// A node that wakes from a pause may hear from clients before it reads
	// the messages that piled up meanwhile, or after.
	clientsFirst := s.rng.Intn(2) == 0
	if chaos && clientsFirst {
		s.clients()
	}
	if err := s.deliver(); err != nil {
		return err
	}
	if chaos && !clientsFirst {
		s.clients()
	}
	for _, sn := range s.nodes {
		if s.paused(sn) {
			continue
		}
		if err := s.handleReady(sn); err != nil {
			return err
		}
	}
	return s.check()
}

// deliver hands every due message to its node. A correct cluster never
// sends a message its receiver refuses (raft.ErrInvalidMessage): a refusal
// fails the run.
func (s *Sim) deliver() error {
	var due, later []envelope
	for _, e := range s.net {
		if e.at <= s.now && !s.paused(s.nodes[e.m.To]) {
			due = append(due, e)
		} else {
			later = append(later, e)
		}
	}
	s.net = later
	s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, e := range due {
		to := s.nodes[e.m.To]
		if to.n == nil || s.blocked[[2]raft.ID{e.m.From, e.m.To}] {
			continue
		}
		if err := to.n.Step(e.m); err != nil {
			return fmt.Errorf("n%d refused %s: %w", e.m.To, e.m, err)
		}
	}
	return nil
}

func (s *Sim) paused(sn *simNode) bool { return sn.n != nil && s.now < sn.pausedUntil }

func (s *Sim) send(m raft.Message) {
	if s.rng.Float64() < s.dropRate {
		s.tracef("drop %s", m)
		return
	}
	copies := 1
	if s.rng.Float64() < s.dupRate {
		s.tracef("duplicate %s", m)
		copies = 2
	}
	for range copies {
		s.net = append(s.net, envelope{m: m, at: s.now + 1 + s.rng.Intn(s.maxDelay+1)})
	}
}

// clients propose commands and ask for reads, mostly at nodes that believe
// they lead (as real clients would), sometimes at any node.
func (s *Sim) clients() {
	if s.rng.Float64() < 0.5 {
		if sn := s.pickTarget(); sn != nil {
			for range 1 + s.rng.Intn(3) {
				s.nextCmd++
				if _, _, err := sn.n.Propose(fmt.Appendf(nil, "c%d", s.nextCmd)); err != nil {
					break
				}
			}
		}
	}
	if s.rng.Float64() < 0.3 {
		if sn := s.pickTarget(); sn != nil {
			s.nextRead++
			if sn.n.ReadIndex(s.nextRead) == nil {
				s.reads[s.nextRead] = s.knownCommit()
			}
		}
	}
}

func (s *Sim) pickTarget() *simNode {
	var leaders []*simNode
	for _, sn := range s.nodes {
		if sn.n != nil && !s.paused(sn) && sn.n.Status().Role == raft.RoleLeader {
			leaders = append(leaders, sn)
		}
	}
	if len(leaders) > 0 && s.rng.Float64() < 0.8 {
		return leaders[s.rng.Intn(len(leaders))]
	}
	sn := s.nodes[s.rng.Intn(len(s.nodes))]
	if sn.n == nil || s.paused(sn) {
		return nil
	}
	return sn
}

// knownCommit is the highest commit index any node knows: every write
// acknowledged to a client so far is at or below it.
func (s *Sim) knownCommit() uint64 {
	var c uint64
	for _, sn := range s.nodes {
		if sn.n != nil {
			c = max(c, sn.n.Status().Commit)
		}
	}
	return c
}

// handleReady runs the runtime's own Ready handling (node.Handler) on sn,
// one batch at a time, with the in-memory storage, network and state
// machine below. A crash injected by the storage stops the batch where it
// happened, as a real crash would.
func (s *Sim) handleReady(sn *simNode) error {
	for i := 0; sn.n != nil && sn.n.HasReady(); i++ {
		if i > 100 {
			return fmt.Errorf("n%d: Ready never settles", sn.id)
		}
		err := sn.ready.HandleOne()
		if s.sendErr != nil {
			return s.sendErr
		}
		if errors.Is(err, errCrashed) {
			s.crash(sn, true)
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errCrashed is how the storage tells the Ready handling that the node
// crashed inside a write: the handling stops there, as it does on any
// storage error, and the simulator crashes the node.
var errCrashed = errors.New("simtest: crashed during a write")

// crashPoint decides whether the node crashes at this point of a write:
// rarely, and only while faults are injected.
func (s *Sim) crashPoint() bool {
	return s.chaos && s.rng.Float64() < 0.002
}

// simStorage is a node's durable state as node.Storage. A write is durable
// once the call that made it returns (Save syncs), except the commit index
// of SaveHardStateNoSync, which a crash may lose (see Sim.crash). The node
// may crash at the start of each write, with none of it durable but the
// messages sent before it already gone, or at its end, with all of it
// durable but nothing after it sent or applied.
type simStorage struct {
	s  *Sim
	sn *simNode
}

func (d simStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	if d.s.crashPoint() {
		return errCrashed
	}
	dd := &d.sn.disk
	if len(ents) > 0 {
		first := ents[0].Index
		var base uint64
		if dd.snap != nil {
			base = dd.snap.Index
		}
		if first <= base {
			panic(fmt.Sprintf("n%d: Ready entries start at %d, inside the snapshot at %d", d.sn.id, first, base))
		}
		keep := int(first - base - 1)
		if keep > len(dd.ents) {
			panic(fmt.Sprintf("n%d: Ready entries start at %d after a gap (last %d)", d.sn.id, first, base+uint64(len(dd.ents))))
		}
		dd.ents = append(dd.ents[:keep:keep], ents...)
	}
	if !hs.IsEmpty() {
		dd.hs = hs
		dd.unsyncedCommit = 0
	}
	if d.s.crashPoint() {
		return errCrashed
	}
	return nil
}

func (d simStorage) SaveHardStateNoSync(hs raft.HardState) error {
	if d.s.crashPoint() {
		return errCrashed
	}
	d.sn.disk.unsyncedCommit = hs.Commit
	if d.s.crashPoint() {
		return errCrashed
	}
	return nil
}

func (d simStorage) SaveSnapshot(snap raft.Snapshot) error {
	if d.s.crashPoint() {
		return errCrashed
	}
	d.sn.disk.snap = &snap
	d.sn.disk.ents = nil
	if d.s.crashPoint() {
		return errCrashed
	}
	return nil
}

// Entries reads the durable log back for a core whose window evicted the
// entries (raft.LogStorage).
func (d simStorage) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	dd := &d.sn.disk
	var base uint64
	if dd.snap != nil {
		base = dd.snap.Index
	}
	if lo <= base {
		return nil, raft.ErrCompacted
	}
	if lo >= hi || hi > base+uint64(len(dd.ents))+1 {
		return nil, fmt.Errorf("n%d: durable log (%d, %d] lacks [%d, %d)", d.sn.id, base, base+uint64(len(dd.ents)), lo, hi)
	}
	ents := dd.ents[lo-base-1 : hi-base-1]
	var size uint64
	for i := range ents {
		size += uint64(len(ents[i].Data))
		if i > 0 && size > maxBytes {
			ents = ents[:i]
			break
		}
	}
	return slices.Clone(ents), nil
}

func (d simStorage) LoadSnapshot() (*raft.Snapshot, error) {
	if d.sn.disk.snap == nil {
		return nil, nil
	}
	cp := *d.sn.disk.snap
	return &cp, nil
}

// simSender is the simulated network as node.Sender. It checks that
// every message promises only what its sender has made durable.
type simSender struct {
	s  *Sim
	sn *simNode
}

func (n simSender) Send(msgs []raft.Message) {
	for _, m := range msgs {
		if err := n.sn.disk.promises(m); err != nil && !n.s.opts.noPromiseCheck && n.s.sendErr == nil {
			n.s.sendErr = fmt.Errorf("n%d sent %s: %w", n.sn.id, m, err)
		}
		n.s.send(m)
	}
}

// promises checks that m promises only state that is durable on d. A vote
// request, a granted vote and an acknowledgement of entries each promise
// that the term, the vote or the entries survive a crash, so they may
// leave only after the write that holds them (Raft thesis 3.8): a vote
// lost in a crash lets the restarted node vote again in the same term, an
// acknowledgement lost lets a leader count a copy that is gone.
func (d *durable) promises(m raft.Message) error {
	switch {
	case m.Type == raft.MsgVote:
		if d.hs.Term < m.Term || d.hs.Term == m.Term && d.hs.Vote != m.From {
			return fmt.Errorf("asks for votes in term %d, but its durable term and vote are t%d/%d", m.Term, d.hs.Term, d.hs.Vote)
		}
	case m.Type == raft.MsgVoteResp && !m.Reject:
		if d.hs.Term < m.Term || d.hs.Term == m.Term && d.hs.Vote != m.To {
			return fmt.Errorf("grants its vote in term %d, but its durable term and vote are t%d/%d", m.Term, d.hs.Term, d.hs.Vote)
		}
	case m.Type == raft.MsgAppResp && !m.Reject && d.hs.Term == m.Term:
		// An acknowledgement of an older term may have been overtaken in the
		// same batch by a newer leader's rewrite of the log (seeds 4637 and
		// 18849): the durable state is then that of a schedule in which the
		// acknowledged entries were durable and overwritten after the reply
		// left, which Raft allows.
		var base uint64
		if d.snap != nil {
			base = d.snap.Index
		}
		if last := base + uint64(len(d.ents)); m.Index > last {
			return fmt.Errorf("acknowledges entries up to %d, but its durable log ends at %d", m.Index, last)
		}
	}
	return nil
}

// simApp is a node's hash-chain state machine as node.Application; it
// checks state-machine safety and read freshness as entries and reads come.
type simApp struct {
	s  *Sim
	sn *simNode
}

func (simApp) SoftStateChanged(raft.SoftState) {}
func (simApp) PrepareRestore() error           { return nil }

func (a simApp) Restore(snap *raft.Snapshot) error {
	a.sn.smIndex, a.sn.smHash = decodeSnap(snap.Data)
	a.sn.smConf = snap.Membership.Clone()
	return nil
}

func (a simApp) Apply(e raft.Entry) error { return a.s.apply(a.sn, e) }

func (a simApp) ReadState(rs raft.ReadState) error {
	want, ok := a.s.reads[rs.RequestID]
	if !ok {
		return fmt.Errorf("n%d: read %d answered but never asked", a.sn.id, rs.RequestID)
	}
	if rs.Index < want {
		return fmt.Errorf("n%d: stale read %d at index %d, but %d was committed before it was asked", a.sn.id, rs.RequestID, rs.Index, want)
	}
	delete(a.s.reads, rs.RequestID)
	return nil
}

func (a simApp) Advanced() error {
	a.s.maybeSnapshot(a.sn)
	return nil
}

// apply runs one committed entry through the hash-chain state machine and
// checks state-machine safety: every node applies the same entry at the
// same index, with no gaps.
func (s *Sim) apply(sn *simNode, e raft.Entry) error {
	if e.Index != sn.smIndex+1 {
		return fmt.Errorf("n%d: applied index %d after %d", sn.id, e.Index, sn.smIndex)
	}
	// Only committed entries are applied: record them here too, since a
	// node may apply and compact an entry within one step.
	if err := s.recordCommit(sn, e, sn.n.Status().Term); err != nil {
		return err
	}
	sn.smIndex = e.Index
	sn.smHash = chain(sn.smHash, e)
	if e.Type == raft.EntryConfig {
		m, err := raft.DecodeMembership(e.Data)
		if err != nil {
			return fmt.Errorf("n%d: applied configuration entry %d: %v", sn.id, e.Index, err)
		}
		sn.smConf = m
	}
	switch {
	case int(e.Index) <= len(s.smHashes):
		if s.smHashes[e.Index-1] != sn.smHash {
			return fmt.Errorf("n%d: state machine differs after applying %d", sn.id, e.Index)
		}
	case int(e.Index) == len(s.smHashes)+1:
		s.smHashes = append(s.smHashes, sn.smHash)
	default:
		return fmt.Errorf("n%d: applied %d before anyone applied %d", sn.id, e.Index, len(s.smHashes)+1)
	}
	delete(s.pending, string(e.Data))
	return nil
}

func (s *Sim) maybeSnapshot(sn *simNode) {
	var base uint64
	if sn.disk.snap != nil {
		base = sn.disk.snap.Index
	}
	if sn.n == nil || sn.smIndex < base+s.opts.SnapshotEvery {
		return
	}
	idx := sn.smIndex
	term := sn.disk.ents[idx-base-1].Term
	conf := sn.smConf.Clone()
	snap := &raft.Snapshot{Index: idx, Term: term, Membership: &conf, Data: encodeSnap(idx, sn.smHash)}
	sn.disk.snap = snap
	sn.disk.ents = slices.Clone(sn.disk.ents[idx-base:])
	if err := sn.n.Compact(idx); err != nil {
		panic(err)
	}
	s.tracef("n%d snapshot at %d", sn.id, idx)
}

// check verifies Raft's safety properties over every node's current state.
func (s *Sim) check() error {
	for _, sn := range s.nodes {
		if sn.n == nil {
			continue
		}
		st := sn.n.Status()
		// Election safety: at most one leader per term.
		if st.Role == raft.RoleLeader {
			if l, ok := s.leaders[st.Term]; ok && l != sn.id {
				return fmt.Errorf("two leaders in term %d: n%d and n%d", st.Term, l, sn.id)
			}
			s.leaders[st.Term] = sn.id
		}
		d := &sn.disk
		var base, baseTerm uint64
		if d.snap != nil {
			base, baseTerm = d.snap.Index, d.snap.Term
			if int(base) > len(s.smHashes) || s.smHashes[base-1] != decodeHash(d.snap.Data) {
				return fmt.Errorf("n%d: snapshot at %d does not match the applied history", sn.id, base)
			}
		}
		if st.Commit > base+uint64(len(d.ents)) {
			return fmt.Errorf("n%d: commit %d beyond its durable log end %d", sn.id, st.Commit, base+uint64(len(d.ents)))
		}
		prevTerm := baseTerm
		for i, e := range d.ents {
			if e.Index != base+uint64(i)+1 {
				return fmt.Errorf("n%d: durable log has %d at position of %d", sn.id, e.Index, base+uint64(i)+1)
			}
			if e.Term < prevTerm {
				return fmt.Errorf("n%d: term goes down at %d", sn.id, e.Index)
			}
			// Log matching: an (index, term) pair names one entry, with one
			// predecessor term, on every node and forever (Raft 5.3).
			k, v := logKey{e.Index, e.Term}, logVal{hashData(e.Data), prevTerm}
			if old, ok := s.logs[k]; ok && old != v {
				return fmt.Errorf("n%d: log matching violated at %d/t%d", sn.id, e.Index, e.Term)
			}
			s.logs[k] = v
			prevTerm = e.Term
			// Committed entries never change, and are the same everywhere.
			if e.Index <= st.Commit {
				if err := s.recordCommit(sn, e, st.Term); err != nil {
					return err
				}
			}
		}
		// Leader completeness (Raft 5.4): a leader holds every entry that was
		// committed in an earlier term.
		if st.Role == raft.RoleLeader {
			for i := base + 1; i <= uint64(len(s.commits)); i++ {
				c := s.commits[i-1]
				if c.observedTerm >= st.Term {
					continue
				}
				if i > base+uint64(len(d.ents)) || d.ents[i-base-1].Term != c.term {
					return fmt.Errorf("leader n%d of term %d lacks entry %d/t%d committed by term %d", sn.id, st.Term, i, c.term, c.observedTerm)
				}
			}
		}
	}
	return nil
}

func (s *Sim) recordCommit(sn *simNode, e raft.Entry, term uint64) error {
	h := hashData(e.Data)
	switch {
	case int(e.Index) <= len(s.commits):
		c := s.commits[e.Index-1]
		if c.term != e.Term || c.hash != h {
			return fmt.Errorf("n%d: committed entry %d changed: t%d, was t%d", sn.id, e.Index, e.Term, c.term)
		}
	case int(e.Index) == len(s.commits)+1:
		s.commits = append(s.commits, committed{term: e.Term, hash: h, observedTerm: term})
		if e.Type == raft.EntryConfig {
			if err := s.committedConf(e); err != nil {
				return fmt.Errorf("n%d: %w", sn.id, err)
			}
		}
	default:
		// Known committed, but entries below it were compacted on this node
		// before anyone recorded them: record later from another node.
	}
	return nil
}

// liveness: after healing, a leader must appear, and commands proposed to
// it must commit on every node within the bound. Like a real client, the
// simulator proposes a command again to a newer leader if the leader it was
// given to lost office before committing it.
func (s *Sim) liveness() error {
	deadline := s.now + s.opts.HealTicks
	var cmds [][]byte
	for range 5 {
		s.nextCmd++
		cmds = append(cmds, fmt.Appendf(nil, "h%d", s.nextCmd))
	}
	for _, c := range cmds {
		s.pending[string(c)] = 0
	}
	for ; s.now < deadline; s.now++ {
		if err := s.step(false); err != nil {
			return fmt.Errorf("tick %d (healed): %w", s.now, err)
		}
		if l := s.stableLeader(); l != nil {
			term := l.n.Status().Term
			for _, c := range cmds {
				if t, ok := s.pending[string(c)]; ok && t < term {
					if _, _, err := l.n.Propose(c); err != nil {
						return fmt.Errorf("tick %d: stable leader n%d refused a proposal: %v", s.now, l.id, err)
					}
					s.pending[string(c)] = term
				}
			}
		}
		if len(s.pending) == 0 && s.allApplied() && s.settled() == nil {
			return nil
		}
	}
	var states []string
	for _, sn := range s.nodes {
		if sn.n == nil {
			continue
		}
		st := sn.n.Status()
		conf, _ := sn.n.Membership()
		states = append(states, fmt.Sprintf("n%d/%s %s t%d lead=%d commit=%d conf=%s", sn.id, sn.inc.String()[12:], st.Role, st.Term, st.Lead, st.Commit, conf))
	}
	if err := s.settled(); err != nil && len(s.pending) == 0 {
		return fmt.Errorf("membership not settled within %d ticks after healing: %v: %v", s.opts.HealTicks, err, states)
	}
	return fmt.Errorf("%d of %d commands proposed after healing not committed on every member within %d ticks: %v", len(s.pending), len(cmds), s.opts.HealTicks, states)
}

// stableLeader returns the leader every live member follows at the highest
// term, once it has committed an entry of its term.
func (s *Sim) stableLeader() *simNode {
	members := s.liveMembers()
	var maxTerm uint64
	for _, sn := range members {
		maxTerm = max(maxTerm, sn.n.Status().Term)
	}
	var leader *simNode
	for _, sn := range members {
		st := sn.n.Status()
		if st.Term != maxTerm || st.Lead == raft.None {
			return nil
		}
		if leader == nil {
			leader = s.nodes[st.Lead]
		} else if leader.id != st.Lead {
			return nil
		}
	}
	if leader == nil || leader.n == nil {
		return nil
	}
	ls := leader.n.Status()
	if ls.Role != raft.RoleLeader || int(ls.Commit) > len(s.commits) || ls.Commit == 0 || s.commits[ls.Commit-1].term != ls.Term {
		return nil
	}
	return leader
}

func (s *Sim) allApplied() bool {
	want := uint64(len(s.smHashes))
	for _, sn := range s.liveMembers() {
		if sn.smIndex < want {
			return false
		}
	}
	return true
}

func hashData(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func chain(prev uint64, e raft.Entry) uint64 {
	h := fnv.New64a()
	var buf [17]byte
	binary.LittleEndian.PutUint64(buf[:8], prev)
	binary.LittleEndian.PutUint64(buf[8:16], e.Index)
	buf[16] = byte(e.Type)
	h.Write(buf[:])
	h.Write(e.Data)
	return h.Sum64()
}

func encodeSnap(index, hash uint64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, index)
	binary.LittleEndian.PutUint64(b[8:], hash)
	return b
}

func decodeSnap(b []byte) (uint64, uint64) {
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
}

func decodeHash(b []byte) uint64 { _, h := decodeSnap(b); return h }
