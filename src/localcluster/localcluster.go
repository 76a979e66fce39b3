// Package localcluster runs a raftkv cluster as real `raftkv node`
// processes on 127.0.0.1: real TCP, real fsync, real signals (SIGKILL,
// SIGSTOP, SIGCONT). The end-to-end tests, `make bench` and `make run`
// without Docker use it.
package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"raftkv/src/api"
	"raftkv/src/certs"
)

// Options describe a cluster to start.
type Options struct {
	Nodes  int
	Binary string // the raftkv binary (see Build)
	Dir    string // working folder: hostfile.json, persistence/, node logs
	// Env is added to every node's environment (RAFT_HEARTBEAT, ...).
	Env []string
	// Args are added to every node's command line.
	Args []string
	// Insecure runs the nodes with --insecure (plaintext peer traffic, a
	// plaintext HTTP API open to all). By default Start makes a CA, every
	// node's certificate and a token per role in CertsDir (MakeCredentials)
	// and the nodes run with peer TLS, HTTPS and tokens.
	Insecure bool
	// CertsDir holds the credentials (default Dir/certs); several clusters
	// may share one (what exists is kept).
	CertsDir string
	// NoStart: Start writes the hostfile (and certificates) but starts no
	// node; StartNode starts each (e.g. once their folders were seeded by
	// `raftkv snapshot restore`).
	NoStart bool
}

// Node is one node process.
type Node struct {
	Name     string
	HTTPAddr string
	RaftAddr string
	// hostfile is the node's own hostfile when it is not the cluster's
	// (AddJoiner).
	hostfile string
	cmd      *exec.Cmd
	exited   chan struct{}
	logFile  *os.File
}

// Cluster is a running local cluster.
type Cluster struct {
	opts     Options
	Hostfile string
	Nodes    []*Node
	mu       sync.Mutex
	// status asks the nodes for their status (read-only token).
	status *http.Client
}

// Build compiles the raftkv binary of the module that holds this package
// into dir and returns its path.
func Build(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "raftkv")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// freePorts finds n free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

type hostEntry struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	RaftPort int    `json:"raft_port"`
	HTTPPort int    `json:"http_port"`
	Join     bool   `json:"join,omitempty"`
}

