package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var binary string

// testCerts holds the credentials every test cluster shares (CA, r0..r4's
// certificates, a token per role), so that the package's HTTP clients
// (httpc, linClient, bigClient: admin token) work against any of them.
var testCerts string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftkv-bin")
	if err != nil {
		panic(err)
	}
	binary, err = Build(dir)
	if err == nil {
		testCerts = filepath.Join(dir, "certs")
		err = MakeCredentials(testCerts, 5)
	}
	for _, hc := range []struct {
		c       **http.Client
		timeout time.Duration
	}{{&httpc, 3 * time.Second}, {&linClient, time.Second}, {&bigClient, 3 * time.Second}} {
		if err == nil {
			*hc.c, err = HTTPClient(testCerts, TokenAdmin, hc.timeout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Faster timing than the defaults keeps the suite short; the ratio is the
// same (heartbeat = election / 10).
var fastEnv = []string{"RAFT_HEARTBEAT=50ms", "RAFT_ELECTION_TIMEOUT=500ms"}

func startCluster(t *testing.T, nodes int, args ...string) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := Start(Options{Nodes: nodes, Binary: binary, Dir: dir, Env: fastEnv, Args: args, CertsDir: testCerts})
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for i := range c.Nodes {
				log := c.Log(i)
				if len(log) > 6000 {
					log = log[len(log)-6000:]
				}
				t.Logf("--- log of %s (tail) ---\n%s", c.Nodes[i].Name, log)
			}
		}
	})
	waitLeader(t, c, 10*time.Second)
	return c
}

func waitLeader(t *testing.T, c *Cluster, within time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	i, err := c.WaitLeader(ctx)
	require.NoError(t, err)
	return i
}

// httpc trusts testCerts' CA and sends its admin token (TestMain).
var httpc *http.Client

type reply struct {
	code   int
	index  uint64
	value  string
	header http.Header
	body   string
}

func do(method, ep, key, query string, body []byte, hdr map[string]string) (reply, error) {
	return doWith(httpc, method, ep, key, query, body, hdr)
}

func doWith(hc *http.Client, method, ep, key, query string, body []byte, hdr map[string]string) (reply, error) {
	u := "https://" + ep + "/v1/kv/" + url.PathEscape(key)
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, body: string(b)}
	var v struct {
		Index uint64 `json:"index"`
		Value string `json:"value"`
	}
	json.Unmarshal(b, &v)
	r.index, r.value = v.Index, v.Value
	return r, nil
}

func session(id string, seq uint64) map[string]string {
	return map[string]string{"Client-Id": id, "Request-Seq": strconv.FormatUint(seq, 10)}
}

// writer puts unique keys through random nodes until stopped, and records
// every write that was acknowledged.
type writer struct {
	mu    sync.Mutex
	acked map[string]string
	sent  atomic.Int64
}

func (w *writer) run(ctx context.Context, c *Cluster, id int) {
	for n := 0; ctx.Err() == nil; n++ {
		key := fmt.Sprintf("w%d-%d", id, n)
		val := fmt.Sprintf("v%d", n)
		ep := c.Nodes[(id+n)%len(c.Nodes)].HTTPAddr
		w.sent.Add(1)
		r, err := do(http.MethodPut, ep, key, "", []byte(val), session(fmt.Sprintf("writer-%d", id), uint64(n+1)))
		if err == nil && r.code == http.StatusOK {
			w.mu.Lock()
			w.acked[key] = val
			w.mu.Unlock()
		}
	}
}

// linearizableGet reads key through any node that answers.
func linearizableGet(t *testing.T, c *Cluster, key string) reply {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		i := i % len(c.Nodes)
		if c.Running(i) {
			r, err := do(http.MethodGet, c.Nodes[i].HTTPAddr, key, "", nil, nil)
			if err == nil && (r.code == http.StatusOK || r.code == http.StatusNotFound) {
				return r
			}
		}
		require.True(t, time.Now().Before(deadline), "no node answered a read of %q", key)
	}
}

func checkAcked(t *testing.T, c *Cluster, acked map[string]string) {
	t.Helper()
	for k, v := range acked {
		r := linearizableGet(t, c, k)
		if !assert.Equal(t, http.StatusOK, r.code, "acknowledged write %s lost", k) {
			continue
		}
		assert.Equal(t, v, r.value, "key %s", k)
	}
}

func TestKillLeaderUnderLoad(t *testing.T) {
	for _, nodes := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			c := startCluster(t, nodes)
			w := &writer{acked: map[string]string{}}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for id := range 4 {
				wg.Add(1)
				go func() { defer wg.Done(); w.run(ctx, c, id) }()
			}
			waitAcked(t, w, 50)
			old := waitLeader(t, c, 5*time.Second)
			require.NoError(t, c.Kill(old))
			killed := time.Now()
			// A new leader serves within a few election timeouts (500 ms here).
			nl := waitLeader(t, c, 5*time.Second)
			assert.NotEqual(t, old, nl)
			before := len(snapshotAcked(w))
			waitAcked(t, w, before+50)
			t.Logf("new leader %s serving %v after the kill", c.Nodes[nl].Name, time.Since(killed).Round(time.Millisecond))
			cancel()
			wg.Wait()
			acked := snapshotAcked(w)
			t.Logf("%d writes sent, %d acknowledged", w.sent.Load(), len(acked))
			checkAcked(t, c, acked)
		})
	}
}

