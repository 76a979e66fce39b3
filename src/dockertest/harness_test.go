package dockertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"raftkv/src/api"
)

// The experiments start containers, so they run only when asked:
// RAFT_DOCKER_TESTS=1 (the Makefile's test_* targets set it). Plain
// `go test ./...` runs the checker's unit tests and skips them.
const envGuard = "RAFT_DOCKER_TESTS"

// Config holds the experiments' knobs, from the environment.
type Config struct {
	Outage   time.Duration // EXP_SECONDS: how long nodes stay out
	Interval string        // EXP_INTERVAL: the clients' RAFT_INTERVAL
	Warmup   int           // EXP_WARMUP: commands each client completes before the fault
	Timeout  time.Duration // EXP_TIMEOUT: bound of every wait for a condition
	// Stall is how long test_replace watches the two nodes it starts
	// without the last holder of recent writes wait without a leader
	// (EXP_STALL, default 5 election timeouts).
	Stall time.Duration
	Env   []string // RAFT_* passed to compose
}

func loadConfig(t testing.TB) Config {
	c := Config{Outage: 12 * time.Second, Interval: "200ms", Warmup: 5, Timeout: 90 * time.Second, Stall: 5 * electionTimeout()}
	if v := os.Getenv("EXP_SECONDS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("EXP_SECONDS=%q: want a positive number of seconds", v)
		}
		c.Outage = time.Duration(f * float64(time.Second))
	}
	if v := os.Getenv("EXP_INTERVAL"); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			t.Fatalf("EXP_INTERVAL=%q: want a Go duration: %v", v, err)
		}
		c.Interval = v
	}
	if v := os.Getenv("EXP_WARMUP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("EXP_WARMUP=%q: want a number of commands", v)
		}
		c.Warmup = n
	}
	if v := os.Getenv("EXP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("EXP_TIMEOUT=%q: want a Go duration: %v", v, err)
		}
		c.Timeout = d
	}
	if v := os.Getenv("EXP_STALL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("EXP_STALL=%q: want a Go duration: %v", v, err)
		}
		c.Stall = d
	}
	c.Env = []string{"RAFT_DURATION=0", "RAFT_INTERVAL=" + c.Interval}
	for _, k := range []string{"RAFT_VERBOSE", "RAFT_HEARTBEAT", "RAFT_ELECTION_TIMEOUT"} {
		if v := os.Getenv(k); v != "" {
			c.Env = append(c.Env, k+"="+v)
		}
	}
	return c
}

// Harness runs one experiment: it owns the compose project from Setup to
// its teardown (a t.Cleanup, so it runs when the test fails too), prints
// what it does and checks, and keeps a copy of the logs, the persisted
// state and that report in experiments/<name>/.
type Harness struct {
	t       testing.TB
	Name    string
	Cfg     Config
	D       *Docker
	API     *API
	Admin   *API // with the admin token: /v1/members
	Repo    string
	Persist string // <repo>/persistence
	Dir     string // <repo>/experiments/<name>
	start   time.Time
	// nodes are the node containers of this run: Nodes, and the Spares
	// an experiment started (StartSpares). Finish stops and reads them all.
	nodes []string

	mu       sync.Mutex
	report   bytes.Buffer
	failures []string
	probes   []Op            // the harness's own writes, checked like a client's
	loads    []ClientHistory // the harness's load clients' writes (Load), checked too
	torn     bool
}

var (
	currentMu sync.Mutex
	current   *Harness
)

// TestMain tears the running experiment down on Ctrl-C too.
func TestMain(m *testing.M) {
	// A closed stdout (`| head`) must not kill the run before its teardown:
	// with SIGPIPE notified, writes fail with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		currentMu.Lock()
		h := current
		currentMu.Unlock()
		if h != nil {
			fmt.Fprintln(os.Stderr, "interrupted: tearing the experiment down")
			h.teardown()
		}
		os.Exit(130)
	}()
	os.Exit(m.Run())
}

