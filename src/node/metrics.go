package node

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"raftkv/src/metrics"
	"raftkv/src/raft"
)

// This file joins the runtime to src/metrics: the per-peer samples taken at
// scrape time. The loop itself only makes one-line calls on s.met; the
// HTTP API (src/httpapi) serves GET /metrics from Metrics().

// initMetrics creates the node's own registry (never the global one) and
// sets the baseline of the transition counters. Call it after the
// transport exists.
func (s *Node) initMetrics() {
	s.met = metrics.New(prometheus.NewRegistry(), s.cfg.name())
	s.met.ObserveStatus(*s.status.Load())
	s.met.WatchPeers(s.peerSamples)
	names := make([]string, len(s.cfg.Peers))
	for i, p := range s.cfg.Peers {
		if raft.ID(i) != s.cfg.ID {
			names[i] = p.Name
		}
	}
	s.met.SetPeers(names)
	s.met.WatchState(s.kv.Len)
	s.met.SetStateBytes(s.lastSnapBytes)
	s.rtt = newRTTTracker(len(s.cfg.Peers), s.met)
}

// peerSamples reads the transport's counters and, on the leader, the
// followers' progress. Progress belongs to the loop, so it is asked for
// through statc; a busy or stopped loop only costs the lag values.
func (s *Node) peerSamples() []metrics.PeerSample {
	stats := s.tr.Stats()
	var prs map[raft.ID]raft.Progress
	var last uint64
	if st := s.status.Load(); st.Role == raft.RoleLeader {
		if full, ok := s.loopStatus(250 * time.Millisecond); ok && full.Role == raft.RoleLeader {
			prs, last = full.Progress, full.LastIndex
		}
	}
	out := make([]metrics.PeerSample, 0, len(stats))
	// Every peer the transport knows: the hostfile's and the members
	// added outside it (peers.go), by ID.
	for _, id := range slices.Sorted(maps.Keys(stats)) {
		ps := stats[id]
		smp := metrics.PeerSample{
			Name: ps.Name, BytesSent: ps.BytesSent, MessagesSent: ps.MessagesSent,
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
func (s *Node) loopStatus(timeout time.Duration) (raft.Status, bool) {
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
