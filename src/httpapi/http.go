package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"raftkv/src/api"
	"raftkv/src/dashboard"
	"raftkv/src/kv"
	"raftkv/src/node"
	"raftkv/src/raft"
)

const (
	kvPrefix = "/v1/kv/"
	// forwardedHeader marks a request a follower passed to the leader, so it
	// is never passed on twice.
	forwardedHeader = "Raft-Forwarded-By"
	maxValueBytes   = 1 << 20
)

// NodeStatus is the JSON of GET /v1/status and of an entry of /v1/cluster
// (CONTRACT.md), declared in api.
type NodeStatus = api.ClusterNode

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/status", s.get(s.handleStatus))
	mux.HandleFunc("/v1/cluster", s.get(s.handleCluster))
	mux.HandleFunc("/v1/members", s.handleMembersRoot)
	mux.HandleFunc("/v1/members/", s.handleMember)
	mux.HandleFunc("/healthz", s.get(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.HandleFunc("/readyz", s.get(s.handleReadyz))
	mux.HandleFunc("/v1/snapshot", s.get(s.handleSnapshot))
	mux.HandleFunc("/v1/leader/transfer", s.handleTransfer)
	mux.HandleFunc("/v1/txn", s.handleTxn)
	mux.HandleFunc("/v1/lease", s.handleLeaseRoot)
	mux.HandleFunc("/v1/lease/", s.handleLease)
	// The endpoints below check their query themselves (or, through
	// get, take none).
	mux.HandleFunc("/metrics", s.get(s.handleMetrics))
	mux.HandleFunc("/v1/metrics-summary", onlyGet(s.handleMetricsSummary))
	dash := s.get(dashboard.Handler().ServeHTTP)
	mux.Handle("/{$}", dash)
	mux.Handle("/ui/", dash)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such route: %s %s", r.Method, r.URL.Path))
	})
	// Header values are shared slices, set straight into the map: the
	// canonical names need no canonicalizing and the slices no allocating
	// on every request (net/http only reads them).
	nodeHeader := []string{s.cfg.name()}
	leaderHeaders := make([][]string, len(s.cfg.Peers)+1)
	for i, p := range s.cfg.Peers {
		leaderHeaders[i] = []string{p.Name}
	}
	leaderHeaders[len(s.cfg.Peers)] = []string{""}
	return s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.rt.Status()
		h := w.Header()
		h["Raft-Node"] = nodeHeader
		lead := len(s.cfg.Peers)
		if st.Lead != raft.None && int(st.Lead) < len(s.cfg.Peers) {
			lead = int(st.Lead)
		}
		if lead == len(s.cfg.Peers) && st.Lead != raft.None {
			// A leader outside the hostfile (outside.go).
			h["Raft-Leader"] = []string{s.leaderName(st)}
		} else {
			h["Raft-Leader"] = leaderHeaders[lead]
		}
		// Keys may hold "/", "." or "//": route them before ServeMux would
		// clean the path and redirect.
		if strings.HasPrefix(r.URL.EscapedPath(), kvPrefix) {
			s.handleKV(w, r)
			return
		}
		if strings.HasPrefix(r.URL.EscapedPath(), watchPrefix) {
			s.handleWatch(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

// onlyGet serves h for GET and HEAD requests, and answers others with a
// JSON 405 (ServeMux's method patterns would answer in plain text).
func onlyGet(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		h(w, r)
	}
}

// get serves h for GET and HEAD requests without a query string.
func (s *Server) get(h http.HandlerFunc) http.HandlerFunc {
	return onlyGet(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			if err := noQuery(r.URL.RawQuery, "GET "+r.URL.Path); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		h(w, r)
	})
}

func (s *Server) leaderName(st *raft.Status) string {
	if st.Lead == raft.None {
		return ""
	}
	p, _ := s.peerOf(st.Lead)
	return p.Name
}

