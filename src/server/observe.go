package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"raftkv/src/metrics"
	"raftkv/src/raft"
)

// This file joins the node to src/metrics: the per-peer samples taken at
// scrape time, GET /metrics and GET /v1/metrics-summary. The loop itself
// only makes one-line calls on s.met.

// initMetrics creates the node's own registry (never the global one) and
// sets the baseline of the transition counters. Call it after the
// transport exists.
func (s *Server) initMetrics() {
	s.met = metrics.New(prometheus.NewRegistry(), s.cfg.name())
	s.met.ObserveStatus(*s.status.Load())
	s.met.WatchPeers(s.peerSamples)
}

// peerSamples reads the transport's counters and, on the leader, the
// followers' progress. Progress belongs to the loop, so it is asked for
// through statc; a busy or stopped loop only costs the lag values.
func (s *Server) peerSamples() []metrics.PeerSample {
	stats := s.tr.Stats()
	var prs map[raft.ID]raft.Progress
	var last uint64
	if st := s.status.Load(); st.Role == raft.RoleLeader {
		if full, ok := s.loopStatus(250 * time.Millisecond); ok && full.Role == raft.RoleLeader {
			prs, last = full.Progress, full.LastIndex
		}
	}
	out := make([]metrics.PeerSample, 0, len(stats))
	for i := range s.cfg.Peers {
		id := raft.ID(i)
		ps, ok := stats[id]
		if !ok {
			continue
		}
		smp := metrics.PeerSample{
			Name: s.cfg.Peers[i].Name, BytesSent: ps.BytesSent, MessagesSent: ps.MessagesSent,
			BytesReceived: ps.BytesReceived, MessagesRecv: ps.MessagesReceived,
			Dropped: ps.Dropped, Connected: ps.Connected,
		}
		if pr, ok := prs[id]; ok {
			smp.HasProgress, smp.Match = true, pr.Match
			if last > pr.Match {
				smp.Lag = last - pr.Match
			}
		}
		out = append(out, smp)
	}
	return out
}

// loopStatus asks the loop for the full status (with Progress).
func (s *Server) loopStatus(timeout time.Duration) (raft.Status, bool) {
	c := make(chan raft.Status, 1) // buffered: the loop never blocks on it
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s.statc <- c:
	case <-s.stopc:
		return raft.Status{}, false
	case <-t.C:
		return raft.Status{}, false
	}
	select {
	case st := <-c:
		return st, true
	case <-t.C:
		return raft.Status{}, false
	}
}

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
	out := make([]metrics.Summary, len(s.cfg.Peers))
	var wg sync.WaitGroup
	for i, p := range s.cfg.Peers {
		if raft.ID(i) == s.cfg.ID {
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
