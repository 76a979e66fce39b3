package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"raftkv/src/api"
)

// Defaults for Config.
const (
	DefaultRequestTimeout = 2 * time.Second
	DefaultBackoffBase    = 20 * time.Millisecond
	DefaultBackoffMax     = time.Second
)

// maxResponseBytes bounds a response body: a value is at most 1 MiB and a
// listing's keys and values at most api.MaxListBytes, and JSON escaping can
// at most sextuple them.
const maxResponseBytes = 6*api.MaxListBytes + 1<<20

var (
	// ErrNotFound: the key does not exist (404 to a get).
	ErrNotFound = errors.New("client: key not found")
	// ErrLeaseNotFound: the lease does not exist (never granted, revoked
	// or expired): 404 to a keep-alive, a revoke or a put with ?lease=.
	ErrLeaseNotFound = errors.New("client: lease not found (revoked or expired)")
	// ErrUnavailable: no node gave a usable answer before the context ended
	// (no leader, no quorum, nodes down), and no attempt of a write can have
	// been applied.
	ErrUnavailable = errors.New("client: cluster unavailable")
	// ErrUnknownOutcome: a write may or may not have been applied. Some
	// attempt reached a node that may have proposed it (504, timeout, or a
	// connection broken after the request was sent), and no later attempt
	// got a definite answer before the context ended.
	ErrUnknownOutcome = errors.New("client: outcome unknown, the command may or may not have been applied")
)

// BadRequestError is a final refusal of a request: 400 or 413 (bad key, value
// too large, ...), or any other 4xx but a get's 404. Status 0 means the
// client refused the request before sending it.
type BadRequestError struct {
	Status int
	Msg    string
}