var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeJSONBytes sends a reply already encoded (the hot paths build theirs
// by hand: a put's {"index":N}, a get's {"key":..,"value":..}).
func writeJSONBytes(w http.ResponseWriter, code int, b []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	w.Write(b)
}

// replyBufs recycles the buffers of hand-encoded replies.
var replyBufs = sync.Pool{New: func() any { return new([]byte) }}

// timers recycles request timers: a context.WithTimeout per request costs
// several allocations (and a registration with the parent context); a
// reused timer costs none. Since Go 1.23 Stop and Reset leave no stale
// tick in the channel.
var timers sync.Pool

func startTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func stopTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) handleKV(w http.ResponseWriter, r *http.Request) {
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), kvPrefix))
	if err != nil {
		writeError(w, http.StatusBadRequest, "key is not a valid escaped path: "+err.Error())
		return
	}
	if key == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		s.handleGet(w, r, key) // GET /v1/kv/?prefix lists every key
		return
	}
	if err := kv.ValidateKey(key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.handleGet(w, r, key)
	case http.MethodPut:
		op := kv.OpPut
		q := [...]queryParam{{name: "op"}, {name: "cas"}, {name: "lease"}}
		if err := parseQuery(r.URL.RawQuery, q[:], "PUT /v1/kv/{key}"); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		switch o := q[0]; {
		case !o.given || o.value == "put":
		case o.value == "append":
			op = kv.OpAppend
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"op\" is %q: want put or append", o.value))
			return
		}
		cas, err := parseCAS(q[1], op)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		var lease uint64
		if l := q[2]; l.given {
			if lease, err = strconv.ParseUint(l.value, 10, 64); err != nil || lease == 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"lease\" is %.40q: want the id POST /v1/lease returned", l.value))
				return
			}
			if op != kv.OpPut {
				writeError(w, http.StatusBadRequest, `query parameter "lease" works with put, not append (an append keeps the key's lease)`)
				return
			}
		}
		body, err := readBody(w, r)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, http.StatusRequestEntityTooLarge, "value exceeds 1 MiB")
			} else {
				writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			}
			return
		}
		// The body is this request's own buffer and nothing writes to it:
		// the command can share its bytes instead of copying them (the
		// encoded entry is a copy).
		s.write(w, r, kv.Command{Op: op, Key: key, Value: unsafe.String(unsafe.SliceData(body), len(body)), CAS: cas, Lease: lease}, body)
	case http.MethodDelete:
		s.handleDelete(w, r, key)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	}
}

func (s *Server) serveValue(w http.ResponseWriter, key string) {
	v, m, ok, applied := s.rt.Entry(key)
	var ib [20]byte
	// The applied index the answer reflects: on a stale read, this node's.
	w.Header()["Raft-Index"] = []string{string(strconv.AppendUint(ib[:0], applied, 10))}
	if ok {
		bp := replyBufs.Get().(*[]byte)
		b := append((*bp)[:0], `{"key":`...)
		b = kv.AppendJSONString(b, key)
		b = append(b, `,"value":`...)
		b = kv.AppendJSONString(b, v)
		b = appendMetaJSON(b, m)
		b = append(b, "}\n"...)
		writeJSONBytes(w, http.StatusOK, b)
		*bp = b
		replyBufs.Put(bp)
		return
	}
	writeError(w, http.StatusNotFound, "key not found")
}

// readBody reads a put's value: into a buffer of the declared length when
// there is one (io.ReadAll would start at 512 bytes and grow), refusing
// more than maxValueBytes either way.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= maxValueBytes {
		// net/http already stops the body at its Content-Length.
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
}

// clientSession reads the exactly-once headers. Both are absent (no
// session) or both present once: Client-Id of 1 to kv.MaxClientIDBytes
// bytes of valid UTF-8, Request-Seq a decimal integer of 1 to 2^64-1 (0
// would mean no session in the log). The error names the header.
func clientSession(r *http.Request) (string, uint64, error) {
	// Incoming header names are canonical: index the map directly.
	ids, seqs := r.Header["Client-Id"], r.Header["Request-Seq"]
	switch {
	case len(ids) == 0 && len(seqs) == 0:
		return "", 0, nil
	case len(ids) > 1:
		return "", 0, errors.New("header Client-Id is given more than once")
	case len(seqs) > 1:
		return "", 0, errors.New("header Request-Seq is given more than once")
	case len(ids) == 0:
		return "", 0, errors.New("header Request-Seq needs a Client-Id header")
	}
	id := ids[0]
	if err := kv.ValidateClientID(id); err != nil {
		// The message never repeats the id: it may be huge or not text.
		return "", 0, fmt.Errorf("header Client-Id: %w", err)
	}
	if len(seqs) == 0 {
		return "", 0, errors.New("header Client-Id needs a Request-Seq header")
	}
	seq, err := strconv.ParseUint(seqs[0], 10, 64)
	if err != nil || seq == 0 {
		return "", 0, fmt.Errorf("header Request-Seq %.40q is not an integer from 1 to 18446744073709551615", seqs[0])
	}
	return id, seq, nil
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, cmd kv.Command, body []byte) {
	if err := kv.ValidateValue(cmd.Value); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, kv.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err.Error())
		return
	}
	id, seq, err := clientSession(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cmd.ClientID, cmd.Seq = id, seq
	if s.forwardIfFollower(w, r, body) {
		return
	}
	start := s.met.ProposalStarted()
	timer := startTimer(s.cfg.RequestTimeout)
	defer stopTimer(timer)
	res, err := s.rt.Propose(kv.EncodeCommand(cmd), timer.C)
	if err != nil {
		s.met.ProposalFailed(failReason(err))
	}
	switch {
	case errors.Is(err, node.ErrBusy):
		writeError(w, http.StatusServiceUnavailable, "node too busy to take the command; it was not proposed")
	case errors.Is(err, node.ErrTimeout):
		writeError(w, http.StatusGatewayTimeout, "the command was proposed but not known to be committed in time; its outcome is unknown (retry with the same Request-Seq)")
	case errors.Is(err, node.ErrNotLeader):
		if !s.forwardIfFollower(w, r, body) {
			writeError(w, http.StatusServiceUnavailable, "no leader; the command was not proposed")
		}
	case errors.Is(err, node.ErrLost):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		writeError(w, http.StatusGatewayTimeout, err.Error()+"; the command's outcome is unknown")
	case errors.Is(res.Err, kv.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, res.Err.Error())
	case res.Err == kv.ErrCASFailed:
		writeConflict(w, cmd, res)
	case res.Err == kv.ErrLeaseNotFound:
		writeError(w, http.StatusNotFound, res.Err.Error())
	case res.Err != nil:
		writeError(w, http.StatusBadRequest, res.Err.Error())
	case res.Txn != nil || cmd.Prefix || cmd.Op == kv.OpLeaseRevoke:
		s.met.ObserveCommit(start)
		writeWriteResult(w, cmd, res)
	case res.Lease != nil:
		s.met.ObserveCommit(start)
		writeJSON(w, http.StatusOK, leaseBody(*res.Lease, res.Index, nil))
	default:
		s.met.ObserveCommit(start)
		var b [40]byte
		writeJSONBytes(w, http.StatusOK, append(strconv.AppendUint(append(b[:0], `{"index":`...), res.Index, 10), "}\n"...))
	}
}

