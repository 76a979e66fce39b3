package localcluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/client"
	"raftkv/src/datafile"
)

// moduleFile finds a file at the module root (the shipped data files).
func moduleFile(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), name)
}

// TestClientNodesSurviveLeaderKill runs both shipped data files through
// real `raftkv client` processes, kills the leader half-way, and checks
// each client's JSON record against the final state: every acknowledged
// write is there exactly once, in the client's order.
func TestClientNodesSurviveLeaderKill(t *testing.T) {
	c := startCluster(t, 3)
	dir := t.TempDir()
	var procs []*exec.Cmd
	files := map[string]string{"c0": moduleFile(t, "datafile.0.txt"), "c1": moduleFile(t, "datafile.1.txt")}
	for _, name := range []string{"c0", "c1"} {
		cmd := exec.Command(binary, "client", "--name", name, "--hostfile", c.Hostfile, "--datafile", files[name], "--data", dir)
		cmd.Env = append(os.Environ(), append(c.ClientEnv(TokenReadWrite), "RAFT_INTERVAL=40ms", "RAFT_DURATION=60")...)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logf, logf
		require.NoError(t, cmd.Start())
		procs = append(procs, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	}
	readRecord := func(name string) (api.ClientRecord, error) {
		var rec api.ClientRecord
		b, err := os.ReadFile(filepath.Join(dir, name, "record.json"))
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		return rec, err
	}
	// Kill the leader once a quarter of the commands went through.
	eventually(t, 30*time.Second, func() bool {
		rec, err := readRecord("c0")
		return err == nil && len(rec.Commands) > 12
	}, "client c0 made no progress")
	old := waitLeader(t, c, 5*time.Second)
	require.NoError(t, c.Kill(old))
	eventually(t, 60*time.Second, func() bool {
		r0, err0 := readRecord("c0")
		r1, err1 := readRecord("c1")
		return err0 == nil && err1 == nil && r0.AllSent && r1.AllSent
	}, "the client nodes did not send all their commands")
	for _, p := range procs {
		require.NoError(t, p.Process.Signal(syscall.SIGTERM))
		require.NoError(t, p.Wait(), "a client node did not stop cleanly")
	}
	nl := waitLeader(t, c, 5*time.Second)
	st, err := c.NodeStatus(nl)
	require.NoError(t, err)
	assert.NotEqual(t, c.Nodes[old].Name, st.Leader, "status still names the dead leader")

	shared := map[string][]string{} // shared key -> every client's appended tokens, in order
	for _, name := range []string{"c0", "c1"} {
		rec, err := readRecord(name)
		require.NoError(t, err)
		f, err := os.Open(files[name])
		require.NoError(t, err)
		cmds, bad := datafile.Parse(f, files[name])
		f.Close()
		require.Empty(t, bad)
		require.Len(t, rec.Commands, len(cmds))
		own := map[string]*string{}
		for i, cmd := range cmds {
			got := rec.Commands[i]
			require.Equal(t, cmd.Line, got.Line)
			require.Equal(t, api.OutcomeOK, got.Outcome, "%s line %d: %s %s", name, got.Line, got.Op, got.Key)
			if strings.HasPrefix(cmd.Key, "shared-") {
				if cmd.Op == api.OpAppend {
					shared[cmd.Key] = append(shared[cmd.Key], cmd.Value)
				}
				continue
			}
			v := own[cmd.Key]
			switch cmd.Op {
			case api.OpPut:
				s := cmd.Value
				own[cmd.Key] = &s
			case api.OpAppend:
				s := cmd.Value
				if v != nil {
					s = *v + s
				}
				own[cmd.Key] = &s
			case api.OpDelete:
				own[cmd.Key] = nil
			}
		}
		for k, want := range own {
			r := linearizableGet(t, c, k)
			if want == nil {
				assert.Equal(t, http.StatusNotFound, r.code, "%s: %s should be deleted", name, k)
				continue
			}
			assert.Equal(t, *want, r.value, "%s: key %s", name, k)
		}
	}
	// Shared keys: tokens unique to a client (like c0.07;) appear exactly
	// once and in that client's order; repeated ones the right number of
	// times.
	for key, toks := range shared {
		final := linearizableGet(t, c, key).value
		count := map[string]int{}
		for _, tok := range toks {
			count[tok]++
		}
		last := map[string]int{}
		for _, tok := range toks {
			if count[tok] > 1 {
				continue
			}
			i := strings.Index(final, tok)
			require.GreaterOrEqual(t, i, 0, "%s lost %q", key, tok)
			assert.Equal(t, 1, strings.Count(final, tok), "%s holds %q twice", key, tok)
			client := strings.SplitN(tok, ".", 2)[0]
			assert.Greater(t, i, last[client]-1, "%s: %q out of order", key, tok)
			last[client] = i
		}
		for tok, n := range count {
			if n > 1 {
				assert.Equal(t, n, strings.Count(final, tok), "%s: %q", key, tok)
			}
		}
	}
}

// dropReplyProxy passes each connection's requests to upstream and, as soon
// as the upstream starts answering (the command was applied), closes the
// connection without relaying the answer: a reply lost after commit.
func dropReplyProxy(t *testing.T, upstream string) string {
	// The nodes speak HTTPS: the proxy ends the client's TLS with a
	// certificate of the test CA and opens its own to the node, so that
	// it sees where the request ends and the reply starts.
	c, k := certs.NodePaths(testCerts, "r0")
	peer, err := certs.LoadPeer(certs.CAPath(testCerts), c, k)
	require.NoError(t, err)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: peer.Certificates, MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				up, err := tls.Dial("tcp", upstream, &tls.Config{RootCAs: peer.RootCAs, MinVersion: tls.VersionTLS13})
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, conn)
				one := make([]byte, 1)
				up.Read(one)
			}()
		}
	}()
	return l.Addr().String()
}