// Setup removes what an earlier run may have left (containers, network,
// persistence/*, experiments/<name>), then starts the compose project and
// registers the teardown.
func Setup(t *testing.T, name, what string) *Harness {
	if os.Getenv(envGuard) != "1" {
		t.Skipf("Docker experiment: runs with %s=1 (make %s, make test-docker)", envGuard, name)
	}
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{t: t, Name: name, Cfg: loadConfig(t), Repo: repo,
		Persist: filepath.Join(repo, "persistence"), Dir: filepath.Join(repo, "experiments", name), start: time.Now(),
		nodes: append([]string{}, Nodes...)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := NewDocker(ctx, repo)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	h.D = d
	creds, err := LoadCreds(repo)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	h.API = NewAPI(ContainerAddrs(d), creds, 2*time.Second)
	admin, err := LoadRoleCreds(repo, api.RoleAdmin)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	h.Admin = NewAPI(ContainerAddrs(d), admin, 5*time.Second)

	h.Printf("==== %s: %s", name, what)
	h.Printf("outage %v, client interval %s, warm-up %d commands per client, waits bounded by %v (EXP_SECONDS, EXP_INTERVAL, EXP_WARMUP, EXP_TIMEOUT)",
		h.Cfg.Outage, h.Cfg.Interval, h.Cfg.Warmup, h.Cfg.Timeout)
	if err := d.Down(ctx); err != nil {
		t.Fatalf("removing leftovers of an earlier run: %v", err)
	}
	h.Printf("leftovers of earlier runs removed (containers, network %s)", NetworkName)
	if err := CleanPersistence(h.Persist); err != nil {
		t.Fatalf("cleaning persistence/: %v", err)
	}
	if err := os.RemoveAll(h.Dir); err != nil {
		t.Fatal(err)
	}
	currentMu.Lock()
	current = h
	currentMu.Unlock()
	t.Cleanup(h.teardown)
	if err := d.Up(ctx, h.Cfg.Env); err != nil {
		h.Fatalf("compose up: %v", err)
	}
	h.Printf("compose up: %s and %s running (image %s, network %s)", strings.Join(Nodes, ", "), strings.Join(Clients, ", "), Image, NetworkName)
	return h
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "docker-compose.yaml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no docker-compose.yaml above the working folder")
		}
		dir = parent
	}
}

// Printf prints one line of the report, stamped with the time since setup.
func (h *Harness) Printf(format string, args ...any) {
	line := fmt.Sprintf("[%6.1fs] %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
	h.mu.Lock()
	defer h.mu.Unlock()
	os.Stdout.WriteString(line)
	h.report.WriteString(line)
}

// Block prints lines written by fn (indented blocks of state comparisons).
func (h *Harness) Block(fn func(w io.Writer)) {
	var b bytes.Buffer
	fn(&b)
	h.mu.Lock()
	defer h.mu.Unlock()
	os.Stdout.Write(b.Bytes())
	h.report.Write(b.Bytes())
}

// Check records and prints one comparison: PASS or FAIL, and what was
// compared.
func (h *Harness) Check(ok bool, format string, args ...any) bool {
	msg := fmt.Sprintf(format, args...)
	if ok {
		h.Printf("PASS  %s", msg)
		return true
	}
	h.Printf("FAIL  %s", msg)
	h.mu.Lock()
	h.failures = append(h.failures, msg)
	h.mu.Unlock()
	return false
}

// Fatalf reports a failure that ends the experiment (teardown still runs).
func (h *Harness) Fatalf(format string, args ...any) {
	h.Check(false, format, args...)
	h.t.FailNow()
}

// Ctx is a context bounded by the configured wait timeout.
func (h *Harness) Ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.Cfg.Timeout)
}

// WaitLeader waits until the named nodes agree on a leader among them.
func (h *Harness) WaitLeader(names ...string) Status {
	ctx, cancel := h.Ctx()
	defer cancel()
	began := time.Now()
	st, err := h.API.WaitLeader(ctx, names)
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Printf("leader of %s: %s (term %d, commit %d), found in %v", strings.Join(names, ", "), st.Name, st.Term, st.CommitIndex, time.Since(began).Round(time.Millisecond))
	return st
}

// Records reads the clients' records (nil for one not written yet).
func (h *Harness) Records() map[string]*api.ClientRecord {
	out := map[string]*api.ClientRecord{}
	for _, c := range Clients {
		if r, err := ReadRecord(h.Persist, c); err == nil {
			out[c] = r
		}
	}
	return out
}