func snapshotAcked(w *writer) map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]string, len(w.acked))
	for k, v := range w.acked {
		m[k] = v
	}
	return m
}

func waitAcked(t *testing.T, w *writer, n int) {
	t.Helper()
	eventually(t, 15*time.Second, func() bool { return len(snapshotAcked(w)) >= n }, "fewer than %d writes acknowledged in time", n)
}

// eventually polls cond every 10 ms until it holds, failing the test after
// within.
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf(msg, args...)
		}
	}
}

func TestKillAndRestartEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	w := &writer{acked: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, c, id) }()
	}
	for i := range c.Nodes {
		waitAcked(t, w, len(snapshotAcked(w))+30)
		require.NoError(t, c.Kill(i))
		require.NoError(t, c.StartNode(i))
		waitLeader(t, c, 10*time.Second)
	}
	waitAcked(t, w, len(snapshotAcked(w))+30)
	cancel()
	wg.Wait()
	acked := snapshotAcked(w)
	checkAcked(t, c, acked)
	// Every node ends with the same state machine.
	stopAllAndCompare(t, c)
}

// stopAllAndCompare waits for every node to apply the leader's commit
// index, stops them cleanly, and compares their persisted state machines.
func stopAllAndCompare(t *testing.T, c *Cluster) {
	t.Helper()
	l := waitLeader(t, c, 10*time.Second)
	ls, err := c.NodeStatus(l)
	require.NoError(t, err)
	for i := range c.Nodes {
		eventually(t, 10*time.Second, func() bool {
			st, err := c.NodeStatus(i)
			return err == nil && st.AppliedIndex >= ls.CommitIndex
		}, "node %s did not catch up to %d", c.Nodes[i].Name, ls.CommitIndex)
	}
	var first []byte
	for i := range c.Nodes {
		require.NoError(t, c.Stop(i, 10*time.Second))
		b, err := os.ReadFile(filepath.Join(c.DataDir(i), "statemachine.json"))
		require.NoError(t, err)
		var sm struct {
			StateMachine struct {
				Contents json.RawMessage
			}
		}
		require.NoError(t, json.Unmarshal(b, &sm))
		if i == 0 {
			first = sm.StateMachine.Contents
			continue
		}
		assert.JSONEq(t, string(first), string(sm.StateMachine.Contents), "state machine of %s differs from r0", c.Nodes[i].Name)
	}
}

func TestFollowerCatchesUpByInstallSnapshot(t *testing.T) {
	c := startCluster(t, 3, "--snapshot-every", "50")
	l := waitLeader(t, c, 5*time.Second)
	f := (l + 1) % 3
	require.NoError(t, c.Stop(f, 10*time.Second))
	ep := c.Nodes[l].HTTPAddr
	for i := range 300 {
		r, err := do(http.MethodPut, ep, fmt.Sprintf("k%d", i%40), "op=append", []byte(fmt.Sprintf("%d,", i)), session("snap", uint64(i+1)))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, r.code, r.body)
	}
	require.NoError(t, c.StartNode(f))
	stopAllAndCompare(t, c)
	assert.Contains(t, c.Log(f), "installed snapshot", "the follower caught up without InstallSnapshot")
}

func TestPausedLeaderServesNoStaleRead(t *testing.T) {
	c := startCluster(t, 3)
	terms := watchTerms(t, c)
	l := waitLeader(t, c, 5*time.Second)
	ep := func(i int) string { return c.Nodes[i].HTTPAddr }
	r, err := do(http.MethodPut, ep(l), "k", "", []byte("v1"), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code)

	require.NoError(t, c.Pause(l))
	var nl int
	deadline := time.Now().Add(10 * time.Second)
	for {
		other := (l + 1) % 3
		r, err = do(http.MethodPut, ep(other), "k", "", []byte("v2"), nil)
		if err == nil && r.code == http.StatusOK {
			nl = -1
			break
		}
		require.True(t, time.Now().Before(deadline), "no new leader took the write")
	}
	_ = nl
	require.NoError(t, c.Resume(l))
	// The old leader, just woken, must not serve its old value.
	r, err = do(http.MethodGet, ep(l), "k", "", nil, nil)
	if err == nil && r.code == http.StatusOK {
		assert.Equal(t, "v2", r.value, "stale read from a paused leader")
	}
	waitLeader(t, c, 5*time.Second)
	terms.check(t)
}

// termWatcher polls every node's status and remembers who led each term.
type termWatcher struct {
	mu      sync.Mutex
	leaders map[uint64]map[string]bool
	stop    func()
}