// TestRetryAfterLostReply: the reply to an append is lost after the command
// committed; the Go client retries with the same Request-Seq at another
// node and the value is applied once.
func TestRetryAfterLostReply(t *testing.T) {
	c := startCluster(t, 3)
	l := waitLeader(t, c, 5*time.Second)
	proxy := dropReplyProxy(t, c.Nodes[l].HTTPAddr)
	tlsCfg, tok, err := c.ClientAuth(TokenReadWrite)
	require.NoError(t, err)
	cl, err := client.New(client.Config{
		TLS: tlsCfg, Token: tok,
		Endpoints: []string{proxy, c.Nodes[l].HTTPAddr},
		Names:     []string{"lossy", "direct"},
		ClientID:  "lost-reply", RequestTimeout: time.Second,
	})
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.Append(ctx, "once", "x")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res.Attempts, 2, "the first reply was not lost")
	assert.Equal(t, "x", linearizableGet(t, c, "once").value, "the retried append was applied twice")
	// The same holds for a raw retry: the first result comes back.
	r, err := do(http.MethodPut, c.Nodes[l].HTTPAddr, "once", "op=append", []byte("x"), session("lost-reply", res.Seq))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, res.Index, r.index)
	assert.Equal(t, "x", linearizableGet(t, c, "once").value)
	t.Logf("append applied once at index %d after %d attempts", res.Index, res.Attempts)
}

// TestCLI runs every CLI command against a real cluster and checks output
// and exit codes (CONTRACT.md).
func TestCLI(t *testing.T) {
	c := startCluster(t, 3)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binary, append(args[:1:1], append([]string{"--hostfile", c.Hostfile}, args[1:]...)...)...)
		cmd.Env = append(os.Environ(), c.ClientEnv(TokenReadWrite)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return string(out), code
	}
	out, code := run("put", "foo", "bar")
	assert.Equal(t, 0, code, out)
	assert.Regexp(t, `^OK \(leader r\d, index \d+\)\n$`, out)
	out, code = run("append", "foo", "123")
	assert.Equal(t, 0, code, out)
	out, code = run("get", "foo")
	assert.Equal(t, 0, code)
	assert.Equal(t, "bar123\n", out)
	out, code = run("get", "--stale", "foo")
	assert.Equal(t, 0, code, out)
	out, code = run("delete", "foo")
	assert.Equal(t, 0, code, out)
	_, code = run("get", "foo")
	assert.Equal(t, 1, code, "get of a deleted key")
	_, code = run("put", "only-key")
	assert.Equal(t, 2, code, "usage error")
	out, code = run("status")
	assert.Equal(t, 0, code, out)
	l := waitLeader(t, c, 5*time.Second)
	assert.Contains(t, out, "leader")
	assert.Contains(t, out, c.Nodes[l].Name)
	out, code = run("status", "--json")
	assert.Equal(t, 0, code, out)
	assert.True(t, json.Valid([]byte(out)), out)
	// The whole cluster down: exit 3, outcome unknown or unavailable.
	for i := range c.Nodes {
		require.NoError(t, c.Kill(i))
	}
	out, code = run("put", "--timeout", "500ms", "k", "v")
	assert.Equal(t, 3, code, out)
}

// TestInspectKilledNodes: after kill -9 of every node, `raftkv inspect`
// recovers each folder read-only, with every acknowledged write.
func TestInspectKilledNodes(t *testing.T) {
	c := startCluster(t, 3)
	l := waitLeader(t, c, 5*time.Second)
	var last uint64
	for i := range 20 {
		r, err := do(http.MethodPut, c.Nodes[l].HTTPAddr, fmt.Sprintf("k%d", i), "", []byte(fmt.Sprintf("v%d", i)), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.code)
		last = r.index
	}
	// Let the followers hear the last commit index (one heartbeat).
	eventually(t, 5*time.Second, func() bool {
		for i := range c.Nodes {
			if st, err := c.NodeStatus(i); err != nil || st.AppliedIndex < last {
				return false
			}
		}
		return true
	}, "followers did not apply every write")
	for i := range c.Nodes {
		require.NoError(t, c.Kill(i))
	}
	for i := range c.Nodes {
		out, err := exec.Command(binary, "inspect", c.DataDir(i)).Output()
		require.NoError(t, err, "inspect %s", c.Nodes[i].Name)
		var in struct {
			CleanStop    bool
			StateMachine struct{ Contents map[string]string }
		}
		require.NoError(t, json.Unmarshal(out, &in))
		assert.False(t, in.CleanStop)
		for k := range 20 {
			assert.Equal(t, fmt.Sprintf("v%d", k), in.StateMachine.Contents[fmt.Sprintf("k%d", k)], "%s k%d", c.Nodes[i].Name, k)
		}
	}
}
