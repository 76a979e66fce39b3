package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/raft"
)

const (
	testCluster = "test-cluster"
	waitLimit   = 10 * time.Second
)

func name(id raft.ID) string { return fmt.Sprintf("r%d", id) }

// book holds every node's current address; Peer.Addr reads it, so a test
// can move a node.
type book struct {
	mu    sync.Mutex
	addrs map[raft.ID]string
	calls map[raft.ID]int
}

func newBook() *book { return &book{addrs: map[raft.ID]string{}, calls: map[raft.ID]int{}} }

func (b *book) set(id raft.ID, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs[id] = addr
}

func (b *book) addr(id raft.ID) func() string {
	return func() string {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.calls[id]++
		if a, ok := b.addrs[id]; ok {
			return a
		}
		return "127.0.0.1:1" // not up yet: refused
	}
}

func (b *book) callCount(id raft.ID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[id]
}

// node is a started Transport plus what it received.
type node struct {
	id   raft.ID
	tr   *Transport
	mu   sync.Mutex
	got  []raft.Message
	lost chan raft.ID
}

func (n *node) received() []raft.Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]raft.Message(nil), n.got...)
}

// has reports whether a message matching f was received.
func (n *node) has(f func(raft.Message) bool) bool {
	for _, m := range n.received() {
		if f(m) {
			return true
		}
	}
	return false
}

type nodeOpt func(*Config)

// startNode starts node id of a cluster of size nodes, listening on listen
// (127.0.0.1:0 when ""), and records its address in b.
func startNode(t *testing.T, id raft.ID, size int, b *book, listen string, opts ...nodeOpt) *node {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	n := &node{id: id, lost: make(chan raft.ID, 16)}
	cfg := Config{
		Self:       id,
		SelfName:   name(id),
		ClusterID:  testCluster,
		ListenAddr: listen,
		Peers:      map[raft.ID]Peer{},
		Logger:     zaptest.NewLogger(t).Named(name(id)),
		OnPeerLost: func(from raft.ID) {
			select {
			case n.lost <- from:
			default:
			}
		},
	}
	for p := range raft.ID(size) {
		if p != id {
			cfg.Peers[p] = Peer{Name: name(p), Addr: b.addr(p)}
		}
	}
	for _, o := range opts {
		o(&cfg)
	}
	tr, err := New(cfg, func(m raft.Message) {
		n.mu.Lock()
		n.got = append(n.got, m)
		n.mu.Unlock()
	})
	require.NoError(t, err)
	tr.backoffMin = 10 * time.Millisecond
	tr.backoffMax = 200 * time.Millisecond
	require.NoError(t, tr.Start())
	n.tr = tr
	b.set(id, tr.Addr().String())
	t.Cleanup(func() { _ = tr.Close() })
	return n
}

// eventually polls cond every 5 ms until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		<-tick.C
	}
}

// sendUntilDelivered resends a heartbeat carrying a fresh context every
// 20 ms until to receives it: for links that are still (re)connecting.
func sendUntilDelivered(t *testing.T, from, to *node, ctx uint64) {
	t.Helper()
	m := raft.Message{Type: raft.MsgHeartbeat, From: from.id, To: to.id, Term: 1, Context: ctx}
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		from.tr.Send([]raft.Message{m})
		<-tick.C
		if to.has(func(g raft.Message) bool { return g.From == from.id && g.Context == ctx }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %d %s->%s never delivered", ctx, name(from.id), name(to.id))
		}
	}
}

func connected(n *node, peer raft.ID) bool { return n.tr.Stats()[peer].Connected }