func (e *BadRequestError) Error() string {
	if e.Status == 0 {
		return "client: bad request: " + e.Msg
	}
	return fmt.Sprintf("client: bad request (%d %s): %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// StatusError is a retryable HTTP error answer (503, 504, other 5xx); it is
// what ErrUnavailable and ErrUnknownOutcome wrap when the last attempt got one.
type StatusError struct {
	Status int
	Node   string // Raft-Node of the answer, may be empty
	Msg    string
}

func (e *StatusError) Error() string {
	node := e.Node
	if node == "" {
		node = "node"
	}
	return fmt.Sprintf("%s answered %d %s: %s", node, e.Status, http.StatusText(e.Status), e.Msg)
}

// Config configures a Client. Only Endpoints is required.
type Config struct {
	// Endpoints are the nodes' HTTP addresses, host:port, in hostfile order.
	Endpoints []string
	// Names are the nodes' names in the same order (optional). Without them,
	// the client learns names from the Raft-Node header of each answer.
	Names []string
	// ClientID is the exactly-once session ID. Default: 16 random bytes in
	// hex. Never reuse one across Clients (see the package comment).
	ClientID string
	// FirstSeq is the Request-Seq of the first write (default 1); a caller
	// that reuses a ClientID must start above every sequence number sent
	// with it before.
	FirstSeq uint64
	// HTTPClient is used for every request. Default: keep-alive connections,
	// several idle ones per node. Its Timeout should be 0: RequestTimeout
	// and the context bound each attempt.
	HTTPClient *http.Client
	// TLS, when set, makes the client talk HTTPS, trusting its RootCAs
	// (the cluster CA) and presenting its Certificates if any; it is used
	// by the default HTTPClient only.
	TLS *tls.Config
	// Token is sent as "Authorization: Bearer Token" on every request
	// ("" for none). Only with TLS: a token must not cross a network in
	// clear.
	Token string
	// RequestTimeout bounds one attempt against one node (default 2s).
	RequestTimeout time.Duration
	// Logger gets retries at Warn and each attempt at Debug (default: none).
	Logger *zap.Logger
	// BackoffBase and BackoffMax shape the pause before a retry: the n-th
	// retry waits a random duration in [d/2, d], d = min(BackoffBase*2^(n-1),
	// BackoffMax). Defaults 20ms and 1s.
	BackoffBase, BackoffMax time.Duration
}

// Result describes a command's answer.
type Result struct {
	// Index is the log index at which a write was applied (first
	// application, for a retried one); 0 for reads.
	Index uint64
	// Node answered (Raft-Node); Leader is the leader it named (Raft-Leader),
	// may be empty.
	Node, Leader string
	// Seq is the Request-Seq the write carried on every attempt; it is set
	// even when the write fails, so a caller can record it. 0 for reads.
	Seq uint64
	// Attempts is the number of requests sent for this command.
	Attempts int
	// RaftIndex is the answer's Raft-Index header (the applied index a read
	// reflects: the ?index= of a blocking read to wait past it); 0 if none.
	RaftIndex uint64
}

// NodeStatus is one node's GET /v1/status, or an unreachable node's entry.
type NodeStatus struct {
	api.Status
	// Reachable is false for a node that did not answer; Error says why.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Endpoint is the address the status was asked from (Status only).
	Endpoint string `json:"endpoint,omitempty"`
	// Raw is the node's JSON as received, with any fields beyond these.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the raw JSON and defaults Reachable to true: only
// /v1/cluster's entries for silent nodes carry "reachable": false.
func (s *NodeStatus) UnmarshalJSON(b []byte) error {
	type plain NodeStatus
	aux := struct {
		*plain
		Reachable *bool `json:"reachable"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.Reachable = aux.Reachable == nil || *aux.Reachable
	s.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// Client talks to a raftkv cluster. It is safe for concurrent use; writes on
// one Client are serialized (see the package comment).
type Client struct {
	cfg   Config
	http  *http.Client
	lg    *zap.Logger
	names bool // names came from Config.Names and are not learned
	// scheme is https with Config.TLS; authz the Authorization header
	// value of Config.Token (nil: none).
	scheme string
	authz  []string

	bg          sync.WaitGroup // background name discovery
	bgCtx       context.Context
	bgCancel    context.CancelFunc // called by Close
	discovering atomic.Bool

	// writeSlot holds a token while a write is in flight: one write per
	// Client, so sequence numbers reach the server in order.
	writeSlot chan struct{}
	// nextSeq is the next write's Request-Seq. Only the holder of writeSlot
	// touches it.
	nextSeq uint64

	mu sync.Mutex
	// leader is the index of the endpoint believed to be the leader, or -1.
	leader int
	// preferred is where a request starts when no leader is known: the last
	// endpoint that answered.
	preferred int
	// byName maps a node name to its endpoint index.
	byName map[string]int
}

// New checks cfg, fills in defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("client: no endpoints")
	}
	seen := make(map[string]bool)
	for _, e := range cfg.Endpoints {
		if _, _, err := net.SplitHostPort(e); err != nil {
			return nil, fmt.Errorf("client: endpoint %q: want host:port: %w", e, err)
		}
		if seen[e] {
			return nil, fmt.Errorf("client: endpoint %q listed twice", e)
		}
		seen[e] = true
	}
	if len(cfg.Names) != 0 && len(cfg.Names) != len(cfg.Endpoints) {
		return nil, fmt.Errorf("client: %d names for %d endpoints", len(cfg.Names), len(cfg.Endpoints))
	}
	if cfg.ClientID == "" {
		var b [16]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("client: random client ID: %w", err)
		}
		cfg.ClientID = hex.EncodeToString(b[:])
	}
	if cfg.FirstSeq == 0 {
		cfg.FirstSeq = 1
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = cfg.BackoffBase
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		tr.MaxIdleConns = 16 * len(cfg.Endpoints)
		tr.IdleConnTimeout = 90 * time.Second
		tr.DialContext = (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSClientConfig = cfg.TLS
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	if cfg.Token != "" && cfg.TLS == nil {
		return nil, errors.New("client: a token needs TLS (Config.TLS): it must not cross the network in clear")
	}
	c := &Client{
		cfg:       cfg,
		http:      cfg.HTTPClient,
		lg:        cfg.Logger.With(zap.String("client_id", cfg.ClientID)),
		names:     len(cfg.Names) != 0,
		scheme:    "http",
		writeSlot: make(chan struct{}, 1),
		nextSeq:   cfg.FirstSeq,
		leader:    -1,
		byName:    make(map[string]int),
	}
	if cfg.TLS != nil {
		c.scheme = "https"
	}
	if cfg.Token != "" {
		c.authz = []string{"Bearer " + cfg.Token}
	}
	for i, n := range cfg.Names {
		if _, dup := c.byName[n]; dup {
			return nil, fmt.Errorf("client: node name %q listed twice", n)
		}
		c.byName[n] = i
	}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	return c, nil
}

// ClientID returns the Client-Id the client's writes carry.
func (c *Client) ClientID() string { return c.cfg.ClientID }

// Put sets key to value.
func (c *Client) Put(ctx context.Context, key, value string) (Result, error) {
	return c.write(ctx, http.MethodPut, key, "", value)
}

// Append appends value to key's value, creating the key if absent.
func (c *Client) Append(ctx context.Context, key, value string) (Result, error) {
	return c.write(ctx, http.MethodPut, key, "op=append", value)
}

// Delete removes key; deleting an absent key is not an error.
func (c *Client) Delete(ctx context.Context, key string) (Result, error) {
	return c.write(ctx, http.MethodDelete, key, "", "")
}

// GetOption changes how Get reads.
type GetOption func(*getOptions)

type getOptions struct{ stale bool }

// Do runs op on key: the one entry point for a caller that holds an
// api.Op (a data-file line, a CLI command). value is ignored by get and
// delete; read is what a get read (ErrNotFound when the key does not
// exist); opts apply to a get only.
func (c *Client) Do(ctx context.Context, op api.Op, key, value string, opts ...GetOption) (read string, res Result, err error) {
	switch op {
	case api.OpPut:
		res, err = c.Put(ctx, key, value)
	case api.OpAppend:
		res, err = c.Append(ctx, key, value)
	case api.OpDelete:
		res, err = c.Delete(ctx, key)
	case api.OpGet:
		read, res, err = c.Get(ctx, key, opts...)
	default:
		err = &BadRequestError{Msg: fmt.Sprintf("unknown operation %q", op)}
	}
	return read, res, err
}

// WithStale reads the answering node's local copy (?consistency=stale): it
// may miss recent writes but needs no quorum.
func WithStale() GetOption { return func(o *getOptions) { o.stale = true } }

// Get reads key. It returns ErrNotFound when the key does not exist.
func (c *Client) Get(ctx context.Context, key string, opts ...GetOption) (string, Result, error) {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if key == "" {
		return "", Result{}, &BadRequestError{Msg: "key is empty"}
	}
	query := ""
	if o.stale {
		query = "consistency=stale"
	}
	var body api.ValueBody
	res, err := c.do(ctx, request{method: http.MethodGet, path: kvPath(key), query: query}, &body)
	if err != nil {
		return "", res, err
	}
	return body.Value, res, nil
}

// Status asks one endpoint (host:port, need not be configured) for its
// status, once, without retries.
func (c *Client) Status(ctx context.Context, endpoint string) (NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var st NodeStatus
	a := c.attempt(ctx, endpoint, request{method: http.MethodGet, path: "/v1/status"}, &st)
	if a.err != nil {
		return NodeStatus{Status: api.Status{Name: c.nameOf(endpoint)}, Endpoint: endpoint, Error: a.err.Error()}, a.err
	}
	name := st.Name
	if name == "" {
		name = a.node
	}
	c.noteName(endpoint, name)
	st.Endpoint = endpoint
	return st, nil
}

// Statuses asks every configured endpoint for its status, in parallel, and
// returns them in endpoint order; a node that did not answer has Reachable
// false and Error set.
func (c *Client) Statuses(ctx context.Context) []NodeStatus {
	out := make([]NodeStatus, len(c.cfg.Endpoints))
	var wg sync.WaitGroup
	for i, e := range c.cfg.Endpoints {
		wg.Go(func() {
			st, err := c.Status(ctx, e)
			if err != nil {
				st.Reachable = false
			}
			out[i] = st
		})
	}
	wg.Wait()
	return out
}

// Cluster returns one node's view of all nodes (GET /v1/cluster), retrying
// like a read.
func (c *Client) Cluster(ctx context.Context) ([]NodeStatus, error) {
	var body struct {
		Nodes []NodeStatus `json:"nodes"`
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/cluster"}, &body); err != nil {
		return nil, err
	}
	return body.Nodes, nil
}

// Leader returns the name and endpoint of the node the client believes is
// the leader, or empty strings.
func (c *Client) Leader() (name, endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 {
		return "", ""
	}
	for n, i := range c.byName {
		if i == c.leader {
			name = n
		}
	}
	return name, c.cfg.Endpoints[c.leader]
}

func kvPath(key string) string { return "/v1/kv/" + url.PathEscape(key) }

// write runs one logical write command: it waits for the write slot, takes
// a fresh sequence number and sends it on every attempt.
func (c *Client) write(ctx context.Context, method, key, query, value string) (Result, error) {
	if key == "" {
		return Result{}, &BadRequestError{Msg: "key is empty"}
	}
	var body api.WriteBody
	res, err := c.writeReq(ctx, request{method: method, path: kvPath(key), query: query, body: value}, &body)
	if err != nil {
		return res, err
	}
	res.Index = body.Index
	return res, nil
}

// writeReq runs r as one logical write: it waits for the write slot, takes
// a fresh sequence number and sends it on every attempt; out gets the
// answer's JSON.
func (c *Client) writeReq(ctx context.Context, r request, out any) (Result, error) {
	select {
	case c.writeSlot <- struct{}{}:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: waiting for this client's previous write: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-c.writeSlot }()
	r.seq = c.nextSeq
	c.nextSeq++
	res, err := c.do(ctx, r, out)
	res.Seq = r.seq
	return res, err
}

// request is one logical request; seq != 0 marks a write.
type request struct {
	method, path, query, body string
	seq                       uint64
	// timeout bounds one attempt instead of Config.RequestTimeout (a
	// blocking read waits longer).
	timeout time.Duration
}

func (r request) isWrite() bool { return r.seq != 0 }

// attemptResult is what one attempt against one node got.
type attemptResult struct {
	status       int // 0: no HTTP answer
	node, leader string
	err          error
	final        bool // a definite answer: success or an error not worth retrying
	maybeApplied bool // a write may have been proposed by this attempt
	raftIndex    uint64
}

// do sends r until a definite answer or the end of ctx. See the package
// comment for the retry policy and the errors.
func (c *Client) do(ctx context.Context, r request, out any) (Result, error) {
	var (
		res          Result
		maybeApplied bool
		last         attemptResult
		stop         error // why the loop ended without a final answer
		target       = c.first()
		// unreachable holds the endpoints that gave no HTTP answer during
		// this command: a leader named by another node is not tried again
		// if it is one (a follower names the old leader until its election
		// timeout), the next endpoint is.
		unreachable = make(map[int]bool)
	)
	for n := 0; ; n++ {
		if n > 0 {
			if err := c.backoff(ctx, n); err != nil {
				stop = err
				break
			}
		}
		endpoint := c.cfg.Endpoints[target]
		res.Attempts++
		timeout := c.cfg.RequestTimeout
		if r.timeout > 0 {
			timeout = r.timeout
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		a := c.attempt(actx, endpoint, r, out)
		cancel()
		maybeApplied = maybeApplied || (r.isWrite() && a.maybeApplied)
		if !a.final && ctx.Err() != nil && last.err != nil {
			// Cut short by the caller's context: the previous attempt's
			// error says more about the cluster.
			break
		}
		last = a
		res.Node, res.Leader, res.RaftIndex = last.node, last.leader, last.raftIndex
		if last.status != 0 && !c.noteLeader(last.leader) {
			c.discoverNames()
		}
		if last.final {
			if last.err == nil {
				c.setPreferred(target)
			}
			return res, last.err
		}
		c.lg.Warn("request failed, will retry another node",
			zap.String("method", r.method), zap.String("path", r.path), zap.Uint64("seq", r.seq),
			zap.String("endpoint", endpoint), zap.Int("attempt", res.Attempts), zap.Error(last.err))
		if last.status == 0 {
			unreachable[target] = true
		}
		target = c.next(target, last, unreachable)
		if ctx.Err() != nil {
			break
		}
	}
	cause := last.err
	if cause == nil {
		cause = errors.New("no attempt was made")
	}
	kind := ErrUnavailable
	if maybeApplied {
		kind = ErrUnknownOutcome
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		stop = ctxErr
	}
	if stop != nil && !errors.Is(cause, stop) {
		return res, fmt.Errorf("%w after %d attempts: %w (last: %w)", kind, res.Attempts, stop, cause)
	}
	return res, fmt.Errorf("%w after %d attempts: %w", kind, res.Attempts, cause)
}

// attempt sends r once to endpoint and classifies the answer.
func (c *Client) attempt(ctx context.Context, endpoint string, r request, out any) attemptResult {
	u := url.URL{Scheme: c.scheme, Host: endpoint}
	full := u.String() + r.path
	if r.query != "" {
		full += "?" + r.query
	}
	var body io.Reader
	if r.method != http.MethodGet && r.method != http.MethodDelete {
		body = bytes.NewReader([]byte(r.body))
	}
	// sent becomes true once the whole request is on the wire: from then on
	// a node may have proposed a write even if no answer comes back.
	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			sent.Store(true)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), r.method, full, body)
	if err != nil {
		return attemptResult{err: &BadRequestError{Msg: err.Error()}, final: true}
	}
	if r.isWrite() {
		req.Header.Set("Client-Id", c.cfg.ClientID)
		req.Header.Set("Request-Seq", strconv.FormatUint(r.seq, 10))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.authz != nil {
		req.Header["Authorization"] = c.authz
	}
	c.lg.Debug("sending", zap.String("method", r.method), zap.String("url", full), zap.Uint64("seq", r.seq))
	resp, err := c.http.Do(req)
	if err != nil {
		return attemptResult{err: err, maybeApplied: sent.Load()}
	}
	defer resp.Body.Close()
	a := attemptResult{status: resp.StatusCode, node: resp.Header.Get("Raft-Node"), leader: resp.Header.Get("Raft-Leader")}
	a.raftIndex, _ = strconv.ParseUint(resp.Header.Get("Raft-Index"), 10, 64)
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		// The status may say 200, but without the body we do not know the
		// index; a retry with the same sequence number will tell.
		a.err, a.maybeApplied = fmt.Errorf("read answer of %s: %w", endpoint, err), true
		return a
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				a.err, a.maybeApplied = fmt.Errorf("decode answer of %s: %w", endpoint, err), true
				return a
			}
		}
		a.final = true
	case resp.StatusCode == http.StatusNotFound && (strings.HasPrefix(r.path, "/v1/lease") || r.method == http.MethodPut):
		a.err, a.final = ErrLeaseNotFound, true
	case resp.StatusCode == http.StatusNotFound && r.method == http.MethodGet && r.path != "/v1/status" && r.path != "/v1/cluster":
		a.err, a.final = ErrNotFound, true
	case resp.StatusCode == http.StatusConflict:
		a.err, a.final = conflictError(data), true
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		a.err, a.final = &BadRequestError{Status: resp.StatusCode, Msg: errorMessage(data)}, true
	default:
		// 503: not proposed (CONTRACT.md). 504 and anything else: may have
		// been proposed.
		a.err = &StatusError{Status: resp.StatusCode, Node: a.node, Msg: errorMessage(data)}
		a.maybeApplied = resp.StatusCode != http.StatusServiceUnavailable
	}
	return a
}

// errorMessage extracts {"error": msg} from an error answer.
func errorMessage(data []byte) string {
	var e api.ErrorBody
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	const max = 200
	if len(data) > max {
		data = data[:max]
	}
	return string(bytes.TrimSpace(data))
}

// backoff waits before the n-th retry (n >= 1), or until ctx ends.
func (c *Client) backoff(ctx context.Context, n int) error {
	d := c.cfg.BackoffBase
	for i := 1; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	// Jitter in [d/2, d], so clients that failed together retry apart.
	d = d/2 + rand.N(d/2+1)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*d {
		// Do not idle into the deadline, nor leave the attempt after the
		// sleep less time than the sleep: give up now, saying why.
		return fmt.Errorf("next retry would be after the deadline: %w", context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noteLeader records the leader an answer named and reports whether its
// endpoint is known (an empty name is known: no leader).
func (c *Client) noteLeader(leader string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if leader == "" {
		c.leader = -1
		return true
	}
	li, ok := c.byName[leader]
	if ok {
		c.leader = li
	} else {
		c.leader = -1
	}
	return ok
}

// noteName records that endpoint serves the node called name. Only a
// node's own /v1/status says so reliably: a follower that forwards a
// request passes on the leader's Raft-Node header.
func (c *Client) noteName(endpoint, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.indexOf(endpoint)
	if c.names || name == "" || idx < 0 {
		return
	}
	for n, i := range c.byName {
		if (i == idx) != (n == name) {
			delete(c.byName, n) // a stale mapping of this name or endpoint
		}
	}
	c.byName[name] = idx
}

// discoverNames learns the nodes' names from their /v1/status, in the
// background, one round at a time; requests meanwhile go to any node (a
// follower forwards them).
func (c *Client) discoverNames() {
	if c.names || !c.discovering.CompareAndSwap(false, true) {
		return
	}
	c.bg.Go(func() {
		defer c.discovering.Store(false)
		ctx, cancel := context.WithTimeout(c.bgCtx, c.cfg.RequestTimeout)
		defer cancel()
		c.Statuses(ctx)
	})
}

// Close waits for background work and closes idle connections. The Client
// must not be used afterwards.
func (c *Client) Close() {
	c.bgCancel()
	c.bg.Wait()
	c.http.CloseIdleConnections()
}

// first picks the endpoint for a command's first attempt.
func (c *Client) first() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader >= 0 {
		return c.leader
	}
	return c.preferred
}

// next picks the endpoint after a failed attempt at prev: the leader that
// answer named, if it is another node that has not failed to answer during
// this command, else the next endpoint in order that has not, else simply
// the next endpoint.
func (c *Client) next(prev int, a attemptResult, unreachable map[int]bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.status == 0 && c.leader == prev {
		c.leader = -1 // it did not answer at all
	}
	if c.leader >= 0 && c.leader != prev && !unreachable[c.leader] {
		return c.leader
	}
	n := len(c.cfg.Endpoints)
	for i := 1; i < n; i++ {
		if j := (prev + i) % n; !unreachable[j] {
			return j
		}
	}
	// Every other endpoint failed to answer: start over in order.
	clear(unreachable)
	return (prev + 1) % n
}

func (c *Client) setPreferred(i int) {
	c.mu.Lock()
	c.preferred = i
	c.mu.Unlock()
}

// indexOf returns endpoint's index, or -1. Callers hold mu or need not.
func (c *Client) indexOf(endpoint string) int {
	for i, e := range c.cfg.Endpoints {
		if e == endpoint {
			return i
		}
	}
	return -1
}

// nameOf returns the known name of endpoint, or "".
func (c *Client) nameOf(endpoint string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	idx := c.indexOf(endpoint)
	for n, i := range c.byName {
		if i == idx && idx >= 0 {
			return n
		}
	}
	return ""
}
