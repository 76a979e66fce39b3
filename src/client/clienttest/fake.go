// Package clienttest fakes a raftkv cluster's HTTP API (CONTRACT.md) with
// httptest servers, for tests of the client and the command line. The fake
// nodes share one key-value map with exactly-once sessions; the test decides
// who leads, which node refuses, hangs or is down, and which replies are
// lost, and reads back every write request the nodes received.
package clienttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Mode is how a fake node answers.
type Mode int

const (
	// Normal: a node serves every request; a follower answers as if it had
	// forwarded the request to the leader (with the leader's Raft-Node, as
	// the real server passes it on).
	Normal Mode = iota
	// Unavailable: every kv request gets 503 with Retry-After.
	Unavailable
	// Hang: kv requests get no answer until the client gives up.
	Hang
	// Down: the listener is closed (connection refused). Set by Stop.
	Down
)

// Write is one write request a node received.
type Write struct {
	Node     string // the node the request reached
	Method   string
	Key      string
	Op       string // put, append or delete
	Value    string
	ClientID string
	Seq      uint64
	Status   int  // the status answered
	Applied  bool // this request changed the state (not a repeat)
}

// Cluster is a set of fake nodes sharing one state.
type Cluster struct {
	t       testing.TB
	release chan struct{} // closed at cleanup: hanging handlers return

	mu       sync.Mutex
	nodes    []*node
	leader   int // -1: no leader
	term     uint64
	index    uint64
	data     map[string]string
	sessions map[string]session
	writes   []Write
	lose     int // the next lose writes are applied and answered 504
	loseKey  map[string]bool
	reads    map[string]int
}

type node struct {
	name string
	addr string
	srv  *httptest.Server
	mode Mode
	lag  uint64
}

type session struct {
	seq   uint64
	index uint64
}

// New starts n fake nodes named r0..r(n-1), with r0 leading in term 1.
// They stop when the test ends.
func New(t testing.TB, n int) *Cluster {
	c := &Cluster{
		t:        t,
		release:  make(chan struct{}),
		term:     1,
		data:     make(map[string]string),
		sessions: make(map[string]session),
		reads:    make(map[string]int),
	}
	for i := range n {
		nd := &node{name: fmt.Sprintf("r%d", i)}
		nd.srv = httptest.NewServer(c.handler(i))
		nd.addr = nd.srv.Listener.Addr().String()
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		close(c.release)
		for _, nd := range c.nodes {
			nd.srv.Close()
		}
	})
	return c
}

// Endpoints returns the nodes' host:port addresses in order.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.addr)
	}
	return out
}

// Names returns the nodes' names in order.
func (c *Cluster) Names() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.name)
	}
	return out
}

// SetLeader makes node i the leader of a new term; -1: no leader.
func (c *Cluster) SetLeader(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = i
	c.term++
}

// SetMode sets how node i answers.
func (c *Cluster) SetMode(i int, m Mode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i].mode = m
}

// SetLag makes node i report an applied index lag entries behind.
func (c *Cluster) SetLag(i int, lag uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[i].lag = lag
}

// Stop closes node i's listener and connections: connections to it are
// refused from now on.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	nd := c.nodes[i]
	nd.mode = Down
	c.mu.Unlock()
	nd.srv.CloseClientConnections()
	nd.srv.Listener.Close()
}

// LoseReplies makes the next n write requests be applied (or repeated)
// normally but answered 504, as if the reply was lost after the commit.
func (c *Cluster) LoseReplies(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lose = n
}

// LoseRepliesForKey makes every write to key be applied (or repeated)
// normally but answered 504.
func (c *Cluster) LoseRepliesForKey(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loseKey == nil {
		c.loseKey = make(map[string]bool)
	}
	c.loseKey[key] = true
}

// Writes returns every write request received so far, in order.
func (c *Cluster) Writes() []Write {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Write(nil), c.writes...)
}

// Reads returns how many kv reads node name served.
func (c *Cluster) Reads(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[name]
}

// Value returns the state's value of key.
func (c *Cluster) Value(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.data[key]
	return v, ok
}

// Data returns a copy of the whole state.
func (c *Cluster) Data() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.data))
	for k, v := range c.data {
		out[k] = v
	}
	return out
}

// Index returns the last applied index.
func (c *Cluster) Index() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.index
}

