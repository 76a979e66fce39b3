// Command benchrun is `make bench`: it starts a local 3-node cluster (real
// `raftkv node` processes, fsync on) in a temporary folder and measures
// what issue 8 compares with etcd:
//
//   - the table: put with 1, 64 and 256 clients, linearizable and stale get
//     with 64 clients; 256-byte values, 8-byte keys over 100k keys (the gets
//     read preloaded keys); throughput, p50/p99/max latency, errors, and the
//     CPU seconds per 1,000 operations of the three nodes together
//     (/proc/<pid>/stat) and of this client (/proc/self/stat);
//   - each node's resident memory (VmRSS) after the put workloads;
//   - failover: a steady single writer, kill -9 the leader, time to the
//     next acknowledged write; restart, wait until healthy (caught up),
//     let it settle (--failover-settle); repeated.
//
// --runs N repeats the table and prints the per-row median; --json prints
// everything as JSON; --plot FILE.png draws latency against throughput.
//
//	go run ./src/bench/benchrun [--binary ./raftkv] [--duration 5s] [--runs 3] [--failovers 5] [--plot bench-results/latency.png] [--json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"raftkv/src/bench"
	"raftkv/src/bench/benchplot"
	"raftkv/src/localcluster"
)

type workload struct {
	name        string
	clients     int
	op          string // put, get or list
	consistency string
}

var workloads = []workload{
	{"put, 1 client", 1, "put", "linearizable"},
	{"put, 64 clients", 64, "put", "linearizable"},
	{"put, 256 clients", 256, "put", "linearizable"},
	{"linearizable get, 64 clients", 64, "get", "linearizable"},
	{"stale get, 64 clients", 64, "get", "stale"},
	{"list 100 keys, 16 clients", 16, "list", "linearizable"},
}

const (
	keySize = 8
	valSize = 256
	putKeys = 100000 // the key space of the puts (at least)
	// maxPreloadKeys: keys are 8 digits.
	maxPreloadKeys = 10_000_000
)

type flags struct {
	duration        time.Duration
	runs            int
	failovers       int
	failoverTimeout time.Duration
	failoverSettle  time.Duration
	preloadKeys     int
	only            string
	watchers        int
	binary          string
	plot            string
	json, keep      bool
	verbose         bool
	nodeArgs        string
	nodeEnv         string
	insecure        bool
	compareInsecure bool // compare.go
	scale           bool // scale.go
	scaleKeys       string
	compareWatchers bool // compare.go
}

