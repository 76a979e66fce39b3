package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"raftkv/src/metrics"
)

// This file serves the node's metrics (src/metrics): GET /metrics and
// GET /v1/metrics-summary.

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.met.Handler().ServeHTTP(w, r)
}

// handleMetricsSummary serves GET /v1/metrics-summary: this node's
// cumulative counters, and with ?scope=cluster every node's (asked in
// parallel, like /v1/cluster). The dashboard computes rates from deltas.
func (s *Server) handleMetricsSummary(w http.ResponseWriter, r *http.Request) {
	q := [...]queryParam{{name: "scope"}}
	if err := parseQuery(r.URL.RawQuery, q[:], "GET /v1/metrics-summary"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch scope := q[0]; {
	case !scope.given:
		writeJSON(w, http.StatusOK, s.met.Summary(s.cfg.name()))
		return
	case scope.value != "cluster":
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"scope\" is %q: want cluster, or no scope for this node alone", scope.value))
		return
	}
	ids, peers := s.allPeers()
	out := make([]metrics.Summary, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		if ids[i] == s.cfg.Self {
			out[i] = s.met.Summary(p.Name)
			yes := true
			out[i].Reachable = &yes
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.peerSummary(r.Context(), p)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

func (s *Server) peerSummary(ctx context.Context, p Peer) metrics.Summary {
	var sum metrics.Summary
	if err := s.getPeerJSON(ctx, p, "/v1/metrics-summary", &sum); err != nil {
		no := false
		return metrics.Summary{Node: p.Name, Reachable: &no, Error: err.Error()}
	}
	yes := true
	sum.Reachable = &yes
	return sum
}
