package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
	code, _ := memberReq(t, http.MethodPut, "http://"+nodes[1].addr+"/v1/members")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	for _, body := range []string{``, `{"name":"r1"}`, `{"name":"../r9","host":"h","raft_port":1,"http_port":2}`, `{"name":"r9","host":"h 9","raft_port":1,"http_port":2}`, `{"name":"r1","host":"h","raft_port":1,"http_port":2,"x":1}`} {
		resp, err := http.Post("http://"+nodes[1].addr+"/v1/members", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
	}
	resp, err = http.Post("http://"+nodes[1].addr+"/v1/members", "application/json", strings.NewReader(`{"name":"r1","host":"h","raft_port":1,"http_port":2}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "r1 is already a member")

	// A node outside the hostfile gets the next free ID (the hostfile has
	// three): a learner under the placeholder incarnation, its name and
	// addresses in the configuration. (Nothing runs at its address.)
	resp, err = http.Post("http://"+nodes[1].addr+"/v1/members", "application/json",
		strings.NewReader(`{"name":"r9","host":"127.0.0.1","raft_port":1,"http_port":2,"learner":true}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// GET /v1/members answers from the node's own log, which a follower
	// gets a moment after the leader committed the change.
	var list MembersReply
	eventually(t, 5*time.Second, "r1 lists the new member", func() bool {
		code, body := memberReq(t, http.MethodGet, "http://"+nodes[1].addr+"/v1/members")
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		return len(list.Members) == 4
	})
	assert.Equal(t, MemberStatus{Name: "r9", ID: 3, Suffrage: raft.Learner}, list.Members[3])
	code, body := memberReq(t, http.MethodDelete, "http://"+nodes[1].addr+"/v1/members/r9")
	assert.Equal(t, http.StatusOK, code, body)
}

func memberReq(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	b, _ := json.Marshal(body)
	return resp.StatusCode, string(b)
}

// TestMemberRemoveAndPromote: DELETE at a follower is forwarded to the
// leader and removes the member; an unknown member is 404; promoting a
// voter is 409; a bad path or method is 404 or 405.
func TestMemberRemoveAndPromote(t *testing.T) {
	nodes := startNodes(t, testConfigs(t, 3))
	l := waitLeader(t, nodes)
	f := (l + 1) % 3
	gone := fmt.Sprintf("r%d", (l+2)%3)
	base := "http://" + nodes[f].addr + "/v1/members/"

	code, body := memberReq(t, http.MethodPost, base+fmt.Sprintf("r%d", f)+"/promote")
	assert.Equal(t, http.StatusConflict, code, body)
	assert.Contains(t, body, "already a voter")

	code, body = memberReq(t, http.MethodDelete, base+gone)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "index")
	eventually(t, 5*time.Second, "the follower applies the removal", func() bool {
		return len(nodes[f].rt.Membership().Members) == 2
	})
	for _, m := range nodes[l].rt.Membership().Members {
		assert.NotEqual(t, raft.ID((l+2)%3), m.ID)
	}

	code, body = memberReq(t, http.MethodDelete, base+gone)
	assert.Equal(t, http.StatusNotFound, code, body)
	code, _ = memberReq(t, http.MethodGet, base+gone)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	code, _ = memberReq(t, http.MethodPost, base+gone+"/demote")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = memberReq(t, http.MethodDelete, base+gone+"?force=1")
	assert.Equal(t, http.StatusBadRequest, code)
}

// TestStatusShowsIncarnationAndSuffrage: /v1/status carries the node's
// incarnation and its suffrage in its configuration.
func TestStatusShowsIncarnationAndSuffrage(t *testing.T) {
	nodes := startNodes(t, testConfigs(t, 3))
	waitLeader(t, nodes)
	resp, err := http.Get("http://" + nodes[2].addr + "/v1/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st NodeStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	assert.Equal(t, nodes[2].rt.Incarnation().String(), st.Incarnation)
	assert.Len(t, st.Incarnation, 16)
	assert.Equal(t, "voter", st.Suffrage)
}