func main() {
	var f flags
	flag.DurationVar(&f.duration, "duration", 5*time.Second, "length of each workload")
	flag.IntVar(&f.runs, "runs", 1, "run the whole table this many times and print the per-row median")
	flag.IntVar(&f.failovers, "failovers", 5, "kill -9 the leader this many times (0: skip the failover measurement)")
	flag.DurationVar(&f.failoverTimeout, "failover-timeout", 250*time.Millisecond, "the failover writer's timeout per attempt")
	flag.DurationVar(&f.failoverSettle, "failover-settle", time.Second, "after a restarted node is healthy, run steadily this long before the next kill")
	flag.IntVar(&f.preloadKeys, "preload-keys", putKeys, "keys written before the table (the gets read them, the puts overwrite them; up to 10000000)")
	flag.BoolVar(&f.scale, "scale", false, "instead of the table: put and get rows, RSS and a follower's kill -9 to caught-up at each of --scale-keys")
	flag.StringVar(&f.scaleKeys, "scale-keys", "100000,1000000,3000000", "the key counts of --scale, ascending, comma-separated")
	flag.StringVar(&f.only, "only", "", "run only workloads whose name contains this text")
	flag.IntVar(&f.watchers, "watchers", 0, "hold this many idle watch streams (GET /v1/watch/ on a prefix no workload writes), spread over the nodes, during the table")
	flag.StringVar(&f.binary, "binary", "", "a raftkv binary to run (default: build one in the temporary folder)")
	flag.StringVar(&f.plot, "plot", "", "write latency (p50, p99) against throughput to this PNG file")
	flag.BoolVar(&f.json, "json", false, "print the results as JSON on stdout (progress goes to stderr)")
	flag.BoolVar(&f.keep, "keep", false, "keep the temporary folder (node logs, persistence)")
	flag.BoolVar(&f.verbose, "verbose", false, "print each workload's full report")
	flag.StringVar(&f.nodeArgs, "node-args", "", "extra flags for every `raftkv node`, e.g. \"--snapshot-every 100000\"")
	flag.BoolVar(&f.insecure, "insecure", false, "run the nodes with --insecure (plaintext peer traffic) instead of mutual TLS")
	flag.BoolVar(&f.compareInsecure, "compare-insecure", false, "run everything twice, with TLS and tokens and then --insecure, and print the two side by side")
	flag.BoolVar(&f.compareWatchers, "compare-watchers", false, "on one cluster, run the table without and with the --watchers idle streams, alternating the order run to run, and print the two side by side")
	flag.StringVar(&f.nodeEnv, "node-env", "", "extra environment for every `raftkv node` only, e.g. \"GOGC=80 GOMEMLIMIT=72MiB\"")
	flag.Parse()
	if f.runs < 1 || f.failovers < 0 || f.watchers < 0 || f.preloadKeys < 1 || f.preloadKeys > maxPreloadKeys || f.duration <= 0 {
		fmt.Fprintln(os.Stderr, "benchrun: want --runs >= 1, --failovers >= 0, --watchers >= 0, --preload-keys in 1..10000000, --duration > 0")
		os.Exit(2)
	}
	if f.scale {
		counts, err := parseScaleKeys(f.scaleKeys)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchrun: --scale-keys:", err)
			os.Exit(2)
		}
		if err := scale(f, counts); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			os.Exit(1)
		}
		return
	}
	if f.compareInsecure && f.insecure {
		fmt.Fprintln(os.Stderr, "benchrun: --compare-insecure runs both; drop --insecure")
		os.Exit(2)
	}
	if f.compareWatchers && (f.watchers == 0 || f.compareInsecure) {
		fmt.Fprintln(os.Stderr, "benchrun: --compare-watchers needs --watchers N > 0, and not --compare-insecure")
		os.Exit(2)
	}
	if err := run(f); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(f flags) error {
	// Progress for people; with --json stdout carries only the JSON.
	var log io.Writer = os.Stdout
	if f.json {
		log = os.Stderr
	}
	if f.compareInsecure {
		return compare(f, log)
	}
	if f.compareWatchers {
		return compareWatchers(f, log)
	}
	suites, err := measure(f, log)
	if err != nil {
		return err
	}
	suite := suites[0]
	if f.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(suite); err != nil {
			return err
		}
	} else {
		printSuite(os.Stdout, suite)
	}
	return checkRows(suite)
}

// checkRows fails a suite with a workload that completed no request.
func checkRows(suite *bench.Suite) error {
	for _, row := range suite.Median {
		if row.OK == 0 {
			return fmt.Errorf("workload %q completed no request", row.Workload)
		}
	}
	return nil
}

