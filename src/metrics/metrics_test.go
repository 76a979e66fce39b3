package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"raftkv/src/raft"
)

func TestObserveStatusCountsTransitions(t *testing.T) {
	m := New(nil, "r0")
	// Baseline recovered from disk: a self-vote of an old term is no new election.
	m.ObserveStatus(raft.Status{ID: 0, Term: 3, Vote: 0, Lead: raft.None, Role: raft.RoleFollower})
	steps := []raft.Status{
		{ID: 0, Term: 3, Vote: 0, Lead: raft.None, Role: raft.RolePreCandidate},
		{ID: 0, Term: 4, Vote: 0, Lead: raft.None, Role: raft.RoleCandidate}, // election 1
		{ID: 0, Term: 4, Vote: 0, Lead: 0, Role: raft.RoleLeader, Commit: 7}, // leader change 1
		{ID: 0, Term: 5, Vote: 1, Lead: 1, Role: raft.RoleFollower},          // leader change 2
		{ID: 0, Term: 6, Vote: 0, Lead: raft.None, Role: raft.RoleCandidate}, // election 2
		{ID: 0, Term: 6, Vote: 0, Lead: 1, Role: raft.RoleFollower},          // leader change 3
	}
	for _, st := range steps {
		m.ObserveStatus(st)
	}
	if got := counterValue(m.elections); got != 2 {
		t.Errorf("elections = %v, want 2", got)
	}
	if got := counterValue(m.leaderChanges); got != 3 {
		t.Errorf("leader changes = %v, want 3", got)
	}
	m.ObserveCommit(m.ProposalStarted().Add(-2 * time.Millisecond))
	m.ObserveFsync(time.Now(), 5)
	m.WatchPeers(func() []PeerSample {
		return []PeerSample{{Name: "r1", BytesSent: 10, MessagesSent: 2, Connected: true, HasProgress: true, Match: 5, Lag: 2}}
	})
	s := m.Summary("r0")
	if s.CommitLatency.Count != 1 || s.CommitLatency.Sum < 0.002 || s.FollowerLag["r1"] != 2 {
		t.Errorf("summary = %+v", s)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`raftkv_role{role="follower"} 1`,
		`raftkv_term 6`,
		`raftkv_elections_started_total 2`,
		`raftkv_peer_sent_bytes_total{peer="r1"} 10`,
		`raftkv_follower_lag_entries{peer="r1"} 2`,
		`raftkv_fsync_batch_entries_bucket{le="8"} 1`,
		`raftkv_commit_latency_seconds_count 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestNilMetricsIsNoop(t *testing.T) {
	var m *Metrics
	m.ObserveStatus(raft.Status{})
	m.ObserveCommit(m.ProposalStarted())
	m.ObserveReadIndex(m.ReadStarted())
	m.ObserveFsync(time.Now(), 1)
	m.SnapshotTaken()
	m.SnapshotInstalled()
	m.WatchPeers(nil)
	if s := m.Summary("x"); s.Node != "x" {
		t.Fatal(s)
	}
}

func TestHTTPAndInvalidMessageMetrics(t *testing.T) {
	m := New(nil, "r0")
	m.SetHTTPConnLimit(8)
	m.HTTPConnOpened()
	m.HTTPConnOpened()
	m.HTTPConnClosed()
	m.HTTPConnLimited()
	m.InvalidMessage()
	m.InvalidMessage()
	if got := m.HTTPConnections(); got != 1 {
		t.Errorf("open connections = %v, want 1", got)
	}
	if got := m.InvalidMessages(); got != 2 {
		t.Errorf("invalid messages = %v, want 2", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`raftkv_http_connections 1`,
		`raftkv_http_connections_limit 8`,
		`raftkv_http_connections_limited_total 1`,
		`raftkv_invalid_messages_total 2`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var nilM *Metrics
	nilM.HTTPConnOpened()
	nilM.InvalidMessage()
}

func TestHandshakeRefusalsAreExported(t *testing.T) {
	m := New(nil, "r0")
	m.WatchHandshakeRefusals(func() map[string]uint64 { return map[string]uint64{"unknown_ca": 3, "name_mismatch": 1} })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`raftkv_peer_handshake_refused_total{reason="unknown_ca"} 3`,
		`raftkv_peer_handshake_refused_total{reason="name_mismatch"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}
