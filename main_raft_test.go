package main

// Tests of the node command's start-up refusals, with real processes.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/config"
	"raftkv/src/raft"
	"raftkv/src/storage"
)

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// oneNodeHostfile writes a hostfile with one Raft node r0 on 127.0.0.1 and
// returns its path and r0's HTTP address.
func oneNodeHostfile(t *testing.T) (path, httpAddr string) {
	t.Helper()
	httpPort := freePort(t)
	hf := fmt.Sprintf(`{"raft":[{"name":"r0","host":"127.0.0.1","raft_port":%d,"http_port":%d}]}`, freePort(t), httpPort)
	path = filepath.Join(t.TempDir(), "hostfile.json")
	require.NoError(t, os.WriteFile(path, []byte(hf), 0o644))
	return path, net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
}

// nodeTLS makes (once per hostfile folder) a CA and r0's certificate next
// to the hostfile and returns the RAFTKV_* variables that give them to r0.
func nodeTLS(t *testing.T, hostfile string) []string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(hostfile), "certs")
	if _, err := os.Stat(certs.CAPath(dir)); err != nil {
		require.NoError(t, certs.Init(dir, certs.Options{}, false))
		require.NoError(t, certs.Node(dir, "r0", []string{"127.0.0.1"}, certs.Options{}, false))
	}
	if _, err := os.Stat(certs.TokensPath(dir)); err != nil {
		_, err := certs.AddToken(dir, "admin", api.RoleAdmin, false)
		require.NoError(t, err)
	}
	c, k := certs.NodePaths(dir, "r0")
	return []string{"RAFTKV_CACERT=" + certs.CAPath(dir), "RAFTKV_CERT=" + c, "RAFTKV_KEY=" + k, "RAFTKV_TOKENS=" + certs.TokensPath(dir)}
}

// nodeHTTP is how a test reaches r0's HTTP API: with TLS (nodeTLS's
// folder) the base URL is https, and the client trusts the CA and sends
// the admin token.
type nodeHTTP struct {
	base string
	c    *http.Client
}

func newNodeHTTP(t *testing.T, hostfile, httpAddr string, tls bool) nodeHTTP {
	t.Helper()
	if !tls {
		return nodeHTTP{base: "http://" + httpAddr, c: &http.Client{Timeout: time.Second}}
	}
	dir := filepath.Join(filepath.Dir(hostfile), "certs")
	cfg, tok, err := config.ClientAuth(certs.CAPath(dir), "", "", "@"+certs.TokenPath(dir, "admin"))
	require.NoError(t, err)
	return nodeHTTP{base: "https://" + httpAddr, c: &http.Client{Timeout: time.Second, Transport: bearer{tok, &http.Transport{TLSClientConfig: cfg}}}}
}

// bearer adds a token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// startNode starts `raftkv node` with TLS in the background; its stderr
// goes to a file.
func startNode(t *testing.T, hostfile, data string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	errPath := filepath.Join(t.TempDir(), "stderr")
	errFile, err := os.Create(errPath)
	require.NoError(t, err)
	defer errFile.Close()
	cmd := exec.Command(binary(t), append([]string{"node", "--name", "r0", "--hostfile", hostfile, "--data", data}, args...)...)
	cmd.Env = cleanEnv()
	if !slices.Contains(args, "--insecure") {
		cmd.Env = append(cmd.Env, nodeTLS(t, hostfile)...)
	}
	cmd.Stderr = errFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, errPath
}

// waitServing polls the node's /healthz until it answers 200 and its LOCK
// file names pid, or the deadline passes.
func waitServing(t *testing.T, h nodeHTTP, lockPath string, pid int) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(lockPath)
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
			return false
		}
		resp, err := h.c.Get(h.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "node pid %d did not start serving", pid)
}

// TestNodeRefusesSecondProcessOnFolder: while one node runs on a folder, a
// second `raftkv node` on it exits 2 naming the folder and the first's PID;
// after the first is killed with SIGKILL, the LOCK file it left blocks
// nobody.
func TestNodeRefusesSecondProcessOnFolder(t *testing.T) {
	hostfile, httpAddr := oneNodeHostfile(t)
	data := t.TempDir()
	folder := filepath.Join(data, "r0")
	lockPath := filepath.Join(folder, "LOCK")

	first, _ := startNode(t, hostfile, data)
	waitServing(t, newNodeHTTP(t, hostfile, httpAddr, true), lockPath, first.Process.Pid)

	second := run(t, nodeTLS(t, hostfile), "node", "--name", "r0", "--hostfile", hostfile, "--data", data)
	assert.Equal(t, 2, second.code)
	assert.Contains(t, second.stderr, fmt.Sprintf("raftkv node: %s is in use by another raftkv process (pid %d): refusing to start a second node on the same data",
		folder, first.Process.Pid))

	// inspect takes no lock: it reads the folder next to the running node.
	in := run(t, nil, "inspect", folder)
	assert.Equal(t, 0, in.code)

	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	third, _ := startNode(t, hostfile, data)
	waitServing(t, newNodeHTTP(t, hostfile, httpAddr, true), lockPath, third.Process.Pid)
	require.NoError(t, third.Process.Signal(syscall.SIGTERM))
	require.NoError(t, third.Wait(), "a clean stop")
}

