// Command run is `make run`: it starts three Raft nodes and two client nodes
// for RAFT_DURATION seconds (default 30) in Docker, or, when no Docker engine
// answers, as local processes on 127.0.0.1 (hostfile.local.json); lets them
// stop cleanly; and prints, per node, the applied index and a digest of
// StateMachine.Contents, whether all agree, and whether every write the
// clients saw acknowledged is in the final state. It exits 1 when they
// disagree or a write is missing.
//
// Run it from the repository's root (the Makefile does):
//
//	go run ./src/dockertest/cmd/run [--local] [--binary ./raftkv]
//
// The state stays in persistence/ for jq; logs go to experiments/run/logs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"raftkv/src/certs"
	"raftkv/src/config"
	"raftkv/src/dockertest"
)

func main() {
	local := flag.Bool("local", false, "run local processes even if a Docker engine answers")
	binary := flag.String("binary", "./raftkv", "the raftkv binary (local mode)")
	flag.Parse()
	os.Exit(run(*local, *binary))
}

// cluster is what the two modes share.
type cluster interface {
	api() *dockertest.API
	stopClients(ctx context.Context) error
	waitNodesExited(ctx context.Context) error
	exitCodes(ctx context.Context) map[string]int
	saveLogs(ctx context.Context, dir string)
	teardown(ctx context.Context) error
}

