package localcluster

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWipedNodeDoesNotElectStaleLeader is the reproduction of the
// membership issue, on real processes: X1..X5 are acknowledged while c is
// down, so only a and b hold them; b is killed and its folder wiped; a is
// killed; b and c start. Before incarnations, the empty b voted for the
// stale c, which led and lost X1..X5. Now the empty b comes back under a new
// incarnation, learns that a cluster exists and waits without a vote: no
// leader for as long as we watch. When a returns, a leader is elected,
// X1..X5 read back, and b, taken in again by the leader and promoted, is a
// voter again: with c down, a and b alone commit a write.
func TestWipedNodeDoesNotElectStaleLeader(t *testing.T) {
	c := startCluster(t, 3)
	a := waitLeader(t, c, 10*time.Second)
	b, cc := (a+1)%3, (a+2)%3
	require.NoError(t, c.Kill(cc))

	for i := 1; i <= 5; i++ {
		r, err := do(http.MethodPut, c.Nodes[a].HTTPAddr, fmt.Sprint("X", i), "", []byte(fmt.Sprint("v", i)), session("wipe", uint64(i)))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.code, "X%d not acknowledged: %s", i, r.body)
	}

	require.NoError(t, c.Kill(b))
	require.NoError(t, os.RemoveAll(c.DataDir(b)))
	require.NoError(t, c.Kill(a))
	require.NoError(t, c.StartNode(b))
	require.NoError(t, c.StartNode(cc))

	// Watch for six election timeouts: neither the empty b nor the stale c
	// may lead. (An observation window, not a wait for a condition.)
	deadline := time.Now().Add(3 * time.Second)
	asked := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ; time.Now().Before(deadline); <-tick.C {
		for _, i := range []int{b, cc} {
			if st, err := c.NodeStatus(i); err == nil {
				asked++
				require.NotEqual(t, "leader", st.Role, "%s was elected without a", c.Nodes[i].Name)
			}
		}
	}
	require.Positive(t, asked, "b and c never answered their status")
	assert.Contains(t, c.Log(b), "a cluster exists", "b did not learn that it must rejoin")

	require.NoError(t, c.StartNode(a))
	waitLeader(t, c, 20*time.Second)
	for i := 1; i <= 5; i++ {
		r, err := do(http.MethodGet, c.Nodes[a].HTTPAddr, fmt.Sprint("X", i), "", nil, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, r.code, "acknowledged X%d lost: %s", i, r.body)
		assert.Equal(t, fmt.Sprint("v", i), r.value)
	}

	// b catches up under its new incarnation...
	eventually(t, 20*time.Second, func() bool {
		r, err := do(http.MethodGet, c.Nodes[b].HTTPAddr, "X5", "consistency=stale", nil, nil)
		return err == nil && r.code == http.StatusOK && r.value == "v5"
	}, "timed out: %s", "b catches up")
	// ...and is a voter again: without c, a write needs b's acknowledgement.
	eventually(t, 20*time.Second, func() bool {
		confs := appliedConfigs(c.Log(a))
		return len(confs) > 0 && confs[len(confs)-1] != confs[0] && !strings.Contains(confs[len(confs)-1], "/")
	}, "timed out: %s", "b promoted back to voter")
	require.NoError(t, c.Kill(cc))
	waitLeader(t, c, 20*time.Second)
	r, err := do(http.MethodPut, c.Nodes[a].HTTPAddr, "after", "", []byte("yes"), session("wipe", 6))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code, "a and b alone did not commit: %s", r.body)
	for _, i := range []int{a, b} {
		assert.NotContains(t, c.Log(i), "panic", "%s panicked", c.Nodes[i].Name)
	}
}

// appliedConfigs returns, in order, the configurations a node's log says it
// applied, as the core prints them: {id:inc ...}, with "/staging" or
// "/learner" after a member that is not a voter.
func appliedConfigs(log string) []string {
	var confs []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "configuration applied") {
			if i := strings.Index(line, `"configuration":`); i >= 0 {
				rest := strings.TrimLeft(line[i+len(`"configuration":`):], ` "`)
				if j := strings.IndexByte(rest, '"'); j >= 0 {
					confs = append(confs, rest[:j])
				}
			}
		}
	}
	return confs
}

// TestMemberCLI: `raftkv member` against real nodes: list the bootstrap
// configuration, remove a member (asked of any node), refuse an unknown
// name (exit 2) and the promotion of a voter (409: exit 3).
func TestMemberCLI(t *testing.T) {
	c := startCluster(t, 3)
	eps := strings.Join(c.Endpoints(), ",")
	member := func(args ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"member", "--endpoints", eps}, args...)...)
		cmd.Env = append(os.Environ(), c.ClientEnv(TokenAdmin)...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return string(out), code
	}
	out, code := member("list")
	require.Equal(t, 0, code, out)
	assert.Equal(t, 3, strings.Count(out, "voter"), out)
	for _, n := range c.Nodes {
		assert.Contains(t, out, n.Name)
	}

	out, code = member("remove", c.Nodes[2].Name)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "OK (index ")
	require.NoError(t, c.Kill(2))
	out, code = member("list")
	require.Equal(t, 0, code, out)
	assert.Equal(t, 2, strings.Count(out, "voter"), out)
	assert.NotContains(t, out, c.Nodes[2].Name)

	out, code = member("remove", "nosuch")
	assert.Equal(t, 2, code, out)
	out, code = member("promote", c.Nodes[0].Name)
	assert.Equal(t, 3, code, out)
	assert.Contains(t, out, "already a voter")

	// Add it back, on an empty folder: it enters under a placeholder
	// incarnation, the leader takes the one it answers with, catches it up
	// and promotes it.
	require.NoError(t, os.RemoveAll(c.DataDir(2)))
	require.NoError(t, c.StartNode(2))
	host, rp, _ := strings.Cut(c.Nodes[2].RaftAddr, ":")
	_, hp, _ := strings.Cut(c.Nodes[2].HTTPAddr, ":")
	out, code = member("add", c.Nodes[2].Name, host, rp, hp)
	require.Equal(t, 0, code, out)
	eventually(t, 20*time.Second, func() bool {
		out, code := member("list")
		return code == 0 && strings.Count(out, "voter") == 3 && !strings.Contains(out, "0000000000000000")
	}, "timed out: %s", "the added node becomes a voter")
	// With one of the two others down, the leader and the added node
	// commit a write: the added node counts.
	a := waitLeader(t, c, 10*time.Second)
	other := 1 - a
	if a == 2 {
		other = 0
	}
	require.NoError(t, c.Kill(other))
	l := waitLeader(t, c, 20*time.Second)
	r, err := do(http.MethodPut, c.Nodes[l].HTTPAddr, "after-add", "", []byte("yes"), session("add", 1))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code, r.body)
}
