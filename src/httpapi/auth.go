package httpapi

// Who may call the HTTP API.
//
// A node with TLS material serves HTTPS with its node certificate and
// requires a bearer token (Authorization: Bearer T) of the right role on
// every route but the open ones; a node run --insecure serves plaintext
// and, having no tokens, lets everyone do everything (an explicit choice,
// in its first log line and /v1/status). The checks, in order:
//
//  1. The route's role comes from routeRoles (method + path). A route not
//     in the table needs admin: a route added without a rule is closed,
//     not open.
//  2. Open routes (the page's static files; /healthz, /readyz, /metrics
//     unless Auth.HealthNeedsToken) are served to anyone.
//  3. With Auth.ClientCertRequired, a request without a client certificate
//     signed by the cluster CA: 401.
//  4. A request forwarded by a follower (Raft-Forwarded-Role) acts with the
//     role the follower authenticated, but only over TLS from a
//     certificate of the cluster CA that names the member in
//     Raft-Forwarded-By: anything else is 403, whatever token it carries.
//     A follower therefore never passes the client's token on.
//  5. Else the bearer token: none or an unknown one: 401, with
//     WWW-Authenticate.
//  6. A member's certificate without a token reads (read-only): the
//     fan-out of /v1/cluster and /v1/metrics-summary?scope=cluster.
//  7. A role below the route's: 403.
//
// Every refusal is JSON {"error": ...}.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"go.uber.org/zap"

	"raftkv/src/api"
	"raftkv/src/certs"
)

// Auth configures TLS and tokens on the HTTP API (Config.Auth). The zero
// value is plaintext with no tokens: every client is admin.
type Auth struct {
	// TLS is the node's TLS material (certs.LoadPeer: its certificate and
	// the CA); nil serves plaintext HTTP. Client certificates are verified
	// against the CA when given.
	TLS *tls.Config
	// Tokens are the accepted bearer tokens; nil means none are needed
	// (only without TLS: config refuses TLS without tokens).
	Tokens *certs.Tokens
	// ClientCertRequired: every request but the open ones needs a client
	// certificate signed by the cluster CA (besides its token).
	ClientCertRequired bool
	// HealthNeedsToken: /healthz, /readyz and /metrics need a read-only
	// token too (by default they are open, for probes and scrapers).
	HealthNeedsToken bool
}

// Headers of a forwarded request: the follower that forwards it and the
// role it authenticated the client with.
const forwardedRoleHeader = "Raft-Forwarded-Role"

// routeRule: requests of method (any if "") to path (a prefix if it ends
// in "/") need role; health marks /healthz, /readyz, /metrics.
type routeRule struct {
	method string
	path   string
	role   api.Role
	health bool
}

// routeRoles is the role table, first match wins. New routes add a line
// here; a route without one needs admin.
var routeRoles = []routeRule{
	{method: "GET", path: "/healthz", health: true},
	{method: "GET", path: "/readyz", health: true},
	{method: "GET", path: "/metrics", health: true},
	// The dashboard's page and files hold no data; its script reads the
	// API with a token it asks for.
	{method: "GET", path: "/"},
	{method: "GET", path: "/ui/"},

	{method: "GET", path: "/v1/status", role: api.RoleReadOnly},
	{method: "GET", path: "/v1/cluster", role: api.RoleReadOnly},
	{method: "GET", path: "/v1/metrics-summary", role: api.RoleReadOnly},
	{method: "GET", path: kvPrefix, role: api.RoleReadOnly},
	{method: "GET", path: "/v1/watch/", role: api.RoleReadOnly},
	{method: "PUT", path: kvPrefix, role: api.RoleReadWrite},
	{method: "DELETE", path: kvPrefix, role: api.RoleReadWrite},
	{path: kvPrefix, role: api.RoleReadWrite}, // other methods: 405 for a writer
	{method: "POST", path: "/v1/txn", role: api.RoleReadWrite},
	{path: "/v1/lease", role: api.RoleReadWrite},
	{path: "/v1/lease/", role: api.RoleReadWrite},

	{path: "/v1/members", role: api.RoleAdmin},
	{path: "/v1/members/", role: api.RoleAdmin},
	{path: "/v1/leader/", role: api.RoleAdmin},
	{path: "/v1/snapshot", role: api.RoleAdmin},
	{path: "/v1/snapshot/", role: api.RoleAdmin},
}

