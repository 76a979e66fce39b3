package certs

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

func TestAddTokenAndLookup(t *testing.T) {
	dir := t.TempDir()
	adminPath, err := AddToken(dir, "admin", api.RoleAdmin, false)
	require.NoError(t, err)
	roPath, err := AddToken(dir, "viewer", api.RoleReadOnly, false)
	require.NoError(t, err)
	fi, err := os.Stat(adminPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a token is a secret")

	admin, err := ReadToken("@" + adminPath)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(admin, "rkv_") && len(admin) == 4+64, admin)
	ro, err := ReadToken("@" + roPath)
	require.NoError(t, err)

	file, err := os.ReadFile(TokensPath(dir))
	require.NoError(t, err)
	assert.NotContains(t, string(file), admin, "the tokens file holds hashes only")
	assert.Contains(t, string(file), HashToken(admin))

	tk, err := LoadTokens(TokensPath(dir))
	require.NoError(t, err)
	assert.Equal(t, 2, tk.Len())
	id, ok := tk.Lookup(admin)
	assert.True(t, ok)
	assert.Equal(t, Identity{Name: "admin", Role: api.RoleAdmin}, id)
	id, ok = tk.Lookup(ro)
	assert.True(t, ok)
	assert.Equal(t, api.RoleReadOnly, id.Role)
	_, ok = tk.Lookup(admin + "x")
	assert.False(t, ok)
	_, ok = tk.Lookup("")
	assert.False(t, ok)

	_, err = AddToken(dir, "admin", api.RoleAdmin, false)
	assert.ErrorContains(t, err, "already has a token named")
	_, err = AddToken(dir, "admin", api.RoleReadWrite, true)
	require.NoError(t, err)
	tk, err = LoadTokens(TokensPath(dir))
	require.NoError(t, err)
	assert.Equal(t, 2, tk.Len(), "replaced, not added")
	_, ok = tk.Lookup(admin)
	assert.False(t, ok, "the replaced token no longer works")

	for _, bad := range []string{"", "../x", ".hidden", "a/b"} {
		_, err := AddToken(dir, bad, api.RoleAdmin, false)
		assert.Error(t, err, "name %q", bad)
	}
	_, err = AddToken(dir, "none", api.RoleNone, false)
	assert.Error(t, err)
}

func TestParseTokensRefuses(t *testing.T) {
	h := HashToken("t")
	tests := []struct{ name, doc, want string }{
		{"not JSON", `{`, "unexpected EOF"},
		{"unknown field", `{"tokens": [], "extra": 1}`, "unknown field"},
		{"empty", `{"tokens": []}`, "no tokens"},
		{"no name", `{"tokens": [{"role": "admin", "sha256": "` + h + `"}]}`, "no name"},
		{"bad role", `{"tokens": [{"name": "a", "role": "root", "sha256": "` + h + `"}]}`, `role "root"`},
		{"bad hash", `{"tokens": [{"name": "a", "role": "admin", "sha256": "xyz"}]}`, "not 64 hex digits"},
		{"a token in clear", `{"tokens": [{"name": "a", "role": "admin", "sha256": "rkv_` + h + `"}]}`, "not 64 hex digits"},
		{"repeated name", `{"tokens": [{"name": "a", "role": "admin", "sha256": "` + h + `"}, {"name": "a", "role": "admin", "sha256": "` + HashToken("u") + `"}]}`, "used twice"},
		{"repeated hash", `{"tokens": [{"name": "a", "role": "admin", "sha256": "` + h + `"}, {"name": "b", "role": "read-only", "sha256": "` + h + `"}]}`, "listed twice"},
		{"two values", `{"tokens": [{"name": "a", "role": "admin", "sha256": "` + h + `"}]} {}`, "more than one"},
	}
	for _, tt := range tests {
		_, err := ParseTokens("tokens.json", []byte(tt.doc))
		require.Error(t, err, tt.name)
		assert.Contains(t, err.Error(), tt.want, tt.name)
		assert.Contains(t, err.Error(), "tokens.json", tt.name)
	}
}

func TestReadToken(t *testing.T) {
	tok, err := ReadToken("  rkv_abc ")
	require.NoError(t, err)
	assert.Equal(t, "rkv_abc", tok)
	dir := t.TempDir()
	p := dir + "/t"
	require.NoError(t, os.WriteFile(p, []byte("rkv_x\nignored\n"), 0o600))
	tok, err = ReadToken("@" + p)
	require.NoError(t, err)
	assert.Equal(t, "rkv_x", tok)
	require.NoError(t, os.WriteFile(p, []byte("\n"), 0o600))
	_, err = ReadToken("@" + p)
	assert.ErrorContains(t, err, "empty")
	_, err = ReadToken("@" + dir + "/missing")
	assert.Error(t, err)
}