func TestThreeNodesExchangeInAllDirections(t *testing.T) {
	b := newBook()
	var nodes []*node
	for id := range raft.ID(3) {
		nodes = append(nodes, startNode(t, id, 3, b, ""))
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if n != p {
				eventually(t, fmt.Sprintf("%s connected to %s", name(n.id), name(p.id)),
					func() bool { return connected(n, p.id) })
			}
		}
	}

	const perPair = 200
	for i := range perPair {
		for _, n := range nodes {
			var batch []raft.Message
			for _, p := range nodes {
				if n == p {
					continue
				}
				m := raft.Message{Type: raft.MsgApp, From: n.id, To: p.id, Term: 2, Index: uint64(i), Commit: uint64(i),
					Entries: []raft.Entry{{Term: 2, Index: uint64(i) + 1, Data: []byte(fmt.Sprintf("%d->%d #%d", n.id, p.id, i))}}}
				if i == perPair/2 {
					m = raft.Message{Type: raft.MsgSnap, From: n.id, To: p.id, Term: 2, Index: uint64(i),
						Snapshot: &raft.Snapshot{Index: 50, Term: 2, Peers: []raft.ID{0, 1, 2}, Data: bytes.Repeat([]byte{byte(i)}, 3<<20)}}
				}
				batch = append(batch, m)
			}
			// Including a message to self and one to an unknown node, which
			// are dropped.
			batch = append(batch, raft.Message{Type: raft.MsgHeartbeat, From: n.id, To: n.id},
				raft.Message{Type: raft.MsgHeartbeat, From: n.id, To: 9})
			n.tr.Send(batch)
		}
	}

	for _, n := range nodes {
		eventually(t, name(n.id)+" received everything", func() bool { return len(n.received()) == 2*perPair })
	}
	for _, n := range nodes {
		next := map[raft.ID]uint64{}
		for _, m := range n.received() {
			require.Equal(t, n.id, m.To)
			// One stream per pair: FIFO, nothing lost, nothing duplicated.
			require.Equal(t, next[m.From], m.Index, "order of %s->%s", name(m.From), name(n.id))
			next[m.From]++
			if m.Type == raft.MsgSnap {
				require.Len(t, m.Snapshot.Data, 3<<20)
			} else {
				require.Equal(t, fmt.Sprintf("%d->%d #%d", m.From, n.id, m.Index), string(m.Entries[0].Data))
			}
		}
		for _, p := range nodes {
			if p == n {
				continue
			}
			st := n.tr.Stats()[p.id]
			assert.Equal(t, name(p.id), st.Name)
			assert.Equal(t, uint64(perPair), st.MessagesSent)
			assert.Equal(t, uint64(perPair), st.MessagesReceived)
			assert.Zero(t, st.Dropped)
			assert.Zero(t, st.Rejected)
			assert.True(t, st.InboundConnected)
			assert.Equal(t, p.tr.Stats()[n.id].BytesSent, st.BytesReceived)
		}
		assert.Zero(t, n.tr.Rejected())
	}
}

func TestRestartedPeerIsReconnected(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	bn := startNode(t, 1, 2, b, "")
	sendUntilDelivered(t, a, bn, 1)
	sendUntilDelivered(t, bn, a, 2)
	addr := bn.tr.Addr().String()

	require.NoError(t, bn.tr.Close())
	eventually(t, "a notices the outbound stream is gone", func() bool { return !connected(a, 1) })

	// The same node comes back on the same port.
	bn2 := startNode(t, 1, 2, b, addr)
	sendUntilDelivered(t, a, bn2, 3)
	sendUntilDelivered(t, bn2, a, 4)
	assert.GreaterOrEqual(t, a.tr.Stats()[1].Reconnects, uint64(1))
}

func TestAddrIsResolvedAgainOnReconnect(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	bn := startNode(t, 1, 2, b, "")
	sendUntilDelivered(t, a, bn, 1)
	oldAddr := bn.tr.Addr().String()
	require.NoError(t, bn.tr.Close())
	calls := b.callCount(1)

	// The peer moves to a new port; only the address book knows.
	bn2 := startNode(t, 1, 2, b, "")
	require.NotEqual(t, oldAddr, bn2.tr.Addr().String())
	sendUntilDelivered(t, a, bn2, 2)
	assert.Greater(t, b.callCount(1), calls, "Addr() called again")
}

