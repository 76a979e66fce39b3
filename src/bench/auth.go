package bench

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Auth is how the load generator reaches nodes that serve HTTPS and take
// tokens; the zero value is plaintext without a token (nodes run
// --insecure).
type Auth struct {
	TLS   *tls.Config // trusts the cluster CA; nil: plaintext
	Token string      // sent as Authorization: Bearer; "" for none
}

func (a Auth) scheme() string {
	if a.TLS != nil {
		return "https"
	}
	return "http"
}

// url is path on the node at endpoint.
func (a Auth) url(endpoint, path string) string { return a.scheme() + "://" + endpoint + path }

// authorize adds the token to req.
func (a Auth) authorize(req *http.Request) {
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
}

// transport is newTransport with the TLS config.
func (a Auth) transport(clients int) *http.Transport {
	tr := newTransport(clients)
	tr.TLSClientConfig = a.TLS
	return tr
}

// header is the token's header line for the raw connection ("" for none).
func (a Auth) header() string {
	if a.Token == "" {
		return ""
	}
	return "Authorization: Bearer " + a.Token + "\r\n"
}

// withSessionCache returns a with one client session cache in its TLS
// config: Run gives it to every worker, so that a reconnect (after an
// error, or to a new leader) resumes its session instead of a full
// handshake.
func (a Auth) withSessionCache() Auth {
	if a.TLS == nil || a.TLS.ClientSessionCache != nil {
		return a
	}
	a.TLS = a.TLS.Clone()
	a.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	return a
}

// dialTLS finishes a worker's dial with the TLS handshake, bounded by the
// request's deadline.
func dialTLS(ctx context.Context, conn net.Conn, cfg *tls.Config, endpoint string, deadline time.Time) (net.Conn, error) {
	c := cfg.Clone()
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(endpoint)
		if err != nil {
			return nil, err
		}
		c.ServerName = host
	}
	tc := tls.Client(conn, c)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}
