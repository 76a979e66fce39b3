package localcluster

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
)

// authReply is one answer of the HTTP API as a client without the test's
// shared credentials sees it.
type authReply struct {
	code int
	body string
	hdr  http.Header
}

func send(t *testing.T, c *http.Client, method, url, token, body string, hdr map[string]string) authReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return authReply{resp.StatusCode, string(b), resp.Header}
}

// jsonError checks that a refusal is JSON {"error": ...} and returns it.
func jsonError(t *testing.T, r authReply) string {
	t.Helper()
	assert.Equal(t, "application/json", r.hdr.Get("Content-Type"), r.body)
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &e), r.body)
	require.NotEmpty(t, e.Error, r.body)
	return e.Error
}

// TestHTTPAuth: real nodes with TLS and tokens. No token: 401 JSON with
// WWW-Authenticate; a read-only token reads but cannot put (403 JSON); a
// read-write token writes, through a follower too (forwarded with the
// follower's certificate), but cannot reach an admin route; /healthz,
// /readyz and /metrics are open; a client that trusts another CA cannot
// connect; plaintext gets no data; a forged forwarded role from a
// certificate of the cluster CA that names no member is refused by the
// leader; /v1/status says client_tls and tokens.
func TestHTTPAuth(t *testing.T) {
	c := startCluster(t, 3)
	l := waitLeader(t, c, 5*time.Second)
	f := (l + 1) % 3
	tlsCfg, _, err := ClientAuth(testCerts, TokenAdmin)
	require.NoError(t, err)
	tlsCfg.Certificates = nil // no client certificate: tokens alone
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	tok := func(name string) string {
		_, tk, err := ClientAuth(testCerts, name)
		require.NoError(t, err)
		return tk
	}
	ro, rw, admin := tok(TokenReadOnly), tok(TokenReadWrite), tok(TokenAdmin)

	none := send(t, hc, "GET", c.URL(f, "/v1/kv/k"), "", "", nil)
	assert.Equal(t, http.StatusUnauthorized, none.code)
	assert.Contains(t, jsonError(t, none), "needs a token")
	assert.Equal(t, `Bearer realm="raftkv"`, none.hdr.Get("WWW-Authenticate"))
	bad := send(t, hc, "GET", c.URL(f, "/v1/kv/k"), "rkv_guess", "", nil)
	assert.Equal(t, http.StatusUnauthorized, bad.code)
	assert.Contains(t, jsonError(t, bad), "unknown token")

	roPut := send(t, hc, "PUT", c.URL(l, "/v1/kv/k"), ro, "v", nil)
	assert.Equal(t, http.StatusForbidden, roPut.code)
	assert.Contains(t, jsonError(t, roPut), "needs read-write")

	for _, i := range []int{l, f} {
		put := send(t, hc, "PUT", c.URL(i, "/v1/kv/k"), rw, "v", map[string]string{"Client-Id": "auth", "Request-Seq": "1"})
		require.Equal(t, http.StatusOK, put.code, put.body)
		get := send(t, hc, "GET", c.URL(i, "/v1/kv/k"), ro, "", nil)
		require.Equal(t, http.StatusOK, get.code, get.body)
		assert.Contains(t, get.body, `"key":"k","value":"v"`)
	}

	rwAdmin := send(t, hc, "POST", c.URL(f, "/v1/leader/transfer"), rw, "", nil)
	assert.Equal(t, http.StatusForbidden, rwAdmin.code)
	assert.Contains(t, jsonError(t, rwAdmin), "needs admin")
	unknown := send(t, hc, "GET", c.URL(f, "/v1/no-such-route"), admin, "", nil)
	assert.Equal(t, http.StatusNotFound, unknown.code, "admin passes the check, the route does not exist: %s", unknown.body)

	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		r := send(t, hc, "GET", c.URL(f, p), "", "", nil)
		assert.Equal(t, http.StatusOK, r.code, "%s without a token: %s", p, r.body)
	}
	st := send(t, hc, "GET", c.URL(f, "/v1/status"), ro, "", nil)
	require.Equal(t, http.StatusOK, st.code, st.body)
	assert.Contains(t, st.body, `"client_tls":true`)
	assert.Contains(t, st.body, `"tokens":true`)
	assert.Contains(t, st.body, `"peer_tls":true`)

	// Another CA: the handshake fails before any request.
	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, certs.Init(other, certs.Options{}, false))
	otherCfg, err := certs.LoadClient(certs.CAPath(other), "", "")
	require.NoError(t, err)
	_, err = (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: otherCfg}}).Get(c.URL(f, "/healthz"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	// Plaintext to the HTTPS port: a JSON 400, no data.
	plain := send(t, &http.Client{Timeout: 5 * time.Second}, "GET", "http://"+c.Nodes[f].HTTPAddr+"/v1/kv/k", rw, "", nil)
	assert.Equal(t, http.StatusBadRequest, plain.code)
	assert.Contains(t, jsonError(t, plain), "serves HTTPS")

	// A certificate of the cluster CA that names no member cannot carry
	// a forwarded role to the leader, with or without a token.
	ca, err := certs.LoadCA(testCerts)
	require.NoError(t, err)
	mc, mk, err := ca.Issue("mallory", []string{"127.0.0.1"}, certs.Options{})
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(mc, mk)
	require.NoError(t, err)
	mallory := tlsCfg.Clone()
	// A session resumed from hc's cache would carry hc's (absent)
	// certificate, not mallory's: a new identity needs its own cache.
	mallory.Certificates, mallory.ClientSessionCache = []tls.Certificate{pair}, nil
	mhc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: mallory}}
	for _, token := range []string{"", ro} {
		forged := send(t, mhc, "PUT", c.URL(l, "/v1/kv/k"), token, "forged",
			map[string]string{"Raft-Forwarded-By": c.Nodes[f].Name, "Raft-Forwarded-Role": "admin"})
		assert.Equal(t, http.StatusForbidden, forged.code, forged.body)
		assert.Contains(t, jsonError(t, forged), "cluster member")
	}
	get := send(t, hc, "GET", c.URL(l, "/v1/kv/k"), ro, "", nil)
	assert.Contains(t, get.body, `"key":"k","value":"v"`, "no forged write applied")
}

