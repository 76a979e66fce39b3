package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"raftkv/src/metrics"
	"raftkv/src/node"
)

// Routes of raftkv_http_requests_total and raftkv_http_request_duration_seconds:
// a fixed set named by pattern, never the path itself (a key in a label
// would make a series per key).
const (
	routeKVGet = iota
	routeKVPut
	routeKVDelete
	routeKVOther
	routeStatus
	routeCluster
	routeHealthz
	routeReadyz
	routeMetrics
	routeMetricsSummary
	routeSnapshot
	routeLeaderTransfer
	routeMembers
	routeTxn
	routeWatch
	routeLease
	routeDashboard
	routeOther
	numRoutes
)

var routeNames = [numRoutes]string{
	"GET /v1/kv/{key}", "PUT /v1/kv/{key}", "DELETE /v1/kv/{key}", "/v1/kv/{key}",
	"/v1/status", "/v1/cluster", "/healthz", "/readyz", "/metrics", "/v1/metrics-summary",
	"/v1/snapshot", "/v1/leader/transfer", "/v1/members", "/v1/txn", "/v1/watch/{prefix}", "/v1/lease",
	"/", "other",
}

// routeOf names r's route without allocating.
func routeOf(r *http.Request) int {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, kvPrefix):
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return routeKVGet
		case http.MethodPut:
			return routeKVPut
		case http.MethodDelete:
			return routeKVDelete
		}
		return routeKVOther
	case p == "/v1/status":
		return routeStatus
	case p == "/v1/cluster":
		return routeCluster
	case p == "/healthz":
		return routeHealthz
	case p == "/readyz":
		return routeReadyz
	case p == "/metrics":
		return routeMetrics
	case p == "/v1/metrics-summary":
		return routeMetricsSummary
	case p == "/v1/snapshot":
		return routeSnapshot
	case p == "/v1/leader/transfer":
		return routeLeaderTransfer
	case p == "/v1/members" || strings.HasPrefix(p, "/v1/members/"):
		return routeMembers
	case p == "/v1/txn":
		return routeTxn
	case strings.HasPrefix(p, "/v1/watch/"):
		return routeWatch
	case p == "/v1/lease" || strings.HasPrefix(p, "/v1/lease/"):
		return routeLease
	case p == "/" || strings.HasPrefix(p, "/ui/"):
		return routeDashboard
	}
	return routeOther
}

// statusWriter remembers the status code of an answer. Pooled: one per
// request would be an allocation on every request.
type statusWriter struct {
	http.ResponseWriter
	code int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the snapshot
// stream moves its write deadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times every request by route and status code.
func (s *Server) instrument(h http.Handler) http.Handler {
	if s.met == nil {
		return h
	}
	s.met.SetHTTPRoutes(routeNames[:])
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = w, 0
		h.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: net/http sends 200
		}
		*sw = statusWriter{}
		statusWriters.Put(sw)
		s.met.HTTPRequest(routeOf(r), code, time.Since(start))
	})
}

// failReason classifies an error of Runtime.Propose for
// raftkv_proposals_failed_total.
func failReason(err error) int {
	switch {
	case errors.Is(err, node.ErrNotLeader):
		return metrics.FailNotLeader
	case errors.Is(err, node.ErrBusy):
		return metrics.FailBusy
	case errors.Is(err, node.ErrTimeout):
		return metrics.FailTimeout
	case errors.Is(err, node.ErrLost):
		return metrics.FailLost
	}
	return metrics.FailUnknown
}
