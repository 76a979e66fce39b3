package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"raftkv/src/raft"
)

const (
	// DefaultMaxFrame is the largest frame accepted when Config.MaxFrame is 0.
	// Snapshots travel in chunks (package snapstream), far below it; only a
	// whole snapshot from a runtime that predates them must fit in one.
	DefaultMaxFrame = 256 << 20
	// DefaultQueueSize is the per-peer outbound queue length when
	// Config.QueueSize is 0.
	DefaultQueueSize = 4096

	maxClusterIDLen = 512
)

var (
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("transport: already started")
)

// Config configures a Transport. Self, SelfName, ClusterID and Peers must be
// the same view of the hostfile on every node (names and order); addresses
// may differ from node to node. Members added to the cluster later are
// made known with AddPeer.
type Config struct {
	Self      raft.ID
	SelfName  string
	ClusterID string // derived by the caller from the hostfile's names in order
	// ListenAddr is where peers dial us, e.g. ":7000" or "127.0.0.1:0".
	ListenAddr string
	// Peers is every other node of the hostfile (AddPeer adds more).
	// Invariant: Self is not a key.
	Peers map[raft.ID]Peer
	// MaxFrame is the largest frame accepted, in bytes (0: DefaultMaxFrame).
	// A longer frame from a peer drops that connection; a longer outbound
	// message is dropped (and counted) instead of being sent.
	MaxFrame int
	// QueueSize bounds each peer's outbound queue, in messages
	// (0: DefaultQueueSize). Send drops and counts what does not fit.
	QueueSize int
	Logger    *zap.Logger
	// OnPeerLost, if set, is called when an inbound stream from a peer ends
	// by EOF or connection reset (the peer closed or crashed), not when this
	// transport closes it. It runs on a reader goroutine and must not block.
	OnPeerLost func(from raft.ID)
	// TLS, if set, makes every connection mutual TLS 1.3 (see tls.go): it
	// must hold this node's certificate and the cluster CA in RootCAs
	// (certs.LoadPeer builds it). nil: plaintext, for experiments only.
	TLS *tls.Config
}

// Peer is how to reach another node.
type Peer struct {
	Name string
	// Addr returns the peer's "host:port". It is called again on every
	// (re)connect, and the host is resolved again by the dial, so a peer
	// that moved (new container IP, new port) is found again.
	Addr func() string
}

// PeerStats are counters for one peer, since New.
type PeerStats struct {
	Name string
	// Connected: our outbound stream to the peer is up (handshake accepted).
	Connected bool
	// InboundConnected: the peer's stream to us is up.
	InboundConnected bool
	MessagesSent     uint64 // flushed to the outbound connection
	BytesSent        uint64 // including the 4-byte frame headers
	MessagesReceived uint64 // delivered
	BytesReceived    uint64 // including the 4-byte frame headers
	// Dropped counts outbound messages not sent: queue full, peer
	// unreachable (the queue is emptied when a dial fails), write failed,
	// or message larger than MaxFrame.
	Dropped uint64
	// Reconnects counts outbound connections established after the first.
	Reconnects   uint64
	DialFailures uint64
	// Rejected counts inbound streams from this peer closed for a protocol
	// violation: oversized frame, undecodable payload, forged From, wrong To.
	Rejected uint64
}

// Transport carries raft.Messages between the nodes of one cluster. It is safe
// for concurrent use. See the package documentation for the protocol.
type Transport struct {
	cfg     Config
	lg      *zap.Logger
	deliver func(raft.Message)
	// peers is copy-on-write: readers load it without a lock; AddPeer
	// (holding mu) stores a new map. A peer, once in it, stays.
	peers atomic.Pointer[map[raft.ID]*peer]

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	ln      net.Listener
	started bool
	closed  bool
	inbound map[raft.ID]*inConn   // the current inbound stream per peer
	pending map[net.Conn]struct{} // accepted, handshake not finished

	rejected atomic.Uint64 // inbound connections refused or dropped
	refusals refusals      // by reason, with a rate-limited log

	serverTLS *tls.Config // nil: plaintext

	// Tunables; tests shorten them before Start.
	backoffMin       time.Duration
	backoffMax       time.Duration
	dialTimeout      time.Duration
	handshakeTimeout time.Duration
	writeTimeout     time.Duration
}

