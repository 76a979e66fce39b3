package httpapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"raftkv/src/kv"
	"raftkv/src/metrics"
	"raftkv/src/node"
	"raftkv/src/raft"
	"raftkv/src/watch"
)

// Runtime is the node runtime as the HTTP API uses it (a *node.Node). The
// handlers never touch the Raft core: they hand a request to the runtime's
// loop and wait for its answer or a deadline.
type Runtime interface {
	// Start starts the runtime (peers, loop); Stop stops it and returns
	// its failure, if any. Failed delivers a failure of the running loop.
	Start() error
	Stop() error
	Failed() <-chan error
	// Propose proposes an encoded kv.Command and waits until it applied,
	// failed or deadline fired (see node.Propose for the errors).
	Propose(data []byte, deadline <-chan time.Time) (kv.Result, error)
	// Read waits until a read of the local state machine is linearizable.
	Read(deadline <-chan time.Time) error
	// Status is the latest basic status; Get and AppliedIndex read the
	// local state machine.
	Status() *raft.Status
	Get(key string) (string, bool)
	KVReader // key metadata and listings (kvapi.go)
	AppliedIndex() uint64
	// LeaderCommit is the highest commit index heard from a leader (0 if
	// none yet): a lower bound of the leader's commit index (/readyz).
	LeaderCommit() uint64
	// PeerTLS reports whether peer traffic is mutual TLS (/v1/status).
	PeerTLS() bool
	// Membership is the configuration in force, Incarnation this node's
	// (/v1/members).
	Membership() raft.Membership
	Incarnation() raft.Incarnation
	// ChangeMembership proposes edit's change of the configuration and
	// waits until it applied (see node.ChangeMembership for the errors).
	ChangeMembership(edit func(raft.Membership) (raft.Membership, error), deadline <-chan time.Time) (uint64, error)
	Metrics() *metrics.Metrics
	// Backup and TransferLeadership: see node.Node (GET /v1/snapshot, POST
	// /v1/leader/transfer, and the handover before a clean stop).
	Backup(deadline <-chan time.Time) (node.Backup, error)
	TransferLeadership(to raft.ID, deadline <-chan time.Time) (raft.ID, error)
	// Watch is the node's history of changes (watch.go); Leases and
	// LeaseKeys read the local state machine's leases.
	Watch() *watch.Hub
	Leases() []kv.LeaseInfo
	LeaseKeys(id uint64) ([]string, bool)
}

// Peer is one node of the cluster as the HTTP API sees it.
type Peer struct {
	Name     string
	HTTPAddr string
}

// Config is the HTTP side of a node; main builds it from src/config.
type Config struct {
	Self   raft.ID
	Peers  []Peer // every node in hostfile order, this one included
	Listen string // e.g. ":8000"
	// RequestTimeout bounds how long a client request waits for its
	// command to commit (then 504) or its read to be confirmed (then 503).
	RequestTimeout time.Duration
	// MaxClientConns bounds the client HTTP connections served at once;
	// beyond it the node stops accepting until one closes (limitListener).
	// 0 means DefaultMaxClientConns.
	MaxClientConns int
	// The HTTP server's timeouts; 0 means derived from RequestTimeout (see
	// httpTimeouts). Tests set short ones.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	Logger                                             *zap.Logger
	// Auth: HTTPS and tokens (auth.go); the zero value is plaintext, open.
	Auth Auth
	// HandoverTimeout bounds the leadership handover of a clean stop
	// (handOver); 0 means DefaultHandoverTimeout.
	HandoverTimeout time.Duration
}

// DefaultHandoverTimeout bounds a handover when none is configured: it takes a round trip to catch the
// target up and one election round; the core gives up after an election
// timeout (1 s by default).
const DefaultHandoverTimeout = 3 * time.Second