func watchTerms(t *testing.T, c *Cluster) *termWatcher {
	w := &termWatcher{leaders: map[uint64]map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for i := range c.Nodes {
				if st, err := c.NodeStatus(i); err == nil && st.Role == "leader" {
					w.mu.Lock()
					if w.leaders[st.Term] == nil {
						w.leaders[st.Term] = map[string]bool{}
					}
					w.leaders[st.Term][st.Name] = true
					w.mu.Unlock()
				}
			}
		}
	}()
	w.stop = func() { cancel(); <-done }
	t.Cleanup(w.stop)
	return w
}

func (w *termWatcher) check(t *testing.T) {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for term, names := range w.leaders {
		assert.Len(t, names, 1, "term %d had leaders %v", term, names)
	}
}

func TestExactlyOnceAcrossLeaderChange(t *testing.T) {
	c := startCluster(t, 3)
	l := waitLeader(t, c, 5*time.Second)
	hdr := session("once", 7)
	r, err := do(http.MethodPut, c.Nodes[l].HTTPAddr, "once", "op=append", []byte("x"), hdr)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code, r.body)
	first := r.index
	require.NoError(t, c.Kill(l))
	nl := waitLeader(t, c, 5*time.Second)
	// The client did not see the answer and retries with the same sequence
	// number at the new leader: the first result comes back, nothing twice.
	r, err = do(http.MethodPut, c.Nodes[nl].HTTPAddr, "once", "op=append", []byte("x"), hdr)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, first, r.index)
	assert.Equal(t, "x", linearizableGet(t, c, "once").value)
}

func TestBadInput(t *testing.T) {
	c := startCluster(t, 3)
	l := waitLeader(t, c, 5*time.Second)
	ep := c.Nodes[(l+1)%3].HTTPAddr // a follower: checks happen before forwarding
	r, err := do(http.MethodPut, ep, "keep", "", []byte("safe"), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code)
	before, err := c.NodeStatus(l)
	require.NoError(t, err)

	raw := func(method, path string, body []byte, hdr map[string]string) (int, string) {
		req, err := http.NewRequest(method, "https://"+ep+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := httpc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, path)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"value over 1 MiB", "PUT", "/v1/kv/big", bytes.Repeat([]byte("a"), 1<<20+1), nil, 413},
		{"value not UTF-8", "PUT", "/v1/kv/bad", []byte{0xff, 0xfe}, nil, 400},
		{"key not UTF-8", "PUT", "/v1/kv/%FF", []byte("v"), nil, 400},
		{"key too long", "PUT", "/v1/kv/" + strings.Repeat("k", 1025), []byte("v"), nil, 400},
		{"empty key", "PUT", "/v1/kv/", []byte("v"), nil, 400},
		{"bad op", "PUT", "/v1/kv/x?op=explode", []byte("v"), nil, 400},
		{"bad consistency", "GET", "/v1/kv/x?consistency=maybe", nil, nil, 400},
		{"bad seq", "PUT", "/v1/kv/x", []byte("v"), map[string]string{"Client-Id": "c", "Request-Seq": "-1"}, 400},
		{"seq without id", "PUT", "/v1/kv/x", []byte("v"), map[string]string{"Request-Seq": "1"}, 400},
		{"unknown route", "GET", "/v2/nothing", nil, nil, 404},
		{"unknown method", "PATCH", "/v1/kv/x", []byte("v"), nil, 405},
		{"status is read-only", "POST", "/v1/status", nil, nil, 405},
		{"missing key", "GET", "/v1/kv/never-written", nil, nil, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := raw(tc.method, tc.path, tc.body, tc.hdr)
			assert.Equal(t, tc.want, code, body)
			assert.Contains(t, body, `"error"`)
		})
	}

	// Garbage, a forged handshake and an oversized frame on the Raft port.
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		bytes.Repeat([]byte{0xff}, 4096),
		append([]byte("RAFTKV"), bytes.Repeat([]byte{0x7f}, 64)...),
	} {
		conn, err := net.DialTimeout("tcp", c.Nodes[l].RaftAddr, time.Second)
		require.NoError(t, err)
		conn.Write(junk)
		conn.Close()
	}
	// The cluster carries on with the same leader and the same term, and the
	// bad requests changed nothing.
	r, err = do(http.MethodPut, ep, "after", "", []byte("fine"), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, r.code)
	after, err := c.NodeStatus(l)
	require.NoError(t, err)
	assert.Equal(t, "leader", after.Role)
	assert.Equal(t, before.Term, after.Term)
	assert.Equal(t, before.CommitIndex+1, after.CommitIndex, "bad requests reached the log")
	assert.Equal(t, "safe", linearizableGet(t, c, "keep").value)
	for _, k := range []string{"big", "bad", "x"} {
		assert.Equal(t, http.StatusNotFound, linearizableGet(t, c, k).code, k)
	}
}
