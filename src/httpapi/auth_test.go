package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/raft"
)

func TestRouteRole(t *testing.T) {
	tests := []struct {
		method, path string
		want         api.Role
		health       bool
	}{
		{"GET", "/healthz", api.RoleNone, true},
		{"HEAD", "/readyz", api.RoleNone, true},
		{"GET", "/metrics", api.RoleNone, true},
		{"POST", "/metrics", api.RoleAdmin, false},
		{"GET", "/", api.RoleNone, false},
		{"GET", "/ui/app.js", api.RoleNone, false},
		{"GET", "/v1/status", api.RoleReadOnly, false},
		{"GET", "/v1/cluster", api.RoleReadOnly, false},
		{"GET", "/v1/metrics-summary", api.RoleReadOnly, false},
		{"GET", "/v1/kv/a/b", api.RoleReadOnly, false},
		{"HEAD", "/v1/kv/a", api.RoleReadOnly, false},
		{"GET", "/v1/kv/../members", api.RoleReadOnly, false}, // a key, served by handleKV
		{"PUT", "/v1/kv/a", api.RoleReadWrite, false},
		{"DELETE", "/v1/kv/a", api.RoleReadWrite, false},
		{"POST", "/v1/kv/a", api.RoleReadWrite, false},
		{"POST", "/v1/txn", api.RoleReadWrite, false},
		{"GET", "/v1/watch/p", api.RoleReadOnly, false},
		{"POST", "/v1/lease", api.RoleReadWrite, false},
		{"PUT", "/v1/lease/7/keepalive", api.RoleReadWrite, false},
		{"GET", "/v1/members", api.RoleAdmin, false},
		{"POST", "/v1/members", api.RoleAdmin, false},
		{"DELETE", "/v1/members/r2", api.RoleAdmin, false},
		{"POST", "/v1/members/r2/promote", api.RoleAdmin, false},
		{"POST", "/v1/leader/transfer", api.RoleAdmin, false},
		{"GET", "/v1/snapshot", api.RoleAdmin, false},
		{"GET", "/v1/unknown", api.RoleAdmin, false},
		{"GET", "/ui/../v1/members", api.RoleAdmin, false},
		{"GET", "//v1/status", api.RoleAdmin, false},
		{"GET", "/v1/./status", api.RoleAdmin, false},
		{"PUT", "/v1/status", api.RoleAdmin, false},
	}
	for _, tt := range tests {
		got, health := routeRole(tt.method, tt.path)
		assert.Equal(t, tt.want, got, "%s %s", tt.method, tt.path)
		assert.Equal(t, tt.health, health, "%s %s", tt.method, tt.path)
	}
}

// testPKI is a cluster CA with r0..r2's certificates, a tokens file, and
// the same for another cluster, written into a folder.
type testPKI struct {
	dir, other string
	ca         *certs.CA
	tokens     map[string]string // role name -> token
}

func newTestPKI(t *testing.T, n int) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), other: t.TempDir(), tokens: map[string]string{}}
	for _, d := range []string{p.dir, p.other} {
		require.NoError(t, certs.Init(d, certs.Options{}, false))
		for i := range n {
			require.NoError(t, certs.Node(d, "r"+string(rune('0'+i)), []string{"127.0.0.1"}, certs.Options{}, false))
		}
	}
	// A certificate of the cluster CA that names no member.
	require.NoError(t, certs.Node(p.dir, "mallory", []string{"127.0.0.1"}, certs.Options{}, false))
	require.NoError(t, certs.Node(p.dir, "r7", []string{"127.0.0.1"}, certs.Options{}, false))
	var err error
	p.ca, err = certs.LoadCA(p.dir)
	require.NoError(t, err)
	for _, r := range []api.Role{api.RoleReadOnly, api.RoleReadWrite, api.RoleAdmin} {
		path, err := certs.AddToken(p.dir, r.String(), r, false)
		require.NoError(t, err)
		tok, err := certs.ReadToken("@" + path)
		require.NoError(t, err)
		p.tokens[r.String()] = tok
	}
	return p
}

func (p *testPKI) peerTLS(t *testing.T, dir, name string) *tls.Config {
	t.Helper()
	c, k := certs.NodePaths(dir, name)
	cfg, err := certs.LoadPeer(certs.CAPath(dir), c, k)
	require.NoError(t, err)
	return cfg
}

func (p *testPKI) tokens0(t *testing.T) *certs.Tokens {
	t.Helper()
	tk, err := certs.LoadTokens(certs.TokensPath(p.dir))
	require.NoError(t, err)
	return tk
}

