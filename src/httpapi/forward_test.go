package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// TestFollowerForwardsToLeader: a write and a linearizable read sent to a
// follower are passed to the leader, which answers them (Raft-Node names
// the leader); a stale read is served by the follower itself; a request a
// follower already forwarded is never passed on again (503).
func TestFollowerForwardsToLeader(t *testing.T) {
	nodes := startNodes(t, testConfigs(t, 3))
	l := waitLeader(t, nodes)
	f := nodes[(l+1)%3]
	leaderName := nodes[l].srv.cfg.name()

	put := do(t, "PUT", "http://"+f.addr+"/v1/kv/k", "v", http.Header{"Client-Id": {"c"}, "Request-Seq": {"1"}})
	require.Equal(t, http.StatusOK, put.code, put.body)
	assert.Contains(t, put.body, `"index":`)
	v, ok := nodes[l].rt.Get("k")
	assert.True(t, ok, "the leader answered before applying")
	assert.Equal(t, "v", v)

	get := do(t, "GET", "http://"+f.addr+"/v1/kv/k", "", nil)
	require.Equal(t, http.StatusOK, get.code, get.body)
	var gb api.ValueBody
	require.NoError(t, json.Unmarshal([]byte(get.body), &gb))
	assert.Equal(t, api.ValueBody{Key: "k", Value: "v", KeyMeta: api.KeyMeta{CreateIndex: gb.ModIndex, ModIndex: gb.ModIndex, Version: 1}}, gb)

	eventually(t, 5*time.Second, "the follower applies", func() bool { _, ok := f.rt.Get("k"); return ok })
	stale := do(t, "GET", "http://"+f.addr+"/v1/kv/k?consistency=stale", "", nil)
	assert.Equal(t, http.StatusOK, stale.code, stale.body)

	twice := do(t, "PUT", "http://"+f.addr+"/v1/kv/k", "w", http.Header{forwardedHeader: {leaderName}})
	assert.Equal(t, http.StatusServiceUnavailable, twice.code, twice.body)
	assert.Contains(t, errorMessage(t, twice), "no leader known")
}

// TestProposedButUncommittedIs504: a leader that took a write and then
// lost its followers cannot tell the write's fate: 504 (retry with the
// same Request-Seq), never 503 (which promises it was not applied). A
// read it cannot confirm is a 503.
func TestProposedButUncommittedIs504(t *testing.T) {
	cfgs := testConfigs(t, 3)
	for i := range cfgs {
		// Long enough that check-quorum does not depose the leader during
		// the test: the write must reach it as leader.
		cfgs[i].node.ElectionTimeout = 2 * time.Second
		cfgs[i].node.Heartbeat = 50 * time.Millisecond
		cfgs[i].RequestTimeout = 200 * time.Millisecond
	}
	nodes := startNodes(t, cfgs)
	l := waitLeader(t, nodes)
	require.Equal(t, http.StatusOK, do(t, "PUT", "http://"+nodes[l].addr+"/v1/kv/k", "v", nil).code)
	nodes[(l+1)%3].shutdown(t)
	nodes[(l+2)%3].shutdown(t)

	r := do(t, "PUT", "http://"+nodes[l].addr+"/v1/kv/k", "w", nil)
	assert.Equal(t, http.StatusGatewayTimeout, r.code, r.body)
	assert.Contains(t, errorMessage(t, r), "outcome is unknown")
	g := do(t, "GET", "http://"+nodes[l].addr+"/v1/kv/k", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, g.code, g.body)
}
