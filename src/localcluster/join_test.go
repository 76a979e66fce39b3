package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// membersOf is GET /v1/members of node i.
func membersOf(t *testing.T, c *Cluster, i int) (names map[string]string, incs []string) {
	t.Helper()
	resp, err := httpc.Get(c.URL(i, "/v1/members"))
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	var m struct {
		Members []struct {
			Name        string `json:"name"`
			Incarnation string `json:"incarnation"`
			Suffrage    string `json:"suffrage"`
		} `json:"members"`
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil, nil
	}
	names = map[string]string{}
	for _, x := range m.Members {
		names[x.Name] = x.Suffrage
		incs = append(incs, x.Incarnation)
	}
	return names, incs
}

// TestAddMemberOutsideHostfile: a 3-node cluster (TLS and tokens, as the
// suite runs) takes in a 4th process that its hostfile does not name. The
// newcomer's hostfile is the cluster's plus its own entry, marked join: it
// does not bootstrap and has no configuration until `raftkv member add`
// names it; the others, whose hostfiles do not list it, accept its
// connections once the configuration does (its certificate names it), and
// it becomes a voter under its own incarnation. It then counts: with one
// original node down, a write commits only with it. It leads (a transfer):
// the others forward to it by the address of its Meta and show its name;
// an original node restarted with the old hostfile still reaches it. Last,
// it is removed, and the three commit without it.
func TestAddMemberOutsideHostfile(t *testing.T) {
	c := startCluster(t, 3)
	eps := strings.Join(c.Endpoints(), ",")
	member := func(args ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"member", "--endpoints", eps}, args...)...)
		cmd.Env = append(os.Environ(), c.ClientEnv(TokenAdmin)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err)
		return string(out), 0
	}
	put := func(i int, key string, seq uint64) reply {
		t.Helper()
		r, err := do(http.MethodPut, c.Nodes[i].HTTPAddr, key, "", []byte("v-"+key), session("join", seq))
		require.NoError(t, err)
		return r
	}

	j, err := c.AddJoiner("n3")
	require.NoError(t, err)
	require.Equal(t, 3, j)
	require.NoError(t, c.StartNode(j))
	eventually(t, 10*time.Second, func() bool { _, err := c.NodeStatus(j); return err == nil }, "timed out: %s", "n3 answers")
	names, _ := membersOf(t, c, j)
	assert.Empty(t, names, "n3 holds a configuration before it was added (a bootstrap?)")
	assert.Contains(t, c.Log(j), "a node marked join: waiting for the leader")
	names, _ = membersOf(t, c, 0)
	assert.NotContains(t, names, "n3")

	host, rp, _ := strings.Cut(c.Nodes[j].RaftAddr, ":")
	_, hp, _ := strings.Cut(c.Nodes[j].HTTPAddr, ":")
	out, code := member("add", "n3", host, rp, hp)
	require.Equal(t, 0, code, out)
	eventually(t, 30*time.Second, func() bool {
		for i := range c.Nodes {
			names, incs := membersOf(t, c, i)
			if len(names) != 4 || names["n3"] != "voter" || strings.Contains(strings.Join(incs, " "), "0000000000000000") {
				return false
			}
		}
		return true
	}, "timed out: %s", "every node, n3 too, lists n3 as a voter under its own incarnation")
	out, code = member("list")
	require.Equal(t, 0, code, out)
	assert.Equal(t, 4, strings.Count(out, "voter"), out)
	assert.Contains(t, out, "n3")

	// Through n3 (forwarded to the leader).
	r := put(j, "through-n3", 1)
	require.Equal(t, http.StatusOK, r.code, r.body)

	// n3 counts: with the leader (an original node) down, 3 of 4 voters
	// remain, n3 among them, and the quorum is 3.
	l := waitLeader(t, c, 10*time.Second)
	if l == j {
		l = 0
	}
	require.NoError(t, c.Kill(l))
	l2 := waitLeader(t, c, 20*time.Second)
	r = put(l2, "without-"+c.Nodes[l].Name, 2)
	require.Equal(t, http.StatusOK, r.code, r.body)

	// n3 leads: the others name it and forward to it.
	resp, err := httpc.Post(c.URL(l2, "/v1/leader/transfer?to=n3"), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	eventually(t, 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		i, err := c.WaitLeader(ctx)
		return err == nil && i == j
	}, "timed out: %s", "every node names n3 as the leader")
	for i := range 3 {
		if i == l {
			continue
		}
		st, err := c.NodeStatus(i)
		require.NoError(t, err)
		assert.Equal(t, "n3", st.Leader, "%s's status", c.Nodes[i].Name)
		r := put(i, "forwarded-by-"+c.Nodes[i].Name, uint64(10+i))
		require.Equal(t, http.StatusOK, r.code, "%s forwarding to n3: %s", c.Nodes[i].Name, r.body)
		assert.Equal(t, "n3", r.header.Get("Raft-Leader"))
	}

	// The dashboard's fan-out (/v1/cluster) of an original node reaches n3.
	o := (l + 1) % 3
	resp, err = httpc.Get(c.URL(o, "/v1/cluster"))
	require.NoError(t, err)
	var cl struct {
		Nodes []struct {
			Name      string `json:"name"`
			Role      string `json:"role"`
			Reachable *bool  `json:"reachable"`
		} `json:"nodes"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cl))
	resp.Body.Close()
	require.Len(t, cl.Nodes, 4, "%s's /v1/cluster", c.Nodes[o].Name)
	assert.Equal(t, "n3", cl.Nodes[3].Name)
	assert.Equal(t, "leader", cl.Nodes[3].Role)
	assert.True(t, cl.Nodes[3].Reachable != nil && *cl.Nodes[3].Reachable, "n3 reachable from %s", c.Nodes[o].Name)

	// The node killed above comes back with the old hostfile: the
	// configuration in its log makes n3 known, and n3, leading, catches
	// it up.
	require.NoError(t, c.StartNode(l))
	eventually(t, 20*time.Second, func() bool {
		r, err := do(http.MethodGet, c.Nodes[l].HTTPAddr, "forwarded-by-"+c.Nodes[(l+1)%3].Name, "consistency=stale", nil, nil)
		return err == nil && r.code == http.StatusOK
	}, "timed out: %s", c.Nodes[l].Name+" catches up from n3")

	// Removing n3 (the leader) works; the three commit without it.
	out, code = member("remove", "n3")
	require.Equal(t, 0, code, out)
	require.NoError(t, c.Kill(j))
	eventually(t, 20*time.Second, func() bool {
		names, _ := membersOf(t, c, l)
		return len(names) == 3 && names["n3"] == ""
	}, "timed out: %s", "n3 removed")
	l3 := waitLeader(t, c, 20*time.Second)
	r = put(l3, "after-removal", 20)
	require.Equal(t, http.StatusOK, r.code, r.body)
	for i := range c.Nodes {
		assert.NotContains(t, c.Log(i), "panic", "%s panicked", c.Nodes[i].Name)
	}
}