// rawPeer dials n as a hand-driven peer and returns the connection.
func rawDial(t *testing.T, n *node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.tr.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(waitLimit)))
	return c
}

// rawHello dials n and completes a handshake as peer from.
func rawHello(t *testing.T, n *node, from raft.ID) net.Conn {
	t.Helper()
	c := rawDial(t, n)
	_, err := c.Write(appendHello(nil, hello{ClusterID: testCluster, From: from, FromName: name(from), To: n.id}))
	require.NoError(t, err)
	require.NoError(t, readAck(c))
	return c
}

func frame(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func encode(m raft.Message) []byte { return frame(AppendMessage(nil, &m)) }

// expectClosedByPeer reads until the other side closes the connection.
func expectClosedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection was not closed by the receiver")
	}
}

func TestBadHandshakesAreRefused(t *testing.T) {
	good := hello{ClusterID: testCluster, From: 1, FromName: "r1", To: 0}
	with := func(f func(*hello)) []byte {
		h := good
		f(&h)
		return appendHello(nil, h)
	}
	versioned := appendHello(nil, good)
	versioned[4] = 99
	bigBody := appendHello(nil, good)
	binary.BigEndian.PutUint16(bigBody[5:7], maxHelloBody+1)
	cases := []struct {
		name     string
		send     []byte
		answered bool // a rejection status comes back before the close
	}{
		{"wrong cluster id", with(func(h *hello) { h.ClusterID = "other-cluster" }), true},
		{"unknown sender", with(func(h *hello) { h.From, h.FromName = 7, "r7" }), true},
		{"sender is self", with(func(h *hello) { h.From, h.FromName = 0, "r0" }), true},
		{"name does not match id", with(func(h *hello) { h.FromName = "r2" }), true},
		{"meant for another node", with(func(h *hello) { h.To = 2 }), true},
		{"unsupported version", versioned, true},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"oversized hello", bigBody, false},
		{"truncated hello", appendHello(nil, good)[:9], false},
	}

	b := newBook()
	a := startNode(t, 0, 3, b, "")
	peer := startNode(t, 1, 3, b, "")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.tr.Rejected()
			c := rawDial(t, a)
			_, err := c.Write(tc.send)
			require.NoError(t, err)
			if tc.name == "truncated hello" {
				// The receiver waits for the rest; going away must not hurt.
				require.NoError(t, c.(*net.TCPConn).CloseWrite())
			}
			if tc.answered {
				assert.ErrorIs(t, readAck(c), ErrRejected)
			}
			expectClosedByPeer(t, c)
			eventually(t, "rejection counted", func() bool { return a.tr.Rejected() == before+1 })
			// The receiver carries on.
			sendUntilDelivered(t, peer, a, uint64(100+i))
		})
	}
	assert.Zero(t, a.tr.Stats()[1].Rejected, "the real peer's stream was never blamed")
}

func TestDialerLogsRejectionAndKeepsTrying(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	other := startNode(t, 1, 2, b, "", func(c *Config) { c.ClusterID = "other" })
	eventually(t, "a refuses other's hellos", func() bool { return a.tr.Rejected() >= 2 })
	eventually(t, "other counts failed dials", func() bool { return other.tr.Stats()[0].DialFailures >= 2 })
	assert.False(t, connected(other, 0))
}