// peer is the outbound side for one peer plus its counters.
type peer struct {
	id   raft.ID
	name string
	addr func() string
	lg   *zap.Logger
	tls  *tls.Config // the dialer's: ServerName is the peer's name; nil: plaintext

	signal chan struct{} // capacity 1: "the queue went from empty to non-empty"

	mu    sync.Mutex
	queue []raft.Message // Invariant: len(queue) <= qcap
	spare []raft.Message // a drained queue kept for reuse
	qcap  int
	full  bool     // the last Send to p found the queue full (for logging)
	conn  net.Conn // current outbound connection, for Close to unblock writes

	connected   atomic.Bool
	inConnected atomic.Bool
	msgsSent    atomic.Uint64
	bytesSent   atomic.Uint64
	msgsRecv    atomic.Uint64
	bytesRecv   atomic.Uint64
	dropped     atomic.Uint64
	reconnects  atomic.Uint64
	dialFails   atomic.Uint64
	rejectedIn  atomic.Uint64
}

// New validates cfg and returns a Transport that is not yet listening or
// dialing; call Start. deliver is called for every message received, from
// the per-connection reader goroutines (so possibly concurrently); it must be
// cheap, e.g. hand the message to a channel. The message's byte slices are
// owned by the callee.
func New(cfg Config, deliver func(raft.Message)) (*Transport, error) {
	var errs []error
	if deliver == nil {
		errs = append(errs, errors.New("deliver func is nil"))
	}
	if cfg.Self < 0 {
		errs = append(errs, fmt.Errorf("Config.Self %d is negative", cfg.Self))
	}
	if cfg.SelfName == "" || len(cfg.SelfName) > maxNameLen {
		errs = append(errs, fmt.Errorf("SelfName %q must be 1 to %d bytes", cfg.SelfName, maxNameLen))
	}
	if cfg.ClusterID == "" || len(cfg.ClusterID) > maxClusterIDLen {
		errs = append(errs, fmt.Errorf("ClusterID must be 1 to %d bytes, got %d", maxClusterIDLen, len(cfg.ClusterID)))
	}
	if cfg.MaxFrame < 0 || int64(cfg.MaxFrame) > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("MaxFrame %d out of range [0, %d]", cfg.MaxFrame, uint32(math.MaxUint32)))
	}
	if cfg.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("QueueSize %d is negative", cfg.QueueSize))
	}
	names := map[string]raft.ID{cfg.SelfName: cfg.Self}
	for id, p := range cfg.Peers {
		switch {
		case id == cfg.Self:
			errs = append(errs, fmt.Errorf("Config.Peers[%d] is Self", id))
		case id < 0:
			errs = append(errs, fmt.Errorf("Config.Peers[%d]: negative ID", id))
		}
		if p.Name == "" || len(p.Name) > maxNameLen {
			errs = append(errs, fmt.Errorf("Peers[%d].Name %q must be 1 to %d bytes", id, p.Name, maxNameLen))
		} else if other, dup := names[p.Name]; dup {
			errs = append(errs, fmt.Errorf("Peers[%d].Name %q is also node %d", id, p.Name, other))
		}
		names[p.Name] = id
		if p.Addr == nil {
			errs = append(errs, fmt.Errorf("Peers[%d].Addr is nil", id))
		}
	}
	if cfg.TLS != nil && (len(cfg.TLS.Certificates) == 0 || cfg.TLS.RootCAs == nil) {
		errs = append(errs, errors.New("TLS needs this node's certificate (Certificates) and the cluster CA (RootCAs)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("transport config: %w", err)
	}

	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.With(zap.String("component", "transport"))
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:        cfg,
		lg:         lg,
		deliver:    deliver,
		ctx:        ctx,
		cancel:     cancel,
		inbound:    make(map[raft.ID]*inConn),
		pending:    make(map[net.Conn]struct{}),
		backoffMin: 50 * time.Millisecond,
		// A restarted peer must be reachable again quickly: fast failover
		// needs a quorum of connected nodes, and a refused dial costs little.
		backoffMax:       250 * time.Millisecond,
		dialTimeout:      2 * time.Second,
		handshakeTimeout: 5 * time.Second,
		writeTimeout:     10 * time.Second,
	}
	t.refusals.init(lg)
	if cfg.TLS != nil {
		t.serverTLS = serverTLS(cfg.TLS)
	}
	peers := make(map[raft.ID]*peer, len(cfg.Peers))
	for id, p := range cfg.Peers {
		peers[id] = t.newPeer(id, p)
	}
	t.peers.Store(&peers)
	return t, nil
}

