package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"raftkv/src/raft"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestOpsMetrics(t *testing.T) {
	m := New(nil, "r1")
	m.SetPeers([]string{"r0", "", "r2"})
	m.ObservePeerRTT(0, 3*time.Millisecond)
	m.ObservePeerRTT(1, time.Millisecond) // itself: not exported
	m.ObservePeerRTT(7, time.Millisecond) // unknown: ignored
	m.ProposalFailed(FailLost)
	m.ProposalFailed(FailLost)
	m.ProposalFailed(numFailReasons) // out of range: ignored
	m.SetPendingProposals(4)
	m.ObserveSnapshot(1234, 20*time.Millisecond)
	m.WatchState(func() int { return 42 })
	m.WatchReady(func() bool { return true })
	m.ObserveStatus(raft.Status{ID: 1, Term: 2, Lead: 0, Role: raft.RoleFollower})
	body := scrape(t, m)
	for _, want := range []string{
		`raftkv_peer_round_trip_seconds_count{peer="r0"} 1`,
		`raftkv_peer_round_trip_seconds_count{peer="r2"} 0`,
		`raftkv_proposals_failed_total{reason="lost"} 2`,
		`raftkv_proposals_failed_total{reason="timeout"} 0`,
		`raftkv_proposals_pending 4`,
		`raftkv_snapshot_size_bytes 1234`,
		`raftkv_state_bytes 1234`,
		`raftkv_snapshot_duration_seconds_count 1`,
		`raftkv_state_keys 42`,
		`raftkv_ready 1`,
		`raftkv_has_leader 1`,
		`raftkv_node_info{name="r1"} 1`,
		`go_gc_duration_seconds`,
		`process_open_fds`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `peer="r1"`) {
		t.Error("a round trip to the node itself is exported")
	}
	m.ObserveStatus(raft.Status{ID: 1, Term: 3, Lead: raft.None, Role: raft.RoleCandidate})
	if body := scrape(t, m); !strings.Contains(body, "raftkv_has_leader 0") {
		t.Error("raftkv_has_leader stays 1 without a leader")
	}

	var nilM *Metrics
	nilM.SetPeers([]string{"a"})
	nilM.ObservePeerRTT(0, time.Second)
	nilM.ProposalFailed(FailBusy)
	nilM.SetPendingProposals(1)
	nilM.ObserveSnapshot(1, time.Second)
	nilM.SetStateBytes(1)
	nilM.WatchState(nil)
	nilM.WatchReady(nil)
	nilM.SetHTTPRoutes([]string{"x"})
	nilM.HTTPRequest(0, 200, time.Second)
}
