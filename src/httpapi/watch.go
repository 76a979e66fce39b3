package httpapi

// Watches, blocking reads and leases (issue 16; CONTRACT.md "Second
// wave"): GET /v1/watch/{prefix}?since=N streams changes as JSON lines;
// GET /v1/kv/{key}?index=N&wait=D blocks until a change past N; POST
// /v1/lease, PUT /v1/lease/{id}/keepalive, DELETE /v1/lease/{id}, GET
// /v1/lease[/{id}].
//
// A watch is served by the node it reaches, from that node's history
// (package watch), never forwarded: its changes are the committed ones in
// log order, so a client that loses the node resumes on another with
// ?since= the last index it saw. Blocking reads wait on the same history,
// then read as any GET does (linearizable by default).

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
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"raftkv/src/api"
	"raftkv/src/kv"
	"raftkv/src/watch"
)

const (
	watchPrefix = "/v1/watch/"
	// MaxWatchers bounds the watch streams and blocking reads a node
	// serves at once; beyond it, 503.
	MaxWatchers = 10000
	// DefaultBlockingWait is a blocking read's wait without ?wait=;
	// MaxBlockingWait caps ?wait= (Consul's are 5 and 10 minutes).
	DefaultBlockingWait = 5 * time.Minute
	MaxBlockingWait     = 10 * time.Minute
	// watchWriteTimeout: a watcher that does not take a batch of lines
	// within it is cut off (its connection closes; it resumes by index).
	watchWriteTimeout = 10 * time.Second
	// watchProgressEvery: an idle stream gets a "progress" line with the
	// node's applied index this often, so a client knows it is alive.
	watchProgressEvery = 15 * time.Second
)

// watcherSlots counts the open watch streams and blocking reads of every
// Server of the process (one per node in production).
type watcherSlots struct{ n atomic.Int64 }

func (c *watcherSlots) take() bool {
	if c.n.Add(1) > MaxWatchers {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *watcherSlots) give() { c.n.Add(-1) }

// handleWatch serves GET /v1/watch/{prefix}?since=N.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
		return
	}
	prefix, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), watchPrefix))
	if err != nil {
		writeError(w, http.StatusBadRequest, "prefix is not a valid escaped path: "+err.Error())
		return
	}
	if prefix != "" {
		if err := kv.ValidateKey(prefix); err != nil {
			writeError(w, http.StatusBadRequest, "prefix: "+err.Error())
			return
		}
	}
	q := [...]queryParam{{name: "since"}}
	if err := parseQuery(r.URL.RawQuery, q[:], "GET /v1/watch/{prefix}"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	since := s.rt.AppliedIndex() // by default, the changes from now on
	if q[0].given {
		if since, err = strconv.ParseUint(q[0].value, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"since\" is %.40q: want a log index (changes above it are streamed)", q[0].value))
			return
		}
	}
	if !s.watchers.take() {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("this node serves %d watches already", MaxWatchers))
		return
	}
	defer s.watchers.give()
	wt, err := s.rt.Watch().Subscribe(prefix, false, since)
	if err != nil {
		writeCompacted(w, err)
		return
	}
	defer wt.Close()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Raft-Index", strconv.FormatUint(since, 10))
	w.WriteHeader(http.StatusOK)
	send := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
		// Between batches no deadline: an idle watch is not a stuck one.
		rc.SetWriteDeadline(time.Time{})
		return true
	}
	if !send(nil) {
		return
	}
	var b []byte
	for {
		nctx, ncancel := context.WithTimeout(ctx, watchProgressEvery)
		evs, err := wt.Next(nctx)
		ncancel()
		b = b[:0]
		switch {
		case err == nil:
			for _, e := range evs {
				b = appendEventJSON(b, api.WatchEvent{Key: e.Key, Type: e.Type, Index: e.Index, Value: e.Value, Lease: e.Lease})
			}
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			b = appendEventJSON(b, api.WatchEvent{Type: "progress", Index: wt.Done()})
		default:
			reason := err.Error()
			if ctx.Err() != nil {
				if r.Context().Err() != nil {
					return // the client left
				}
				reason = "the node is stopping"
			}
			s.lg.Debug("watch cancelled", zap.String("prefix", prefix), zap.String("reason", reason))
			send(appendEventJSON(b, api.WatchEvent{Type: api.EventCancelled, Index: wt.Done(), Reason: reason}))
			return
		}
		if !send(b) {
			return
		}
	}
}

func appendEventJSON(b []byte, e api.WatchEvent) []byte {
	j, err := json.Marshal(e)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return append(append(b, j...), '\n')
}

