package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"raftkv/src/metrics"
	"raftkv/src/raft"
)

func TestRouteOf(t *testing.T) {
	for _, tc := range []struct{ method, path, route string }{
		{"GET", "/v1/kv/a/b", "GET /v1/kv/{key}"},
		{"HEAD", "/v1/kv/a", "GET /v1/kv/{key}"},
		{"PUT", "/v1/kv/a", "PUT /v1/kv/{key}"},
		{"DELETE", "/v1/kv/a", "DELETE /v1/kv/{key}"},
		{"POST", "/v1/kv/a", "/v1/kv/{key}"},
		{"GET", "/v1/status", "/v1/status"},
		{"GET", "/readyz", "/readyz"},
		{"GET", "/v1/snapshot", "/v1/snapshot"},
		{"POST", "/v1/leader/transfer", "/v1/leader/transfer"},
		{"DELETE", "/v1/members/r3", "/v1/members"},
		{"GET", "/v1/watch/a", "/v1/watch/{prefix}"},
		{"GET", "/", "/"},
		{"GET", "/ui/app.js", "/"},
		{"GET", "/nope", "other"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		assert.Equal(t, tc.route, routeNames[routeOf(r)], "%s %s", tc.method, tc.path)
	}
}

// metricsRuntime is the stub runtime with metrics.
type metricsRuntime struct {
	stubRuntime
	met *metrics.Metrics
}

func (r *metricsRuntime) Metrics() *metrics.Metrics { return r.met }

// TestRequestMetrics: answers are counted by route and code and timed by
// route, and the instrumentation allocates nothing per request once a
// route's code was seen.
func TestRequestMetrics(t *testing.T) {
	cfg := testConfigs(t, 1)[0].Config
	cfg.Logger = zap.NewNop()
	rt := &metricsRuntime{stubRuntime: stubRuntime{st: raft.Status{Role: raft.RoleFollower, Lead: raft.None}, kv: map[string]string{"k": "v"}}, met: metrics.New(nil, "r0")}
	h := New(cfg, rt).routes()
	serve := func(method, target string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
		return w.Code
	}
	require.Equal(t, http.StatusOK, serve("GET", "/v1/kv/k?consistency=stale"))
	require.Equal(t, http.StatusNotFound, serve("GET", "/v1/kv/missing?consistency=stale"))
	require.Equal(t, http.StatusServiceUnavailable, serve("PUT", "/v1/kv/k"))
	require.Equal(t, http.StatusBadRequest, serve("GET", "/healthz?x=1"))
	require.Equal(t, http.StatusServiceUnavailable, serve("GET", "/readyz"))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`raftkv_http_requests_total{code="200",route="GET /v1/kv/{key}"} 1`,
		`raftkv_http_requests_total{code="404",route="GET /v1/kv/{key}"} 1`,
		`raftkv_http_requests_total{code="503",route="PUT /v1/kv/{key}"} 1`,
		`raftkv_http_requests_total{code="400",route="/healthz"} 1`,
		`raftkv_http_request_duration_seconds_count{route="GET /v1/kv/{key}"} 2`,
		`raftkv_has_leader 0`,
		`raftkv_ready 0`,
		`raftkv_node_info{name="r0"} 1`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, `node="`, "a node label repeats Prometheus's instance")
	assert.False(t, strings.Contains(body, `code="500"`), "codes never seen are not exported")

	// The instrumentation's own cost: nothing allocated per request (the
	// stale read itself allocates its recorder's headers; compare with
	// the same handler without metrics).
	withMetrics := testing.AllocsPerRun(200, func() { serve("GET", "/v1/kv/k?consistency=stale") })
	plain := New(cfg, &stubRuntime{st: raft.Status{Role: raft.RoleFollower, Lead: raft.None}, kv: map[string]string{"k": "v"}}).routes()
	without := testing.AllocsPerRun(200, func() {
		w := httptest.NewRecorder()
		plain.ServeHTTP(w, httptest.NewRequest("GET", "/v1/kv/k?consistency=stale", nil))
	})
	if raceEnabled {
		// sync.Pool drops items at random under the race detector: the
		// two averages differ by up to an allocation either way.
		assert.InDelta(t, without, withMetrics, 1, "the request metrics allocate")
	} else {
		assert.Equal(t, without, withMetrics, "the request metrics allocate")
	}
}
