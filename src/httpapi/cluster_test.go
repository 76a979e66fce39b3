package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/node"
	"raftkv/src/raft"
)

// Test harness: real nodes in this process, on real TCP ports of
// 127.0.0.1, each with its own folder under t.TempDir().

// testNode is one running node of a test cluster.
type testNode struct {
	srv  *Server
	rt   *node.Node
	addr string // HTTP host:port
	stop context.CancelFunc
	done chan error // Wait's result
}

// testConfig is one node's configuration: its HTTP API's and, in node,
// its runtime's.
type testConfig struct {
	Config
	node node.Config
}

// freePorts finds n free TCP ports on 127.0.0.1 (Peer.HTTPAddr must be
// known before New, so ":0" cannot do).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// testConfigs returns the configuration of an n-node cluster with fast
// timing; tweak may change each before New.
func testConfigs(t testing.TB, n int) []testConfig {
	t.Helper()
	ports := freePorts(t, 2*n)
	peers := make([]node.Peer, n)
	httpPeers := make([]Peer, n)
	for i := range n {
		raftAddr := fmt.Sprintf("127.0.0.1:%d", ports[2*i])
		peers[i] = node.Peer{Name: fmt.Sprintf("r%d", i), RaftAddr: func() string { return raftAddr }}
		httpPeers[i] = Peer{Name: peers[i].Name, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
	}
	dir := t.TempDir()
	cfgs := make([]testConfig, n)
	for i := range n {
		lg := zaptest.NewLogger(t)
		cfgs[i] = testConfig{
			Config: Config{
				Self: raft.ID(i), Peers: httpPeers, Listen: httpPeers[i].HTTPAddr,
				RequestTimeout: 3 * time.Second, Logger: lg,
			},
			node: node.Config{
				ID: raft.ID(i), Peers: peers, ClusterID: "test",
				DataDir:    filepath.Join(dir, peers[i].Name),
				RaftListen: raftAddrOf(peers[i]),
				Heartbeat:  20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
				Logger: lg,
			},
		}
	}
	return cfgs
}

func raftAddrOf(p node.Peer) string { return p.RaftAddr() }

// startNodes starts a node per configuration; Cleanup stops them.
func startNodes(t *testing.T, cfgs []testConfig) []*testNode {
	t.Helper()
	nodes := make([]*testNode, len(cfgs))
	for i, cfg := range cfgs {
		rt, err := node.New(cfg.node)
		require.NoError(t, err)
		srv := New(cfg.Config, rt)
		require.NoError(t, srv.Start(), "node %d did not start", i)
		ctx, cancel := context.WithCancel(context.Background())
		n := &testNode{srv: srv, rt: rt, addr: cfg.Listen, stop: cancel, done: make(chan error, 1)}
		go func() { n.done <- srv.Wait(ctx) }()
		nodes[i] = n
		t.Cleanup(func() { n.shutdown(t) })
	}
	return nodes
}

// shutdown stops the node and waits for Run to return (once).
func (n *testNode) shutdown(t *testing.T) {
	if n.done == nil {
		return
	}
	n.stop()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("node stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("node did not stop")
	}
	n.done = nil
}

// waitLeader polls until one of nodes leads and every other running node
// knows it; it returns the leader's position in nodes.
func waitLeader(t *testing.T, nodes []*testNode) int {
	t.Helper()
	var leader int
	eventually(t, 10*time.Second, "a leader known to all", func() bool {
		leader = -1
		for i, n := range nodes {
			if n.done == nil {
				continue
			}
			st := n.rt.Status()
			if st.Role == raft.RoleLeader {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		want := nodes[leader].srv.cfg.Self
		for _, n := range nodes {
			if n.done != nil && n.rt.Status().Lead != want {
				return false
			}
		}
		return true
	})
	return leader
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		// Polling, not sleeping for an assumed duration: a short wait on a
		// timer between checks, bounded by the deadline.
		<-time.After(5 * time.Millisecond)
	}
}

// testHTTP is a client with a bound on every request, so that a broken
// node fails a test instead of hanging it.
var testHTTP = &http.Client{Timeout: 10 * time.Second}
