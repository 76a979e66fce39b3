// Package clienttest fakes a raftkv cluster's HTTP API (CONTRACT.md) with
// httptest servers, for tests of the client and the command line. The fake
// nodes share one state machine, the real one (kv.Store, with its
// exactly-once sessions), which applies every write at the next index as if
// the log had committed it at once; the test decides
// who leads, which node refuses, hangs or is down, and which replies are
// lost, and reads back every write request the nodes received.
package clienttest

import (
	"encoding/json"
	"errors"
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

	"raftkv/src/api"
	"raftkv/src/kv"
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
	Op       api.Op // put, append or delete
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

	mu      sync.Mutex
	nodes   []*node
	leader  int // -1: no leader
	term    uint64
	store   *kv.Store // the state; its applied index is the commit index
	writes  []Write
	lose    int // the next lose writes are applied and answered 504
	loseKey map[string]bool
	reads   map[string]int
}

type node struct {
	name string
	addr string
	srv  *httptest.Server
	mode Mode
	lag  uint64
}

// New starts n fake nodes named r0..r(n-1), with r0 leading in term 1.
// They stop when the test ends.
func New(t testing.TB, n int) *Cluster {
	c := &Cluster{
		t:       t,
		release: make(chan struct{}),
		term:    1,
		store:   kv.New(kv.Options{}),
		reads:   make(map[string]int),
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
	return c.store.Get(key)
}

// Data returns a copy of the whole state.
func (c *Cluster) Data() map[string]string {
	snap, err := c.store.Snapshot()
	if err != nil {
		c.t.Fatalf("clienttest: snapshot: %v", err)
	}
	var st struct{ Contents map[string]string }
	if err := json.Unmarshal(snap, &st); err != nil {
		c.t.Fatalf("clienttest: decode snapshot: %v", err)
	}
	if st.Contents == nil {
		st.Contents = map[string]string{}
	}
	return st.Contents
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
	writeJSON(w, code, api.ErrorBody{Error: msg})
}

func (c *Cluster) status(i int) api.Status {
	nd := c.nodes[i]
	role := "follower"
	if i == c.leader {
		role = "leader"
	}
	index := c.store.AppliedIndex()
	return api.Status{
		Name: nd.name, ID: i, Role: role, Term: c.term, Leader: c.leaderName(),
		CommitIndex: index, AppliedIndex: index - min(index, nd.lag), LastLogIndex: index,
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
			var out api.Cluster
			yes, no := true, false
			for j, other := range c.nodes {
				if j != i && (other.mode == Down || other.mode == Hang) {
					out.Nodes = append(out.Nodes, api.ClusterNode{Status: api.Status{Name: other.name, ID: j}, Reachable: &no, Error: "connection refused"})
					continue
				}
				out.Nodes = append(out.Nodes, api.ClusterNode{Status: c.status(j), Reachable: &yes})
			}
			c.mu.Unlock()
			writeJSON(w, http.StatusOK, out)
			return
		}
		c.mu.Unlock()
		if !strings.HasPrefix(r.URL.EscapedPath(), "/v1/kv/") {
			writeError(w, http.StatusNotFound, "no such route")
			return
		}
		key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/kv/"))
		if err != nil || kv.ValidateKey(key) != nil {
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
		b, err := io.ReadAll(io.LimitReader(r.Body, api.MaxValueBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if len(b) > api.MaxValueBytes {
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
		v, ok := c.store.Get(key)
		if !ok {
			writeError(w, http.StatusNotFound, "key not found")
			return
		}
		writeJSON(w, http.StatusOK, api.ValueBody{Key: key, Value: v})
		return
	}
	wr := Write{Node: c.nodes[i].name, Method: r.Method, Key: key, Value: value, ClientID: r.Header.Get("Client-Id")}
	switch {
	case r.Method == http.MethodDelete:
		wr.Op = api.OpDelete
	case r.URL.Query().Get("op") == string(api.OpAppend):
		wr.Op = api.OpAppend
	case r.URL.Query().Get("op") == "" || r.URL.Query().Get("op") == string(api.OpPut):
		wr.Op = api.OpPut
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
	// The write is committed at the next index; a repeated request gets its
	// first result back, with that result's index (the session's work).
	next := c.store.AppliedIndex() + 1
	res := c.store.Apply(next, kv.EncodeCommand(kv.Command{Op: wr.Op, Key: key, Value: value, ClientID: wr.ClientID, Seq: wr.Seq}))
	switch {
	case errors.Is(res.Err, kv.ErrStaleRequest):
		wr.Status = http.StatusBadRequest
		writeError(w, wr.Status, "stale request")
		return
	case errors.Is(res.Err, kv.ErrTooLarge):
		wr.Status = http.StatusRequestEntityTooLarge
		writeError(w, wr.Status, res.Err.Error())
		return
	case res.Err != nil:
		wr.Status = http.StatusBadRequest
		writeError(w, wr.Status, res.Err.Error())
		return
	}
	index := res.Index
	wr.Applied = index == next
	if c.lose > 0 || c.loseKey[key] {
		if c.lose > 0 {
			c.lose--
		}
		wr.Status = http.StatusGatewayTimeout
		writeError(w, wr.Status, "proposed but not known committed in time")
		return
	}
	wr.Status = http.StatusOK
	writeJSON(w, http.StatusOK, api.WriteBody{Index: index})
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
