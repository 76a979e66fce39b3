package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"raftkv/src/kv"
	"raftkv/src/metrics"
	"raftkv/src/raft"
	"raftkv/src/snapstream"
	"raftkv/src/storage"
	"raftkv/src/transport"
	"raftkv/src/watch"
)

// Peer is one node of the cluster as the runtime sees it.
type Peer struct {
	Name string
	// RaftAddr is called on every (re)connect, so a changed address of a
	// container is picked up.
	RaftAddr func() string
}

// Config is everything the runtime needs; main builds it from src/config.
type Config struct {
	ID    raft.ID
	Peers []Peer // every node in hostfile order, this one included
	// Bootstrap is how many of Peers, the first ones, form the bootstrap
	// configuration; the others are marked join in the hostfile (added to
	// a running cluster). 0 means all of them.
	Bootstrap int
	ClusterID string
	// DataDir is this node's own folder (persistence/<name>).
	DataDir    string
	RaftListen string // e.g. ":7000"
	// PeerTLS: peer mutual TLS (transport.Config.TLS); nil = plaintext.
	PeerTLS *tls.Config

	Heartbeat       time.Duration
	ElectionTimeout time.Duration
	// SnapshotEvery: take a snapshot after at least this many applied
	// entries (and see snapshotLogFraction).
	SnapshotEvery uint64
	// LogWindowEntries and LogWindowBytes bound the log the core keeps in
	// memory; older entries are read back from the WAL (walReader). 0: the
	// core's defaults.
	LogWindowEntries int
	LogWindowBytes   uint64
	// SnapshotStream tunes the chunked transfer of snapshots to
	// followers (zero: snapstream's defaults).
	SnapshotStream snapstream.Config
	// NewTicker makes the loop's clock: one core Tick per tick. nil means a
	// time.Ticker of Heartbeat; tests inject one they drive by hand.
	NewTicker func(d time.Duration) Ticker
	Logger    *zap.Logger
	// Watch bounds the history window of watches (see package watch).
	Watch watch.Options
}

// Ticker is the loop's clock (a *time.Ticker by default).
type Ticker interface {
	Chan() <-chan time.Time
	Stop()
}

type realTicker struct{ *time.Ticker }

func (t realTicker) Chan() <-chan time.Time { return t.C }

func (c *Config) name() string { return c.Peers[c.ID].Name }

// The errors of Propose and Read. Whether the command may have been applied
// is part of each one's contract: the HTTP API answers 503 (not applied,
// retry anywhere) or 504 (outcome unknown, retry with the same Request-Seq).
var (
	// ErrNotLeader: this node is not the leader; the command was not
	// proposed, the read not started.
	ErrNotLeader = errors.New("not the leader")
	// ErrLost: another entry committed at the proposal's index; it was not
	// applied.
	ErrLost = errors.New("leadership changed before the command committed; it was not applied")
	// ErrStopping: the node stopped before the outcome was known.
	ErrStopping = errors.New("node is shutting down")
	// ErrUnknownOutcome: a proposal's entry was covered by a snapshot from
	// the leader, so this node cannot tell whether it was the one applied.
	ErrUnknownOutcome = errors.New("the command's log position was replaced by a snapshot before it applied here")
	// ErrBusy: the loop did not take the request before the deadline; the
	// command was not proposed, the read not started.
	ErrBusy = errors.New("node too busy to take the request")
	// ErrTimeout: the deadline passed after the request was taken: a
	// command's outcome is unknown, a read was not confirmed.
	ErrTimeout = errors.New("request not answered in time")
)

type proposal struct {
	data []byte
	// edit, when set, makes this a configuration change: the loop applies
	// it to the configuration in force and proposes the result (see
	// ChangeMembership); data is unused.
	edit        func(raft.Membership) (raft.Membership, error)
	index, term uint64
	done        chan proposalResult
}

type proposalResult struct {
	res kv.Result
	err error
}

type readRequest struct {
	done chan error
}

// confirmedRead is a read a quorum confirmed, waiting for the state
// machine to apply its read index.
type confirmedRead struct {
	index uint64
	reqs  []*readRequest
}

