package server

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

	"raftkv/src/raft"
)

// Test harness: real nodes in this process, on real TCP ports of
// 127.0.0.1, each with its own folder under t.TempDir().

// testNode is one running node of a test cluster.
type testNode struct {
	srv  *Server
	addr string // HTTP host:port
	stop context.CancelFunc
	done chan error // Run's result
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
func testConfigs(t testing.TB, n int) []Config {
	t.Helper()
	ports := freePorts(t, 2*n)
	peers := make([]Peer, n)
	for i := range n {
		raftAddr := fmt.Sprintf("127.0.0.1:%d", ports[2*i])
		peers[i] = Peer{Name: fmt.Sprintf("r%d", i), RaftAddr: func() string { return raftAddr }, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
	}
	dir := t.TempDir()
	cfgs := make([]Config, n)
	for i := range n {
		cfgs[i] = Config{
			ID: raft.ID(i), Peers: peers, ClusterID: "test",
			DataDir:    filepath.Join(dir, peers[i].Name),
			RaftListen: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			HTTPListen: peers[i].HTTPAddr,
			Heartbeat:  20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
			RequestTimeout: 3 * time.Second,
			Logger:         zaptest.NewLogger(t),
		}
	}
	return cfgs
}

// startNodes starts a node per configuration; Cleanup stops them.
func startNodes(t *testing.T, cfgs []Config) []*testNode {
	t.Helper()
	nodes := make([]*testNode, len(cfgs))
	for i, cfg := range cfgs {
		srv, err := New(cfg)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		n := &testNode{srv: srv, addr: cfg.HTTPListen, stop: cancel, done: make(chan error, 1)}
		started := make(chan struct{})
		go func() { n.done <- srv.Run(ctx, func() { close(started) }) }()
		select {
		case <-started:
		case err := <-n.done:
			require.NoError(t, err, "node %d did not start", i)
		}
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
			st := n.srv.status.Load()
			if st.Role == raft.RoleLeader {
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		want := nodes[leader].srv.cfg.ID
		for _, n := range nodes {
			if n.done != nil && n.srv.status.Load().Lead != want {
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