// httpTimeouts fills in the HTTP server's timeouts left 0. Without them, a
// client that opened a connection and sent nothing, or a body slowly,
// held it (and a file descriptor) forever.
//
//   - Read (headers and body): RequestTimeout + 25 s, 30 s by default: a
//     1 MiB value still arrives over a link of 35 KB/s.
//   - Write: counted by net/http from the end of the request's headers, so
//     it covers reading the body, the request (RequestTimeout; a forward to
//     the leader takes RequestTimeout + 1 s) and writing the reply: Read +
//     RequestTimeout + 5 s, 40 s by default.
//   - Idle: a keep-alive connection between requests closes after 2
//     minutes (Go's and etcd's clients keep theirs for 90 s, so they
//     close first).
//   - Headers: at most 5 s (or Read, if shorter) from the connection's
//     start, or from the end of the previous request.
func (c *Config) httpTimeouts() (read, write, idle, header time.Duration) {
	read, write, idle = c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout
	if read <= 0 {
		read = c.RequestTimeout + 25*time.Second
	}
	if write <= 0 {
		write = read + c.RequestTimeout + 5*time.Second
	}
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	return read, write, idle, min(5*time.Second, read)
}

func (c *Config) name() string { return c.Peers[c.Self].Name }

// Server is a node's HTTP API in front of its runtime.
type Server struct {
	cfg   Config
	lg    *zap.Logger
	rt    Runtime
	met   *metrics.Metrics // the runtime's; nil-safe
	http  *http.Server
	httpL *limitListener
	fwd   *http.Client
	fresh freshConns // shutdown.go
	// watchers counts watches and blocking reads; closing ends them when
	// the node stops (stopWatches).
	watchers    watcherSlots
	closing     context.Context
	stopWatches context.CancelFunc
}

// New prepares the HTTP API of rt; Start or Run serve it.
func New(cfg Config, rt Runtime) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.MaxClientConns <= 0 {
		cfg.MaxClientConns = DefaultMaxClientConns
	}
	if cfg.HandoverTimeout <= 0 {
		cfg.HandoverTimeout = DefaultHandoverTimeout
	}
	lg := cfg.Logger.With(zap.String("node", cfg.name()))
	s := &Server{
		cfg: cfg, lg: lg, rt: rt, met: rt.Metrics(),
	}
	s.closing, s.stopWatches = context.WithCancel(context.Background())
	s.fwd = newPeerClient(&cfg, s.nameAtHTTP)
	s.met.WatchReady(func() bool { ok, _ := s.readiness().ready(); return ok })
	read, write, idle, header := cfg.httpTimeouts()
	s.http = &http.Server{
		Handler:     s.withAuth(s.routes()),
		ReadTimeout: read, WriteTimeout: write, IdleTimeout: idle, ReadHeaderTimeout: header,
		// net/http logs a failed TLS handshake or an Accept error here; the
		// node's logger has them instead of the standard library's.
		ErrorLog:  zap.NewStdLog(lg.Named("http")),
		ConnState: s.fresh.track,
	}
	s.http.RegisterOnShutdown(s.fresh.closeAll)
	return s
}

// Run serves until ctx ends or the runtime fails (Start, then Wait).
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	return s.Wait(ctx)
}

// Start starts the runtime, then listens and serves HTTP. On an error
// nothing runs.
func (s *Server) Start() error {
	if err := s.rt.Start(); err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.rt.Stop()
		return fmt.Errorf("listen for HTTP on %s: %w", s.cfg.Listen, err)
	}
	s.httpL = newLimitListener(l, s.cfg.MaxClientConns, s.met)
	if s.cfg.Auth.TLS != nil {
		go s.http.Serve(tls.NewListener(guardListener{s.httpL}, serverTLS(s.cfg.Auth.TLS)))
	} else {
		go s.http.Serve(s.httpL)
	}
	s.lg.Info("serving", zap.String("http", l.Addr().String()), zap.Bool("https", s.cfg.Auth.TLS != nil),
		zap.Bool("tokens", s.cfg.Auth.Tokens != nil), zap.Int("max_client_conns", s.cfg.MaxClientConns))
	return nil
}

// Wait serves until ctx ends or the runtime fails, then shuts down
// cleanly: it stops taking requests, then stops the runtime (which writes
// a final snapshot and closes its storage). It returns the failure, if
// any.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		s.lg.Info("shutting down")
		s.handOver()
	case err := <-s.rt.Failed():
		s.lg.Error("node failed; stopping", zap.Error(err))
	}
	s.stopWatches() // long-lived streams would hold Shutdown up
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.http.Shutdown(shutCtx)
	cancel()
	return s.rt.Stop()
}