// newPeer makes the outbound side of one peer.
func (t *Transport) newPeer(id raft.ID, p Peer) *peer {
	pr := &peer{
		id:     id,
		name:   p.Name,
		addr:   p.Addr,
		lg:     t.lg.With(zap.String("peer", p.Name), zap.Int("peer_id", int(id))),
		signal: make(chan struct{}, 1),
		qcap:   t.cfg.QueueSize,
	}
	if t.cfg.TLS != nil {
		pr.tls = clientTLS(t.cfg.TLS, p.Name)
	}
	return pr
}

// peerMap is the current set of peers; it must not be modified.
func (t *Transport) peerMap() map[raft.ID]*peer { return *t.peers.Load() }

// ErrPeerConflict is wrapped by AddPeer's error when the ID or the name is
// already another peer's (or this node's).
var ErrPeerConflict = errors.New("transport: peer conflicts with a known one")

// AddPeer makes a node known after New: a member added to the cluster's
// configuration after this node started (one outside its hostfile). From
// then on Send reaches it (dialing p.Addr(), with TLS expecting a
// certificate for p.Name) and its inbound connections are accepted under
// the same rules as the others': the hello must name id and p.Name
// together, and with TLS the certificate must name p.Name. It is safe
// while the transport runs; after Start the peer's dialer starts at once.
//
// A peer stays known until Close: there is no removal (a configuration in
// force may be truncated and come back; a removed member is no more able
// to disturb the cluster than a hostfile node that was removed). AddPeer
// of a known ID under the same name does nothing (Addr is called on every
// dial, so the caller's func can follow a move); under another name, or
// of a name another ID holds, it fails with ErrPeerConflict.
func (t *Transport) AddPeer(id raft.ID, p Peer) error {
	switch {
	case id == t.cfg.Self || id < 0:
		return fmt.Errorf("%w: ID %d is this node's or negative", ErrPeerConflict, id)
	case p.Name == "" || len(p.Name) > maxNameLen:
		return fmt.Errorf("transport: peer %d: name %q must be 1 to %d bytes", id, p.Name, maxNameLen)
	case p.Addr == nil:
		return fmt.Errorf("transport: peer %d (%s): Addr is nil", id, p.Name)
	case p.Name == t.cfg.SelfName:
		return fmt.Errorf("%w: %q is this node's name", ErrPeerConflict, p.Name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	old := t.peerMap()
	if known := old[id]; known != nil {
		if known.name == p.Name {
			return nil
		}
		return fmt.Errorf("%w: ID %d is %q here, not %q (restart this node to rename it)", ErrPeerConflict, id, known.name, p.Name)
	}
	for oid, known := range old {
		if known.name == p.Name {
			return fmt.Errorf("%w: %q is already node %d", ErrPeerConflict, p.Name, oid)
		}
	}
	next := make(map[raft.ID]*peer, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	pr := t.newPeer(id, p)
	next[id] = pr
	t.peers.Store(&next)
	pr.lg.Info("peer added")
	if t.started {
		t.wg.Add(1)
		go t.runPeer(pr)
	}
	return nil
}

// Start listens on ListenAddr and starts dialing every peer. It returns the
// listen error, if any; dial failures are retried forever in the background.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if t.started {
		return ErrStarted
	}
	lc := net.ListenConfig{KeepAlive: 15 * time.Second}
	ln, err := lc.Listen(t.ctx, "tcp", t.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("transport: listen on %q: %w", t.cfg.ListenAddr, err)
	}
	t.ln = ln
	t.started = true
	peers := t.peerMap()
	t.lg.Info("listening", zap.Stringer("addr", ln.Addr()), zap.Int("peers", len(peers)), zap.Bool("tls", t.serverTLS != nil))
	t.wg.Add(1 + len(peers))
	go t.acceptLoop(ln)
	for _, p := range peers {
		go t.runPeer(p)
	}
	return nil
}

// Addr returns the address the transport listens on (nil before Start).
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln == nil {
		return nil
	}
	return t.ln.Addr()
}