func (c *Cluster) leaderName() string {
	if c.leader < 0 {
		return ""
	}
	return c.nodes[c.leader].name
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func (c *Cluster) status(i int) map[string]any {
	nd := c.nodes[i]
	role := "follower"
	if i == c.leader {
		role = "leader"
	}
	applied := c.index - min(c.index, nd.lag)
	return map[string]any{
		"name": nd.name, "id": i, "role": role, "term": c.term, "leader": c.leaderName(),
		"commit_index": c.index, "applied_index": applied, "last_log_index": c.index, "snapshot_index": 0,
	}
}

func (c *Cluster) handler(i int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		nd := c.nodes[i]
		mode := nd.mode
		if mode == Down {
			// A connection left over from before Stop: the process is dead.
			c.mu.Unlock()
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Raft-Node", nd.name)
		w.Header().Set("Raft-Leader", c.leaderName())
		switch r.URL.Path {
		case "/v1/status":
			st := c.status(i)
			c.mu.Unlock()
			writeJSON(w, http.StatusOK, st)
			return
		case "/v1/cluster":
			var out []map[string]any
			for j, other := range c.nodes {
				if j != i && (other.mode == Down || other.mode == Hang) {
					out = append(out, map[string]any{"name": other.name, "id": j, "reachable": false, "error": "connection refused"})
					continue
				}
				st := c.status(j)
				st["reachable"] = true
				out = append(out, st)
			}
			c.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
			return
		}
		c.mu.Unlock()
		if !strings.HasPrefix(r.URL.EscapedPath(), "/v1/kv/") {
			writeError(w, http.StatusNotFound, "no such route")
			return
		}
		key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/kv/"))
		if err != nil || key == "" || len(key) > 1024 {
			writeError(w, http.StatusBadRequest, "key must be 1 to 1024 bytes of valid UTF-8")
			return
		}
		switch mode {
		case Unavailable:
			writeError(w, http.StatusServiceUnavailable, "no leader known")
			return
		case Hang:
			select {
			case <-r.Context().Done():
			case <-c.release:
			}
			return
		}
		c.kv(w, r, i, key)
	})
}

func (c *Cluster) kv(w http.ResponseWriter, r *http.Request, i int, key string) {
	var value string
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if len(b) > 1<<20 {
			writeError(w, http.StatusRequestEntityTooLarge, "value exceeds 1 MiB")
			return
		}
		value = string(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader < 0 {
		writeError(w, http.StatusServiceUnavailable, "no leader known")
		return
	}
	// A follower forwards: the answer carries the leader's Raft-Node.
	w.Header().Set("Raft-Node", c.leaderName())
	if r.Method == http.MethodGet {
		c.reads[c.nodes[i].name]++
		v, ok := c.data[key]
		if !ok {
			writeError(w, http.StatusNotFound, "key not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"key": key, "value": v})
		return
	}
	wr := Write{Node: c.nodes[i].name, Method: r.Method, Key: key, Value: value, ClientID: r.Header.Get("Client-Id")}
	switch {
	case r.Method == http.MethodDelete:
		wr.Op = "delete"
	case r.URL.Query().Get("op") == "append":
		wr.Op = "append"
	case r.URL.Query().Get("op") == "" || r.URL.Query().Get("op") == "put":
		wr.Op = "put"
	default:
		writeError(w, http.StatusBadRequest, "bad op")
		return
	}
	if s := r.Header.Get("Request-Seq"); s != "" {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil || seq == 0 || wr.ClientID == "" {
			writeError(w, http.StatusBadRequest, "bad Request-Seq")
			return
		}
		wr.Seq = seq
	}
	defer func() { c.writes = append(c.writes, wr) }()
	var index uint64
	sess, known := c.sessions[wr.ClientID]
	switch {
	case wr.ClientID != "" && known && wr.Seq == sess.seq:
		index = sess.index
	case wr.ClientID != "" && known && wr.Seq < sess.seq:
		wr.Status = http.StatusBadRequest
		writeError(w, wr.Status, "stale request")
		return
	default:
		c.index++
		index = c.index
		switch wr.Op {
		case "put":
			c.data[key] = value
		case "append":
			c.data[key] += value
		case "delete":
			delete(c.data, key)
		}
		wr.Applied = true
		if wr.ClientID != "" {
			c.sessions[wr.ClientID] = session{seq: wr.Seq, index: index}
		}
	}
	if c.lose > 0 || c.loseKey[key] {
		if c.lose > 0 {
			c.lose--
		}
		wr.Status = http.StatusGatewayTimeout
		writeError(w, wr.Status, "proposed but not known committed in time")
		return
	}
	wr.Status = http.StatusOK
	writeJSON(w, http.StatusOK, map[string]uint64{"index": index})
}

// Restart reopens a stopped node on its old address.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	nd := c.nodes[i]
	addr := nd.addr
	c.mu.Unlock()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relisten on %s: %w", addr, err)
	}
	srv := httptest.NewUnstartedServer(c.handler(i))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	c.mu.Lock()
	old := nd.srv
	nd.srv, nd.mode = srv, Normal
	c.mu.Unlock()
	old.Close()
	return nil
}
