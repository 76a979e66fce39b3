package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Peer mutual TLS. With Config.TLS set, every connection is TLS 1.3 and
// both ends present a certificate signed by the cluster CA:
//
//   - The dialer verifies the acceptor's certificate against the CA with
//     ServerName = the peer's hostfile name, so it streams only to a
//     process holding that member's certificate, whatever address the
//     hostfile gave.
//   - The acceptor verifies the dialer's certificate against the CA during
//     the TLS handshake, and after reading the raftkv hello it checks that
//     the certificate names the member the hello claims to be
//     (Certificate.VerifyHostname(hello.FromName)). A certificate of r1
//     cannot speak for r2.
//
// Nothing of the peer reaches the core before both checks pass. The
// acceptor asks for the client certificate with VerifyClientCertIfGiven
// and refuses a connection without one itself, right after the handshake:
// the chain check is crypto/tls's own, and the refusal carries a reason
// the dialer can log ("no client certificate") instead of a bare alert.
//
// TLS costs per connection (one handshake per long-lived stream), and per
// record: the writer's bufio batching makes records large under load.

// Reasons an inbound connection is refused (the reason label of
// raftkv_peer_handshake_refused_total).
const (
	ReasonNoCertificate = "no_certificate"  // TLS on, the dialer presented none
	ReasonUnknownCA     = "unknown_ca"      // signed by another CA (another cluster)
	ReasonExpired       = "expired"         // outside its validity period
	ReasonBadCert       = "bad_certificate" // any other certificate verification failure
	ReasonNotTLS        = "not_tls"         // a plaintext dialer at a TLS node
	ReasonTLSHandshake  = "tls_handshake"   // any other TLS handshake failure
	ReasonNameMismatch  = "name_mismatch"   // the certificate does not name the hello's sender
	ReasonBadHello      = "bad_hello"       // not a raftkv hello, or another version
	ReasonClusterID     = "cluster_id"      // another cluster's hello
	ReasonUnknownSender = "unknown_sender"  // sender not a member (or the receiver itself)
	ReasonWrongReceiver = "wrong_receiver"  // the hello is for another node
)

// refusalLogInterval: per reason, at most one warning this often.
const refusalLogInterval = 10 * time.Second

// serverTLS is the acceptor's config, derived from the node's.
func serverTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ClientAuth = tls.VerifyClientCertIfGiven
	if c.ClientCAs == nil {
		c.ClientCAs = c.RootCAs
	}
	// Peers keep one connection for hours: resumption saves nothing, and
	// without tickets the acceptor writes nothing after the handshake that
	// the dialer's close-detecting read would have to skip.
	c.SessionTicketsDisabled = true
	return c
}

// clientTLS is the dialer's config for one peer.
func clientTLS(base *tls.Config, peerName string) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ServerName = peerName
	c.ClientSessionCache = nil
	return c
}

// handshakeReason classifies a failed server-side TLS handshake.
func handshakeReason(err error) string {
	var inv x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return ReasonExpired
	case errors.As(err, &unknown):
		return ReasonUnknownCA
	case errors.As(err, &verify):
		return ReasonBadCert
	case errors.As(err, &rec):
		return ReasonNotTLS
	}
	return ReasonTLSHandshake
}

// refusals counts refused inbound connections by reason and logs them,
// at most one warning per reason per refusalLogInterval (a flood of bad
// connections must not flood the log), saying how many were not logged.
type refusals struct {
	lg *zap.Logger
	mu sync.Mutex
	by map[string]*refusalCount
}

type refusalCount struct {
	total      uint64
	lastLog    time.Time
	suppressed uint64
}

func (r *refusals) init(lg *zap.Logger) {
	r.lg = lg
	r.by = map[string]*refusalCount{}
}

// add counts one refusal and logs it unless one of the same reason was
// logged recently.
func (r *refusals) add(reason, msg string, fields ...zap.Field) {
	now := time.Now()
	r.mu.Lock()
	c := r.by[reason]
	if c == nil {
		c = &refusalCount{}
		r.by[reason] = c
	}
	c.total++
	logIt := c.lastLog.IsZero() || now.Sub(c.lastLog) >= refusalLogInterval
	var suppressed uint64
	total := c.total
	if logIt {
		c.lastLog, suppressed, c.suppressed = now, c.suppressed, 0
	} else {
		c.suppressed++
	}
	r.mu.Unlock()
	if logIt {
		r.lg.Warn(msg, append(fields, zap.String("reason", reason), zap.Uint64("refused_total", total),
			zap.Uint64("not_logged_since_last", suppressed))...)
	}
}

func (r *refusals) counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.by))
	for k, c := range r.by {
		out[k] = c.total
	}
	return out
}
