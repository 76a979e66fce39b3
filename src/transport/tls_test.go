package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
	"raftkv/src/raft"
)

// pki is a test cluster's CA plus helpers to issue key pairs.
type pki struct {
	t  testing.TB
	ca *certs.CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, err := certs.NewCA(certs.Options{})
	require.NoError(t, err)
	return &pki{t: t, ca: ca}
}

func (p *pki) pair(name string, o certs.Options) tls.Certificate {
	p.t.Helper()
	c, k, err := p.ca.Issue(name, []string{"127.0.0.1"}, o)
	require.NoError(p.t, err)
	pair, err := tls.X509KeyPair(c, k)
	require.NoError(p.t, err)
	return pair
}

func (p *pki) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	return pool
}

// config is a node's TLS material for name; nil for a nil p (plaintext).
func (p *pki) config(name string) *tls.Config {
	if p == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{p.pair(name, certs.Options{})}, RootCAs: p.pool()}
}

// withTLS gives a node its certificate for name from p.
func (p *pki) withTLS(name string) nodeOpt {
	cfg := p.config(name)
	return func(c *Config) { c.TLS = cfg }
}

func TestTLSPeersExchangeInAllDirections(t *testing.T) {
	p := newPKI(t)
	b := newBook()
	var nodes []*node
	for id := range raft.ID(3) {
		nodes = append(nodes, startNode(t, id, 3, b, "", p.withTLS(name(id))))
	}
	ctx := uint64(1)
	for _, from := range nodes {
		assert.True(t, from.tr.TLS())
		for _, to := range nodes {
			if from != to {
				sendUntilDelivered(t, from, to, ctx)
				ctx++
			}
		}
	}
	for _, n := range nodes {
		assert.Empty(t, n.tr.Refusals(), "%s refused nothing", name(n.id))
	}
}

// forgedAppend is a hello from r1 (or the claimed name) followed by one
// MsgApp frame that would put an entry into r0's log.
func forgedAppend(from raft.ID, fromName string) []byte {
	buf := appendHello(nil, hello{ClusterID: testCluster, From: from, FromName: fromName, To: 0})
	m := raft.Message{Type: raft.MsgApp, From: from, To: 0, Term: 99, Index: 4242, LogTerm: 99, Commit: 4243,
		Entries: []raft.Entry{{Term: 99, Index: 4243, Data: []byte("pwned=injected-by-attacker")}}}
	frame := AppendMessage([]byte{0, 0, 0, 0}, &m)
	binary.BigEndian.PutUint32(frame[:4], uint32(len(frame)-4))
	return append(buf, frame...)
}

// TestTLSRefusals dials a TLS node the ways an outsider (or a member
// lying about its name) could, sends a hello and a forged AppendEntries,
// and checks that each is refused for its reason, counted, and that
// nothing reached the node's deliver function.
func TestTLSRefusals(t *testing.T) {
	cluster := newPKI(t)
	other := newPKI(t) // another cluster's CA
	yesterday := time.Now().Add(-48 * time.Hour)
	cases := []struct {
		name   string
		client *tls.Config // nil: plaintext
		from   raft.ID
		claim  string
		reason string
	}{
		{"no certificate", &tls.Config{}, 1, "r1", ReasonNoCertificate},
		// GetClientCertificate: Go's client would send nothing rather than
		// a certificate of a CA the server does not list; an attacker would.
		{"another cluster's CA", presenting(other.pair("r1", certs.Options{})), 1, "r1", ReasonUnknownCA},
		{"expired", &tls.Config{Certificates: []tls.Certificate{cluster.pair("r1", certs.Options{NotBefore: yesterday, Days: 1})}}, 1, "r1", ReasonExpired},
		{"r1's certificate claiming to be r2", &tls.Config{Certificates: []tls.Certificate{cluster.pair("r1", certs.Options{})}}, 2, "r2", ReasonNameMismatch},
		{"plaintext", nil, 1, "r1", ReasonNotTLS},
	}

	b := newBook()
	a := startNode(t, 0, 3, b, "", cluster.withTLS("r0"))
	peer := startNode(t, 1, 3, b, "", cluster.withTLS("r1"))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.tr.Refusals()[tc.reason]
			var c net.Conn = rawDial(t, a)
			if tc.client != nil {
				cfg := tc.client.Clone()
				cfg.RootCAs, cfg.ServerName, cfg.MinVersion = cluster.pool(), "r0", tls.VersionTLS13
				tc := tls.Client(c, cfg)
				// In TLS 1.3 the client's handshake ends before the server
				// has judged the client's certificate: the refusal shows
				// in what follows.
				require.NoError(t, tc.Handshake())
				c = tc
			}
			_, _ = c.Write(forgedAppend(tc.from, tc.claim))
			_ = c.SetReadDeadline(time.Now().Add(waitLimit))
			err := readAck(c)
			require.Error(t, err, "the node answered OK")
			eventually(t, "refusal counted as "+tc.reason, func() bool { return a.tr.Refusals()[tc.reason] == before+1 })
			assert.False(t, a.has(func(m raft.Message) bool { return m.Type == raft.MsgApp && m.Index == 4242 }), "forged entry delivered")
			// The node carries on with its real peer.
			sendUntilDelivered(t, peer, a, uint64(100+i))
		})
	}
	assert.Zero(t, a.tr.Stats()[1].Rejected, "the real peer's stream was never blamed")
}

// presenting is a client config that sends pair whatever the server asks.
func presenting(pair tls.Certificate) *tls.Config {
	return &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}
}

// TestTLSDialerChecksThePeersName: a TLS listener at r1's address that
// holds a valid certificate of the cluster, but r2's, gets no stream.
func TestTLSDialerChecksThePeersName(t *testing.T) {
	p := newPKI(t)
	impostor := &tls.Config{Certificates: []tls.Certificate{p.pair("r2", certs.Options{})},
		ClientCAs: p.pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", impostor)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	handshakes := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handshakes <- c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()

	b := newBook()
	b.set(1, ln.Addr().String())
	a := startNode(t, 0, 2, b, "", p.withTLS("r0"))
	select {
	case err := <-handshakes:
		require.Error(t, err, "the dialer completed a handshake with r2's certificate at r1's address")
	case <-time.After(waitLimit):
		t.Fatal("no dial arrived")
	}
	eventually(t, "dial failures counted", func() bool { return a.tr.Stats()[1].DialFailures >= 2 })
	assert.False(t, connected(a, 1))
}

func TestNewRefusesTLSWithoutMaterial(t *testing.T) {
	_, err := New(Config{Self: 0, SelfName: "r0", ClusterID: testCluster, TLS: &tls.Config{}}, func(raft.Message) {})
	assert.ErrorContains(t, err, "TLS needs")
}

func TestHandshakeReasonClassifies(t *testing.T) {
	assert.Equal(t, ReasonNotTLS, handshakeReason(tls.RecordHeaderError{}))
	assert.Equal(t, ReasonTLSHandshake, handshakeReason(net.ErrClosed))
	assert.Equal(t, ReasonUnknownCA, handshakeReason(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}))
	assert.Equal(t, ReasonExpired, handshakeReason(&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}))
	assert.Equal(t, ReasonBadCert, handshakeReason(&tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}}))
}