// Node is one running raftkv node's runtime: the single loop that owns the
// Raft core, the storage, the transport and the state machine (DESIGN.md,
// "The node runtime"). Other goroutines reach it only through Propose, Read
// and the read-only accessors.
type Node struct {
	cfg   Config
	lg    *zap.Logger
	core  *raft.Node
	ready Handler // the Ready handling, shared with the simulator
	disk  *storage.Storage
	kv    *kv.Store
	tr    *transport.Transport

	recvc chan raft.Message
	propc chan *proposal
	readc chan *readRequest
	statc chan chan raft.Status
	// lostc carries peers whose connection to us broke (see failover.go).
	lostc    chan raft.ID
	snapc    chan snapResult
	snapping bool // a snapshot is being written (see startSnapshot)
	// compactTo is a local snapshot finished inside a Ready (see
	// finishSnapshot): the core's log is compacted to it after Advance.
	compactTo uint64
	// lastSnapBytes is the size of the newest snapshot's state machine,
	// logBytesSinceSnap the command bytes applied since (see maybeSnapshot).
	lastSnapBytes, logBytesSinceSnap uint64
	// readErr is the first failed read of the log back from the WAL
	// (walReader): the loop stops at its next Ready.
	readErr error
	// streams are the snapshot transfers to and from peers (snapstream.go).
	streams snapshotStreams
	// debug: per-message logs are on (checked once; they allocate).
	debug     bool
	campaignc chan raft.ID
	stopc     chan struct{}
	stopOnce  sync.Once
	fatal     chan error // the loop's failure, at most one
	loopErr   error      // the same, for Stop (after loopWG.Wait)
	loopWG    sync.WaitGroup

	// Loop-owned state.
	waiters map[uint64]*proposal
	// reads are the reads handed to the core (raft.Node.ReadIndex), by
	// request ID, until their ReadState arrives; confirmed are those whose
	// read index is not applied yet, in index order. The reads of one loop
	// turn share one request ID (turnRead; 0 when none was asked yet this
	// turn): a ReadState per read would cost more than the read. Batching
	// into heartbeat rounds, one round in flight at a time, is the core's.
	reads       map[uint64][]*readRequest
	confirmed   []confirmedRead
	nextReadID  uint64
	turnRead    uint64
	appliedTerm uint64
	snapIndex   uint64
	// inc is this node's incarnation (its folder's, storage.Identity);
	// appliedConf the configuration as of the applied index, which a
	// snapshot carries; boot the bootstrap or rejoin of an empty folder
	// (membership.go).
	inc         raft.Incarnation
	appliedConf raft.Membership
	boot        bootstrapState
	rand        *rand.Rand
	// badMsgLog limits the log of refused peer messages (see step).
	badMsgLog rateLimitedLog

	// status is the latest basic status, published by the loop for other
	// goroutines; conf the configuration in force (confIndex the index it
	// was published at).
	status    atomic.Pointer[raft.Status]
	conf      atomic.Pointer[raft.Membership]
	confIndex uint64
	met       *metrics.Metrics // nil-safe; see metrics.go

	// leaderCommit: the highest commit index heard from a leader (see
	// LeaderCommit).
	leaderCommit atomic.Uint64

	// callc runs a function in the loop (see inLoop: backups, transfers).
	callc chan func()
	rtt   rttTracker // loop-owned (see rtt.go)

	// hub is the history of changes watchers read (package watch);
	// entryEvents collects one entry's changes for it (loop-owned).
	hub         *watch.Hub
	entryEvents []kv.Event
	// lessor: lease deadlines while leading (lessor.go; loop-owned).
	lessor lessor

	// joined are the members outside the hostfile the transport knows
	// (peers.go); outsideAddrs their raft addresses, for the transport's
	// dialers.
	joined       joinedPeers
	outsideAddrs atomic.Pointer[map[raft.ID]string]
}