func TestBadFramesDropTheConnection(t *testing.T) {
	hb := func(from, to raft.ID, ctx uint64) raft.Message {
		return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Context: ctx}
	}
	oversized := binary.BigEndian.AppendUint32(nil, 1<<20+1)
	cases := []struct {
		name string
		send []byte
		ctx  uint64 // the Context a wrongly delivered message would carry
	}{
		{"oversized frame length", append(oversized, bytes.Repeat([]byte{1}, 64)...), 0},
		{"max uint32 frame length", []byte{0xff, 0xff, 0xff, 0xff}, 0},
		{"payload fails to decode", frame([]byte{5, 0xf0, 1, 2, 3}), 0},
		{"empty frame", frame(nil), 0},
		{"forged From", encode(hb(2, 0, 501)), 501},
		{"To another node", encode(hb(1, 2, 502)), 502},
	}
	b := newBook()
	a := startNode(t, 0, 3, b, "", func(c *Config) { c.MaxFrame = 1 << 20 })
	real2 := startNode(t, 2, 3, b, "")
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.tr.Stats()[1].Rejected
			c := rawHello(t, a, 1) // the test plays peer r1
			_, err := c.Write(tc.send)
			require.NoError(t, err)
			expectClosedByPeer(t, c)
			eventually(t, "violation counted", func() bool { return a.tr.Stats()[1].Rejected == before+1 })
			if tc.ctx != 0 {
				assert.False(t, a.has(func(m raft.Message) bool { return m.Context == tc.ctx }), "bad message delivered")
			}

			// A good stream from the same peer works, and so does r2.
			c2 := rawHello(t, a, 1)
			_, err = c2.Write(encode(hb(1, 0, uint64(1000+i))))
			require.NoError(t, err)
			eventually(t, "good frame delivered", func() bool {
				return a.has(func(m raft.Message) bool { return m.From == 1 && m.Context == uint64(1000+i) })
			})
			require.NoError(t, c2.Close())
			sendUntilDelivered(t, real2, a, uint64(2000+i))
		})
	}
}

func TestOnPeerLostFiresWhenPeerCloses(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	bn := startNode(t, 1, 2, b, "")
	sendUntilDelivered(t, bn, a, 1) // bn's stream into a is up
	require.NoError(t, bn.tr.Close())
	select {
	case from := <-a.lost:
		assert.Equal(t, raft.ID(1), from)
	case <-time.After(waitLimit):
		t.Fatal("OnPeerLost not called")
	}
	eventually(t, "inbound marked down", func() bool { return !a.tr.Stats()[1].InboundConnected })
}

func TestNewerInboundReplacesOlder(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	c1 := rawHello(t, a, 1)
	c2 := rawHello(t, a, 1)
	expectClosedByPeer(t, c1) // the older stream is closed by a...
	_, err := c2.Write(encode(raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 0, Context: 7}))
	require.NoError(t, err)
	eventually(t, "newer stream delivers", func() bool {
		return a.has(func(m raft.Message) bool { return m.Context == 7 })
	})
	assert.True(t, a.tr.Stats()[1].InboundConnected)
	assert.Empty(t, a.lost, "...and that is not the peer's loss")

	require.NoError(t, c2.Close()) // the peer goes away: that is
	select {
	case from := <-a.lost:
		assert.Equal(t, raft.ID(1), from)
	case <-time.After(waitLimit):
		t.Fatal("OnPeerLost not called")
	}
	assert.Empty(t, a.lost)
	assert.Zero(t, a.tr.Rejected())
}