// Send queues msgs for their recipients (m.To) and returns at once: it never
// blocks on the network. A message that does not fit its peer's queue is
// dropped and counted (Raft tolerates loss and retransmits); so is every
// message after Close, and (with an error log) a message whose From is not
// Config.Self. Messages to self or to an unknown ID are dropped with a debug
// log. Send keeps the messages (and their Entries) until written; the
// caller must not modify them afterwards.
func (t *Transport) Send(msgs []raft.Message) {
	peers := t.peerMap()
	for i := range msgs {
		m := &msgs[i]
		p := peers[m.To]
		if p == nil {
			if ce := t.lg.Check(zapcore.DebugLevel, "dropped message to self or unknown node"); ce != nil {
				ce.Write(zap.Stringer("msg", m))
			}
			continue
		}
		if m.From != t.cfg.Self {
			// A caller bug; the receiver would take it for a forgery and
			// drop the whole stream, so stop it here.
			p.dropped.Add(1)
			p.lg.Error("dropped message whose From is not this node", zap.Stringer("msg", m))
			continue
		}
		if t.ctx.Err() != nil {
			p.dropped.Add(1)
			continue
		}
		p.mu.Lock()
		n := len(p.queue)
		if n >= p.qcap {
			first := !p.full
			p.full = true
			p.mu.Unlock()
			p.dropped.Add(1)
			if first {
				// Once per episode, not once per message.
				p.lg.Debug("send queue full, dropping messages", zap.Int("queue_size", p.qcap), zap.Stringer("msg", m))
			}
			continue
		}
		p.full = false
		p.queue = append(p.queue, *m)
		p.mu.Unlock()
		if n == 0 {
			// The writer takes the whole queue after each wake-up, so only
			// the append that makes it non-empty needs to wake it.
			select {
			case p.signal <- struct{}{}:
			default:
			}
		}
	}
}

// Stats returns a snapshot of every peer's counters.
func (t *Transport) Stats() map[raft.ID]PeerStats {
	peers := t.peerMap()
	out := make(map[raft.ID]PeerStats, len(peers))
	for id, p := range peers {
		out[id] = PeerStats{
			Name:             p.name,
			Connected:        p.connected.Load(),
			InboundConnected: p.inConnected.Load(),
			MessagesSent:     p.msgsSent.Load(),
			BytesSent:        p.bytesSent.Load(),
			MessagesReceived: p.msgsRecv.Load(),
			BytesReceived:    p.bytesRecv.Load(),
			Dropped:          p.dropped.Load(),
			Reconnects:       p.reconnects.Load(),
			DialFailures:     p.dialFails.Load(),
			Rejected:         p.rejectedIn.Load(),
		}
	}
	return out
}

// Rejected returns how many inbound connections were refused at the
// handshake (wrong cluster, unknown or self sender, garbage, a TLS
// refusal) or dropped later for a protocol violation.
func (t *Transport) Rejected() uint64 { return t.rejected.Load() }

// Refusals returns how many inbound connections were refused at the TLS
// or raftkv handshake, by reason (the Reason* constants).
func (t *Transport) Refusals() map[string]uint64 { return t.refusals.counts() }

// TLS reports whether peer connections use mutual TLS.
func (t *Transport) TLS() bool { return t.serverTLS != nil }

// Close stops listening, closes every connection, drops whatever is queued
// and waits for all of the transport's goroutines to end. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ln := t.ln
	var conns []net.Conn
	for _, ic := range t.inbound {
		ic.closedByUs.Store(true)
		conns = append(conns, ic.conn)
	}
	for c := range t.pending {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	// closed is set: AddPeer adds no more, so this map is final.
	peers := t.peerMap()

	t.cancel()
	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	for _, p := range peers {
		p.mu.Lock()
		if p.conn != nil {
			_ = p.conn.Close()
		}
		p.mu.Unlock()
	}
	t.wg.Wait()
	for _, p := range peers {
		if n := p.discard(); n > 0 {
			p.dropped.Add(uint64(n))
		}
	}
	t.lg.Info("closed")
	return err
}

// wait pauses for d or until Close; it reports whether to carry on.
func (t *Transport) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}