// routeRole returns the role a request needs and whether it is a health
// route. HEAD is GET.
func routeRole(method, escapedPath string) (api.Role, bool) {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	// A path that is not clean (//, /./, /../) outside a key is served by
	// no handler (ServeMux redirects it), and is matched by no rule: it
	// must not slip past one by prefix.
	if !strings.HasPrefix(escapedPath, kvPrefix) && !strings.HasPrefix(escapedPath, watchPrefix) {
		if c := path.Clean(escapedPath); c != escapedPath && c+"/" != escapedPath {
			return api.RoleAdmin, false
		}
	}
	for _, r := range routeRoles {
		if r.method != "" && r.method != method {
			continue
		}
		if r.path == escapedPath || (strings.HasSuffix(r.path, "/") && r.path != "/" && strings.HasPrefix(escapedPath, r.path)) {
			return r.role, r.health
		}
	}
	return api.RoleAdmin, false
}

type roleKey struct{}

// requestRole is the role the request was authenticated with (admin on a
// node without tokens).
func requestRole(ctx context.Context) api.Role {
	r, _ := ctx.Value(roleKey{}).(api.Role)
	return r
}

// authError is a refusal: its status and message.
type authError struct {
	code int
	msg  string
}

// authenticate returns the role of r, or why it is refused.
func (s *Server) authenticate(r *http.Request) (api.Role, *authError) {
	a := &s.cfg.Auth
	need, health := routeRole(r.Method, r.URL.EscapedPath())
	if health && a.HealthNeedsToken {
		need = api.RoleReadOnly
	}
	if a.Tokens == nil && a.TLS == nil {
		return api.RoleAdmin, nil // --insecure without tokens
	}
	if need == api.RoleNone {
		return api.RoleNone, nil
	}
	cert := verifiedClientCert(r)
	if a.ClientCertRequired && cert == nil {
		return api.RoleNone, &authError{http.StatusUnauthorized, "this node requires a client certificate signed by the cluster CA"}
	}
	var role api.Role
	who := ""
	if fr := r.Header[forwardedRoleHeader]; len(fr) > 0 {
		by := r.Header.Get(forwardedHeader)
		if cert == nil || !s.isMember(by) || cert.VerifyHostname(by) != nil || len(fr) != 1 {
			return api.RoleNone, &authError{http.StatusForbidden,
				"header " + forwardedRoleHeader + " is accepted only from a cluster member's certificate naming the member in " + forwardedHeader}
		}
		fwd, err := api.ParseRole(fr[0])
		if err != nil {
			return api.RoleNone, &authError{http.StatusBadRequest, "header " + forwardedRoleHeader + ": " + err.Error()}
		}
		role, who = fwd, "forwarded by "+by
	} else if authz := r.Header["Authorization"]; len(authz) > 0 {
		// The scheme's name is case-insensitive (RFC 9110, 11.1).
		const scheme = "Bearer "
		a := authz[0]
		if len(a) < len(scheme) || !strings.EqualFold(a[:len(scheme)], scheme) || len(authz) != 1 {
			return api.RoleNone, &authError{http.StatusUnauthorized, "header Authorization: want one, \"Bearer TOKEN\""}
		}
		id, ok := s.lookupToken(strings.TrimSpace(a[len(scheme):]))
		if !ok {
			return api.RoleNone, &authError{http.StatusUnauthorized, "unknown token"}
		}
		role, who = id.Role, "token "+id.Name
	} else if name := s.memberOf(cert); name != "" {
		role, who = api.RoleReadOnly, "member "+name
	} else {
		return api.RoleNone, &authError{http.StatusUnauthorized, "this route needs a token: header Authorization: Bearer TOKEN"}
	}
	if role < need {
		return role, &authError{http.StatusForbidden, fmt.Sprintf("%s has role %s; %s %s needs %s", who, role, r.Method, r.URL.Path, need)}
	}
	return role, nil
}