func TestSendNeverBlocksWhenPeerIsDown(t *testing.T) {
	// A port that refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())

	b := newBook()
	b.set(1, dead)
	a := startNode(t, 0, 2, b, "", func(c *Config) { c.QueueSize = 8 })
	const total = 100_000
	msgs := make([]raft.Message, 100)
	for i := range msgs {
		msgs[i] = raft.Message{Type: raft.MsgApp, From: 0, To: 1, Term: 1, Entries: []raft.Entry{{Data: make([]byte, 100)}}}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range total / len(msgs) {
			a.tr.Send(msgs)
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Send blocked")
	}
	// Every message is accounted for: dropped when the queue was full, or
	// when a failed dial emptied the queue.
	eventually(t, "all messages counted as dropped", func() bool { return a.tr.Stats()[1].Dropped == total })
	st := a.tr.Stats()[1]
	assert.Zero(t, st.MessagesSent)
	assert.False(t, st.Connected)
	assert.GreaterOrEqual(t, st.DialFailures, uint64(1))

	require.NoError(t, a.tr.Close())
	a.tr.Send(msgs) // after Close: dropped, no panic, no block
	assert.Equal(t, uint64(total+len(msgs)), a.tr.Stats()[1].Dropped)
}

func TestSenderDropsOversizedAndMisaddressedMessages(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "", func(c *Config) { c.MaxFrame = 1024 })
	bn := startNode(t, 1, 2, b, "")
	sendUntilDelivered(t, a, bn, 1)
	before := a.tr.Stats()[1].Dropped
	a.tr.Send([]raft.Message{
		{Type: raft.MsgSnap, From: 0, To: 1, Snapshot: &raft.Snapshot{Index: 1, Data: make([]byte, 2048)}},
		{Type: raft.MsgHeartbeat, From: 2, To: 1, Context: 3}, // From is not a's ID
		{Type: raft.MsgHeartbeat, From: 0, To: 1, Context: 2},
	})
	eventually(t, "the next message still goes", func() bool {
		return bn.has(func(m raft.Message) bool { return m.Context == 2 })
	})
	assert.Equal(t, before+2, a.tr.Stats()[1].Dropped)
	assert.False(t, bn.has(func(m raft.Message) bool { return m.Type == raft.MsgSnap || m.Context == 3 }))
	assert.Zero(t, bn.tr.Stats()[0].Rejected)
}

func TestLifecycle(t *testing.T) {
	b := newBook()
	a := startNode(t, 0, 2, b, "")
	assert.ErrorIs(t, a.tr.Start(), ErrStarted)

	// Listening on a port in use is Start's error.
	tr, err := New(Config{Self: 1, SelfName: "r1", ClusterID: testCluster, ListenAddr: a.tr.Addr().String(),
		Logger: zaptest.NewLogger(t)}, func(raft.Message) {})
	require.NoError(t, err)
	assert.Nil(t, tr.Addr())
	assert.Error(t, tr.Start())
	require.NoError(t, tr.Close())

	require.NoError(t, a.tr.Close())
	require.NoError(t, a.tr.Close(), "Close is idempotent")
	assert.ErrorIs(t, a.tr.Start(), ErrClosed)
}

func TestNewValidates(t *testing.T) {
	ok := func() Config {
		return Config{Self: 0, SelfName: "r0", ClusterID: "c", ListenAddr: ":0",
			Peers: map[raft.ID]Peer{1: {Name: "r1", Addr: func() string { return "x:1" }}}}
	}
	deliver := func(raft.Message) {}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"self in peers", func(c *Config) { c.Peers[0] = Peer{Name: "r9", Addr: c.Peers[1].Addr} }, "Config.Peers[0] is Self"},
		{"duplicate name", func(c *Config) { c.Peers[2] = Peer{Name: "r1", Addr: c.Peers[1].Addr} }, `"r1" is also node`},
		{"nil Addr", func(c *Config) { c.Peers[1] = Peer{Name: "r1"} }, "Addr is nil"},
		{"empty name", func(c *Config) { c.SelfName = "" }, "SelfName"},
		{"empty cluster", func(c *Config) { c.ClusterID = "" }, "ClusterID"},
		{"negative self", func(c *Config) { c.Self = -1 }, "Self -1"},
		{"negative MaxFrame", func(c *Config) { c.MaxFrame = -1 }, "MaxFrame"},
		{"negative QueueSize", func(c *Config) { c.QueueSize = -1 }, "QueueSize"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.mod(&c)
			_, err := New(c, deliver)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err := New(ok(), nil)
	assert.ErrorContains(t, err, "deliver")
	tr, err := New(ok(), deliver)
	require.NoError(t, err)
	assert.Equal(t, DefaultMaxFrame, tr.cfg.MaxFrame)
	assert.Equal(t, DefaultQueueSize, tr.cfg.QueueSize)
}
