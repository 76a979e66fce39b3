package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/certs"
)

// TestCLITokens runs `raftkv certs token` and then the CLI against a real
// one-node cluster with HTTPS and tokens: no token is 401 (exit 2, with a
// hint), a read-only token cannot put (403), a read-write one can, from
// flags or from RAFTKV_* variables, a token from @FILE, a token without
// --cacert is refused before anything is sent, and a client trusting
// another CA cannot connect (exit 3).
func TestCLITokens(t *testing.T) {
	hostfile, httpAddr := oneNodeHostfile(t)
	dir := filepath.Join(filepath.Dir(hostfile), "certs")
	nodeTLS(t, hostfile) // the CA, r0's certificate and an admin token
	for _, r := range []string{"read-only", "read-write"} {
		out := run(t, nil, "certs", "token", r, "--role", r, "--dir", dir)
		require.Equal(t, 0, out.code)
		assert.Contains(t, out.stdout, certs.TokenPath(dir, r))
	}
	again := run(t, nil, "certs", "token", "read-only", "--role", "read-only", "--dir", dir)
	assert.Equal(t, 2, again.code)
	assert.Contains(t, again.stderr, "already has a token")
	assert.Equal(t, 2, run(t, nil, "certs", "token", "x", "--role", "root", "--dir", dir).code)

	data := t.TempDir()
	cmd, _ := startNode(t, hostfile, data)
	waitServing(t, newNodeHTTP(t, hostfile, httpAddr, true), filepath.Join(data, "r0", "LOCK"), cmd.Process.Pid)

	ep := []string{"--endpoints", httpAddr, "--timeout", "5s"}
	ca := []string{"--cacert", certs.CAPath(dir)}
	args := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tok := func(name string) string {
		b, err := os.ReadFile(certs.TokenPath(dir, name))
		require.NoError(t, err)
		return string(b[:len(b)-1])
	}

	none := run(t, nil, args([]string{"put", "k", "v"}, ep, ca)...)
	assert.Equal(t, 2, none.code)
	assert.Contains(t, none.stderr, "needs a token")
	assert.Contains(t, none.stderr, "--token")

	ro := run(t, nil, args([]string{"put", "k", "v"}, ep, ca, []string{"--token", tok("read-only")})...)
	assert.Equal(t, 2, ro.code)
	assert.Contains(t, ro.stderr, "needs read-write")

	rw := run(t, nil, args([]string{"put", "k", "v"}, ep, ca, []string{"--token", "@" + certs.TokenPath(dir, "read-write")})...)
	require.Equal(t, 0, rw.code, rw.stderr)
	assert.Contains(t, rw.stdout, "OK")

	env := []string{"RAFTKV_CACERT=" + certs.CAPath(dir), "RAFTKV_TOKEN=" + tok("read-only")}
	get := run(t, env, args([]string{"get", "k"}, ep)...)
	require.Equal(t, 0, get.code, get.stderr)
	assert.Equal(t, "v\n", get.stdout)
	st := run(t, env, args([]string{"status"}, ep)...)
	assert.Equal(t, 0, st.code, st.stderr)
	assert.Contains(t, st.stdout, "leader")

	noCA := run(t, nil, args([]string{"get", "k"}, ep, []string{"--token", tok("read-only")})...)
	assert.Equal(t, 2, noCA.code)
	assert.Contains(t, noCA.stderr, "a token needs HTTPS")

	other := filepath.Join(t.TempDir(), "other")
	require.NoError(t, certs.Init(other, certs.Options{}, false))
	foreign := run(t, nil, args([]string{"get", "k"}, ep, []string{"--cacert", certs.CAPath(other), "--token", tok("read-only"), "--timeout", "2s"})...)
	assert.Equal(t, 3, foreign.code)
	assert.Contains(t, foreign.stderr, "certificate signed by unknown authority")
}
