package backup

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/kv"
	"raftkv/src/storage"
)

// state returns a real state machine's snapshot JSON with n keys.
func state(t *testing.T, n int) []byte {
	st := kv.New(kv.Options{})
	for i := range n {
		st.Apply(uint64(i+1), kv.EncodeCommand(kv.Command{Op: kv.OpPut, Key: string(rune('a' + i)), Value: "v"}))
	}
	b, err := st.Snapshot()
	require.NoError(t, err)
	return b
}

func writeBackup(t *testing.T, data []byte, index, term uint64, keys int) (string, Header) {
	h := NewHash(index, term, keys)
	h.Write(data)
	hd := Header{Index: index, Term: term, Keys: keys, Size: int64(len(data)), SHA256: HexSum(h), Source: "r0"}
	path := filepath.Join(t.TempDir(), "b.snap")
	require.NoError(t, Write(path, hd, bytes.NewReader(data)))
	return path, hd
}

func TestRoundTripAndDamage(t *testing.T) {
	data := state(t, 3)
	path, hd := writeBackup(t, data, 3, 2, 3)
	f, err := Open(path)
	require.NoError(t, err)
	got, err := f.ReadState(nil)
	f.Close()
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.Equal(t, hd.SHA256, f.SHA256)
	require.NoError(t, CheckState(f.Header, got))
	assert.Error(t, Write(path, hd, bytes.NewReader(data)), "an existing file was overwritten")

	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	head := bytes.IndexByte(orig, '\n')
	for name, damage := range map[string]func([]byte) []byte{
		"a byte of the state": func(b []byte) []byte { b[head+5] ^= 1; return b },
		"the index":           func(b []byte) []byte { return bytes.Replace(b, []byte(`"index":3`), []byte(`"index":4`), 1) },
		"the key count":       func(b []byte) []byte { return bytes.Replace(b, []byte(`"keys":3`), []byte(`"keys":2`), 1) },
		"truncated":           func(b []byte) []byte { return b[:len(b)-1] },
		"a byte appended":     func(b []byte) []byte { return append(b, ' ') },
		"no header":           func(b []byte) []byte { return b[head+1:] },
		"an unknown field":    func(b []byte) []byte { return bytes.Replace(b, []byte(`{"format"`), []byte(`{"x":1,"format"`), 1) },
		"empty":               func(b []byte) []byte { return nil },
	} {
		p := filepath.Join(t.TempDir(), "d.snap")
		require.NoError(t, os.WriteFile(p, damage(bytes.Clone(orig)), 0o644))
		f, err := Open(p)
		if err == nil {
			_, err = f.ReadState(nil)
			f.Close()
		}
		assert.True(t, errors.Is(err, ErrDamaged), "%s: %v", name, err)
	}
}

func TestSeededFolderRecovers(t *testing.T) {
	data := state(t, 3)
	dir := t.TempDir()
	seed := Seed{Header: Header{Index: 7, Term: 3, Keys: 3}, State: data, Nodes: []string{"r0", "r1", "r2"}}
	var out strings.Builder
	require.NoError(t, Restore(dir, seed, &out))
	assert.Equal(t, 3, strings.Count(out.String(), "seeded"))
	for _, n := range seed.Nodes {
		disk, rec, err := storage.Open(storage.Options{Dir: filepath.Join(dir, n), ReadOnly: true})
		require.NoError(t, err)
		require.NotNil(t, rec.Snapshot)
		assert.Equal(t, uint64(7), rec.Snapshot.Index)
		assert.Equal(t, uint64(3), rec.Snapshot.Term)
		assert.Equal(t, uint64(3), rec.HardState.Term)
		assert.Equal(t, uint64(7), rec.HardState.Commit)
		assert.Empty(t, rec.Entries)
		disk.Close()
	}
	err := Restore(dir, seed, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not empty")
	assert.Error(t, CheckState(Header{Keys: 4}, data), "a key count the state does not have was accepted")
}
