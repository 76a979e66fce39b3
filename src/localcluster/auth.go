package localcluster

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"time"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/config"
)

// Token names: a TLS cluster's certificates folder holds one token of each
// role, NAME.token (certs.AddToken).
const (
	TokenAdmin     = "admin"
	TokenReadWrite = "read-write"
	TokenReadOnly  = "read-only"
)

// ClientCert is the name of the client certificate in a cluster's
// certificates folder (signed by its CA, naming no member): clients
// present it, for nodes run with --client-cert-auth.
const ClientCert = "client"

// MakeCredentials writes into dir what a TLS cluster of nodes r0..r(n-1)
// on 127.0.0.1 needs: a CA, each node's certificate, a client certificate
// and a token per role.
// What exists already is kept, so that several clusters (and a test's
// shared HTTP clients) can use one folder.
func MakeCredentials(dir string, nodes int) error {
	if _, err := os.Stat(certs.CAPath(dir)); err != nil {
		if err := certs.Init(dir, certs.Options{}, false); err != nil {
			return err
		}
	}
	names := []string{ClientCert}
	for i := range nodes {
		names = append(names, fmt.Sprintf("r%d", i))
	}
	for _, name := range names {
		if c, _ := certs.NodePaths(dir, name); fileExists(c) {
			continue
		}
		if err := certs.Node(dir, name, []string{"127.0.0.1", "localhost"}, certs.Options{}, false); err != nil {
			return err
		}
	}
	for _, r := range []api.Role{api.RoleAdmin, api.RoleReadWrite, api.RoleReadOnly} {
		if fileExists(certs.TokenPath(dir, r.String())) {
			continue
		}
		if _, err := certs.AddToken(dir, r.String(), r, false); err != nil {
			return err
		}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ClientAuth returns what a client of the cluster in certsDir uses: a TLS
// config trusting its CA and presenting the client certificate, and the
// token named token (TokenAdmin, ...).
func ClientAuth(certsDir, token string) (*tls.Config, string, error) {
	c, k := certs.NodePaths(certsDir, ClientCert)
	return config.ClientAuth(certs.CAPath(certsDir), c, k, "@"+certs.TokenPath(certsDir, token))
}

// HTTPClient is an HTTP client for the nodes of the cluster in certsDir:
// it trusts the CA and sends the token named token on every request.
func HTTPClient(certsDir, token string, timeout time.Duration) (*http.Client, error) {
	cfg, tok, err := ClientAuth(certsDir, token)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Timeout: timeout, Transport: &bearer{token: "Bearer " + tok, next: tr}}, nil
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", b.token)
	return b.next.RoundTrip(r)
}

// Scheme is "https", or "http" for an Insecure cluster.
func (c *Cluster) Scheme() string {
	if c.opts.Insecure {
		return "http"
	}
	return "https"
}

// URL is path on node i's HTTP API.
func (c *Cluster) URL(i int, path string) string {
	return c.Scheme() + "://" + c.Nodes[i].HTTPAddr + path
}

// HTTPClient is an HTTP client for the cluster's nodes with the token
// named token (see the package function); a plain one if Insecure.
func (c *Cluster) HTTPClient(token string, timeout time.Duration) (*http.Client, error) {
	if c.opts.Insecure {
		return &http.Client{Timeout: timeout}, nil
	}
	return HTTPClient(c.CertsDir(), token, timeout)
}

// ClientAuth is what a Go client (client.Config TLS, Token) of the cluster
// uses with the token named token; nil and "" if Insecure.
func (c *Cluster) ClientAuth(token string) (*tls.Config, string, error) {
	if c.opts.Insecure {
		return nil, "", nil
	}
	return ClientAuth(c.CertsDir(), token)
}

// ClientEnv is the environment that gives `raftkv` CLI and client-node
// processes the cluster's CA and the token named token.
func (c *Cluster) ClientEnv(token string) []string {
	if c.opts.Insecure {
		return nil
	}
	cert, key := certs.NodePaths(c.CertsDir(), ClientCert)
	return []string{config.EnvCACert + "=" + certs.CAPath(c.CertsDir()), config.EnvCert + "=" + cert, config.EnvKey + "=" + key,
		config.EnvToken + "=@" + certs.TokenPath(c.CertsDir(), token)}
}