// TestHTTPClientCertAuth: a node run with --client-cert-auth and
// --open-health=false refuses a request without a client certificate
// (401) even with a good token, takes one with a certificate of the
// cluster CA, and closes /healthz and /metrics to clients without a token.
func TestHTTPClientCertAuth(t *testing.T) {
	c := startCluster(t, 1, "--client-cert-auth", "--open-health=false")
	tlsCfg, rw, err := ClientAuth(testCerts, TokenReadWrite)
	require.NoError(t, err)
	tlsCfg.Certificates = nil
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	noCert := send(t, hc, "PUT", c.URL(0, "/v1/kv/k"), rw, "v", nil)
	assert.Equal(t, http.StatusUnauthorized, noCert.code)
	assert.Contains(t, jsonError(t, noCert), "client certificate")

	ca, err := certs.LoadCA(testCerts)
	require.NoError(t, err)
	cc, ck, err := ca.Issue("app", nil, certs.Options{})
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(cc, ck)
	require.NoError(t, err)
	withCert := tlsCfg.Clone()
	// Not hc's session cache: a resumed session keeps the identity it was
	// made with (no certificate).
	withCert.Certificates, withCert.ClientSessionCache = []tls.Certificate{pair}, nil
	chc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: withCert}}
	ok := send(t, chc, "PUT", c.URL(0, "/v1/kv/k"), rw, "v", nil)
	assert.Equal(t, http.StatusOK, ok.code, ok.body)
	for _, p := range []string{"/healthz", "/metrics"} {
		closed := send(t, chc, "GET", c.URL(0, p), "", "", nil)
		assert.Equal(t, http.StatusUnauthorized, closed.code, "%s: %s", p, closed.body)
		open := send(t, chc, "GET", c.URL(0, p), rw, "", nil)
		assert.Equal(t, http.StatusOK, open.code, "%s with a token: %s", p, open.body)
	}
}