// client trusts the cluster CA and presents the certificate NAME of dir,
// if name is not "".
func (p *testPKI) client(t *testing.T, dir, name string) *http.Client {
	t.Helper()
	var c, k string
	if name != "" {
		c, k = certs.NodePaths(dir, name)
	}
	cfg, err := certs.LoadClient(certs.CAPath(p.dir), c, k)
	require.NoError(t, err)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// TestAuthenticate runs the checks of auth.go on requests whose TLS state
// holds real certificates (verified chains as crypto/tls leaves them).
func TestAuthenticate(t *testing.T) {
	p := newTestPKI(t, 3)
	leaf := func(dir, name string) *x509.Certificate {
		return p.peerTLS(t, dir, name).Certificates[0].Leaf
	}
	// mallory's certificate is signed by the cluster CA; LoadPeer checks
	// that, so the chain is the one crypto/tls would verify.
	r1, mallory, r7 := leaf(p.dir, "r1"), leaf(p.dir, "mallory"), leaf(p.dir, "r7")
	// r7 is a member outside the hostfile: the configuration names it.
	conf := raft.Membership{Members: []raft.Member{{ID: 0}, {ID: 1}, {ID: 2},
		{ID: 7, Meta: []byte(`{"name":"r7","host":"127.0.0.1","raft_port":7007,"http_port":8007}`)}}}
	cfg := Config{Self: 0, Peers: []Peer{{Name: "r0"}, {Name: "r1"}, {Name: "r2"}},
		Auth: Auth{TLS: p.peerTLS(t, p.dir, "r0"), Tokens: p.tokens0(t)}}
	bearer := func(role string) http.Header { return http.Header{"Authorization": {"Bearer " + p.tokens[role]}} }
	fwd := func(by, role string) http.Header {
		return http.Header{forwardedHeader: {by}, forwardedRoleHeader: {role}}
	}
	tests := []struct {
		name         string
		method, path string
		hdr          http.Header
		cert         *x509.Certificate
		auth         func(*Auth)
		want         api.Role
		code         int // 0: allowed
		msg          string
	}{
		{name: "health open", method: "GET", path: "/healthz", want: api.RoleNone},
		{name: "metrics open", method: "GET", path: "/metrics", want: api.RoleNone},
		{name: "health closed", method: "GET", path: "/healthz", auth: func(a *Auth) { a.HealthNeedsToken = true }, code: 401},
		{name: "health closed, a token", method: "GET", path: "/readyz", hdr: bearer("read-only"), auth: func(a *Auth) { a.HealthNeedsToken = true }, want: api.RoleReadOnly},
		{name: "no token", method: "GET", path: "/v1/kv/a", code: 401, msg: "needs a token"},
		{name: "unknown token", method: "GET", path: "/v1/kv/a", hdr: http.Header{"Authorization": {"Bearer rkv_nope"}}, code: 401, msg: "unknown token"},
		{name: "not bearer", method: "GET", path: "/v1/kv/a", hdr: http.Header{"Authorization": {"Basic " + p.tokens["admin"]}}, code: 401},
		{name: "two Authorization headers", method: "GET", path: "/v1/kv/a", hdr: http.Header{"Authorization": {"Bearer " + p.tokens["admin"], "Bearer x"}}, code: 401},
		{name: "read-only reads", method: "GET", path: "/v1/kv/a", hdr: bearer("read-only"), want: api.RoleReadOnly},
		{name: "the scheme in any case", method: "GET", path: "/v1/kv/a", hdr: http.Header{"Authorization": {"bearer " + p.tokens["read-only"]}}, want: api.RoleReadOnly},
		{name: "a token alone, no scheme", method: "GET", path: "/v1/kv/a", hdr: http.Header{"Authorization": {p.tokens["admin"]}}, code: 401},
		{name: "read-only cannot put", method: "PUT", path: "/v1/kv/a", hdr: bearer("read-only"), code: 403, msg: "needs read-write"},
		{name: "read-write puts", method: "PUT", path: "/v1/kv/a", hdr: bearer("read-write"), want: api.RoleReadWrite},
		{name: "read-write cannot add members", method: "POST", path: "/v1/members", hdr: bearer("read-write"), code: 403, msg: "needs admin"},
		{name: "read-write cannot transfer", method: "POST", path: "/v1/leader/transfer", hdr: bearer("read-write"), code: 403},
		{name: "admin transfers", method: "POST", path: "/v1/leader/transfer", hdr: bearer("admin"), want: api.RoleAdmin},
		{name: "an unknown route needs admin", method: "GET", path: "/v1/new-thing", hdr: bearer("read-write"), code: 403},
		{name: "member reads status", method: "GET", path: "/v1/status", cert: r1, want: api.RoleReadOnly},
		{name: "member cannot write by itself", method: "PUT", path: "/v1/kv/a", cert: r1, code: 403},
		{name: "non-member certificate is no identity", method: "GET", path: "/v1/status", cert: mallory, code: 401},
		{name: "forwarded by a member", method: "PUT", path: "/v1/kv/a", hdr: fwd("r1", "read-write"), cert: r1, want: api.RoleReadWrite},
		{name: "forwarded role too low", method: "DELETE", path: "/v1/members/r2", hdr: fwd("r1", "read-write"), cert: r1, code: 403},
		{name: "forged role, no certificate", method: "PUT", path: "/v1/kv/a", hdr: fwd("r1", "admin"), code: 403, msg: "only from a cluster member"},
		{name: "forged role with a valid read-only token", method: "PUT", path: "/v1/kv/a",
			hdr: http.Header{"Authorization": {"Bearer " + p.tokens["read-only"]}, forwardedHeader: {"r1"}, forwardedRoleHeader: {"admin"}}, code: 403},
		{name: "member outside the hostfile reads status", method: "GET", path: "/v1/status", cert: r7, want: api.RoleReadOnly},
		{name: "forwarded by a member outside the hostfile", method: "PUT", path: "/v1/kv/a", hdr: fwd("r7", "read-write"), cert: r7, want: api.RoleReadWrite},
		{name: "forged role, non-member certificate", method: "PUT", path: "/v1/kv/a", hdr: fwd("mallory", "admin"), cert: mallory, code: 403},
		{name: "forged role, r1's certificate claiming r2", method: "PUT", path: "/v1/kv/a", hdr: fwd("r2", "admin"), cert: r1, code: 403},
		{name: "forwarded role not a role", method: "PUT", path: "/v1/kv/a", hdr: fwd("r1", "root"), cert: r1, code: 400},
		{name: "client certificate required", method: "GET", path: "/v1/kv/a", hdr: bearer("admin"), auth: func(a *Auth) { a.ClientCertRequired = true }, code: 401, msg: "client certificate"},
		{name: "client certificate given", method: "GET", path: "/v1/kv/a", hdr: bearer("read-only"), cert: mallory, auth: func(a *Auth) { a.ClientCertRequired = true }, want: api.RoleReadOnly},
		{name: "client certificate not needed for health", method: "GET", path: "/healthz", auth: func(a *Auth) { a.ClientCertRequired = true }, want: api.RoleNone},
		{name: "insecure: everyone is admin", method: "POST", path: "/v1/members", auth: func(a *Auth) { *a = Auth{} }, want: api.RoleAdmin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{cfg: cfg, rt: &stubRuntime{conf: conf}}
			if tt.auth != nil {
				tt.auth(&srv.cfg.Auth)
			}
			r := httptest.NewRequest(tt.method, "https://r0"+tt.path, nil)
			r.Header = tt.hdr
			if r.Header == nil {
				r.Header = http.Header{}
			}
			if tt.cert != nil {
				r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{tt.cert, p.ca.Cert}}}
			}
			role, aerr := srv.authenticate(r)
			if tt.code == 0 {
				require.Nil(t, aerr)
				assert.Equal(t, tt.want, role)
				return
			}
			require.NotNil(t, aerr, "role %v allowed", role)
			assert.Equal(t, tt.code, aerr.code, aerr.msg)
			assert.Contains(t, aerr.msg, tt.msg)
		})
	}
}

