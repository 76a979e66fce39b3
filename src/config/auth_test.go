package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
)

// TestLoadNodeHTTPAuth: a node with TLS needs a tokens file; a plaintext
// one refuses tokens and client certificates; the health routes are open
// unless told.
func TestLoadNodeHTTPAuth(t *testing.T) {
	dir := makeCerts(t)
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	cert, key := certs.NodePaths(dir, "r0")
	tls := []string{"--cacert", certs.CAPath(dir), "--cert", cert, "--key", key}
	tokens := certs.TokensPath(dir)
	bad := writeFile(t, dir, "bad-tokens.json", `{"tokens": [{"name": "x", "role": "root", "sha256": "abc"}]}`)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    HTTPAuth // checked when wantErr is nil (Tokens only for nil-ness)
		wantErr []string
	}{
		{name: "tls and --tokens", args: append(tls, "--tokens", tokens), want: HTTPAuth{TokensFile: tokens}},
		{name: "tls and RAFTKV_TOKENS", args: tls, env: map[string]string{EnvTokens: tokens}, want: HTTPAuth{TokensFile: tokens}},
		{name: "client certificates and closed health", args: append(tls, "--tokens", tokens, "--client-cert-auth", "--open-health=false"),
			want: HTTPAuth{TokensFile: tokens, ClientCertAuth: true, HealthNeedsToken: true}},
		{name: "the same from variables", args: tls, env: map[string]string{EnvTokens: tokens, EnvClientCertAuth: "true", EnvOpenHealth: "false"},
			want: HTTPAuth{TokensFile: tokens, ClientCertAuth: true, HealthNeedsToken: true}},
		{name: "tls without tokens", args: tls, wantErr: []string{"no tokens for the HTTP API", "raftkv certs token"}},
		{name: "a missing tokens file", args: append(tls, "--tokens", filepath.Join(dir, "none.json")), wantErr: []string{"--tokens", "none.json"}},
		{name: "a bad tokens file, every problem", args: append(tls, "--tokens", bad), wantErr: []string{`role "root"`, "not 64 hex digits"}},
		{name: "insecure, open", args: []string{"--insecure"}, want: HTTPAuth{}},
		{name: "insecure with tokens", args: []string{"--insecure", "--tokens", tokens}, wantErr: []string{"in clear"}},
		{name: "insecure with client certificates", args: []string{"--insecure", "--client-cert-auth"}, wantErr: []string{"needs TLS"}},
		{name: "bad boolean", args: []string{"--insecure"}, env: map[string]string{EnvOpenHealth: "sometimes"}, wantErr: []string{`RAFTKV_OPEN_HEALTH "sometimes"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{EnvInsecure: ""}
			for k, v := range tt.env {
				e[k] = v
			}
			n, err := LoadNode(append([]string{"--hostfile", hf, "--name", "r0"}, tt.args...), env(e), hostnameIs("r0"))
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want.TokensFile != "", n.Auth.Tokens != nil, "tokens loaded")
			n.Auth.Tokens = nil
			assert.Equal(t, tt.want, n.Auth)
		})
	}
}

// TestLoadClientNodeAuth: a client node takes --cacert and --token (or
// their variables; a token as @FILE too) and refuses a token without a
// CA, before anything is sent.
func TestLoadClientNodeAuth(t *testing.T) {
	dir := makeCerts(t)
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	tokPath := certs.TokenPath(dir, "admin")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		tls     bool
		token   bool
		wantErr string
	}{
		{name: "plaintext, no token", tls: false},
		{name: "flags", args: []string{"--cacert", certs.CAPath(dir), "--token", "@" + tokPath}, tls: true, token: true},
		{name: "variables", env: map[string]string{EnvCACert: certs.CAPath(dir), EnvToken: "@" + tokPath}, tls: true, token: true},
		{name: "a token without a CA", args: []string{"--token", "rkv_x"}, wantErr: "a token needs HTTPS"},
		{name: "a missing token file", args: []string{"--cacert", certs.CAPath(dir), "--token", "@" + dir + "/none"}, wantErr: "token file"},
		{name: "a certificate without its key", args: []string{"--cacert", certs.CAPath(dir), "--cert", certs.CAPath(dir)}, wantErr: "both --cert and --key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClientNode(append([]string{"--hostfile", hf, "--name", "c0"}, tt.args...), env(tt.env), nil)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.tls, c.TLS != nil)
			assert.Equal(t, tt.token, c.Token != "")
			if tt.token {
				b, err := os.ReadFile(tokPath)
				require.NoError(t, err)
				assert.Equal(t, strings.TrimSpace(string(b)), c.Token, "the token, not the file name")
			}
		})
	}
}
