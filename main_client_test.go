package main

// Tests of the client-side commands: the real binary, built once, against
// fake clusters (src/client/clienttest).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/client/clienttest"
	"raftkv/src/datafile"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds raftkv once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "raftkv-cli-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "raftkv")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with args and extra environment variables.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	t.Logf("raftkv %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{out.String(), errb.String(), code}
}

// cleanEnv is the test's environment without RAFT_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RAFT_") && !strings.HasPrefix(kv, "RAFTKV_") {
			env = append(env, kv)
		}
	}
	return env
}

// writeHostfile writes a hostfile for fake's nodes and clients (name ->
// datafile) and returns its path.
func writeHostfile(t *testing.T, fake *clienttest.Cluster, clients map[string]string) string {
	t.Helper()
	type peer struct {
		Name     string `json:"name"`
		Host     string `json:"host"`
		RaftPort int    `json:"raft_port"`
		HTTPPort int    `json:"http_port"`
	}
	type cl struct {
		Name     string `json:"name"`
		Datafile string `json:"datafile"`
	}
	hf := struct {
		Raft    []peer `json:"raft"`
		Clients []cl   `json:"clients"`
	}{Clients: []cl{}}
	for i, ep := range fake.Endpoints() {
		host, port, err := net.SplitHostPort(ep)
		require.NoError(t, err)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		hf.Raft = append(hf.Raft, peer{Name: fake.Names()[i], Host: host, RaftPort: 1 + i, HTTPPort: p})
	}
	for name, df := range clients {
		hf.Clients = append(hf.Clients, cl{Name: name, Datafile: df})
	}
	data, err := json.Marshal(hf)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "hostfile.json")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestCLIKeyValue(t *testing.T) {
	fake := clienttest.New(t, 3)
	hf := writeHostfile(t, fake, nil)
	eps := strings.Join(fake.Endpoints(), ",")

	r := run(t, nil, "put", "--hostfile", hf, "foo", "bar")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "OK (leader r0, index 1)\n", r.stdout)

	// Flags may follow the arguments; --endpoints replaces the hostfile.
	r = run(t, nil, "append", "foo", "123", "--endpoints", eps)
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "OK (leader r0, index 2)\n", r.stdout)

	r = run(t, nil, "get", "--hostfile", hf, "foo")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "bar123\n", r.stdout)
	assert.Empty(t, r.stderr)

	r = run(t, nil, "get", "--hostfile", hf, "--stale", "foo")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "bar123\n", r.stdout)

	// A value that starts with '-' and one with spaces and UTF-8; a key
	// with '/' and spaces.
	r = run(t, nil, "put", "--hostfile", hf, "a/b c", "--", "-5 and ünïcode")
	assert.Equal(t, 0, r.code)
	v, _ := fake.Value("a/b c")
	assert.Equal(t, "-5 and ünïcode", v)

	r = run(t, nil, "delete", "--hostfile", hf, "foo")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "OK (leader r0, index 4)\n", r.stdout)

	r = run(t, nil, "get", "--hostfile", hf, "foo")
	assert.Equal(t, 1, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, `key "foo" not found`)

	// A follower answers for the leader: the output names the leader.
	fake.SetLeader(2)
	r = run(t, nil, "put", "--hostfile", hf, "x", "y")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, "OK (leader r2, index 5)\n", r.stdout)

	// Every write carried a Client-Id and a Request-Seq.
	for _, w := range fake.Writes() {
		assert.NotEmpty(t, w.ClientID)
		assert.Equal(t, uint64(1), w.Seq, "each CLI run is a fresh client")
	}

	// A key too long: refused by the cluster, exit 2.
	r = run(t, nil, "put", "--hostfile", hf, strings.Repeat("k", 1025), "v")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "refused by the cluster")
}

