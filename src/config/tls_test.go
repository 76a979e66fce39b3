package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/certs"
)

// makeCerts writes a CA and r0's certificate into a new folder, plus a
// second CA's r0 certificate under other/.
func makeCerts(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	require.NoError(t, certs.Init(dir, certs.Options{}, false))
	require.NoError(t, certs.Node(dir, "r0", []string{"127.0.0.1"}, certs.Options{}, false))
	other := filepath.Join(dir, "other")
	require.NoError(t, certs.Init(other, certs.Options{}, false))
	require.NoError(t, certs.Node(other, "r0", nil, certs.Options{}, false))
	_, err := certs.AddToken(dir, "admin", api.RoleAdmin, false)
	require.NoError(t, err)
	return dir
}

func TestLoadNodePeerTLS(t *testing.T) {
	dir := makeCerts(t)
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	ca := certs.CAPath(dir)
	cert, key := certs.NodePaths(dir, "r0")
	otherCert, otherKey := certs.NodePaths(filepath.Join(dir, "other"), "r0")
	garbage := writeFile(t, dir, "garbage.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	notPEM := writeFile(t, dir, "notpem.pem", "hello")
	missing := filepath.Join(dir, "missing.pem")
	flags := func(ca, cert, key string) []string { return []string{"--cacert", ca, "--cert", cert, "--key", key} }
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		insecure bool
		wantErr  []string // every one must appear; nil: no error
	}{
		{name: "flags", args: flags(ca, cert, key)},
		{name: "variables", env: map[string]string{EnvCACert: ca, EnvCert: cert, EnvKey: key}},
		{name: "flags override variables", args: flags(ca, cert, key),
			env: map[string]string{EnvCACert: missing, EnvCert: missing, EnvKey: missing}},
		{name: "--insecure", args: []string{"--insecure"}, env: map[string]string{EnvInsecure: ""}, insecure: true},
		{name: "RAFT_INSECURE", env: map[string]string{EnvInsecure: "true"}, insecure: true},
		{name: "nothing", env: map[string]string{EnvInsecure: ""},
			wantErr: []string{"no TLS material", "raftkv certs init", "--insecure"}},
		{name: "RAFT_INSECURE=false is nothing", env: map[string]string{EnvInsecure: "false"}, wantErr: []string{"no TLS material"}},
		{name: "RAFT_INSECURE not a bool", env: map[string]string{EnvInsecure: "maybe"}, wantErr: []string{`RAFT_INSECURE "maybe" is not true or false`}},
		{name: "insecure and material", args: append(flags(ca, cert, key), "--insecure"), wantErr: []string{"choose one"}},
		{name: "a certificate without its key", args: []string{"--cacert", ca, "--cert", cert},
			wantErr: []string{"incomplete", "missing --key"}},
		{name: "key from a variable, the rest from flags", args: []string{"--cacert", ca, "--cert", cert},
			env: map[string]string{EnvKey: key}},
		{name: "unreadable files, each named", args: flags(missing, cert, missing),
			wantErr: []string{"CA certificate: open " + missing, "key: open " + missing}},
		{name: "a CA that does not parse", args: flags(garbage, cert, key), wantErr: []string{"CA certificate " + garbage}},
		{name: "a CA file without PEM", args: flags(notPEM, cert, key), wantErr: []string{"no PEM CERTIFICATE"}},
		{name: "a key that is not the certificate's", args: flags(ca, cert, otherKey), wantErr: []string{"with key " + otherKey}},
		{name: "a certificate of another CA", args: flags(ca, otherCert, otherKey), wantErr: []string{"does not verify against CA"}},
		{name: "every problem at once", args: []string{"--cacert", garbage, "--cert", missing, "--key", key, "--heartbeat", "x"},
			wantErr: []string{"CA certificate " + garbage, "certificate: open " + missing, "--heartbeat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{EnvInsecure: "", EnvTokens: certs.TokensPath(dir)} // not env's default
			if tt.insecure {
				e[EnvTokens] = ""
			}
			for k, v := range tt.env {
				e[k] = v
			}
			n, err := LoadNode(append([]string{"--hostfile", hf, "--name", "r0"}, tt.args...), env(e), hostnameIs("r0"))
			if tt.wantErr != nil {
				require.Error(t, err)
				t.Logf("error:\n%v", err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.insecure, n.Insecure)
			if tt.insecure {
				assert.Nil(t, n.PeerTLS)
			} else {
				require.NotNil(t, n.PeerTLS)
				assert.Len(t, n.PeerTLS.Certificates, 1)
				assert.NotNil(t, n.PeerTLS.RootCAs)
			}
		})
	}
}

func TestLoadNodeListen(t *testing.T) {
	dir := t.TempDir()
	named := writeFile(t, dir, "named.json", `{"raft": [{"name": "r0", "host": "r0", "raft_port": 7000, "http_port": 8000}]}`)
	local := writeFile(t, dir, "local.json", `{"raft": [{"name": "r0", "host": "localhost", "raft_port": 7000, "http_port": 8000}]}`)
	ip := writeFile(t, dir, "ip.json", goodHostfile)
	n := 0
	withListen := func(l string) string {
		n++
		return writeFile(t, dir, fmt.Sprintf("listen%d.json", n),
			fmt.Sprintf(`{"raft": [{"name": "r0", "host": "r0.example", "raft_port": 7000, "http_port": 8000, "listen": %q}]}`, l))
	}
	tests := []struct {
		name     string
		hostfile string
		args     []string
		want     string // RaftListen
		wantErr  string
	}{
		{"an IP in the hostfile is bound", ip, nil, "127.0.0.1:7000", ""},
		{"localhost is bound", local, nil, "localhost:7000", ""},
		{"a name (a container) means every interface", named, nil, ":7000", ""},
		{"--listen an IP", named, []string{"--listen", "10.1.2.3"}, "10.1.2.3:7000", ""},
		{"--listen 0.0.0.0 is every interface", ip, []string{"--listen", "0.0.0.0"}, ":7000", ""},
		{"--listen ::", ip, []string{"--listen", "::"}, ":7000", ""},
		{"--listen an IPv6 address", ip, []string{"--listen", "::1"}, "[::1]:7000", ""},
		{"--listen with a port", ip, []string{"--listen", "127.0.0.1:9"}, "", "without a port"},
		{"--listen empty", ip, []string{"--listen", ""}, "", `--listen "": empty`},
		{"the hostfile's listen", withListen("10.9.8.7"), nil, "10.9.8.7:7000", ""},
		{"the hostfile's listen 0.0.0.0 is every interface", withListen("0.0.0.0"), nil, ":7000", ""},
		{"--listen overrides the hostfile's", withListen("10.9.8.7"), []string{"--listen", "127.0.0.2"}, "127.0.0.2:7000", ""},
		{"the hostfile's listen with a port", withListen("10.9.8.7:7000"), nil, "", `raft[0].listen "10.9.8.7:7000": want a host or IP without a port`},
		{"the hostfile's listen empty", withListen(""), nil, "", `raft[0].listen "" is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := LoadNode(append([]string{"--hostfile", tt.hostfile, "--name", "r0"}, tt.args...), env(nil), nil)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n.RaftListen())
			_, port, err := net.SplitHostPort(n.HTTPListen())
			require.NoError(t, err)
			assert.Equal(t, "8000", port)
		})
	}
}

func TestCertsFilesAreNotOverwritten(t *testing.T) {
	dir := makeCerts(t)
	before, err := os.ReadFile(certs.CAPath(dir))
	require.NoError(t, err)
	assert.ErrorContains(t, certs.Init(dir, certs.Options{}, false), "exists (use --force")
	after, _ := os.ReadFile(certs.CAPath(dir))
	assert.Equal(t, before, after)
}
