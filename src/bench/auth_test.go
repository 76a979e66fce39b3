package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTPConnTLSAndToken: with Auth, a worker's raw connection speaks
// TLS (checking the server's certificate), sends the token on every
// request, keeps one connection for many requests, and refuses a server
// its CA did not sign.
func TestHTTPConnTLSAndToken(t *testing.T) {
	var conns, bad atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.Header.Get("Authorization") != "Bearer rkv_t" {
			bad.Add(1)
		}
		indexHandler(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	ep := strings.TrimPrefix(srv.URL, "https://")

	c := newHTTPConn(context.Background(), Auth{TLS: &tls.Config{RootCAs: pool}, Token: "rkv_t"})
	defer c.close()
	for i := range 50 {
		status, _, err := c.do(ep, putRequest("/v1/kv/k", uint64(i+1), []byte("v")), soon())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	assert.Zero(t, bad.Load(), "a request without TLS or the token")
	assert.Equal(t, int64(1), conns.Load(), "one kept-alive connection")

	stranger := newHTTPConn(context.Background(), Auth{TLS: &tls.Config{RootCAs: x509.NewCertPool()}, Token: "rkv_t"})
	defer stranger.close()
	_, _, err := stranger.do(ep, getRequest("/v1/kv/k"), soon())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
}

func TestParseFlagsAuth(t *testing.T) {
	_, err := parseFlags([]string{"--endpoints", "127.0.0.1:1", "--token", "rkv_t"}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a token needs HTTPS")
	_, err = parseFlags([]string{"--endpoints", "127.0.0.1:1", "--cacert", "/nonexistent/ca.pem"}, io.Discard)
	assert.ErrorContains(t, err, "CA certificate")
	o, err := parseFlags([]string{"--endpoints", "127.0.0.1:1"}, io.Discard)
	require.NoError(t, err)
	assert.Nil(t, o.Auth.TLS, "plaintext without a CA")
}