// New opens the node's storage, recovers its state and prepares the
// transport. Start it with Start, end it with Stop.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 10000
	}
	if cfg.Heartbeat <= 0 || cfg.ElectionTimeout < 2*cfg.Heartbeat {
		return nil, fmt.Errorf("node: heartbeat %v must be positive and at most half the election timeout %v", cfg.Heartbeat, cfg.ElectionTimeout)
	}
	if cfg.Bootstrap <= 0 || cfg.Bootstrap > len(cfg.Peers) {
		cfg.Bootstrap = len(cfg.Peers)
	}
	if cfg.NewTicker == nil {
		cfg.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	lg := cfg.Logger.With(zap.String("node", cfg.name()))
	s := &Node{
		cfg:       cfg,
		lg:        lg,
		debug:     lg.Core().Enabled(zap.DebugLevel),
		recvc:     make(chan raft.Message, 4096),
		propc:     make(chan *proposal, 4096),
		readc:     make(chan *readRequest, 4096),
		statc:     make(chan chan raft.Status),
		lostc:     make(chan raft.ID, 16),
		snapc:     make(chan snapResult, 1),
		campaignc: make(chan raft.ID, 16),
		callc:     make(chan func()),
		stopc:     make(chan struct{}),
		fatal:     make(chan error, 1),
		waiters:   map[uint64]*proposal{},
		reads:     map[uint64][]*readRequest{},
	}
	t0 := time.Now()
	disk, rec, err := storage.Open(storage.Options{Dir: cfg.DataDir, Logger: lg})
	opened := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("open storage in %s: %w", cfg.DataDir, err)
	}
	s.disk = disk
	s.streams = newSnapshotStreams(cfg.SnapshotStream, cfg.DataDir, disk, disk)
	s.kv = kv.New(kv.Options{})
	s.inc = rec.Identity.Incarnation
	s.rand = rand.New(rand.NewSource(time.Now().UnixNano() + int64(cfg.ID)))
	// Incarnation 0 is a folder from before configurations were in the
	// log: until one is, its configuration is the hostfile (upgrade path,
	// see membership.go). Any other folder takes its configuration from
	// its log and snapshot only, or waits for one.
	var legacyPeers []raft.ID
	if s.inc == 0 {
		legacyPeers = s.hostfileIDs()
		s.appliedConf = s.legacyConf()
	}
	var applied uint64
	if rec.Snapshot != nil {
		if rec.Snapshot.Membership != nil {
			s.appliedConf = rec.Snapshot.Membership.Clone()
		}
		if err := s.kv.RestoreChain(rec.Snapshot.Data, rec.Deltas); err != nil {
			disk.Close()
			return nil, fmt.Errorf("restore snapshot %d in %s: %w", rec.Snapshot.Index, cfg.DataDir, err)
		}
		applied, s.appliedTerm, s.snapIndex = rec.Snapshot.Index, rec.Snapshot.Term, rec.Snapshot.Index
		s.lastSnapBytes = uint64(len(rec.Snapshot.Data))
	}
	s.hub = watch.NewHub(cfg.Watch, applied)
	s.lessor = newLessor(cfg.ElectionTimeout)
	s.kv.SetHooks(kv.Hooks{
		Change:       func(e kv.Event) { s.entryEvents = append(s.entryEvents, e) },
		LeaseRenewed: func(info kv.LeaseInfo) { s.lessor.renewed(time.Now(), info) },
		LeaseEnded:   s.lessor.ended,
	})
	lg.Info("recovered", zap.Duration("storage_open", opened), zap.Duration("restore", time.Since(t0)-opened),
		zap.Uint64("term", rec.HardState.Term), zap.Uint64("commit", rec.HardState.Commit),
		zap.Uint64("snapshot", applied), zap.Int("entries", len(rec.Entries)),
		zap.Bool("clean_stop", rec.CleanStop), zap.Bool("torn_tail", rec.TornTail),
		zap.Stringer("incarnation", s.inc), zap.Bool("new_incarnation", rec.Identity.Created),
		zap.Bool("adopted_incarnation", rec.Identity.Adopted))

	core, err := raft.NewNode(s.coreConfig(rec.HardState, rec.Entries, rec.Snapshot, applied, legacyPeers))
	if err != nil {
		disk.Close()
		return nil, err
	}
	s.core = core
	s.initBootstrap(rec)
	s.publishConf()
	st := core.BasicStatus()
	s.status.Store(&st)

	peers := map[raft.ID]transport.Peer{}
	for i, p := range cfg.Peers {
		if raft.ID(i) != cfg.ID {
			peers[raft.ID(i)] = transport.Peer{Name: p.Name, Addr: p.RaftAddr}
		}
	}
	s.tr, err = transport.New(transport.Config{
		Self: cfg.ID, SelfName: cfg.name(), ClusterID: cfg.ClusterID, ListenAddr: cfg.RaftListen,
		Peers: peers, Logger: lg, OnPeerLost: s.peerLost, TLS: cfg.PeerTLS,
	}, s.deliver)
	if err != nil {
		disk.Close()
		return nil, err
	}
	s.syncPeers(s.Membership())
	s.initMetrics()
	s.met.WatchHandshakeRefusals(s.tr.Refusals)
	s.ready = Handler{
		Node: s.core, Storage: loopDisk{Storage: disk, met: s.met, s: s}, Sender: loopSender{s},
		App: loopApp{s}, Logger: lg, StreamSnapshots: true,
	}
	return s, nil
}

func (s *Node) deliver(m raft.Message) {
	select {
	case s.recvc <- m:
	case <-s.stopc:
	}
}

// Start listens for peers and starts the loop. On an error nothing runs
// and the storage is closed.
func (s *Node) Start() error {
	if err := s.tr.Start(); err != nil {
		s.disk.Close()
		return fmt.Errorf("listen for peers on %s: %w", s.cfg.RaftListen, err)
	}
	s.loopWG.Add(1)
	go func() {
		defer s.loopWG.Done()
		if err := s.loop(); err != nil {
			s.loopErr = err
			s.fatal <- err
		}
	}()
	s.lg.Info("runtime started", zap.String("raft", s.tr.Addr().String()))
	return nil
}

// Failed delivers the loop's failure (storage or state machine), at most
// once; the node then needs Stop.
func (s *Node) Failed() <-chan error { return s.fatal }

