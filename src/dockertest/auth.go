package dockertest

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/config"
)

// The experiments run with TLS and tokens on, like `make run`: certs/
// holds, besides the CA and the nodes' certificates, a token per role
// (admin.token, read-write.token, read-only.token) and their hashes in
// tokens.json, which the nodes load (--tokens /certs/tokens.json). The
// client containers use read-write.token, and so does the harness (its
// probes are writes).

// Token files in certs/ (certs.TokenPath): the role names.
var tokenRoles = []api.Role{api.RoleAdmin, api.RoleReadWrite, api.RoleReadOnly}

// ensureTokens makes a token per role in dir where its file is missing
// (replacing a hash whose token is lost).
func ensureTokens(dir string) error {
	for _, r := range tokenRoles {
		if fileExists(certs.TokenPath(dir, r.String())) {
			continue
		}
		if _, err := certs.AddToken(dir, r.String(), r, true); err != nil {
			return err
		}
	}
	return nil
}

// Creds are what the harness presents to the nodes' HTTP APIs.
type Creds struct {
	TLS   *tls.Config // trusts repo/certs/ca.pem
	Token string      // repo/certs/read-write.token
}

// LoadCreds makes repo/certs where missing (EnsureCerts) and loads the
// harness's credentials from it: the read-write token.
func LoadCreds(repo string) (Creds, error) { return LoadRoleCreds(repo, api.RoleReadWrite) }

// LoadRoleCreds is LoadCreds with the token of role: the membership
// experiments change members with the admin token.
func LoadRoleCreds(repo string, role api.Role) (Creds, error) {
	if err := EnsureCerts(repo); err != nil {
		return Creds{}, err
	}
	dir := filepath.Join(repo, CertsDir)
	cfg, tok, err := config.ClientAuth(certs.CAPath(dir), "", "", "@"+certs.TokenPath(dir, role.String()))
	return Creds{TLS: cfg, Token: tok}, err
}

// clients holds one HTTP client per node: a node is reached at an address
// (a container's IP) its certificate does not name, so each client checks
// the certificate against the node's name instead.
type clients struct {
	creds   Creds
	timeout time.Duration
	mu      sync.Mutex
	by      map[string]*http.Client
}

func (c *clients) get(name string) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.by[name]; ok {
		return hc
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.creds.TLS != nil {
		tr.TLSClientConfig = c.creds.TLS.Clone()
		tr.TLSClientConfig.ServerName = name
	}
	hc := &http.Client{Timeout: c.timeout, Transport: tr}
	if c.by == nil {
		c.by = map[string]*http.Client{}
	}
	c.by[name] = hc
	return hc
}

func (c *clients) scheme() string {
	if c.creds.TLS != nil {
		return "https"
	}
	return "http"
}

func (c *clients) authorize(req *http.Request) {
	if c.creds.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.creds.Token)
	}
}

// insideArgs are what `raftkv` run inside a container needs to reach its
// node: the mounted CA and read-only token.
var insideArgs = []string{"--cacert", "/certs/" + certs.CAFile, "--token", "@/certs/" + api.RoleReadOnly.String() + ".token"}