func (s *Server) lookupToken(tok string) (certs.Identity, bool) {
	if s.cfg.Auth.Tokens == nil || tok == "" {
		return certs.Identity{}, false
	}
	return s.cfg.Auth.Tokens.Lookup(tok)
}

// verifiedClientCert is the client's certificate if crypto/tls verified it
// against the cluster CA (ClientAuth VerifyClientCertIfGiven), else nil.
func verifiedClientCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

func (s *Server) isMember(name string) bool {
	_, peers := s.allPeers()
	for _, p := range peers {
		if p.Name == name && name != "" {
			return true
		}
	}
	return false
}

// memberOf returns the member a verified certificate names, or "".
func (s *Server) memberOf(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	_, peers := s.allPeers()
	for _, p := range peers {
		if cert.VerifyHostname(p.Name) == nil {
			return p.Name
		}
	}
	return ""
}

// withAuth authenticates every request before h sees it; h finds the
// role with requestRole.
func (s *Server) withAuth(h http.Handler) http.Handler {
	if s.cfg.Auth.Tokens == nil && s.cfg.Auth.TLS == nil {
		// --insecure without tokens: every request acts as admin, and
		// nothing is spent per request to say so.
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, aerr := s.authenticate(r)
		if aerr != nil {
			if aerr.code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="raftkv"`)
			}
			w.Header()["Raft-Node"] = []string{s.cfg.name()}
			s.lg.Debug("request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.String("remote", r.RemoteAddr), zap.Int("status", aerr.code), zap.String("reason", aerr.msg))
			writeError(w, aerr.code, aerr.msg)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), roleKey{}, role)))
	})
}

// serverTLS is the HTTPS config: the node's certificate, TLS 1.3,
// client certificates verified against the CA when given (required ones
// are refused by withAuth, with a JSON 401 instead of a bare alert),
// HTTP/1.1 (one request per connection at a time: the connection limit
// counts what it should).
func serverTLS(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ClientAuth = tls.VerifyClientCertIfGiven
	c.NextProtos = []string{"http/1.1"}
	return c
}

// peerClientTLS is what a node presents when it calls another node's HTTP
// API (forwarding, status fan-out): its own certificate, and it accepts
// only a certificate of the cluster CA naming the member it meant to
// reach (set per connection by the dialer).
func peerClientTLS(base *tls.Config, peerName string) *tls.Config {
	c := base.Clone()
	c.MinVersion = tls.VersionTLS13
	c.ServerName = peerName
	c.NextProtos = []string{"http/1.1"}
	return c
}

// newPeerClient is the HTTP client a node calls other nodes with. With
// TLS it dials HTTPS, presents the node's certificate and checks that the
// answering certificate names the member at that address (addresses are
// mapped to names through the hostfile, so an address shared by no member
// is refused). nameAt maps an HTTP address to the member there: the
// hostfile's, and members outside it from the configuration in force.
func newPeerClient(cfg *Config, nameAt func(addr string) (string, bool)) *http.Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: time.Second}).DialContext,
	}
	if base := cfg.Auth.TLS; base != nil {
		dialer := &net.Dialer{Timeout: time.Second}
		// Reconnects resume their TLS session (tickets are kept per
		// server name).
		sessions := tls.NewLRUClientSessionCache(len(cfg.Peers))
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			name, ok := nameAt(addr)
			if !ok {
				return nil, fmt.Errorf("%s is no member's HTTP address", addr)
			}
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := peerClientTLS(base, name)
			tc.ClientSessionCache = sessions
			c := tls.Client(raw, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS with %s at %s: %w", name, addr, err)
			}
			return c, nil
		}
	}
	return &http.Client{Transport: tr}
}

// peerScheme is the scheme of the other nodes' HTTP APIs: this node's.
func (s *Server) peerScheme() string {
	if s.cfg.Auth.TLS != nil {
		return "https"
	}
	return "http"
}
