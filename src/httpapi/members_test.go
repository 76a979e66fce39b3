package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// TestMembersList: GET /v1/members lists the bootstrap configuration, every
// node a voter under its folder's incarnation; a query is 400, a POST 405.
func TestMembersList(t *testing.T) {
	nodes := startNodes(t, testConfigs(t, 3))
	waitLeader(t, nodes)
	resp, err := http.Get("http://" + nodes[1].addr + "/v1/members")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got MembersReply
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "r1", got.Node)
	assert.Equal(t, nodes[1].rt.Incarnation(), got.Incarnation)
	require.Len(t, got.Members, 3)
	for i, m := range got.Members {
		assert.Equal(t, MemberStatus{Name: []string{"r0", "r1", "r2"}[i], ID: raft.ID(i), Incarnation: nodes[i].rt.Incarnation(), Suffrage: raft.Voter}, m)
		assert.NotZero(t, m.Incarnation)
	}

	bad, err := http.Get("http://" + nodes[1].addr + "/v1/members?x=1")
	require.NoError(t, err)
	bad.Body.Close()
	assert.Equal(t, http.StatusBadRequest, bad.StatusCode)
	post, err := http.Post("http://"+nodes[1].addr+"/v1/members", "application/json", nil)
	require.NoError(t, err)
	post.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
}
