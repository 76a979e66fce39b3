package node

import (
	"time"

	"raftkv/src/metrics"
	"raftkv/src/raft"
)

// rttTracker measures the round trip to each peer from the leader's
// heartbeats (raftkv_peer_round_trip_seconds): the time from a heartbeat
// sent to a peer with none outstanding to the peer's next heartbeat
// answer. That is the network both ways plus one turn of the peer's loop,
// which is what a commit waits for. Loop-owned.
type rttTracker struct {
	sent []time.Time // by peer ID; zero: none outstanding
	met  *metrics.Metrics
}

// rttGiveUp: a heartbeat unanswered for this long (lost, or the peer is
// down) is forgotten, so the next one starts a fresh measurement.
const rttGiveUp = 10 * time.Second

func newRTTTracker(peers int, met *metrics.Metrics) rttTracker {
	return rttTracker{sent: make([]time.Time, peers), met: met}
}

func (r *rttTracker) onSend(msgs []raft.Message) {
	var now time.Time
	for i := range msgs {
		m := &msgs[i]
		if m.Type != raft.MsgHeartbeat || int(m.To) < 0 || int(m.To) >= len(r.sent) {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		if t := r.sent[m.To]; t.IsZero() || now.Sub(t) > rttGiveUp {
			r.sent[m.To] = now
		}
	}
}

func (r *rttTracker) onReceive(m *raft.Message) {
	if m.Type != raft.MsgHeartbeatResp || int(m.From) < 0 || int(m.From) >= len(r.sent) {
		return
	}
	if t := r.sent[m.From]; !t.IsZero() {
		r.met.ObservePeerRTT(m.From, time.Since(t))
		r.sent[m.From] = time.Time{}
	}
}