// Start writes a hostfile for opts.Nodes nodes on free ports and starts
// every node.
func Start(opts Options) (*Cluster, error) {
	if err := os.MkdirAll(filepath.Join(opts.Dir, "persistence"), 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, Hostfile: filepath.Join(opts.Dir, "hostfile.json")}

	var hf struct {
		Raft []hostEntry `json:"raft"`
	}
	for i := range opts.Nodes {
		e := hostEntry{Name: fmt.Sprintf("r%d", i), Host: "127.0.0.1", RaftPort: ports[2*i], HTTPPort: ports[2*i+1]}
		hf.Raft = append(hf.Raft, e)
		c.Nodes = append(c.Nodes, &Node{
			Name:     e.Name,
			HTTPAddr: fmt.Sprintf("127.0.0.1:%d", e.HTTPPort),
			RaftAddr: fmt.Sprintf("127.0.0.1:%d", e.RaftPort),
		})
	}
	b, _ := json.MarshalIndent(hf, "", "  ")
	if err := os.WriteFile(c.Hostfile, b, 0o644); err != nil {
		return nil, err
	}
	if !opts.Insecure {
		if err := MakeCredentials(c.CertsDir(), len(c.Nodes)); err != nil {
			return nil, err
		}
	}
	if c.status, err = c.HTTPClient(TokenReadOnly, 500*time.Millisecond); err != nil {
		return nil, err
	}
	for i := range c.Nodes {
		if opts.NoStart {
			break
		}
		if err := c.StartNode(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// AddJoiner prepares a node outside the cluster's hostfile, called name,
// on free ports, and returns its index in Nodes; it is not started (see
// StartNode). Its own hostfile is the cluster's plus its entry, marked
// join (every node added so far with AddJoiner comes before it, as the
// IDs `raftkv member add` hands out do); the cluster's hostfile does not
// name it. With TLS it gets a certificate for name from the cluster's CA.
func (c *Cluster) AddJoiner(name string) (int, error) {
	data, err := os.ReadFile(c.Hostfile)
	if err != nil {
		return -1, err
	}
	var hf struct {
		Raft []hostEntry `json:"raft"`
	}
	if err := json.Unmarshal(data, &hf); err != nil {
		return -1, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return -1, err
	}
	c.mu.Lock()
	for _, n := range c.Nodes[len(hf.Raft):] {
		hf.Raft = append(hf.Raft, joinEntry(n))
	}
	n := &Node{Name: name, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]), RaftAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		hostfile: filepath.Join(c.opts.Dir, "hostfile."+name+".json")}
	hf.Raft = append(hf.Raft, joinEntry(n))
	c.mu.Unlock()
	b, _ := json.MarshalIndent(hf, "", "  ")
	if err := os.WriteFile(n.hostfile, b, 0o644); err != nil {
		return -1, err
	}
	if !c.opts.Insecure {
		if cert, _ := certs.NodePaths(c.CertsDir(), name); !fileExists(cert) {
			if err := certs.Node(c.CertsDir(), name, []string{"127.0.0.1", "localhost"}, certs.Options{}, false); err != nil {
				return -1, err
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Nodes = append(c.Nodes, n)
	return len(c.Nodes) - 1, nil
}

// joinEntry is n's hostfile entry, marked join.
func joinEntry(n *Node) hostEntry {
	host, rp, _ := net.SplitHostPort(n.RaftAddr)
	_, hp, _ := net.SplitHostPort(n.HTTPAddr)
	e := hostEntry{Name: n.Name, Host: host, Join: true}
	fmt.Sscan(rp, &e.RaftPort)
	fmt.Sscan(hp, &e.HTTPPort)
	return e
}

// Endpoints lists the nodes' HTTP addresses in hostfile order.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.HTTPAddr)
	}
	return eps
}

// CertsDir holds the cluster's CA and the nodes' certificates (unless
// Options.Insecure).
func (c *Cluster) CertsDir() string {
	if c.opts.CertsDir != "" {
		return c.opts.CertsDir
	}
	return filepath.Join(c.opts.Dir, "certs")
}

// DataDir is node i's persistence folder.
func (c *Cluster) DataDir(i int) string {
	return filepath.Join(c.opts.Dir, "persistence", c.Nodes[i].Name)
}

// StartNode (re)starts node i; its output is appended to <dir>/<name>.log.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	if n.cmd != nil && !n.hasExited() {
		return fmt.Errorf("node %s is still running", n.Name)
	}
	logf, err := os.OpenFile(filepath.Join(c.opts.Dir, n.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	hostfile := c.Hostfile
	if n.hostfile != "" {
		hostfile = n.hostfile
	}
	args := []string{"node", "--name", n.Name, "--hostfile", hostfile, "--data", filepath.Join(c.opts.Dir, "persistence")}
	if c.opts.Insecure {
		args = append(args, "--insecure")
	} else {
		cert, key := certs.NodePaths(c.CertsDir(), n.Name)
		args = append(args, "--cacert", certs.CAPath(c.CertsDir()), "--cert", cert, "--key", key, "--tokens", certs.TokensPath(c.CertsDir()))
	}
	args = append(args, c.opts.Args...)
	cmd := exec.Command(c.opts.Binary, args...)
	cmd.Env = append(os.Environ(), c.opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	n.cmd, n.logFile, n.exited = cmd, logf, make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(exited)
	}(n.exited)
	return nil
}

func (n *Node) hasExited() bool {
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// Pid is the node's process ID (0 if never started).
func (n *Node) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether node i's process is alive.
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	return n.cmd != nil && !n.hasExited()
}

func (c *Cluster) signal(i int, sig syscall.Signal) error {
	n := c.Nodes[i]
	if n.cmd == nil || n.hasExited() {
		return fmt.Errorf("node %s is not running", n.Name)
	}
	return n.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to node i and waits for it to die.
func (c *Cluster) Kill(i int) error {
	if err := c.signal(i, syscall.SIGKILL); err != nil {
		return err
	}
	<-c.Nodes[i].exited
	return nil
}

// Stop sends SIGTERM (a clean shutdown) and waits up to timeout.
func (c *Cluster) Stop(i int, timeout time.Duration) error {
	if err := c.signal(i, syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-c.Nodes[i].exited:
		if code := c.Nodes[i].cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("node %s exited with code %d", c.Nodes[i].Name, code)
		}
		return nil
	case <-time.After(timeout):
		c.Kill(i)
		return fmt.Errorf("node %s did not stop within %v", c.Nodes[i].Name, timeout)
	}
}

// Pause freezes node i (SIGSTOP); Resume thaws it (SIGCONT).
func (c *Cluster) Pause(i int) error  { return c.signal(i, syscall.SIGSTOP) }
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT) }

// Close kills every node still running.
func (c *Cluster) Close() {
	for i, n := range c.Nodes {
		if n.cmd != nil && !n.hasExited() {
			c.signal(i, syscall.SIGCONT)
			c.Kill(i)
		}
	}
}

// Status is a node's GET /v1/status.
type Status = api.Status

// NodeStatus asks node i for its status.
func (c *Cluster) NodeStatus(i int) (Status, error) {
	var st Status
	resp, err := c.status.Get(c.URL(i, "/v1/status"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// WaitLeader polls until the running nodes agree on one leader that is
// itself running and says it leads, and returns its index.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	for {
		if i, ok := c.agreedLeader(); ok {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, errors.New("no leader agreed on before the deadline")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) agreedLeader() (int, bool) {
	leader := ""
	running := 0
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		st, err := c.NodeStatus(i)
		if err != nil {
			continue // paused or starting: not asked
		}
		running++
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return -1, false
		}
		leader = st.Leader
	}
	for i, n := range c.Nodes {
		if n.Name == leader && c.Running(i) {
			st, err := c.NodeStatus(i)
			if err == nil && st.Role == "leader" && running > len(c.Nodes)/2 {
				return i, true
			}
		}
	}
	return -1, false
}

// Log returns node i's log so far (for failure reports).
func (c *Cluster) Log(i int) string {
	b, _ := os.ReadFile(filepath.Join(c.opts.Dir, c.Nodes[i].Name+".log"))
	return string(b)
}