// writeCompacted answers 410 for a compacted index.
func writeCompacted(w http.ResponseWriter, err error) {
	var ce *watch.CompactedError
	if errors.As(err, &ce) {
		writeJSON(w, http.StatusGone, api.CompactedBody{
			Error:       fmt.Sprintf("index %d is compacted on this node: its history starts after index %d (resume with since >= %d, or read afresh)", ce.Since, ce.Oldest, ce.Oldest),
			OldestIndex: ce.Oldest,
		})
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// blockingWait waits, for GET ?index=N&wait=D, until a change of key (or
// of the keys under it, for a listing) above index N, or D; it reports
// false if it answered the request itself. A request a follower forwarded
// waited there already and does not wait again.
func (s *Server) blockingWait(w http.ResponseWriter, r *http.Request, key string, prefix bool, index, wait queryParam) bool {
	if !index.given {
		if wait.given {
			writeError(w, http.StatusBadRequest, `query parameter "wait" needs "index" (a blocking read waits for a change past it)`)
			return false
		}
		return true
	}
	n, err := strconv.ParseUint(index.value, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"index\" is %.40q: want the Raft-Index of a previous answer", index.value))
		return false
	}
	d := DefaultBlockingWait
	if wait.given {
		if d, err = time.ParseDuration(wait.value); err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"wait\" is %.40q: want a positive Go duration such as 30s", wait.value))
			return false
		}
		d = min(d, MaxBlockingWait)
	}
	if r.Header.Get(forwardedHeader) != "" {
		return true
	}
	if !s.watchers.take() {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("this node serves %d watches already", MaxWatchers))
		return false
	}
	defer s.watchers.give()
	wt, err := s.rt.Watch().Subscribe(key, !prefix, n)
	if err != nil {
		// The history cannot tell whether something changed: answer now,
		// as Consul does for an index it cannot compare.
		return true
	}
	defer wt.Close()
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + s.cfg.RequestTimeout + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), d)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	wt.Next(ctx) // a change, the wait's end, or the client gone: read and answer
	return r.Context().Err() == nil
}

// handleLeaseRoot serves POST /v1/lease (grant) and GET /v1/lease (list).
func (s *Server) handleLeaseRoot(w http.ResponseWriter, r *http.Request) {
	if err := noQuery(r.URL.RawQuery, r.Method+" /v1/lease"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if err != nil {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		var req api.LeaseGrantRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, `lease body: want {"ttl": "10s"}: `+err.Error())
			return
		}
		if _, err := dec.Token(); err != io.EOF {
			writeError(w, http.StatusBadRequest, "lease body: data after the JSON object")
			return
		}
		ttl, err := time.ParseDuration(req.TTL)
		if err != nil || ttl < kv.MinLeaseTTL || ttl > kv.MaxLeaseTTL || ttl%time.Millisecond != 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("lease ttl %.40q: want a Go duration from 1s to 24h, in whole milliseconds", req.TTL))
			return
		}
		s.write(w, r, kv.Command{Op: kv.OpLeaseGrant, TTLMillis: ttl.Milliseconds()}, body)
	case http.MethodGet, http.MethodHead:
		if !s.confirmRead(w, r) {
			return
		}
		body := api.LeaseListBody{Leases: []api.LeaseBody{}}
		for _, l := range s.rt.Leases() {
			keys, _ := s.rt.LeaseKeys(l.ID)
			body.Leases = append(body.Leases, leaseBody(l, 0, keys))
		}
		w.Header().Set("Raft-Index", strconv.FormatUint(s.rt.AppliedIndex(), 10))
		writeJSON(w, http.StatusOK, body)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	}
}

// handleLease serves PUT /v1/lease/{id}/keepalive, DELETE /v1/lease/{id}
// and GET /v1/lease/{id}.
func (s *Server) handleLease(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/lease/")
	idText, action, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("lease id %.40q: want the id a grant returned", idText))
		return
	}
	if err := noQuery(r.URL.RawQuery, r.Method+" /v1/lease/{id}"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case action == "keepalive" && r.Method == http.MethodPut:
		s.write(w, r, kv.Command{Op: kv.OpLeaseKeepAlive, Lease: id}, nil)
	case action == "" && r.Method == http.MethodDelete:
		s.write(w, r, kv.Command{Op: kv.OpLeaseRevoke, Lease: id}, nil)
	case action == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if !s.confirmRead(w, r) {
			return
		}
		for _, l := range s.rt.Leases() {
			if l.ID == id {
				keys, _ := s.rt.LeaseKeys(id)
				writeJSON(w, http.StatusOK, leaseBody(l, 0, keys))
				return
			}
		}
		writeError(w, http.StatusNotFound, kv.ErrLeaseNotFound.Error())
	case action == "keepalive":
		w.Header().Set("Allow", "PUT")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	case action == "":
		w.Header().Set("Allow", "GET, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such route: %s %s", r.Method, r.URL.Path))
	}
}

func leaseBody(l kv.LeaseInfo, index uint64, keys []string) api.LeaseBody {
	return api.LeaseBody{ID: l.ID, TTL: l.TTL().String(), TTLMillis: l.TTLMillis, Index: index, RenewIndex: l.Renew, Keys: keys}
}