// measure starts a cluster (with TLS and tokens unless f.insecure), runs
// the table and the failovers, and stops it. It returns one suite; with
// f.compareWatchers two, measured on the same cluster: without and with
// f.watchers idle watch streams. Each run then measures both, in an order
// that alternates from run to run, so that the drift of one cluster (its
// growing log, its snapshots) falls on both alike.
func measure(f flags, log io.Writer) ([]*bench.Suite, error) {
	suite := &bench.Suite{
		Machine: bench.ThisMachine(), LoadBefore: bench.LoadAverage(),
		Settings: map[string]string{
			"duration": f.duration.String(), "runs": fmt.Sprint(f.runs), "values": "256 B", "keys": fmt.Sprintf("8 B over %d", putKeySpace(f)),
			"fsync": "on", "nodes": "3 local processes on 127.0.0.1", "args": strings.Join(os.Args[1:], " "),
			"tls": fmt.Sprint(!f.insecure),
		},
	}
	c, dir, leader, cleanup, err := startCluster(f, log)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	fmt.Fprintf(log, "cluster of 3 on %s, leader %s, folder %s; load average %s\n",
		strings.Join(c.Endpoints(), ","), c.Nodes[leader].Name, dir, suite.LoadBefore)

	fmt.Fprintf(log, "preloading %d keys (%d a transaction):\n", f.preloadKeys, bench.PreloadBatch)
	t0 := time.Now()
	auth, err := clusterAuth(c)
	if err != nil {
		return nil, err
	}
	if err := bench.PreloadRange(context.Background(), auth, c.Nodes[leader].HTTPAddr, 0, f.preloadKeys, keySize, valSize, 16, bench.ProgressBar(log, f.preloadKeys)); err != nil {
		return nil, fmt.Errorf("preload: %w", err)
	}
	suite.PreloadKeys, suite.PreloadSecs = f.preloadKeys, time.Since(t0).Seconds()
	fmt.Fprintf(log, "%.1f s (%.0f puts/s)\n", suite.PreloadSecs, float64(f.preloadKeys)/suite.PreloadSecs)
	puts := uint64(f.preloadKeys)
	// variants[k] holds the watchers open during its passes.
	variants := []int{f.watchers}
	if f.compareWatchers {
		variants = []int{0, f.watchers}
	}
	suites := make([]*bench.Suite, len(variants))
	for k, n := range variants {
		s := *suite
		s.Settings = maps.Clone(suite.Settings)
		if n > 0 {
			s.Settings["watchers"] = fmt.Sprint(n)
		}
		suites[k] = &s
	}
	var stopWatchers func()
	defer func() {
		if stopWatchers != nil {
			stopWatchers()
		}
	}()
	setWatchers := func(n int) error {
		if stopWatchers != nil && n == 0 {
			stopWatchers()
			stopWatchers = nil
			fmt.Fprintln(log, "idle watchers closed")
		}
		if stopWatchers == nil && n > 0 {
			stop, err := idleWatchers(c, n)
			if err != nil {
				return fmt.Errorf("watchers: %w", err)
			}
			stopWatchers = stop
			fmt.Fprintf(log, "%d idle watchers open\n", n)
		}
		return nil
	}

	lastPut := -1
	for i, w := range workloads {
		if selected(f, w) && w.op == "put" {
			lastPut = i
		}
	}
	for r := range f.runs {
		for j := range variants {
			k := j
			if r%2 == 1 {
				k = len(variants) - 1 - j
			}
			if err := setWatchers(variants[k]); err != nil {
				return nil, err
			}
			var run bench.Pass
			for i, w := range workloads {
				if !selected(f, w) {
					continue
				}
				row, err := runWorkload(f, c, auth, w, log)
				if err != nil {
					return nil, err
				}
				if w.op == "put" {
					puts += row.OK
				}
				run.Rows = append(run.Rows, row)
				if i == lastPut {
					if run.Memory, err = memory(c, puts, putKeySpace(f)); err != nil {
						return nil, err
					}
				}
			}
			suites[k].Runs = append(suites[k].Runs, run)
			if f.runs > 1 && !f.json {
				fmt.Fprintf(log, "\nrun %d of %d", r+1, f.runs)
				if len(variants) > 1 {
					fmt.Fprintf(log, ", %d idle watchers", variants[k])
				}
				fmt.Fprintln(log, ":")
				bench.WriteTable(log, run.Rows)
				fmt.Fprintln(log)
			}
		}
	}
	for _, s := range suites {
		s.Median = bench.MedianRows(s.Runs)
	}
	suite = suites[len(suites)-1] // the failovers and the plot are the last variant's

	if f.failovers > 0 {
		fmt.Fprintf(log, "failover: %d kills of the leader ...\n", f.failovers)
		if suite.Failover, err = failover(c, auth, f, log); err != nil {
			return nil, fmt.Errorf("failover: %w", err)
		}
	}
	for _, s := range suites {
		s.LoadAfter = bench.LoadAverage()
	}

	if f.plot != "" {
		if err := benchplot.WritePlot(f.plot, suite.Runs); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
		fmt.Fprintln(log, "plot written to", f.plot)
	}
	return suites, nil
}

// startCluster starts the 3 nodes in a temporary folder (kept with
// --keep), building raftkv unless --binary names one, and waits for a
// leader. cleanup stops them and removes the folder.
func startCluster(f flags, log io.Writer) (c *localcluster.Cluster, dir string, leader int, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "raftkv-bench-")
	if err != nil {
		return nil, "", 0, nil, err
	}
	removeDir := func() {
		if f.keep {
			fmt.Fprintln(log, "working folder (kept):", dir)
		} else {
			os.RemoveAll(dir)
		}
	}
	bin := f.binary
	if bin == "" {
		fmt.Fprintln(log, "building raftkv ...")
		bin, err = localcluster.Build(dir)
	} else {
		bin, err = filepath.Abs(bin)
	}
	if err == nil {
		c, err = localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: dir, Args: strings.Fields(f.nodeArgs), Env: strings.Fields(f.nodeEnv), Insecure: f.insecure})
		if err != nil {
			err = fmt.Errorf("start cluster: %w", err)
		}
	}
	if err != nil {
		removeDir()
		return nil, "", 0, nil, err
	}
	cleanup = func() {
		for i := range c.Nodes {
			if c.Running(i) {
				if err := c.Stop(i, 30*time.Second); err != nil {
					fmt.Fprintln(os.Stderr, "benchrun: stop:", err)
				}
			}
		}
		c.Close()
		removeDir()
	}
	if leader, err = waitLeader(c, 15*time.Second); err != nil {
		cleanup()
		return nil, "", 0, nil, err
	}
	return c, dir, leader, cleanup, nil
}