// WaitClients waits until every client has recorded at least n commands.
func (h *Harness) WaitClients(n int) {
	ctx, cancel := h.Ctx()
	defer cancel()
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		recs := h.Records()
		for _, c := range Clients {
			if recs[c] == nil || len(recs[c].Commands) < n {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		h.Fatalf("clients did not complete %d commands each: %v", n, err)
	}
	h.Printf("warm-up: every client completed at least %d commands", n)
}

// WaitClientsDone waits until every client has sent its whole data file.
func (h *Harness) WaitClientsDone() {
	ctx, cancel := h.Ctx()
	defer cancel()
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		recs := h.Records()
		for _, c := range Clients {
			if recs[c] == nil || !recs[c].AllSent {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		h.Fatalf("clients did not send their whole data files: %v", err)
	}
	h.Printf("clients %s have sent every command of their data files", strings.Join(Clients, ", "))
}

// Probe writes a key of the harness's own through node name and keeps the
// answer for the final history check.
func (h *Harness) Probe(ctx context.Context, name, tag string) WriteResult {
	h.mu.Lock()
	n := len(h.probes)
	h.mu.Unlock()
	key := fmt.Sprintf("probe/%s/%d", h.Name, n)
	began := time.Now()
	res := h.API.Put(ctx, name, key, tag)
	h.mu.Lock()
	h.probes = append(h.probes, Op{Client: "harness", Kind: api.OpPut, Key: key, Value: tag, Outcome: res.Outcome(),
		Start: began.UTC().Format(time.RFC3339Nano), End: time.Now().UTC().Format(time.RFC3339Nano)})
	h.mu.Unlock()
	return res
}

// Sample is one round of status polls.
type Sample struct {
	At time.Time
	St map[string]Status
}

// Observe polls the named nodes every 200 ms until d has passed (the length
// of a phase, not a wait for a condition) and returns the samples; every
// probeEvery (if > 0) it also writes a probe through probeVia().
func (h *Harness) Observe(d time.Duration, names []string, probeEvery time.Duration, probeVia func() string) ([]Sample, []WriteResult) {
	// The phase's end does not cancel a request under way: a sample is
	// complete or not taken.
	end := time.NewTimer(d)
	defer end.Stop()
	ctx := context.Background()
	var samples []Sample
	var probes []WriteResult
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastProbe := time.Now()
	for {
		samples = append(samples, Sample{At: time.Now(), St: h.API.Statuses(ctx, names)})
		if probeEvery > 0 && time.Since(lastProbe) >= probeEvery {
			lastProbe = time.Now()
			if via := probeVia(); via != "" {
				pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
				probes = append(probes, h.Probe(pctx, via, "during-outage"))
				pcancel()
			}
		}
		select {
		case <-end.C:
			return samples, probes
		case <-tick.C:
		}
	}
}

// Finish ends an experiment: it waits for the clients to send everything,
// stops them (SIGTERM: they save their records), waits until the running
// nodes `live` applied all they committed, stops every node cleanly (so
// each writes statemachine.json), then compares the state machines of
// `agree` and checks every client's acknowledged writes against them.
func (h *Harness) Finish(live, agree []string) {
	h.WaitClientsDone()
	ctx, cancel := h.Ctx()
	defer cancel()
	for _, c := range Clients {
		if err := h.D.Stop(ctx, c, 10*time.Second); err != nil {
			h.Fatalf("%v", err)
		}
	}
	h.Printf("clients stopped")
	idx, err := h.API.WaitApplied(ctx, live)
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Printf("%s applied everything committed (index %d)", strings.Join(live, ", "), idx)
	for _, n := range h.nodes {
		if err := h.D.Stop(ctx, n, 10*time.Second); err != nil {
			h.Fatalf("%v", err)
		}
	}
	for _, c := range append(append([]string{}, h.nodes...), Clients...) {
		st, err := h.D.Inspect(ctx, c)
		if err != nil {
			h.Fatalf("%v", err)
		}
		h.Check(st.ExitCode == 0, "%s stopped cleanly (exit code %d)", c, st.ExitCode)
	}

	var states []NodeState
	for _, n := range h.nodes {
		s, err := ReadNodeState(h.Persist, n)
		if err != nil {
			h.Fatalf("reading %s's state machine: %v", n, err)
		}
		if contains(agree, n) {
			states = append(states, s)
		} else {
			h.Printf("%s (out at the end, not compared): applied_index=%d keys=%d contents_sha256=%s", n, s.AppliedIndex, len(s.Contents), s.Digest)
		}
	}
	h.Printf("comparing persistence/{%s}/%s (.StateMachine.Contents):", strings.Join(agree, ","), StateFile)
	var agreeErr error
	h.Block(func(w io.Writer) { agreeErr = Agreement(w, states) })
	h.Check(agreeErr == nil, "state machines of %s identical", strings.Join(agree, ", "))

	// Each distinct state machine is checked (one, when they agree).
	seen := map[string]bool{}
	for _, s := range states {
		if seen[s.Digest] {
			continue
		}
		seen[s.Digest] = true
		var holders []string
		for _, o := range states {
			if o.Digest == s.Digest {
				holders = append(holders, o.Name)
			}
		}
		h.CheckClients(strings.Join(holders, ", "), s.Contents)
	}
}

// CheckClients checks every client's record and the harness's probes
// against the final state machine of the nodes named in who.
func (h *Harness) CheckClients(who string, final map[string]string) {
	recs := h.Records()
	var hist []ClientHistory
	for _, c := range Clients {
		r := recs[c]
		if r == nil {
			h.Fatalf("client %s left no record", c)
		}
		ch, err := History(r, filepath.Join(h.Repo, filepath.Base(r.Datafile)))
		if err != nil {
			h.Fatalf("%v", err)
		}
		hist = append(hist, ch)
	}
	h.mu.Lock()
	hist = append(hist, ClientHistory{Client: "harness", Ops: append([]Op{}, h.probes...)})
	hist = append(hist, h.loads...)
	h.mu.Unlock()
	h.Printf("checking the clients' records (persistence/{%s}/record.json) and the harness's probe writes against the final state of %s:", strings.Join(Clients, ","), who)
	res := CheckHistories(final, hist)
	h.Block(res.Print)
	if !h.Check(res.Err() == nil, "%s: every acknowledged write is in the final state once, in client order; no failed write is", who) {
		h.mu.Lock()
		h.failures[len(h.failures)-1] += "\n" + res.Err().Error()
		h.mu.Unlock()
	}
}

// teardown stops everything, keeps logs, persistence/ and the report in
// experiments/<name>/, and removes the containers and the network.
func (h *Harness) teardown() {
	h.mu.Lock()
	if h.torn {
		h.mu.Unlock()
		return
	}
	h.torn = true
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := filepath.Join(h.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		h.Printf("teardown: %v", err)
	}
	// Stop first (clean stops, so that a failed run's nodes still write
	// their state), then copy logs and files, then remove.
	for _, c := range append(append([]string{}, Clients...), h.nodes...) {
		if st, err := h.D.Inspect(ctx, c); err == nil && st.Running {
			if err := h.D.Stop(ctx, c, 10*time.Second); err != nil {
				h.Printf("teardown: %v", err)
			}
		}
		if b, err := h.D.Logs(ctx, c); err == nil {
			os.WriteFile(filepath.Join(logs, c+".log"), b, 0o644)
		}
	}
	if err := CopyTree(h.Persist, filepath.Join(h.Dir, "persistence")); err != nil {
		h.Printf("teardown: copying persistence/: %v", err)
	}
	if err := h.D.Down(ctx); err != nil {
		h.Printf("teardown: %v", err)
		h.failures = append(h.failures, "teardown: "+err.Error())
	} else {
		h.Printf("teardown: containers and network %s removed; logs, persistence/ and this report kept in %s", NetworkName, rel(h.Repo, h.Dir))
	}
	failed := h.t.Failed() || len(h.failures) > 0
	if failed {
		var b strings.Builder
		fmt.Fprintf(&b, "\n!!!!!!!! EXPERIMENT %s FAILED !!!!!!!!\n", h.Name)
		for _, f := range h.failures {
			fmt.Fprintf(&b, "!!  %s\n", strings.ReplaceAll(f, "\n", "\n!!  "))
		}
		fmt.Fprintf(&b, "!!  logs and state: %s\n", rel(h.Repo, h.Dir))
		h.Block(func(w io.Writer) { io.WriteString(w, b.String()) })
	} else {
		h.Printf("==== %s PASSED in %v", h.Name, time.Since(h.start).Round(100*time.Millisecond))
	}
	os.WriteFile(filepath.Join(h.Dir, "report.txt"), h.report.Bytes(), 0o644)
	h.D.Close()
	currentMu.Lock()
	if current == h {
		current = nil
	}
	currentMu.Unlock()
	if len(h.failures) > 0 && !h.t.Failed() {
		h.t.Errorf("%s: %d check(s) failed", h.Name, len(h.failures))
	}
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return r
	}
	return path
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func others(all []string, out ...string) []string {
	var res []string
	for _, x := range all {
		if !contains(out, x) {
			res = append(res, x)
		}
	}
	return res
}