// TestNodeRefusesLogThatLostRecords: a node whose last log segment was cut
// in half after a clean stop refuses to start, naming the file; inspect
// prints what is left with the error and exits 2; neither changes the folder.
func TestNodeRefusesLogThatLostRecords(t *testing.T) {
	hostfile, _ := oneNodeHostfile(t)
	data := t.TempDir()
	folder := filepath.Join(data, "r0")
	s, _, err := storage.Open(storage.Options{Dir: folder, Logger: zaptest.NewLogger(t)})
	require.NoError(t, err)
	for i := uint64(1); i <= 200; i += 10 {
		var ents []raft.Entry
		for k := i; k < i+10; k++ {
			ents = append(ents, raft.Entry{Term: 1, Index: k, Type: raft.EntryNoop})
		}
		require.NoError(t, s.Save(raft.HardState{Term: 1, Vote: 0, Commit: i + 9}, ents))
	}
	require.NoError(t, s.Close())
	segs, err := filepath.Glob(filepath.Join(folder, "wal-*.jsonl"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	st, err := os.Stat(segs[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(segs[0], st.Size()/2))
	seg, err := os.ReadFile(segs[0])
	require.NoError(t, err)

	// RAFT_DURATION bounds a node that wrongly starts (exit 0), so the
	// test fails instead of hanging.
	node := run(t, append(nodeTLS(t, hostfile), "RAFT_DURATION=3"), "node", "--name", "r0", "--hostfile", hostfile, "--data", data)
	assert.Equal(t, 1, node.code)
	assert.Contains(t, node.stderr, "raftkv node: ")
	assert.Contains(t, node.stderr, segs[0])
	assert.Contains(t, node.stderr, "but the commit index recorded in hardstate.json is 200: records that were synced are missing; refusing to start")

	in := run(t, nil, "inspect", folder)
	assert.Equal(t, 2, in.code)
	assert.Contains(t, in.stderr, segs[0])
	var out struct {
		LogLastIndex uint64
		AppliedIndex uint64
		Error        string
	}
	require.NoError(t, json.Unmarshal([]byte(in.stdout), &out))
	assert.Contains(t, out.Error, "records that were synced are missing")
	assert.Greater(t, out.LogLastIndex, uint64(0))
	assert.Less(t, out.LogLastIndex, uint64(200))
	assert.Equal(t, out.LogLastIndex, out.AppliedIndex)

	after, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	assert.Equal(t, seg, after, "nothing was cut")
}

// TestNodeNeedsTLSOrInsecure: without TLS material a node starts only with
// --insecure, and says which it runs in its first log line and its status.
func TestNodeNeedsTLSOrInsecure(t *testing.T) {
	hostfile, httpAddr := oneNodeHostfile(t)
	refused := run(t, []string{"RAFT_DURATION=3"}, "node", "--name", "r0", "--hostfile", hostfile, "--data", t.TempDir())
	assert.Equal(t, 2, refused.code)
	assert.Contains(t, refused.stderr, "no TLS material for peer traffic")
	assert.Contains(t, refused.stderr, "raftkv certs init --dir certs")
	assert.Contains(t, refused.stderr, "--insecure")

	for _, tc := range []struct {
		name string
		args []string
		tls  bool
	}{{"tls", nil, true}, {"insecure", []string{"--insecure"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			cmd, errPath := startNode(t, hostfile, data, tc.args...)
			h := newNodeHTTP(t, hostfile, httpAddr, tc.tls)
			waitServing(t, h, filepath.Join(data, "r0", "LOCK"), cmd.Process.Pid)
			resp, err := h.c.Get(h.base + "/v1/status")
			require.NoError(t, err)
			var st api.Status
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
			resp.Body.Close()
			assert.Equal(t, tc.tls, st.PeerTLS)
			assert.Equal(t, tc.tls, st.ClientTLS)
			assert.Equal(t, tc.tls, st.Tokens)
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, cmd.Wait())
			logs, err := os.ReadFile(errPath)
			require.NoError(t, err)
			first, _, _ := strings.Cut(string(logs), "\n")
			assert.Contains(t, first, "starting node")
			assert.Contains(t, first, fmt.Sprintf(`"peer_tls": %v`, tc.tls))
			assert.Contains(t, first, fmt.Sprintf(`"client_tls": %v`, tc.tls))
			assert.Contains(t, first, fmt.Sprintf(`"tokens": %v`, tc.tls))
			assert.Contains(t, first, `"raft_listen": "127.0.0.1:`, "bound on the hostfile's IP")
		})
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	assert.Equal(t, 0, run(t, nil, "certs", "init", "--dir", dir).code)
	again := run(t, nil, "certs", "init", "--dir", dir)
	assert.Equal(t, 2, again.code)
	assert.Contains(t, again.stderr, "exists (use --force")
	assert.Equal(t, 0, run(t, nil, "certs", "init", "--dir", dir, "--force").code)
	out := run(t, nil, "certs", "node", "r1", "--dir", dir, "--host", "r1,10.0.0.7", "--days", "30")
	require.Equal(t, 0, out.code)
	c, k := certs.NodePaths(dir, "r1")
	for path, mode := range map[string]os.FileMode{c: 0o644, k: 0o600, filepath.Join(dir, certs.CAKeyFile): 0o600} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), path)
	}
	cfg, err := certs.LoadPeer(certs.CAPath(dir), c, k)
	require.NoError(t, err)
	leaf := cfg.Certificates[0].Leaf
	assert.Equal(t, []string{"r1"}, leaf.DNSNames)
	assert.Equal(t, "10.0.0.7", leaf.IPAddresses[0].String())
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), leaf.NotAfter, time.Hour)
	assert.Equal(t, 2, run(t, nil, "certs", "node", "--dir", dir).code, "no name")
	assert.Equal(t, 2, run(t, nil, "certs", "node", "r2", "--dir", filepath.Join(t.TempDir(), "none")).code, "no CA")
	assert.Equal(t, 2, run(t, nil, "certs", "bogus").code)
}