// putKeySpace is the key space of the put workloads: the preloaded keys,
// at least putKeys.
func putKeySpace(f flags) int { return max(putKeys, f.preloadKeys) }

func selected(f flags, w workload) bool { return f.only == "" || strings.Contains(w.name, f.only) }

func printSuite(w io.Writer, s *bench.Suite) {
	m := s.Machine
	fmt.Fprintf(w, "\n==== raftkv bench: 3 local nodes, fsync on, %s keys, 256 B values, %s per workload\n", s.Settings["keys"], s.Settings["duration"])
	fmt.Fprintf(w, "machine: %d CPUs, %s, Linux %s, %s; load average before %s, after %s\n",
		m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, s.LoadBefore, s.LoadAfter)
	fmt.Fprintf(w, "preload: %d keys in %.1f s\n\n", s.PreloadKeys, s.PreloadSecs)
	if len(s.Runs) > 1 {
		fmt.Fprintf(w, "median of %d runs (each column on its own):\n", len(s.Runs))
	}
	bench.WriteTable(w, s.Median)
	fmt.Fprintln(w, "(CPU: user+system seconds per 1,000 successful operations; cluster = the 3 node processes, client = this bench process)")
	for i, r := range s.Runs {
		if r.Memory != nil {
			if len(s.Runs) > 1 {
				fmt.Fprintf(w, "run %d: ", i+1)
			}
			bench.WriteMemory(w, r.Memory)
		}
	}
	if s.Failover != nil {
		bench.WriteFailover(w, s.Failover)
	}
}

// nodeCPU is the CPU time all running nodes have used so far.
func nodeCPU(c *localcluster.Cluster) (time.Duration, error) {
	var sum time.Duration
	for i, n := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		d, err := bench.ProcCPU(n.Pid())
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

func runWorkload(f flags, c *localcluster.Cluster, auth bench.Auth, w workload, log io.Writer) (bench.Row, error) {
	opts := bench.Options{Auth: auth,
		Endpoints: c.Endpoints(), Clients: w.clients, KeySize: keySize, ValSize: valSize,
		Keys: putKeySpace(f), Duration: f.duration, Consistency: w.consistency, Timeout: 10 * time.Second,
	}
	switch w.op {
	case "put":
		opts.Put = 1
	case "list":
		opts.List, opts.Keys = 1, f.preloadKeys
	default:
		opts.Get, opts.Keys = 1, f.preloadKeys
	}
	fmt.Fprintf(log, "=== %-30s %v ... ", w.name, f.duration)
	cl0, err1 := nodeCPU(c)
	me0, err2 := bench.ProcCPU(0)
	rep, err := bench.Run(context.Background(), opts, nil)
	if err != nil {
		return bench.Row{}, err
	}
	cl1, err3 := nodeCPU(c)
	me1, err4 := bench.ProcCPU(0)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return bench.Row{}, fmt.Errorf("CPU accounting: %w", err)
	}
	row := bench.NewRow(w.name, w.op, rep, cl1-cl0, me1-me0)
	fmt.Fprintf(log, "%.0f req/s, p50 %.3f ms, p99 %.3f ms, %d errors, cluster CPU %.3f s/1k ops\n",
		row.Throughput, row.P50, row.P99, row.Errors, row.ClusterCPUPer1k)
	if f.verbose {
		rep.WriteText(log)
		fmt.Fprintln(log)
	}
	if rep.NotFound > 0 {
		fmt.Fprintf(log, "    warning: %d gets found no value (the preload should have written every key read)\n", rep.NotFound)
	}
	return row, nil
}

func waitLeader(c *localcluster.Cluster, d time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.WaitLeader(ctx)
}

// memory reads every node's VmRSS and marks the leader.
func memory(c *localcluster.Cluster, puts uint64, keys int) (*bench.Memory, error) {
	leader, err := waitLeader(c, 10*time.Second)
	if err != nil {
		return nil, err
	}
	m := &bench.Memory{AfterPuts: puts, Keys: keys}
	for i, n := range c.Nodes {
		rss, err := bench.ProcRSS(n.Pid())
		if err != nil {
			return nil, err
		}
		m.Nodes = append(m.Nodes, bench.NodeRSS{Name: n.Name, Leader: i == leader, Bytes: rss, MiB: float64(rss) / (1 << 20)})
	}
	return m, nil
}

