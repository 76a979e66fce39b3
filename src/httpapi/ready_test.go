package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// TestReadinessRules: each condition of /readyz on its own, at its bound.
func TestReadinessRules(t *testing.T) {
	follower := raft.Status{ID: 1, Term: 3, Lead: 0, Role: raft.RoleFollower, Commit: 5000, Applied: 5000}
	with := func(f func(*readiness)) readiness {
		r := readiness{st: follower, leaderCommit: 5000, inConfig: true}
		f(&r)
		return r
	}
	tests := []struct {
		name   string
		r      readiness
		ok     bool
		reason string // a part of the reason
	}{
		{"healthy follower", with(func(*readiness) {}), true, ""},
		{"no leader heard yet", with(func(r *readiness) { r.leaderCommit = 0 }), true, ""},
		{"no leader known", with(func(r *readiness) { r.st.Lead = raft.None; r.st.Role = raft.RoleCandidate }), false, "no leader known (role candidate, term 3)"},
		{"not in configuration", with(func(r *readiness) { r.inConfig = false }), false, "not a member"},
		{"follower at the bound", with(func(r *readiness) { r.leaderCommit = 5000 + ReadyMaxLag }), true, ""},
		{"follower beyond the bound", with(func(r *readiness) { r.leaderCommit = 5001 + ReadyMaxLag }), false,
			fmt.Sprintf("applied index 5000 trails the leader's commit %d by %d entries", 5001+ReadyMaxLag, ReadyMaxLag+1)},
		{"own commit ahead of the last heard", with(func(r *readiness) { r.leaderCommit = 10; r.st.Commit = 5001 + ReadyMaxLag }), false, "trails"},
		{"leader uses its own commit", with(func(r *readiness) {
			r.st.Role, r.st.Lead, r.leaderCommit = raft.RoleLeader, 1, 1<<40
		}), true, ""},
		{"leader applying behind", with(func(r *readiness) {
			r.st.Role, r.st.Lead, r.st.Commit = raft.RoleLeader, 1, 5001+ReadyMaxLag
		}), false, "trails"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := tt.r.ready()
			assert.Equal(t, tt.ok, ok, reason)
			assert.Contains(t, reason, tt.reason)
		})
	}
}

// TestReadyz: a lone brand-new node of three is no member yet (it waits
// for the others to bootstrap: 503 with the reason, while /healthz is 200); with all three up every node is ready and
// names the leader; a query is refused like on every endpoint.
func TestReadyz(t *testing.T) {
	cfgs := testConfigs(t, 3)
	lone := startNodes(t, cfgs[:1])[0]
	url := "http://" + lone.addr

	r := do(t, "GET", url+"/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.body)
	assert.Contains(t, errorMessage(t, r), "not a member of the cluster configuration")
	assert.Equal(t, http.StatusOK, do(t, "GET", url+"/healthz", "", nil).code)

	nodes := append([]*testNode{lone}, startNodes(t, cfgs[1:])...)
	leader := waitLeader(t, nodes)
	for _, n := range nodes {
		var body struct {
			Status, Leader string
		}
		eventually(t, 10*time.Second, "node "+n.addr+" ready", func() bool {
			r := do(t, "GET", "http://"+n.addr+"/readyz", "", nil)
			return r.code == http.StatusOK && json.Unmarshal([]byte(r.body), &body) == nil
		})
		assert.Equal(t, "ready", body.Status)
		assert.Equal(t, cfgs[leader].Peers[leader].Name, body.Leader)
	}
	r = do(t, "GET", url+"/readyz?verbose", "", nil)
	require.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, errorMessage(t, r), `"verbose"`)
}
