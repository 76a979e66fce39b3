package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// misbehave opens a connection that holds a slot of the node's HTTP
// server: "idle" sends nothing, "slow body" sends the headers of a PUT and
// part of its body, "keep-alive" makes one request and then stays idle.
func misbehave(t *testing.T, addr, kind string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	switch kind {
	case "idle":
	case "slow body":
		_, err = io.WriteString(c, "PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a part")
	case "keep-alive":
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	require.NoError(t, err)
	return c
}

// closedByServer reads c until the server closes it, within a deadline;
// it reports false if the deadline passed first.
func closedByServer(c net.Conn, within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c) // a reply (408, 400, 200), then EOF
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// sampleGauge reads the node's open-connection gauge until stop closes and
// returns the highest value seen.
func sampleGauge(s *Server, stop <-chan struct{}) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		high := 0.0
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			high = max(high, s.met.HTTPConnections())
			select {
			case <-stop:
				out <- high
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestConnectionLimitAndTimeouts: three times more idle, slow-body and
// keep-alive connections than the limit. The node never has more than the
// limit open, its read, header and idle timeouts close every one of them,
// and a real client queued behind them is served. Before, nothing closed
// them and nothing bounded them: 2,000 of them took every file descriptor.
func TestConnectionLimitAndTimeouts(t *testing.T) {
	const limit = 4
	n := startOne(t, func(c *Config) {
		c.MaxClientConns = limit
		c.HTTPReadTimeout = 300 * time.Millisecond
		c.HTTPIdleTimeout = 300 * time.Millisecond
	})
	stop := make(chan struct{})
	high := sampleGauge(n.srv, stop)

	kinds := []string{"idle", "slow body", "keep-alive"}
	var bad []net.Conn
	for i := range 3 * limit {
		bad = append(bad, misbehave(t, n.addr, kinds[i%len(kinds)]))
	}
	// The node is full: it stops accepting, and a real client waits in the
	// backlog until the timeouts free a slot, then is served.
	eventually(t, 5*time.Second, "the node reaches its limit", func() bool {
		return n.srv.met.HTTPConnections() == limit
	})
	r := do(t, "PUT", "http://"+n.addr+"/v1/kv/real", "served", nil)
	assert.Equal(t, 200, r.code, r.body)

	var wg sync.WaitGroup
	var stuck atomic.Int32
	for i, c := range bad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !closedByServer(c, 10*time.Second) {
				stuck.Add(1)
				t.Errorf("connection %d (%s) was not closed by the node", i, kinds[i%len(kinds)])
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, stuck.Load())

	// Everything is closed again, and the node serves as before.
	eventually(t, 5*time.Second, "every connection closed", func() bool {
		return n.srv.met.HTTPConnections() == 0
	})
	r = do(t, "GET", "http://"+n.addr+"/v1/kv/real", "", nil)
	assert.Contains(t, r.body, `"value":"served"`)
	close(stop)
	assert.LessOrEqual(t, <-high, float64(limit), "the open-connection gauge exceeded the limit")
	assert.Equal(t, int64(limit), n.srv.httpL.peak.Load(), "the most connections open at once")
	assert.Positive(t, counterOf(t, n.srv, "raftkv_http_connections_limited_total"))
}

// counterOf reads one of the node's metrics by name.
func counterOf(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.met.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestPeersUnaffectedByExhaustedHTTP: with every HTTP connection of a
// follower held by idle clients (and timeouts long enough that they stay),
// Raft traffic, on its own listener, goes on: a write through another node
// commits and reaches the exhausted follower, and when the leader stops,
// the exhausted follower votes in a new one and replicates its entries.
func TestPeersUnaffectedByExhaustedHTTP(t *testing.T) {
	const limit = 2
	cfgs := testConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].MaxClientConns = limit
	}
	nodes := startNodes(t, cfgs)
	l := waitLeader(t, nodes)
	f, o := (l+1)%3, (l+2)%3 // f: exhausted follower; o: the other one

	for range limit + 3 {
		misbehave(t, nodes[f].addr, "idle")
	}
	eventually(t, 5*time.Second, "the follower's HTTP slots all taken", func() bool {
		return nodes[f].srv.met.HTTPConnections() == limit
	})
	// Its HTTP API no longer accepts (a request would wait in the backlog).
	c, err := net.DialTimeout("tcp", nodes[f].addr, time.Second)
	require.NoError(t, err)
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "the exhausted node answered: %v", err)
	c.Close()

	// A write through the other follower commits and reaches f.
	r := do(t, "PUT", "http://"+nodes[o].addr+"/v1/kv/during", "exhaustion", nil)
	require.Equal(t, 200, r.code, r.body)
	eventually(t, 5*time.Second, "the exhausted follower applies the write", func() bool {
		v, ok := nodes[f].rt.Get("during")
		return ok && v == "exhaustion"
	})

	// Stop the leader: a new one needs f's vote (2 of 3).
	oldTerm, oldCommit := nodes[l].rt.Status().Term, nodes[l].rt.Status().Commit
	nodes[l].shutdown(t)
	nl := waitLeader(t, nodes)
	require.NotEqual(t, l, nl)
	st := nodes[nl].rt.Status()
	assert.Greater(t, st.Term, oldTerm)
	// The new leader's first entry commits, and f applies it. (Compared
	// with the old leader's commit index from before it stopped: a leader
	// that shuts down hands over first, and may apply the new term's first
	// entry itself before it closes.)
	eventually(t, 5*time.Second, "the new term's entry applied on both", func() bool {
		lead := nodes[nl].rt.Status()
		return lead.Role == raft.RoleLeader &&
			nodes[f].rt.AppliedIndex() >= lead.Commit && nodes[o].rt.AppliedIndex() >= lead.Commit &&
			lead.Commit > oldCommit
	})
	if nl == o {
		r := do(t, "PUT", "http://"+nodes[o].addr+"/v1/kv/after", "election", nil)
		require.Equal(t, 200, r.code, r.body)
		eventually(t, 5*time.Second, "the exhausted follower applies the write", func() bool {
			v, ok := nodes[f].rt.Get("after")
			return ok && v == "election"
		})
	}
	// Throughout, f's HTTP stayed exhausted and within its limit.
	assert.Equal(t, float64(limit), nodes[f].srv.met.HTTPConnections())
	assert.Equal(t, int64(limit), nodes[f].srv.httpL.peak.Load())
}