func TestCLIUsage(t *testing.T) {
	fake := clienttest.New(t, 1)
	eps := fake.Endpoints()[0]
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"put without value", []string{"put", "--endpoints", eps, "k"}, "want 2 arguments, got 1"},
		{"put with unquoted spaces", []string{"put", "--endpoints", eps, "k", "a", "b"}, "quote a VALUE"},
		{"get without key", []string{"get", "--endpoints", eps}, "want 1 arguments, got 0"},
		{"delete two keys", []string{"delete", "--endpoints", eps, "a", "b"}, "want 1 arguments, got 2"},
		{"empty key", []string{"get", "--endpoints", eps, ""}, "KEY is empty"},
		{"unknown flag", []string{"get", "--bogus", "k"}, "flag provided but not defined: -bogus"},
		{"stale on put", []string{"put", "--stale", "k", "v"}, "not defined: -stale"},
		{"bad timeout", []string{"get", "--timeout", "soon", "k"}, "invalid value"},
		{"zero timeout", []string{"get", "--endpoints", eps, "--timeout", "0s", "k"}, "must be positive"},
		{"bad endpoints", []string{"get", "--endpoints", "nohost", "k"}, "not host:port"},
		{"missing hostfile", []string{"get", "--hostfile", filepath.Join(t.TempDir(), "none.json"), "k"}, "give --hostfile or --endpoints"},
		{"status argument", []string{"status", "--endpoints", eps, "extra"}, `unexpected argument "extra"`},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"inspect without a folder", []string{"inspect"}, "usage: raftkv inspect DIR"},
		{"inspect a missing folder", []string{"inspect", filepath.Join(t.TempDir(), "none")}, "no such file"},
		{"bench bad flag", []string{"bench", "--bogus"}, "-bogus"},
		{"client bad interval", []string{"client", "--name", "c0", "--datafile", "x", "--endpoints", eps, "--interval", "fast"}, "--interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, tc.args...)
			assert.Equal(t, 2, r.code)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
		})
	}
	t.Run("help", func(t *testing.T) {
		r := run(t, nil, "put", "--help")
		assert.Equal(t, 0, r.code)
		assert.Contains(t, r.stdout, "usage: raftkv put [flags] KEY VALUE")
	})
	assert.Empty(t, fake.Writes(), "no usage error reached the cluster")
}

func TestCLIUnavailable(t *testing.T) {
	t.Run("nothing listens", func(t *testing.T) {
		eps := deadAddr(t) + "," + deadAddr(t)
		for _, args := range [][]string{{"put", "k", "v"}, {"get", "k"}, {"delete", "k"}, {"status"}} {
			start := time.Now()
			r := run(t, nil, append(args, "--endpoints", eps, "--timeout", "300ms")...)
			assert.Equal(t, 3, r.code, args)
			assert.Less(t, time.Since(start), 5*time.Second)
			if args[0] != "status" {
				assert.Contains(t, r.stderr, "cluster unavailable")
			}
		}
	})
	t.Run("no leader", func(t *testing.T) {
		fake := clienttest.New(t, 3)
		fake.SetLeader(-1)
		r := run(t, nil, "put", "--endpoints", strings.Join(fake.Endpoints(), ","), "--timeout", "300ms", "k", "v")
		assert.Equal(t, 3, r.code)
		assert.Contains(t, r.stderr, "no leader known")
	})
	t.Run("outcome unknown", func(t *testing.T) {
		fake := clienttest.New(t, 3)
		fake.LoseReplies(1 << 30)
		r := run(t, nil, "append", "--endpoints", strings.Join(fake.Endpoints(), ","), "--timeout", "300ms", "k", "v")
		assert.Equal(t, 3, r.code)
		assert.Contains(t, r.stderr, "OUTCOME UNKNOWN")
		assert.Contains(t, r.stderr, "may or may not have been applied")
		v, _ := fake.Value("k")
		assert.Equal(t, "v", v, "retried with one seq: applied once")
	})
}