// Stop stops the loop (pending requests fail with ErrStopping), closes the
// transport, writes a final snapshot and statemachine.json unless the loop
// failed, and closes the storage. It returns the loop's failure, if any,
// or the first error of the shutdown. Call it once, after Start or instead
// of it.
func (s *Node) Stop() error {
	s.stopOnce.Do(func() { close(s.stopc) })
	s.loopWG.Wait()
	s.tr.Close()
	err := s.loopErr // written before loopWG.Done
	if err == nil {
		err = s.finalSnapshot()
	}
	if cerr := s.disk.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Status is the latest basic status (no Progress) the loop published.
func (s *Node) Status() *raft.Status { return s.status.Load() }

// Get reads a key from the local state machine (a stale read).
func (s *Node) Get(key string) (string, bool) { return s.kv.Get(key) }

// AppliedIndex is the state machine's last applied index.
func (s *Node) AppliedIndex() uint64 { return s.kv.AppliedIndex() }

// LeaderCommit is the highest commit index this node heard from a leader,
// 0 if none yet. Any leader's commit index, of any term, names entries that
// are committed for good, so it is a lower bound of the current leader's.
func (s *Node) LeaderCommit() uint64 { return s.leaderCommit.Load() }

// PeerTLS reports whether peer traffic is mutual TLS.
func (s *Node) PeerTLS() bool { return s.tr.TLS() }

// noteLeaderCommit remembers the commit index a leader announced in m, a
// message the core accepted. Called by the loop only.
func (s *Node) noteLeaderCommit(m raft.Message) {
	if (m.Type == raft.MsgApp || m.Type == raft.MsgHeartbeat) && m.Commit > s.leaderCommit.Load() {
		s.leaderCommit.Store(m.Commit)
	}
}

// Sessions is the number of client sessions in the state machine.
func (s *Node) Sessions() int { return s.kv.Sessions() }

// Metrics is the node's metrics (its own registry).
func (s *Node) Metrics() *metrics.Metrics { return s.met }

// proposals recycles proposals (and their channels). Only a proposal whose
// one result was received goes back: one abandoned at a deadline may still
// get its result later.
var proposals = sync.Pool{New: func() any { return &proposal{done: make(chan proposalResult, 1)} }}

// Propose proposes a command (kv.EncodeCommand) and waits until it applied
// here, or failed, or deadline fired. A deadline channel, not a context:
// the HTTP handler reuses one pooled timer for the whole request, where a
// context.WithTimeout costs allocations on every write.
//
// Errors: ErrBusy and ErrNotLeader mean not proposed; ErrLost means not
// applied; ErrTimeout, ErrStopping and ErrUnknownOutcome mean the outcome
// is unknown. A command the state machine refused comes back in
// kv.Result.Err with a nil error.
func (s *Node) Propose(data []byte, deadline <-chan time.Time) (kv.Result, error) {
	p := proposals.Get().(*proposal)
	p.data = data
	select {
	case s.propc <- p:
	case <-deadline:
		*p = proposal{done: p.done}
		proposals.Put(p)
		return kv.Result{}, ErrBusy
	}
	select {
	case r := <-p.done:
		*p = proposal{done: p.done} // its one result is in: nothing sends to it again
		proposals.Put(p)
		return r.res, r.err
	case <-deadline:
		return kv.Result{}, ErrTimeout
	}
}

// Read waits until a quorum confirmed this node still leads and the state
// machine applied every command committed when Read was called
// (linearizable reads, Raft thesis 6.4); then a Get sees them. Errors:
// ErrBusy, ErrNotLeader, ErrTimeout, ErrStopping.
func (s *Node) Read(deadline <-chan time.Time) error {
	req := &readRequest{done: make(chan error, 1)}
	select {
	case s.readc <- req:
	case <-deadline:
		return ErrBusy
	}
	select {
	case err := <-req.done:
		return err
	case <-deadline:
		return ErrTimeout
	}
}

// loop is the one goroutine that owns the Raft core, the storage and the
// state machine's writes.
func (s *Node) loop() error {
	ticker := s.cfg.NewTicker(s.cfg.Heartbeat)
	defer ticker.Stop()
	for {
		select {
		case <-s.stopc:
			s.failAll(ErrStopping)
			s.endStreams()
			return nil
		case <-ticker.Chan():
			s.core.Tick()
			s.expireLeases()
			s.tickStreams()
			if err := s.bootstrapTick(); err != nil {
				s.failAll(err)
				return err
			}
		case m := <-s.recvc:
			s.step(m)
		case p := <-s.propc:
			s.propose(p)
		case r := <-s.readc:
			s.read(r)
		case r := <-s.snapc:
			if err := s.finishSnapshot(r); err != nil {
				s.failAll(err)
				return err
			}
			if err := s.compact(); err != nil {
				s.failAll(err)
				return err
			}
		case id := <-s.lostc:
			s.onPeerLost(id)
		case id := <-s.campaignc:
			s.onCampaignTimer(id)
		case c := <-s.statc:
			c <- s.core.Status()
		case f := <-s.callc:
			f()
		}
		// Take whatever else is already waiting, so that one Ready (one
		// fsync, one message per peer) serves all of it.
	drain:
		for range 4096 {
			select {
			case m := <-s.recvc:
				s.step(m)
			case p := <-s.propc:
				s.propose(p)
			case r := <-s.readc:
				s.read(r)
			default:
				break drain
			}
		}
		s.turnRead = 0
		if err := s.handleReady(); err != nil {
			s.failAll(err)
			return err
		}
	}
}

func (s *Node) step(m raft.Message) {
	if s.debug {
		s.lg.Debug("recv", zap.Stringer("msg", m))
	}
	switch {
	case m.Type == snapstream.MsgChunk:
		s.onSnapChunk(m)
		return
	case m.Type == snapstream.MsgAck:
		s.onSnapAck(m)
		return
	case m.Type == raft.MsgSnap && (m.Snapshot == nil || m.Snapshot.Data == nil):
		// Snapshots arrive in chunks; a MsgSnap on the wire is from a
		// runtime that sends them whole, and then it has data.
		s.met.InvalidMessage()
		return
	}
	if m.Type == msgProbe || m.Type == msgProbeResp {
		if err := s.onProbe(m); err != nil {
			// Only the bootstrap's write fails: the storage is poisoned
			// and the loop stops at its next Ready.
			s.lg.Error("bootstrap failed", zap.Error(err))
		}
		return
	}
	err := s.core.Step(m)
	if err == nil {
		s.noteLeaderCommit(m)
		s.rtt.onReceive(&m)
	}
	if err != nil {
		// Every refused message is counted; the log gets at most one line a
		// second, since a broken or hostile peer can send thousands a second
		// and each line would cost more than the message.
		s.met.InvalidMessage()
		if suppressed, ok := s.badMsgLog.allow(time.Now()); ok {
			s.lg.Warn("dropped peer message", zap.Error(err), zap.Int("from", int(m.From)),
				zap.Stringer("type", m.Type), zap.Uint64("term", m.Term), zap.Int("suppressed_since_last_log", suppressed))
		}
	}
}

// rateLimitedLog lets one log line through per interval and counts the
// ones it held back. The zero value allows one a second.
type rateLimitedLog struct {
	interval   time.Duration // 0 means a second
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged at now, and how many were
// held back since the last one.
func (l *rateLimitedLog) allow(now time.Time) (suppressed int, ok bool) {
	interval := l.interval
	if interval == 0 {
		interval = time.Second
	}
	if !l.last.IsZero() && now.Sub(l.last) < interval {
		l.suppressed++
		return 0, false
	}
	suppressed, l.last, l.suppressed = l.suppressed, now, 0
	return suppressed, true
}

func (s *Node) propose(p *proposal) {
	if p.edit != nil {
		s.proposeMembership(p)
		return
	}
	idx, term, err := s.core.Propose(p.data)
	if err != nil {
		p.done <- proposalResult{err: ErrNotLeader}
		return
	}
	p.index, p.term = idx, term
	s.waiters[idx] = p
}

// read hands a read to the core, under the request ID of this loop turn's
// reads.
func (s *Node) read(r *readRequest) {
	if s.turnRead == 0 {
		s.nextReadID++
		if err := s.core.ReadIndex(s.nextReadID); err != nil {
			r.done <- ErrNotLeader
			return
		}
		s.turnRead = s.nextReadID
	}
	s.reads[s.turnRead] = append(s.reads[s.turnRead], r)
}

// handleReady runs the shared Ready handling (package node: persist, send,
// apply, advance) and then publishes the node's status.
func (s *Node) handleReady() error {
	if err := s.ready.HandleReady(); err != nil {
		return err
	}
	if s.readErr != nil {
		return fmt.Errorf("read the log back: %w", s.readErr)
	}
	s.dropStaged()
	if err := s.compact(); err != nil {
		return err
	}
	st := s.core.BasicStatus()
	s.status.Store(&st)
	s.met.ObserveStatus(st)
	s.met.SetPendingProposals(len(s.waiters))
	if s.publishConf() {
		s.syncPeers(s.Membership())
	}
	return nil
}

// publishConf publishes the configuration in force when it changed, and
// reports whether it did.
func (s *Node) publishConf() bool {
	conf, idx := s.core.Membership()
	if s.conf.Load() != nil && idx == s.confIndex {
		return false
	}
	c := conf.Clone()
	s.conf.Store(&c)
	s.confIndex = idx
	return true
}

// Membership is the configuration in force as the loop last published it
// (empty while the node waits to bootstrap or to be taken in).
func (s *Node) Membership() raft.Membership { return *s.conf.Load() }

// Incarnation is this node's folder's incarnation.
func (s *Node) Incarnation() raft.Incarnation { return s.inc }

// loopApp is the runtime as the Ready handling sees it (Application):
// the state machine and the requests waiting on it. Its methods run in the
// loop.
type loopApp struct{ s *Node }

func (a loopApp) SoftStateChanged(ss raft.SoftState) {
	s := a.s
	switch {
	case ss.Role == raft.RoleLeader && !s.lessor.leading:
		s.lessor.promote(time.Now(), s.kv.Leases())
	case ss.Role != raft.RoleLeader && s.lessor.leading:
		s.lessor.demote()
	}
	if ss.Role != raft.RoleLeader {
		s.endStreams()
		// Reads waiting for a quorum round will never get one.
		for id, reqs := range s.reads {
			for _, r := range reqs {
				r.done <- ErrNotLeader
			}
			delete(s.reads, id)
		}
	}
	s.lg.Info("role changed", zap.Stringer("role", ss.Role),
		zap.Uint64("term", s.core.BasicStatus().Term), zap.Int("leader", int(ss.Lead)))
}

// PrepareRestore lets a local snapshot still being written land first: it
// is older than the one received.
func (a loopApp) PrepareRestore() error { return a.s.waitSnapshot() }

func (a loopApp) Restore(snap *raft.Snapshot) error {
	s := a.s
	data := snap.Data
	if data == nil {
		data = s.takeStaged(snap) // received in chunks
	}
	if data == nil {
		saved, err := s.disk.LoadSnapshot()
		if err != nil {
			return err
		}
		if saved == nil || saved.Index != snap.Index || saved.Term != snap.Term {
			return fmt.Errorf("installed snapshot %d/t%d is not the newest saved one", snap.Index, snap.Term)
		}
		data = saved.Data
	}
	if err := s.kv.Restore(data); err != nil {
		return err
	}
	// The history has a gap now: watchers resume from their last index.
	s.hub.Reset(snap.Index)
	if s.lessor.leading {
		s.lessor.demote()
		s.lessor.promote(time.Now(), s.kv.Leases())
	}
	s.appliedTerm, s.snapIndex = snap.Term, snap.Index
	s.lastSnapBytes, s.logBytesSinceSnap = uint64(len(data)), 0
	if snap.Membership != nil {
		s.appliedConf = snap.Membership.Clone()
	}
	// Commands this node proposed as leader that the snapshot covers
	// are never applied here one by one: their outcome is unknown.
	for idx, w := range s.waiters {
		if idx <= snap.Index {
			w.done <- proposalResult{err: ErrUnknownOutcome}
			delete(s.waiters, idx)
		}
	}
	s.lg.Info("installed snapshot", zap.Uint64("index", snap.Index), zap.Uint64("term", snap.Term))
	s.met.SnapshotInstalled()
	s.met.SetStateBytes(s.lastSnapBytes)
	return nil
}

func (a loopApp) Apply(e raft.Entry) error {
	a.s.apply(e)
	a.s.logBytesSinceSnap += uint64(len(e.Data))
	return nil
}

func (a loopApp) ReadState(rs raft.ReadState) error {
	s := a.s
	reqs := s.reads[rs.RequestID]
	if reqs == nil {
		return nil // failed when the node lost leadership
	}
	delete(s.reads, rs.RequestID)
	s.confirmed = append(s.confirmed, confirmedRead{index: rs.Index, reqs: reqs})
	return nil
}

func (a loopApp) Advanced() error {
	a.s.serveReads()
	return a.s.maybeSnapshot()
}

// loopDisk is the storage as the Ready handling sees it: Save is timed for
// the fsync metrics.
type loopDisk struct {
	*storage.Storage
	met *metrics.Metrics
	s   *Node
}

// SaveSnapshot saves a snapshot received whole (with data), or installs
// the one received in chunks (without: snapstream.go).
func (d loopDisk) SaveSnapshot(snap raft.Snapshot) error {
	if snap.Data == nil {
		return d.s.installStaged(snap)
	}
	return d.Storage.SaveSnapshot(snap)
}

func (d loopDisk) Save(hs raft.HardState, entries []raft.Entry) error {
	start := time.Now()
	if err := d.Storage.Save(hs, entries); err != nil {
		return err
	}
	d.met.ObserveFsync(start, len(entries))
	return nil
}

// loopSender is the transport as the Ready handling sees it: every
// outgoing message is logged at debug level (RAFT_VERBOSE).
type loopSender struct{ s *Node }

func (l loopSender) Send(msgs []raft.Message) {
	for i := 0; i < len(msgs); i++ {
		if m := msgs[i]; m.Type == raft.MsgSnap && m.Snapshot != nil && m.Snapshot.Data == nil {
			// Streamed, not sent whole (snapstream.go).
			l.s.sendSnapshot(m)
			msgs = append(msgs[:i:i], msgs[i+1:]...)
			i--
		}
	}
	if l.s.debug {
		for _, m := range msgs {
			l.s.lg.Debug("send", zap.Stringer("msg", m))
		}
	}
	l.s.rtt.onSend(msgs)
	l.s.tr.Send(msgs)
}

func (s *Node) apply(e raft.Entry) {
	var res kv.Result
	switch e.Type {
	case raft.EntryNoop:
		s.kv.ApplyNoop(e.Index)
	case raft.EntryConfig:
		s.kv.ApplyNoop(e.Index)
		s.applyConfig(e)
	default:
		res = s.kv.Apply(e.Index, e.Data)
		if len(s.entryEvents) > 0 {
			s.hub.Publish(s.entryEvents)
			clear(s.entryEvents)
			s.entryEvents = s.entryEvents[:0]
		}
	}
	s.appliedTerm = e.Term
	if w := s.waiters[e.Index]; w != nil {
		delete(s.waiters, e.Index)
		if w.term == e.Term {
			w.done <- proposalResult{res: res}
		} else {
			w.done <- proposalResult{err: ErrLost}
		}
	}
}

// serveReads releases the reads whose read index has been applied.
func (s *Node) serveReads() {
	applied := s.kv.AppliedIndex()
	i := 0
	for ; i < len(s.confirmed) && s.confirmed[i].index <= applied; i++ {
		for _, r := range s.confirmed[i].reqs {
			r.done <- nil
		}
		s.confirmed[i] = confirmedRead{}
	}
	s.confirmed = s.confirmed[i:]
}

func (s *Node) failAll(err error) {
	for idx, w := range s.waiters {
		w.done <- proposalResult{err: err}
		delete(s.waiters, idx)
	}
	for id, reqs := range s.reads {
		for _, r := range reqs {
			r.done <- err
		}
		delete(s.reads, id)
	}
	for _, c := range s.confirmed {
		for _, r := range c.reqs {
			r.done <- err
		}
	}
	s.confirmed = nil
}

// snapshotLogFraction: a snapshot waits until the log applied since the
// last one is at least this fraction of the base snapshot's size, or
// deltaSnapshotLogBytes, whichever is smaller. A base costs time in
// proportion to the state, a delta (storage's delta files) in proportion to
// the keys changed since the previous snapshot; the node writes deltas and
// a new base only once the deltas add up to storage.DeltaMergeFraction of
// the base, so the bytes written per applied byte stay bounded whatever the
// size of the state, and the log held in memory between two snapshots stays
// near deltaSnapshotLogBytes.
const snapshotLogFraction = 4

// deltaSnapshotLogBytes caps the log applied between two snapshots (see
// snapshotLogFraction).
const deltaSnapshotLogBytes = 8 << 20

// catchUpMarginMinState is the base size from which the core keeps one
// snapshot interval of log as a catch-up margin (see finishSnapshot): from
// there on the interval is capped at deltaSnapshotLogBytes, a quarter of
// the state or less. A variable so that tests can lower it.
var catchUpMarginMinState uint64 = 4 * deltaSnapshotLogBytes

// maxLogBytesBetweenSnapshots starts a snapshot whatever the entry count
// (SnapshotEvery): few large entries (a bulk load writes 128 keys an entry)
// would otherwise pile up hundreds of megabytes of log for a restart to
// replay and a follower to be sent, and lose the catch-up margin (see
// finishSnapshot).
const maxLogBytesBetweenSnapshots = 2 * deltaSnapshotLogBytes

// maybeSnapshot starts a snapshot once SnapshotEvery entries and enough
// log bytes (snapshotLogFraction) were applied since the last one, or
// maxLogBytesBetweenSnapshots of log.
func (s *Node) maybeSnapshot() error {
	applied := s.kv.AppliedIndex()
	// Nodes apply the same log, so with the same threshold all of them
	// would write a snapshot at the same moment, and on a shared machine
	// their encoders would take the CPU from the leader all at once (put
	// p99 at 256 clients: 80 ms with snapshots, 52 ms without). Node i waits
	// i/(2n) longer, which keeps their snapshots apart.
	stagger := uint64(2*len(s.cfg.Peers)) + uint64(s.cfg.ID)
	n := uint64(2 * len(s.cfg.Peers))
	threshold := min(s.lastSnapBytes/snapshotLogFraction, deltaSnapshotLogBytes) * stagger / n
	enoughEntries := applied >= s.snapIndex+s.cfg.SnapshotEvery || s.logBytesSinceSnap >= maxLogBytesBetweenSnapshots*stagger/n
	if s.snapping || applied <= s.snapIndex || !enoughEntries || s.logBytesSinceSnap < threshold {
		return nil
	}
	s.startSnapshot(applied, false)
	return nil
}

type snapResult struct {
	index uint64
	keys  int
	bytes uint64 // the size of the state machine's encoding
	delta bool   // a delta, not a base
	took  time.Duration
	err   error
}

// startSnapshot freezes the state machine at applied (cheap: the map is
// copied, not its strings; for a delta only the changed keys are) and
// encodes and saves it in the background, so the loop keeps applying
// entries meanwhile. finishSnapshot completes it. It writes a delta on top
// of the stored chain unless base is set, there is no base yet, or the
// deltas already add up to storage.DeltaMergeFraction of the base.
func (s *Node) startSnapshot(applied uint64, base bool) {
	meta := raft.Snapshot{Index: applied, Term: s.appliedTerm}
	if !s.appliedConf.IsEmpty() {
		conf := s.appliedConf.Clone()
		meta.Membership = &conf
	}
	s.snapping = true
	baseIndex, baseBytes, deltaBytes := s.disk.SnapshotChain()
	chainEnd := s.disk.SnapshotIndex()
	if !base && baseIndex > 0 && float64(deltaBytes) < storage.DeltaMergeFraction*float64(baseBytes) {
		if d, ok := s.kv.FreezeDelta(); ok && d.From() == chainEnd {
			go func() {
				start := time.Now()
				err := s.disk.SaveSnapshotDelta(meta, d.From(), func(w *storage.DeltaWriter) error { return d.EncodeTo(w) })
				s.snapc <- snapResult{index: applied, keys: d.Len(), delta: true, took: time.Since(start), err: err}
			}()
			return
		}
	}
	frozen := s.kv.FreezeBase()
	go func() {
		start := time.Now()
		var size storage.CountingWriter
		err := s.disk.SaveSnapshotFrom(meta, func(w io.Writer) error {
			size.W = w
			return frozen.EncodeTo(&size)
		})
		s.snapc <- snapResult{index: applied, keys: frozen.Len(), bytes: uint64(size.N), took: time.Since(start), err: err}
	}()
}

func (s *Node) finishSnapshot(r snapResult) error {
	s.snapping = false
	if r.err != nil {
		return fmt.Errorf("save snapshot: %w", r.err)
	}
	if r.index <= s.snapIndex {
		return nil // a snapshot from the leader overtook it
	}
	// The core's log is compacted later, in compact: finishSnapshot also
	// runs inside a Ready (PrepareRestore, through waitSnapshot), and
	// raft.Ready forbids calling into the core between Ready and Advance:
	// Compact there would drop entries the Ready being handled still
	// refers to, and Advance would then account for a log that changed
	// under it.
	//
	// The core keeps the log back to the previous snapshot, not this one:
	// a follower restarted (or cut off) for about one snapshot interval then
	// catches up from the leader's log instead of being sent the whole
	// state. Snapshots are cheap now (deltas), hence frequent, so without
	// this margin almost every restart would cost a full snapshot transfer.
	// The margin is one interval of log, kept only when that interval was
	// small (large entries or a long interval are dropped as before), which
	// bounds the memory it costs to 2*deltaSnapshotLogBytes, and only for a
	// state large enough (catchUpMarginMinState) that sending it costs far
	// more than the margin; a small state is still sent whole, as before.
	keepTo := r.index
	if s.logBytesSinceSnap <= 2*deltaSnapshotLogBytes && s.lastSnapBytes >= catchUpMarginMinState {
		keepTo = s.snapIndex
	}
	s.compactTo = max(s.compactTo, keepTo)
	s.snapIndex = r.index
	if !r.delta {
		s.lastSnapBytes = r.bytes
	}
	s.logBytesSinceSnap = 0 // roughly: the entries applied while it was written are not counted
	s.met.SnapshotTaken()
	s.met.ObserveSnapshot(r.bytes, r.took)
	s.lg.Info("snapshot taken", zap.Uint64("index", r.index), zap.Int("keys", r.keys), zap.Bool("delta", r.delta),
		zap.Duration("took", r.took))
	return nil
}

// compact drops the core's log up to the local snapshot before the newest
// one that finished, outside any Ready (see finishSnapshot). A snapshot from the
// leader installed meanwhile already replaced the log beyond it; then
// Compact has nothing to do.
func (s *Node) compact() error {
	if s.compactTo == 0 {
		return nil
	}
	idx := s.compactTo
	s.compactTo = 0
	return s.core.Compact(idx)
}

// waitSnapshot finishes the snapshot in flight, if any.
func (s *Node) waitSnapshot() error {
	if !s.snapping {
		return nil
	}
	return s.finishSnapshot(<-s.snapc)
}

// finalSnapshot runs after the loop stopped: it leaves the node's state
// machine in statemachine.json for people and jq.
func (s *Node) finalSnapshot() error {
	if err := s.waitSnapshot(); err != nil {
		return err
	}
	applied := s.kv.AppliedIndex()
	// A base, so that snapshot.json holds the whole state after a clean
	// stop and the next start reads one file.
	if baseIndex, _, _ := s.disk.SnapshotChain(); applied > s.snapIndex || baseIndex < s.snapIndex {
		s.startSnapshot(applied, true)
		if err := s.waitSnapshot(); err != nil {
			return err
		}
	}
	data, err := s.kv.Snapshot()
	if err != nil {
		return err
	}
	return writeStateMachine(s.cfg.DataDir, raft.Snapshot{Index: applied, Term: s.appliedTerm, Data: data})
}

// StateMachineFile is the file in a node's folder that always holds its
// latest state machine: {"Index", "Term", "StateMachine": {"Contents": ...}}.
const StateMachineFile = "statemachine.json"

func writeStateMachine(dir string, snap raft.Snapshot) error {
	head := fmt.Appendf(nil, `{"Index":%d,"Term":%d,"StateMachine":`, snap.Index, snap.Term)
	return storage.WriteFileAtomic(filepath.Join(dir, StateMachineFile), head, snap.Data, []byte("}\n"))
}