// TestForwardingOverTLS runs three nodes with HTTPS and tokens over real
// TCP and TLS. A follower forwards with its own certificate, never the
// client's token: r1 and r2 accept a token r0 does not know, and a write
// with it through a follower commits on r0 as leader anyway. A client
// that forges the forwarded role, without a member's certificate, is
// refused (403) by the leader itself; one of another CA cannot connect.
func TestForwardingOverTLS(t *testing.T) {
	p := newTestPKI(t, 3)
	// A read-write token only the followers know: their tokens file is
	// the cluster's plus app's.
	onlyFollowers := t.TempDir()
	b, err := os.ReadFile(certs.TokensPath(p.dir))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certs.TokensPath(onlyFollowers), b, 0o644))
	appPath, err := certs.AddToken(onlyFollowers, "app", api.RoleReadWrite, false)
	require.NoError(t, err)
	appTok, err := certs.ReadToken("@" + appPath)
	require.NoError(t, err)
	followerTokens, err := certs.LoadTokens(certs.TokensPath(onlyFollowers))
	require.NoError(t, err)

	cfgs := testConfigs(t, 3)
	for i := range cfgs {
		name := cfgs[i].Peers[i].Name
		tlsCfg := p.peerTLS(t, p.dir, name)
		cfgs[i].node.PeerTLS = tlsCfg
		cfgs[i].Auth = Auth{TLS: tlsCfg, Tokens: p.tokens0(t)}
		if i != 0 {
			cfgs[i].Auth.Tokens = followerTokens
		} else {
			// r0 leads: the others wait far longer before an election.
			cfgs[i].node.ElectionTimeout = 100 * time.Millisecond
		}
	}
	for i := 1; i < 3; i++ {
		cfgs[i].node.ElectionTimeout = 2 * time.Second
	}
	nodes := startNodes(t, cfgs)
	l := waitLeader(t, nodes)
	require.Equal(t, 0, l, "r0 was meant to lead")
	f := nodes[1]
	anon := p.client(t, "", "")
	send := func(c *http.Client, method, url, body string, hdr http.Header) reply {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, err = io.Copy(b, resp.Body)
		require.NoError(t, err)
		return reply{code: resp.StatusCode, body: b.String(), ct: resp.Header.Get("Content-Type")}
	}
	app := http.Header{"Authorization": {"Bearer " + appTok}}

	direct := send(anon, "PUT", "https://"+nodes[0].addr+"/v1/kv/k", "v0", app)
	assert.Equal(t, http.StatusUnauthorized, direct.code, "the leader does not know app's token: %s", direct.body)
	assert.Contains(t, errorMessage(t, direct), "unknown token")

	viaFollower := send(anon, "PUT", "https://"+f.addr+"/v1/kv/k", "v1", app)
	require.Equal(t, http.StatusOK, viaFollower.code, viaFollower.body)
	v, ok := nodes[0].rt.Get("k")
	assert.True(t, ok && v == "v1", "the leader applied the forwarded write")

	ro := send(anon, "PUT", "https://"+f.addr+"/v1/kv/k", "v2", http.Header{"Authorization": {"Bearer " + p.tokens["read-only"]}})
	assert.Equal(t, http.StatusForbidden, ro.code, ro.body)
	read := send(anon, "GET", "https://"+f.addr+"/v1/kv/k", "", http.Header{"Authorization": {"Bearer " + p.tokens["read-only"]}})
	assert.Equal(t, http.StatusOK, read.code, read.body)
	assert.Contains(t, read.body, `"key":"k","value":"v1"`)

	forged := http.Header{forwardedHeader: {"r1"}, forwardedRoleHeader: {"admin"}}
	for _, tc := range []struct {
		name string
		c    *http.Client
	}{{"no certificate", anon}, {"a non-member's certificate of the cluster CA", p.client(t, p.dir, "mallory")}} {
		r := send(tc.c, "PUT", "https://"+nodes[0].addr+"/v1/kv/k", "forged", forged)
		assert.Equal(t, http.StatusForbidden, r.code, "%s: %s", tc.name, r.body)
		assert.Contains(t, errorMessage(t, r), "member")
	}
	v, _ = nodes[0].rt.Get("k")
	assert.Equal(t, "v1", v, "no forged write applied")
	member := send(p.client(t, p.dir, "r1"), "PUT", "https://"+nodes[0].addr+"/v1/kv/k", "by-r1", http.Header{forwardedHeader: {"r1"}, forwardedRoleHeader: {"read-write"}})
	assert.Equal(t, http.StatusOK, member.code, "a member's certificate carries the role: %s", member.body)

	// A client of another cluster's CA does not trust this one's nodes.
	other, err := certs.LoadClient(certs.CAPath(p.other), "", "")
	require.NoError(t, err)
	_, err = (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: other}}).Get("https://" + f.addr + "/healthz")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	// Plaintext to the HTTPS port gets no data, and a JSON 400 that says
	// why; the port serves TLS clients after it as before.
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		plain := do(t, method, "http://"+f.addr+"/v1/kv/k", "x", app)
		assert.Equal(t, http.StatusBadRequest, plain.code, plain.body)
		assert.Contains(t, errorMessage(t, plain), "serves HTTPS")
	}

	// The status fan-out reaches the other nodes with r1's certificate.
	cl := send(anon, "GET", "https://"+f.addr+"/v1/cluster", "", http.Header{"Authorization": {"Bearer " + p.tokens["read-only"]}})
	require.Equal(t, http.StatusOK, cl.code, cl.body)
	assert.NotContains(t, cl.body, `"reachable":false`)
	assert.Contains(t, cl.body, `"client_tls":true`)
}