func TestCLIStatus(t *testing.T) {
	fake := clienttest.New(t, 3)
	hf := writeHostfile(t, fake, nil)
	require.Equal(t, 0, run(t, nil, "put", "--hostfile", hf, "k", "v").code)
	require.Equal(t, 0, run(t, nil, "put", "--hostfile", hf, "k", "w").code)
	fake.SetLag(1, 2)
	fake.Stop(2)

	r := run(t, nil, "status", "--hostfile", hf)
	assert.Equal(t, 0, r.code)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.GreaterOrEqual(t, len(lines), 4)
	assert.Equal(t, []string{"NAME", "ENDPOINT", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG"}, strings.Fields(lines[0]))
	eps := fake.Endpoints()
	assert.Equal(t, []string{"r0", eps[0], "leader", "1", "r0", "2", "2", "0"}, strings.Fields(lines[1]))
	assert.Equal(t, []string{"r1", eps[1], "follower", "1", "r0", "2", "0", "2"}, strings.Fields(lines[2]))
	assert.Equal(t, []string{"r2", eps[2], "unreachable", "-", "-", "-", "-", "-"}, strings.Fields(lines[3]))

	r = run(t, nil, "status", "--json", "--hostfile", hf)
	assert.Equal(t, 0, r.code)
	var out struct {
		Leader string           `json:"leader"`
		Nodes  []map[string]any `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, "r0", out.Leader)
	require.Len(t, out.Nodes, 3)
	assert.Equal(t, "r1", out.Nodes[1]["name"])
	assert.Equal(t, float64(2), out.Nodes[1]["lag"])
	assert.Equal(t, float64(2), out.Nodes[1]["commit_index"])
	assert.Equal(t, true, out.Nodes[1]["reachable"])
	assert.Equal(t, false, out.Nodes[2]["reachable"])
	assert.Equal(t, "r2", out.Nodes[2]["name"])
	assert.NotEmpty(t, out.Nodes[2]["error"])
}

func readRecord(t *testing.T, path string) (api.ClientRecord, bool) {
	var rec api.ClientRecord
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec, false
	}
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rec), "record.json is always whole JSON")
	return rec, true
}

// startClient starts a client node; the returned function waits for its
// exit code.
func startClient(t *testing.T, env []string, args ...string) (*exec.Cmd, func() (int, string)) {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"client"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	require.NoError(t, cmd.Start())
	var once sync.Once
	code := -1
	wait := func() (int, string) {
		once.Do(func() {
			err := cmd.Wait()
			code = 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			t.Logf("client %v exited %d; stderr:\n%s", args, code, errb.String())
		})
		return code, errb.String()
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		wait()
	})
	return cmd, wait
}

// waitAllSent polls a record until the client has sent every command.
func waitAllSent(t *testing.T, path string) api.ClientRecord {
	t.Helper()
	var rec api.ClientRecord
	pollUntil(t, 20*time.Second, "client never sent all commands", func() bool {
		r, ok := readRecord(t, path)
		rec = r
		return ok && r.AllSent
	})
	return rec
}

// pollUntil checks cond every 5 ms until it holds, failing the test after
// within.
func pollUntil(t *testing.T, within time.Duration, msg string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal(msg)
		}
	}
}

// expected replays data files' commands in order on a map.
func apply(state map[string]string, cmds []datafile.Command) {
	for _, c := range cmds {
		switch c.Op {
		case api.OpPut:
			state[c.Key] = c.Value
		case api.OpAppend:
			state[c.Key] += c.Value
		case api.OpDelete:
			delete(state, c.Key)
		}
	}
}

func parseFile(t *testing.T, path string) []datafile.Command {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cmds, errs := datafile.Parse(f, path)
	require.Empty(t, errs)
	return cmds
}

func TestShippedDatafiles(t *testing.T) {
	for _, name := range []string{"datafile.0.txt", "datafile.1.txt"} {
		cmds := parseFile(t, name)
		assert.GreaterOrEqual(t, len(cmds), 40, name)
		ops := map[api.Op]int{}
		for _, c := range cmds {
			ops[c.Op]++
		}
		for _, op := range []api.Op{api.OpPut, api.OpAppend, api.OpGet, api.OpDelete} {
			assert.Positive(t, ops[op], "%s has %s", name, op)
		}
	}
	// The expected values written in the files' comments hold.
	state := map[string]string{}
	apply(state, parseFile(t, "datafile.0.txt"))
	assert.Equal(t, "0+1+2+3+4+5", state["c0-counter"])
	assert.Equal(t, "second-and-more", state["c0-overwritten"])
	assert.Equal(t, "alpha,beta,gamma,delta,epsilon,zeta,", state["c0-words"])
	assert.Equal(t, "hello from c0, again", state["c0-greeting"])
	assert.Equal(t, "reborn", state["c0-gone"])
	assert.NotContains(t, state, "c0-temp")
}

// TestClientNode replays both shipped data files through two client nodes
// at once against a fake cluster that loses replies and changes leader, then
// stops them with SIGTERM: every command is acknowledged once, the records
// say so, and the final state is what the files say.
func TestClientNode(t *testing.T) {
	fake := clienttest.New(t, 3)
	hf := writeHostfile(t, fake, map[string]string{"c0": "datafile.0.txt", "c1": "datafile.1.txt"})
	data := t.TempDir()
	env := []string{"RAFT_INTERVAL=1ms"}
	fake.LoseReplies(4) // the first writes' replies are lost: retried with the same seq

	cmd0, wait0 := startClient(t, env, "--name", "c0", "--hostfile", hf, "--data", data)
	cmd1, wait1 := startClient(t, append(env, "RAFT_NAME=c1"), "--hostfile", hf, "--data", data)
	rec0path := filepath.Join(data, "c0", "record.json")
	rec1path := filepath.Join(data, "c1", "record.json")

	// Change the leader mid-run.
	pollUntil(t, 20*time.Second, "client c0 made no progress", func() bool {
		rec, ok := readRecord(t, rec0path)
		return ok && len(rec.Commands) >= 10
	})
	fake.SetLeader(1)

	waitAllSent(t, rec0path)
	waitAllSent(t, rec1path)
	for i, c := range []*exec.Cmd{cmd0, cmd1} {
		require.NoError(t, c.Process.Signal(syscall.SIGTERM))
		code, stderr := []func() (int, string){wait0, wait1}[i]()
		assert.Equal(t, 0, code)
		assert.Contains(t, stderr, "client node stopped")
	}
	rec0, _ := readRecord(t, rec0path)
	rec1, _ := readRecord(t, rec1path)
	require.Equal(t, "c0", rec0.Client)
	require.Equal(t, "c1", rec1.Client)
	assert.NotEmpty(t, rec0.Stopped)
	assert.NotEmpty(t, rec1.Stopped)
	assert.NotEqual(t, rec0.ClientID, rec1.ClientID)

	want := map[string]string{}
	var shared []string
	for _, rec := range []api.ClientRecord{rec0, rec1} {
		cmds := parseFile(t, map[string]string{"c0": "datafile.0.txt", "c1": "datafile.1.txt"}[rec.Client])
		require.Len(t, rec.Commands, len(cmds))
		var lastSeq uint64
		for i, e := range rec.Commands {
			assert.Equal(t, cmds[i].Line, e.Line)
			assert.Equal(t, cmds[i].Op, e.Op)
			assert.Equal(t, api.OutcomeOK, e.Outcome, "%+v", e)
			assert.Equal(t, rec.ClientID, e.ClientID)
			if e.Op == "get" {
				assert.Zero(t, e.Seq)
				require.NotNil(t, e.Found)
				continue
			}
			assert.Greater(t, e.Seq, lastSeq, "a new seq per command")
			lastSeq = e.Seq
			assert.Positive(t, e.Index)
		}
		own := map[string]string{}
		apply(own, cmds)
		for k, v := range own {
			if strings.HasPrefix(k, rec.Client) {
				want[k] = v
			}
		}
		for _, c := range cmds {
			if c.Key == "shared-log" && c.Op == "append" {
				shared = append(shared, c.Value)
			}
		}
	}
	got := fake.Data()
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
	for k := range got {
		if !strings.HasPrefix(k, "shared-") {
			assert.Contains(t, want, k, "no key beyond the files'")
		}
	}
	// Each token once, each client's in its order.
	log := got["shared-log"]
	for _, tok := range shared {
		assert.Equal(t, 1, strings.Count(log, tok), tok)
	}
	for _, c := range []string{"c0", "c1"} {
		var toks []string
		for _, tok := range strings.SplitAfter(log, ";") {
			if strings.HasPrefix(tok, c+".") {
				toks = append(toks, tok)
			}
		}
		for i, tok := range toks {
			assert.Equal(t, fmt.Sprintf("%s.%02d;", c, i+1), tok)
		}
	}
	assert.Equal(t, 6, strings.Count(got["shared-tally"], "c"))
}

// TestClientNodeDuration: bad lines are reported and skipped; the node stops
// by itself when RAFT_DURATION ends, even in the middle of a command whose
// replies are all lost, which its record calls unknown.
func TestClientNodeDuration(t *testing.T) {
	fake := clienttest.New(t, 2)
	dir := t.TempDir()
	df := filepath.Join(dir, "my data.txt")
	require.NoError(t, os.WriteFile(df, []byte("put a 1\npur a 2\nget a\nget\nappend b 3\n"), 0o644))
	hf := writeHostfile(t, fake, map[string]string{"c9": df})
	data := filepath.Join(dir, "persistence")

	// The last append's replies are lost until the run ends.
	fake.LoseRepliesForKey("b")
	_, wait := startClient(t, []string{"RAFT_INTERVAL=1ms", "RAFT_DURATION=1500ms", "RAFT_NAME=c9"}, "--hostfile", hf, "--data", data)
	recPath := filepath.Join(data, "c9", "record.json")
	start := time.Now()
	code, stderr := wait()
	assert.Equal(t, 0, code)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, stderr, df+`:2: unknown command \"pur\"`)
	assert.Contains(t, stderr, df+`:4: get needs KEY`)

	rec, ok := readRecord(t, recPath)
	require.True(t, ok)
	assert.Equal(t, []string{df + `:2: unknown command "pur"`, df + ":4: get needs KEY"}, rec.BadLines)
	require.Len(t, rec.Commands, 3)
	assert.Equal(t, api.OutcomeOK, rec.Commands[0].Outcome)
	require.NotNil(t, rec.Commands[1].Read)
	assert.Equal(t, "1", *rec.Commands[1].Read)
	last := rec.Commands[2]
	assert.Equal(t, 5, last.Line)
	assert.Equal(t, api.OutcomeUnknown, last.Outcome)
	assert.Contains(t, last.Error, "outcome unknown")
	assert.Equal(t, uint64(2), last.Seq)
	assert.True(t, rec.AllSent)
	assert.NotEmpty(t, rec.Stopped)
	v, _ := fake.Value("b")
	assert.Equal(t, "3", v, "the unknown append was applied once")
}

func TestClientNodeBadConfig(t *testing.T) {
	r := run(t, []string{"RAFT_DURATION=soon"}, "client", "--name", "c0", "--datafile", "datafile.0.txt", "--endpoints", "127.0.0.1:1")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "RAFT_DURATION")
	r = run(t, nil, "client", "--name", "c0", "--datafile", filepath.Join(t.TempDir(), "missing.txt"), "--endpoints", "127.0.0.1:1")
	assert.Equal(t, 2, r.code)
}

// TestCLIHelpExitsZero: --help of every command prints its usage on
// stdout and exits 0 (node and inspect exited 2).
func TestCLIHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "--help"}, "usage: raftkv node [flags]"},
		{[]string{"node", "-h"}, "-max-client-conns"},
		{[]string{"inspect", "--help"}, "usage: raftkv inspect DIR"},
		{[]string{"inspect", "-h"}, "usage: raftkv inspect DIR"},
		{[]string{"client", "--help"}, "usage: raftkv client [flags]"},
		{[]string{"put", "--help"}, "usage: raftkv put"},
		{[]string{"status", "--help"}, "usage: raftkv status"},
		{[]string{"--help"}, "usage: raftkv <command>"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, nil, tc.args...)
			assert.Equal(t, 0, r.code, r.stderr)
			assert.Contains(t, r.stdout, tc.want)
			assert.Empty(t, r.stderr)
		})
	}
}