// failover runs a steady writer and kills the leader f.failovers times.
func failover(c *localcluster.Cluster, auth bench.Auth, f flags, log io.Writer) (*bench.Failover, error) {
	var nodes []bench.NodeAddr
	for _, n := range c.Nodes {
		nodes = append(nodes, bench.NodeAddr{Name: n.Name, Endpoint: n.HTTPAddr})
	}
	leader, err := waitLeader(c, 15*time.Second)
	if err != nil {
		return nil, err
	}
	// Start at the leader, as etcd's benchmark aims at the leader.
	nodes[0], nodes[leader] = nodes[leader], nodes[0]
	sw := bench.NewSteadyWriter(nodes, auth, f.failoverTimeout, valSize)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sw.Run(ctx)
	}()
	defer func() {
		stop()
		<-done
	}()
	wait := func(after time.Time, notNode string, d time.Duration) (bench.Ack, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return sw.WaitAck(ctx, after, notNode)
	}
	res := &bench.Failover{
		TimeoutMs: float64(f.failoverTimeout) / float64(time.Millisecond),
		SettleMs:  float64(f.failoverSettle) / float64(time.Millisecond),
	}
	for k := range f.failovers {
		leader, err := waitLeader(c, 15*time.Second)
		if err != nil {
			return nil, err
		}
		name := c.Nodes[leader].Name
		// Steady state: the writer is getting acknowledgements.
		before, err := wait(time.Now(), "", 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("before kill %d: %w", k+1, err)
		}
		t0 := time.Now()
		if err := c.Kill(leader); err != nil {
			return nil, err
		}
		ack, err := wait(t0, name, 15*time.Second)
		if err != nil {
			return nil, fmt.Errorf("after killing %s: %w", name, err)
		}
		kill := bench.Kill{
			Killed: name, Ms: float64(ack.At.Sub(t0)) / float64(time.Millisecond),
			NewLeader: ack.Node, Errors: ack.FailedBefore - before.FailedBefore, ErrorKinds: map[string]int{},
		}
		for kind, n := range ack.FailedKinds {
			if d := n - before.FailedKinds[kind]; d > 0 {
				kill.ErrorKinds[kind] = d
			}
		}
		t1 := time.Now()
		if err := c.StartNode(leader); err != nil {
			return nil, err
		}
		if err := waitHealthy(c, leader, 30*time.Second); err != nil {
			return nil, fmt.Errorf("restart %s: %w", name, err)
		}
		kill.RestartMs = float64(time.Since(t1)) / float64(time.Millisecond)
		// Kill a healthy cluster's leader, not one still reconnecting to
		// the node just restarted.
		time.Sleep(f.failoverSettle)
		fmt.Fprintf(log, "    #%d killed %s: next acknowledged write after %.1f ms (by %s); healthy again after %.0f ms\n",
			k+1, name, kill.Ms, kill.NewLeader, kill.RestartMs)
		res.Kills = append(res.Kills, kill)
	}
	res.FailoverMedian()
	return res, nil
}

// waitHealthy polls until restarted node i answers, knows the leader, has
// applied everything the leader had committed when i first answered, and
// the cluster agrees on a leader.
func waitHealthy(c *localcluster.Cluster, i int, d time.Duration) error {
	deadline := time.Now().Add(d)
	var target uint64
	targetSet := false
	for ; time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := c.NodeStatus(i)
		if err != nil || st.Leader == "" {
			continue
		}
		if !targetSet {
			for j, n := range c.Nodes {
				if n.Name == st.Leader && j != i {
					if lst, err := c.NodeStatus(j); err == nil {
						target, targetSet = lst.CommitIndex, true
					}
				}
			}
			continue
		}
		if st.AppliedIndex >= target {
			_, err := waitLeader(c, time.Until(deadline))
			return err
		}
	}
	return fmt.Errorf("not healthy within %v", d)
}

// idleWatchers opens n watch streams on a prefix no workload writes,
// round-robin over the nodes, and returns once every one answered 200;
// stop closes them.
func idleWatchers(c *localcluster.Cluster, n int) (stop func(), err error) {
	hc, err := c.HTTPClient(localcluster.TokenReadOnly, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bodies []io.Closer
	stop = func() {
		cancel()
		for _, b := range bodies {
			b.Close()
		}
	}
	for i := range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(i%len(c.Nodes), "/v1/watch/__idle-watch/"), nil)
		if err != nil {
			stop()
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			stop()
			return nil, err
		}
		bodies = append(bodies, resp.Body)
		if resp.StatusCode != http.StatusOK {
			stop()
			return nil, fmt.Errorf("watch on %s: HTTP %d", c.Nodes[i%len(c.Nodes)].Name, resp.StatusCode)
		}
		go io.Copy(io.Discard, resp.Body) // progress lines, every 15 s
	}
	return stop, nil
}