func run(forceLocal bool, binary string) int {
	dur, err := duration()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	persist := filepath.Join(repo, "persistence")
	outDir := filepath.Join(repo, "experiments", "run")
	ctx := context.Background()

	// TLS and tokens on, as in production: certs/ is made where missing
	// (as `make certs` does) and the harness reads with its read-only token.
	creds, err := dockertest.LoadCreds(repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var c cluster
	mode := "Docker"
	if !forceLocal {
		var d *dockertest.Docker
		d, err = dockertest.NewDocker(ctx, repo)
		if err == nil {
			if err := d.Down(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "removing leftovers of an earlier run: %v\n", err)
				return 1
			}
			c = &dockerCluster{d: d, a: dockertest.NewAPI(dockertest.ContainerAddrs(d), creds, 2*time.Second)}
		} else if !errors.Is(err, dockertest.ErrNoEngine) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if c == nil {
		mode = "local processes"
		fmt.Println("################################################################")
		if forceLocal {
			fmt.Println("## --local: running the cluster as LOCAL PROCESSES")
		} else {
			fmt.Printf("## NO DOCKER ENGINE ANSWERS (%v)\n", err)
			fmt.Println("## running the same cluster as LOCAL PROCESSES on 127.0.0.1")
		}
		fmt.Println("## (hostfile.local.json) instead of containers")
		fmt.Println("################################################################")
	}
	if left := leftovers(persist); len(left) > 0 {
		fmt.Printf("clearing persistence/* (the previous run's state: %s) and experiments/run/\n", strings.Join(left, ", "))
	}
	if err := dockertest.CleanPersistence(persist); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.RemoveAll(outDir)
	if err := os.MkdirAll(filepath.Join(outDir, "logs"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	env := []string{"RAFT_DURATION=" + strconv.Itoa(int(dur.Seconds()))}
	started := time.Now()
	if c == nil {
		lc, err := startLocal(repo, binary, filepath.Join(outDir, "logs"), env, creds)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c = lc
	} else if err := c.(*dockerCluster).d.Up(ctx, env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		c.teardown(ctx)
		return 1
	}
	if _, ok := c.(*dockerCluster); ok {
		fmt.Printf("compose project %s: containers %s-{%s}, network %s\n", dockertest.Project, dockertest.Project,
			strings.Join(append(append([]string{}, dockertest.Nodes...), dockertest.Clients...), ","), dockertest.NetworkName)
	}
	for i, url := range dashboards(c, repo) {
		fmt.Printf("%s: dashboard and HTTP API at %s\n", dockertest.Nodes[i], url)
	}
	fmt.Printf("TLS and tokens are on: the dashboard links carry the read-only token in their #fragment (never sent to a server); "+
		"your browser does not know the cluster CA (%s): accept its warning or import it. The CLI: %s\n",
		certs.CAPath(dockertest.CertsDir), cliHint(c))
	// Ctrl-C: tear down, then leave.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("\ninterrupted: stopping the cluster")
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c.teardown(tctx)
		os.Exit(130)
	}()
	code := drive(c, mode, dur, started, persist, outDir, repo)
	tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.teardown(tctx); err != nil {
		fmt.Printf("teardown: %v\n", err)
		code = 1
	}
	return code
}

// leftovers names what persistence/ holds besides .gitkeep.
func leftovers(persist string) []string {
	entries, _ := os.ReadDir(persist)
	var names []string
	for _, e := range entries {
		if e.Name() != ".gitkeep" {
			names = append(names, e.Name())
		}
	}
	return names
}

// dashboards are the nodes' HTTP URLs as seen from this host: in Docker the
// published ports (docker-compose.yaml, RAFT_HTTP_PORT_<i>, default
// 18000+i), locally hostfile.local.json's addresses.
func dashboards(c cluster, repo string) []string {
	var urls []string
	fragment := ""
	if tok, err := certs.ReadToken("@" + certs.TokenPath(filepath.Join(repo, dockertest.CertsDir), "read-only")); err == nil {
		fragment = "#token=" + tok
	}
	if _, ok := c.(*dockerCluster); ok {
		for i := range dockertest.Nodes {
			port := os.Getenv(fmt.Sprintf("RAFT_HTTP_PORT_%d", i))
			if port == "" {
				port = strconv.Itoa(18000 + i)
			}
			urls = append(urls, "https://localhost:"+port+"/"+fragment)
		}
		return urls
	}
	hf, err := config.LoadHostfile(filepath.Join(repo, "hostfile.local.json"))
	if err != nil {
		return nil
	}
	for _, a := range hf.HTTPAddrs() {
		urls = append(urls, "https://"+a+"/"+fragment)
	}
	return urls
}

// duration is RAFT_DURATION: seconds (or a Go duration); default 30 s.
func duration() (time.Duration, error) {
	v := os.Getenv("RAFT_DURATION")
	if v == "" {
		return 30 * time.Second, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= time.Second {
		return d.Truncate(time.Second), nil
	}
	return 0, fmt.Errorf("RAFT_DURATION=%q: want a positive number of seconds for make run", v)
}

func drive(c cluster, mode string, dur time.Duration, started time.Time, persist, outDir, repo string) int {
	stamp := func(format string, args ...any) {
		fmt.Printf("[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	stamp("started r0, r1, r2 (raftkv node) and c0, c1 (raftkv client) as %s for RAFT_DURATION=%v", mode, dur)
	lctx, cancel := context.WithTimeout(context.Background(), min(dur, 30*time.Second))
	leader, err := c.api().WaitLeader(lctx, dockertest.Nodes)
	cancel()
	if err != nil {
		stamp("%v", err)
	} else {
		stamp("leader: %s (term %d)", leader.Name, leader.Term)
	}

	// The clients stop a little before the nodes, so that the last entries
	// they committed reach every follower before the nodes stop.
	margin := min(3*time.Second, dur/5)
	clientsEnd := started.Add(dur - margin)
	tick := time.NewTicker(5 * time.Second)
	end := time.NewTimer(time.Until(clientsEnd))
loop:
	for {
		select {
		case <-tick.C:
			sts := c.api().Statuses(context.Background(), dockertest.Nodes)
			var parts []string
			for _, n := range dockertest.Nodes {
				if st, ok := sts[n]; ok {
					parts = append(parts, fmt.Sprintf("%s %s t%d c%d", n, st.Role, st.Term, st.CommitIndex))
				} else {
					parts = append(parts, n+" -")
				}
			}
			stamp("%s", strings.Join(parts, " | "))
		case <-end.C:
			break loop
		}
	}
	tick.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	if err := c.stopClients(ctx); err != nil {
		stamp("stopping the clients: %v", err)
		return 1
	}
	stamp("clients stopped (%v before the nodes' RAFT_DURATION ends)", margin)
	if err := c.waitNodesExited(ctx); err != nil {
		stamp("waiting for the nodes to stop: %v", err)
		return 1
	}
	stamp("the nodes stopped at the end of RAFT_DURATION")
	c.saveLogs(ctx, filepath.Join(outDir, "logs"))

	code := 0
	exits := c.exitCodes(ctx)
	for _, n := range append(append([]string{}, dockertest.Nodes...), dockertest.Clients...) {
		if exits[n] != 0 {
			fmt.Printf("  %s exited with code %d (see %s)\n", n, exits[n], filepath.Join("experiments/run/logs", n+".log"))
			code = 1
		}
	}

	fmt.Println()
	fmt.Println("State machines (persistence/<node>/statemachine.json, .StateMachine.Contents):")
	var states []dockertest.NodeState
	for _, n := range dockertest.Nodes {
		s, err := dockertest.ReadNodeState(persist, n)
		if err != nil {
			fmt.Printf("  %s: %v\n", n, err)
			code = 1
			continue
		}
		states = append(states, s)
	}
	if err := dockertest.Agreement(os.Stdout, states); err != nil || len(states) != len(dockertest.Nodes) {
		code = 1
	}
	if len(states) > 0 {
		fmt.Println()
		fmt.Println("Client records (persistence/<client>/record.json) against the final state:")
		var hist []dockertest.ClientHistory
		for _, cl := range dockertest.Clients {
			r, err := dockertest.ReadRecord(persist, cl)
			if err != nil {
				fmt.Printf("  %s: %v\n", cl, err)
				code = 1
				continue
			}
			h, err := dockertest.History(r, filepath.Join(repo, filepath.Base(r.Datafile)))
			if err != nil {
				fmt.Printf("  %s: %v\n", cl, err)
				code = 1
			}
			hist = append(hist, h)
		}
		res := dockertest.CheckHistories(states[0].Contents, hist)
		res.Print(os.Stdout)
		if res.Err() != nil {
			code = 1
		}
	}
	fmt.Println()
	if code == 0 {
		fmt.Printf("OK: all %d nodes agree and every acknowledged write is there (%s). Look: jq -S .StateMachine.Contents persistence/r0/statemachine.json\n", len(states), mode)
	} else {
		fmt.Printf("FAILED: see above; logs in experiments/run/logs/, state in persistence/\n")
	}
	return code
}

// dockerCluster is the compose project.
type dockerCluster struct {
	d *dockertest.Docker
	a *dockertest.API
}

func (c *dockerCluster) api() *dockertest.API { return c.a }

func (c *dockerCluster) stopClients(ctx context.Context) error {
	for _, n := range dockertest.Clients {
		if err := c.d.Stop(ctx, n, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (c *dockerCluster) waitNodesExited(ctx context.Context) error {
	for _, n := range dockertest.Nodes {
		if err := c.d.WaitExited(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

func (c *dockerCluster) exitCodes(ctx context.Context) map[string]int {
	out := map[string]int{}
	for _, n := range append(append([]string{}, dockertest.Nodes...), dockertest.Clients...) {
		st, err := c.d.Inspect(ctx, n)
		if err != nil {
			out[n] = -1
			continue
		}
		out[n] = st.ExitCode
	}
	return out
}

func (c *dockerCluster) saveLogs(ctx context.Context, dir string) {
	for _, n := range append(append([]string{}, dockertest.Nodes...), dockertest.Clients...) {
		if b, err := c.d.Logs(ctx, n); err == nil {
			os.WriteFile(filepath.Join(dir, n+".log"), b, 0o644)
		}
	}
}

func (c *dockerCluster) teardown(ctx context.Context) error {
	defer c.d.Close()
	return c.d.Down(ctx)
}

// localCluster is the same cluster as processes on 127.0.0.1.
type localCluster struct {
	a     *dockertest.API
	procs map[string]*proc
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

func startLocal(repo, binary, logDir string, env []string, creds dockertest.Creds) (*localCluster, error) {
	hf, err := config.LoadHostfile(filepath.Join(repo, "hostfile.local.json"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", binary, err)
	}
	addrs := map[string]string{}
	for i, n := range hf.Names() {
		addrs[n] = hf.HTTPAddrs()[i]
	}
	c := &localCluster{procs: map[string]*proc{}}
	c.a = dockertest.NewAPI(func(_ context.Context, name string) (string, error) { return addrs[name], nil }, creds, 2*time.Second)
	start := func(name string, args ...string) error {
		logf, err := os.Create(filepath.Join(logDir, name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(binary, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", name, err)
		}
		p := &proc{cmd: cmd, exited: make(chan struct{}), log: logf}
		go func() { cmd.Wait(); logf.Close(); close(p.exited) }()
		c.procs[name] = p
		return nil
	}
	if err := dockertest.EnsureCerts(repo); err != nil {
		return nil, err
	}
	for _, n := range dockertest.Nodes {
		cert, key := certs.NodePaths(dockertest.CertsDir, n)
		if err := start(n, "node", "--name", n, "--hostfile", "hostfile.local.json", "--data", "persistence",
			"--cacert", certs.CAPath(dockertest.CertsDir), "--cert", cert, "--key", key,
			"--tokens", certs.TokensPath(dockertest.CertsDir)); err != nil {
			c.teardown(context.Background())
			return nil, err
		}
	}
	for _, n := range dockertest.Clients {
		if err := start(n, "client", "--name", n, "--hostfile", "hostfile.local.json", "--data", "persistence",
			"--cacert", certs.CAPath(dockertest.CertsDir), "--token", "@"+certs.TokenPath(dockertest.CertsDir, "read-write")); err != nil {
			c.teardown(context.Background())
			return nil, err
		}
	}
	return c, nil
}

func (c *localCluster) api() *dockertest.API { return c.a }

func (c *localCluster) stopClients(ctx context.Context) error {
	for _, n := range dockertest.Clients {
		if err := c.stop(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (c *localCluster) stop(ctx context.Context, name string) error {
	p := c.procs[name]
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		p.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop", name)
	}
}

func (c *localCluster) waitNodesExited(ctx context.Context) error {
	for _, n := range dockertest.Nodes {
		select {
		case <-c.procs[n].exited:
		case <-ctx.Done():
			return fmt.Errorf("%s did not stop at the end of RAFT_DURATION", n)
		}
	}
	return nil
}

func (c *localCluster) exitCodes(context.Context) map[string]int {
	out := map[string]int{}
	for n, p := range c.procs {
		out[n] = -1
		if p.cmd.ProcessState != nil {
			out[n] = p.cmd.ProcessState.ExitCode()
		}
	}
	return out
}

func (c *localCluster) saveLogs(context.Context, string) {} // written as they run

func (c *localCluster) teardown(context.Context) error {
	for _, p := range c.procs {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	return nil
}

// cliHint is how to point the CLI at the cluster from this host.
func cliHint(c cluster) string {
	eps := "--hostfile hostfile.local.json"
	if _, ok := c.(*dockerCluster); ok {
		var hp []string
		for i := range dockertest.Nodes {
			port := os.Getenv(fmt.Sprintf("RAFT_HTTP_PORT_%d", i))
			if port == "" {
				port = strconv.Itoa(18000 + i)
			}
			hp = append(hp, "localhost:"+port)
		}
		eps = "--endpoints " + strings.Join(hp, ",")
	}
	return fmt.Sprintf("RAFTKV_CACERT=%s RAFTKV_TOKEN=@%s ./raftkv get KEY %s",
		certs.CAPath(dockertest.CertsDir), certs.TokenPath(dockertest.CertsDir, "read-write"), eps)
}
