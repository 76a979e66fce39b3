package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInitAndNodeWriteVerifiableFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	require.NoError(t, Init(dir, Options{}, false))
	require.NoError(t, Node(dir, "r0", []string{"r0", "db.example", "10.0.0.1", ""}, Options{Days: 10}, false))

	ca, err := LoadCA(dir)
	require.NoError(t, err)
	assert.True(t, ca.Cert.IsCA)
	assert.WithinDuration(t, time.Now().Add(DefaultCADays*24*time.Hour), ca.Cert.NotAfter, time.Hour)

	c, k := NodePaths(dir, "r0")
	cfg, err := LoadPeer(CAPath(dir), c, k)
	require.NoError(t, err)
	leaf := cfg.Certificates[0].Leaf
	assert.Equal(t, []string{"r0", "db.example"}, leaf.DNSNames, "the name once, then the other host names")
	require.Len(t, leaf.IPAddresses, 1)
	assert.Equal(t, "10.0.0.1", leaf.IPAddresses[0].String())
	assert.ElementsMatch(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	assert.WithinDuration(t, time.Now().Add(10*24*time.Hour), leaf.NotAfter, time.Hour)
	for _, p := range []string{k, filepath.Join(dir, CAKeyFile)} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
	}
}

func TestNothingIsOverwrittenWithoutForce(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Init(dir, Options{}, false))
	require.NoError(t, Node(dir, "r0", nil, Options{}, false))
	c, _ := NodePaths(dir, "r0")
	before, err := os.ReadFile(c)
	require.NoError(t, err)
	assert.ErrorContains(t, Node(dir, "r0", nil, Options{}, false), "exists (use --force")
	after, _ := os.ReadFile(c)
	assert.Equal(t, before, after)
	require.NoError(t, Node(dir, "r0", nil, Options{}, true))
	after, _ = os.ReadFile(c)
	assert.NotEqual(t, before, after)
}

func TestLoadPeerRefusesExpiredAndForeign(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Init(dir, Options{}, false))
	require.NoError(t, Node(dir, "old", nil, Options{NotBefore: time.Now().Add(-72 * time.Hour), Days: 1}, false))
	c, k := NodePaths(dir, "old")
	_, err := LoadPeer(CAPath(dir), c, k)
	assert.ErrorContains(t, err, "expired")

	other := filepath.Join(dir, "other")
	require.NoError(t, Init(other, Options{}, false))
	require.NoError(t, Node(other, "r0", nil, Options{}, false))
	c, k = NodePaths(other, "r0")
	_, err = LoadPeer(CAPath(dir), c, k)
	assert.ErrorContains(t, err, "does not verify against CA")

	assert.ErrorContains(t, Node(t.TempDir(), "r0", nil, Options{}, false), "raftkv certs init")
	_, err = NewCA(Options{Days: -1})
	assert.Error(t, err)
}
