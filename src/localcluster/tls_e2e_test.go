package localcluster

import (
	"crypto/tls"
	"crypto/x509"
	enc "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
	"raftkv/src/config"
	"raftkv/src/raft"
	"raftkv/src/transport"
)

// The peer protocol as an outsider writes it (transport/handshake.go),
// encoded here by hand so the test does not lean on the code it attacks.
func rawHello(clusterID string, from int, fromName string, to int) []byte {
	str := func(b []byte, s string) []byte { return append(enc.AppendUvarint(b, uint64(len(s))), s...) }
	body := str(nil, clusterID)
	body = enc.AppendVarint(body, int64(from))
	body = str(body, fromName)
	body = enc.AppendVarint(body, int64(to))
	out := append([]byte("RKVT"), 1, 0, 0)
	enc.BigEndian.PutUint16(out[5:7], uint16(len(body)))
	return append(out, body...)
}

// forgedAppend: a hello as member from, then an AppendEntries of a high
// term that commits pwned=injected-by-attacker if it gets through.
func forgedAppend(clusterID string, from int, fromName string, to int) []byte {
	cmd := []byte(`{"op":"put","key":"pwned","value":"injected-by-attacker"}`)
	m := raft.Message{Type: raft.MsgApp, From: raft.ID(from), To: raft.ID(to), Term: 1000, Index: 0, LogTerm: 0, Commit: 1,
		Entries: []raft.Entry{{Term: 1000, Index: 1, Data: cmd}}}
	frame := transport.AppendMessage([]byte{0, 0, 0, 0}, &m)
	enc.BigEndian.PutUint32(frame[:4], uint32(len(frame)-4))
	return append(rawHello(clusterID, from, fromName, to), frame...)
}

func certFor(t *testing.T, ca *certs.CA, name string, o certs.Options) tls.Certificate {
	t.Helper()
	c, k, err := ca.Issue(name, []string{"127.0.0.1"}, o)
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return pair
}

// refusedMetric reads raftkv_peer_handshake_refused_total{reason} from node i.
func refusedMetric(c *Cluster, i int, reason string) (float64, error) {
	resp, err := httpc.Get(c.URL(i, "/metrics"))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	prefix := fmt.Sprintf(`raftkv_peer_handshake_refused_total{reason=%q} `, reason)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, nil
}

// TestPeerTLSRefusesOutsiders attacks a running TLS cluster's Raft port
// the ways of issue 14: each connection carries a hello and a forged
// AppendEntries, is refused for its reason (logged and counted in
// /metrics), and nothing reaches the log.
func TestPeerTLSRefusesOutsiders(t *testing.T) {
	c := startCluster(t, 3)
	hf, err := config.LoadHostfile(c.Hostfile)
	require.NoError(t, err)
	clusterID := hf.ClusterID()
	ca, err := certs.LoadCA(c.CertsDir())
	require.NoError(t, err)
	otherCA, err := certs.NewCA(certs.Options{})
	require.NoError(t, err)
	r1c, r1k := certs.NodePaths(c.CertsDir(), "r1")
	r1, err := tls.LoadX509KeyPair(r1c, r1k)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	present := func(pair tls.Certificate) *tls.Config {
		// Sent whatever CAs the node lists, as an attacker would.
		return &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}
	}
	const target = 0
	cases := []struct {
		name   string
		client *tls.Config // nil: plaintext
		from   int
		claim  string
		reason string
	}{
		{"no certificate", &tls.Config{}, 1, "r1", transport.ReasonNoCertificate},
		{"a valid certificate of another cluster", present(certFor(t, otherCA, "r1", certs.Options{})), 1, "r1", transport.ReasonUnknownCA},
		{"expired", present(certFor(t, ca, "r1", certs.Options{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1})), 1, "r1", transport.ReasonExpired},
		{"r1's certificate claiming to be r2", present(r1), 2, "r2", transport.ReasonNameMismatch},
		{"plaintext", nil, 1, "r1", transport.ReasonNotTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, err := refusedMetric(c, target, tc.reason)
			require.NoError(t, err)
			conn, err := net.DialTimeout("tcp", c.Nodes[target].RaftAddr, 2*time.Second)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
			if tc.client != nil {
				cfg := tc.client.Clone()
				cfg.RootCAs, cfg.ServerName, cfg.MinVersion = roots, c.Nodes[target].Name, tls.VersionTLS13
				tc := tls.Client(conn, cfg)
				require.NoError(t, tc.Handshake(), "TLS 1.3: the client finishes before the server judges it")
				conn = tc
			}
			_, _ = conn.Write(forgedAppend(clusterID, tc.from, tc.claim, target))
			var status [1]byte
			_, err = io.ReadFull(conn, status[:])
			if err == nil {
				require.NotEqual(t, byte(0), status[0], "the node accepted the handshake")
			}
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "the node neither answered nor closed")
			eventually(t, 5*time.Second, func() bool {
				n, err := refusedMetric(c, target, tc.reason)
				return err == nil && n == before+1
			}, "raftkv_peer_handshake_refused_total{reason=%q} counted", tc.reason)
			assert.Contains(t, c.Log(target), `"reason": "`+tc.reason+`"`, "the refusal is logged with its reason")
		})
	}

	// Nothing reached the log: no node has the key, the cluster works.
	leader := waitLeader(t, c, 10*time.Second)
	r, err := do("PUT", c.Nodes[leader].HTTPAddr, "after", "", []byte("ok"), nil)
	require.NoError(t, err)
	require.Equal(t, 200, r.code)
	for i := range c.Nodes {
		eventually(t, 5*time.Second, func() bool {
			st, err := c.NodeStatus(i)
			return err == nil && st.AppliedIndex >= r.index && st.PeerTLS
		}, "%s applied the PUT", c.Nodes[i].Name)
		g, err := do("GET", c.Nodes[i].HTTPAddr, "pwned", "consistency=stale", nil, nil)
		require.NoError(t, err)
		assert.Equal(t, 404, g.code, "%s has the injected key", c.Nodes[i].Name)
	}

	// The control: the same dialer with r1's own certificate and name is
	// accepted, so the refusals above were the checks, not a broken dialer.
	conn, err := tls.Dial("tcp", c.Nodes[target].RaftAddr, &tls.Config{Certificates: []tls.Certificate{r1}, RootCAs: roots,
		ServerName: c.Nodes[target].Name, MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = conn.Write(rawHello(clusterID, 1, "r1", target))
	require.NoError(t, err)
	var status [1]byte
	_, err = io.ReadFull(conn, status[:])
	require.NoError(t, err)
	assert.Equal(t, byte(0), status[0], "r1's own certificate is accepted")
}