func (s *Server) linearizableGet(w http.ResponseWriter, r *http.Request, key string) {
	if s.confirmRead(w, r) {
		s.serveValue(w, key)
	}
}

// forwardIfFollower passes the request to the leader when this node is not
// it, and reports whether it answered the request.
func (s *Server) forwardIfFollower(w http.ResponseWriter, r *http.Request, body []byte) bool {
	st := s.rt.Status()
	if st.Role == raft.RoleLeader {
		return false
	}
	if st.Lead == raft.None || r.Header.Get(forwardedHeader) != "" {
		writeError(w, http.StatusServiceUnavailable, "no leader known")
		return true
	}
	leader, ok := s.peerOf(st.Lead)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the leader, node %d, has no HTTP address here", st.Lead))
		return true
	}
	target := &url.URL{Scheme: s.peerScheme(), Host: leader.HTTPAddr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout+time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target.String(), rd)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return true
	}
	for _, h := range []string{"Client-Id", "Request-Seq", "Content-Type"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(forwardedHeader, s.cfg.name())
	// The follower's own credentials (its certificate) carry the client's
	// authenticated role; the client's token stays here (auth.go).
	if role := requestRole(r.Context()); role != api.RoleNone {
		req.Header.Set(forwardedRoleHeader, role.String())
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		if r.Method == http.MethodGet {
			writeError(w, http.StatusServiceUnavailable, "leader "+leader.Name+" unreachable: "+err.Error())
		} else {
			writeError(w, http.StatusGatewayTimeout, "forwarding to leader "+leader.Name+" failed; the outcome is unknown: "+err.Error())
		}
		return true
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Raft-Node", "Raft-Leader", "Retry-After", "Raft-Index"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	return true
}

func (s *Server) nodeStatus(st *raft.Status) NodeStatus {
	return NodeStatus{Status: api.Status{
		Name: s.cfg.name(), ID: int(s.cfg.Self), Role: st.Role.String(), Term: st.Term,
		Leader: s.leaderName(st), CommitIndex: st.Commit, AppliedIndex: s.rt.AppliedIndex(),
		LastLogIndex: st.LastIndex, SnapshotIndex: st.SnapshotIndex, PeerTLS: s.rt.PeerTLS(),
		ClientTLS: s.cfg.Auth.TLS != nil, Tokens: s.cfg.Auth.Tokens != nil,
		Incarnation: s.rt.Incarnation().String(), Suffrage: s.selfSuffrage(),
	}}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.nodeStatus(s.rt.Status()))
}

// handleCluster asks every other node for its status, briefly, in parallel.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	ids, peers := s.allPeers()
	out := make([]NodeStatus, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		if ids[i] == s.cfg.Self {
			out[i] = s.nodeStatus(s.rt.Status())
			yes := true
			out[i].Reachable = &yes
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.peerStatus(r.Context(), int(ids[i]), p)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

func (s *Server) peerStatus(ctx context.Context, id int, p Peer) NodeStatus {
	var st NodeStatus
	if err := s.getPeerJSON(ctx, p, "/v1/status", &st); err != nil {
		no := false
		return NodeStatus{Status: api.Status{Name: p.Name, ID: id}, Reachable: &no, Error: err.Error()}
	}
	yes := true
	st.Reachable = &yes
	return st
}

// getPeerJSON asks another node's HTTP API for path, briefly, and decodes
// its JSON answer into v.
func (s *Server) getPeerJSON(ctx context.Context, p Peer, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.peerScheme()+"://"+p.HTTPAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("bad answer to %s: %w", path, err)
	}
	return nil
}
