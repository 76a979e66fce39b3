package transport

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
	"raftkv/src/raft"
)

// TestAddPeerAcceptsAndReachesTheNewMember: r3 is not among r0's peers
// at New (it is outside r0's hostfile), so r0 refuses it; once r0 adds it
// (a configuration names it), both directions work over mutual TLS, and a
// stranger holding a certificate of the cluster's CA for a name that is not
// a peer is still refused, before and after.
func TestAddPeerAcceptsAndReachesTheNewMember(t *testing.T) {
	p := newPKI(t)
	b := newBook()
	r0 := startNode(t, 0, 2, b, "", p.withTLS("r0"))
	r1 := startNode(t, 1, 2, b, "", p.withTLS("r1"))
	r3 := startNode(t, 3, 2, b, "", p.withTLS("r3")) // it knows r0 and r1 (its hostfile names them)

	eventually(t, "r0 refuses r3, an unknown sender", func() bool { return r0.tr.Refusals()[ReasonUnknownSender] >= 1 })
	assert.False(t, connected(r3, 0), "r3's stream to r0 is up before r0 knows r3")
	stranger := func() {
		t.Helper()
		before := r0.tr.Refusals()[ReasonUnknownSender]
		var c net.Conn = rawDial(t, r0)
		cfg := &tls.Config{Certificates: []tls.Certificate{p.pair("r9", certs.Options{})},
			RootCAs: p.pool(), ServerName: "r0", MinVersion: tls.VersionTLS13}
		tc := tls.Client(c, cfg)
		require.NoError(t, tc.Handshake())
		_, _ = tc.Write(forgedAppend(9, "r9"))
		_ = tc.SetReadDeadline(time.Now().Add(waitLimit))
		require.ErrorIs(t, readAck(tc), ErrRejected, "r0 accepted a stranger with a CA-signed certificate")
		eventually(t, "the stranger's refusal counted", func() bool { return r0.tr.Refusals()[ReasonUnknownSender] > before })
		assert.False(t, r0.has(func(m raft.Message) bool { return m.Index == 4242 }), "the stranger's entry was delivered")
	}
	stranger()

	require.NoError(t, r0.tr.AddPeer(3, Peer{Name: "r3", Addr: b.addr(3)}))
	sendUntilDelivered(t, r0, r3, 1) // r0 dials its new peer
	sendUntilDelivered(t, r3, r0, 2) // and accepts its stream
	assert.Contains(t, r0.tr.Stats(), raft.ID(3))
	assert.Equal(t, "r3", r0.tr.Stats()[3].Name)
	stranger()
	sendUntilDelivered(t, r1, r0, 3) // the others carry on

	// A known ID under its name again changes nothing; a conflict fails.
	require.NoError(t, r0.tr.AddPeer(3, Peer{Name: "r3", Addr: b.addr(3)}))
	assert.ErrorIs(t, r0.tr.AddPeer(3, Peer{Name: "r4", Addr: b.addr(3)}), ErrPeerConflict, "another name for a known ID")
	assert.ErrorIs(t, r0.tr.AddPeer(5, Peer{Name: "r1", Addr: b.addr(5)}), ErrPeerConflict, "a known name under another ID")
	assert.ErrorIs(t, r0.tr.AddPeer(0, Peer{Name: "r0x", Addr: b.addr(0)}), ErrPeerConflict, "this node's ID")
	assert.ErrorIs(t, r0.tr.AddPeer(6, Peer{Name: "r0", Addr: b.addr(6)}), ErrPeerConflict, "this node's name")
	assert.Error(t, r0.tr.AddPeer(7, Peer{Name: "r7"}), "no Addr")

	require.NoError(t, r0.tr.Close())
	assert.ErrorIs(t, r0.tr.AddPeer(8, Peer{Name: "r8", Addr: b.addr(8)}), ErrClosed)
}

// TestAddPeerBeforeStart: a peer added between New and Start is dialed by
// Start like the others.
func TestAddPeerBeforeStart(t *testing.T) {
	b := newBook()
	r1 := startNode(t, 1, 1, b, "", func(c *Config) { c.Peers[0] = Peer{Name: "r0", Addr: b.addr(0)} })
	got := make(chan raft.Message, 16)
	tr, err := New(Config{Self: 0, SelfName: "r0", ClusterID: testCluster, ListenAddr: "127.0.0.1:0"},
		func(m raft.Message) { got <- m })
	require.NoError(t, err)
	require.NoError(t, tr.AddPeer(1, Peer{Name: "r1", Addr: b.addr(1)}))
	require.NoError(t, tr.Start())
	t.Cleanup(func() { _ = tr.Close() })
	b.set(0, tr.Addr().String())
	n0 := &node{id: 0, tr: tr}
	sendUntilDelivered(t, n0, r1, 1)
}
