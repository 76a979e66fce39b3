package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"raftkv/src/kv"
	"raftkv/src/metrics"
	"raftkv/src/node"
	"raftkv/src/raft"
	"raftkv/src/watch"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmarks count the handler's allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// stubRuntime is a runtime that never started: a follower that knows no
// leader, with a fixed state machine.
type stubRuntime struct {
	st   raft.Status
	kv   map[string]string
	hub  *watch.Hub
	conf raft.Membership
}

func (r *stubRuntime) Start() error         { return nil }
func (r *stubRuntime) Stop() error          { return nil }
func (r *stubRuntime) Failed() <-chan error { return nil }
func (r *stubRuntime) Propose([]byte, <-chan time.Time) (kv.Result, error) {
	return kv.Result{}, node.ErrNotLeader
}
func (r *stubRuntime) Read(<-chan time.Time) error   { return node.ErrNotLeader }
func (r *stubRuntime) Status() *raft.Status          { return &r.st }
func (r *stubRuntime) Get(key string) (string, bool) { v, ok := r.kv[key]; return v, ok }
func (r *stubRuntime) AppliedIndex() uint64          { return 1 }
func (r *stubRuntime) LeaderCommit() uint64          { return 1 }
func (r *stubRuntime) PeerTLS() bool                 { return false }
func (r *stubRuntime) Metrics() *metrics.Metrics     { return nil }
func (r *stubRuntime) Backup(<-chan time.Time) (node.Backup, error) {
	return node.Backup{}, node.ErrNotLeader
}
func (r *stubRuntime) TransferLeadership(raft.ID, <-chan time.Time) (raft.ID, error) {
	return raft.None, node.ErrNotLeader
}
func (r *stubRuntime) Membership() raft.Membership       { return r.conf }
func (r *stubRuntime) Incarnation() raft.Incarnation     { return 0 }
func (r *stubRuntime) Watch() *watch.Hub                 { return r.hub }
func (r *stubRuntime) Leases() []kv.LeaseInfo            { return nil }
func (r *stubRuntime) LeaseKeys(uint64) ([]string, bool) { return nil, false }
func (r *stubRuntime) ChangeMembership(func(raft.Membership) (raft.Membership, error), <-chan time.Time) (uint64, error) {
	return 0, node.ErrNotLeader
}

// BenchmarkHandler runs the HTTP edge of a node whose runtime is a stub: routing, query parsing and header checks, up to the point where
// a write would be proposed (here refused: no leader known, 503) or a
// stale read served.
func BenchmarkHandler(b *testing.B) {
	cfg := testConfigs(b, 1)[0].Config
	cfg.Logger = zap.NewNop()
	value := strings.Repeat("v", 256)
	h := New(cfg, &stubRuntime{st: raft.Status{Role: raft.RoleFollower, Lead: raft.None}, kv: map[string]string{"key": value}}).routes()
	tests := []struct {
		name, method, target string
		body                 string
		hdr                  map[string]string
		want                 int
	}{
		{"stale get", "GET", "/v1/kv/key?consistency=stale", "", nil, 200},
		{"put no query", "PUT", "/v1/kv/key", value, map[string]string{"Client-Id": "client-1", "Request-Seq": "7"}, 503},
		{"put op=append", "PUT", "/v1/kv/key?op=append", value, map[string]string{"Client-Id": "client-1", "Request-Seq": "7"}, 503},
		{"status", "GET", "/v1/status", "", nil, 200},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			rd := strings.NewReader(tt.body)
			req.ContentLength = int64(len(tt.body))
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(tt.body)
				req.Body = http.NoBody
				if tt.body != "" {
					req.Body = readCloser{rd}
				}
				clear(w.h)
				h.ServeHTTP(w, req)
				if w.code != tt.want {
					b.Fatalf("status %d, want %d", w.code, tt.want)
				}
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
