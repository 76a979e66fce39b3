package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"raftkv/src/kv"
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

// BenchmarkHandler runs the HTTP edge of a node that is not started (no
// loop): routing, query parsing and header checks, up to the point where
// a write would be proposed (here refused: no leader known, 503) or a
// stale read served.
func BenchmarkHandler(b *testing.B) {
	cfg := testConfigs(b, 1)[0]
	cfg.Logger = zap.NewNop()
	s, err := New(cfg)
	require.NoError(b, err)
	b.Cleanup(func() { s.disk.Close(); s.tr.Close() })
	s.kv.Apply(1, kv.EncodeCommand(kv.Command{Op: kv.OpPut, Key: "key", Value: strings.Repeat("v", 256)}))
	h := s.routes()
	value := strings.Repeat("v", 256)
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
