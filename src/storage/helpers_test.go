package storage

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/raft"
)

// testTerm is the term of the entry at index i in generated logs.
func testTerm(i uint64) uint64 { return 1 + i/100 }

// testEntry is the entry at index i: its content is a function of i, so a
// reader can tell a real entry from an invented or misplaced one. It mixes
// JSON commands, binary data, nil data and no-ops.
func testEntry(i uint64) raft.Entry {
	e := raft.Entry{Term: testTerm(i), Index: i}
	switch i % 5 {
	case 0:
		e.Type = raft.EntryNoop
	case 1, 2:
		e.Data = fmt.Appendf(nil, `{"op":"put","key":"k%d","value":"v%d"}`, i%17, i)
	case 3:
		e.Data = []byte{byte(i), 0, '\n', byte(i >> 8), 0xff, '"'}
	case 4:
		e.Data = fmt.Appendf(nil, `{"op":"append","key":"k%d","value":"x"}`, i%3)
	}
	return e
}

func testEntries(first, last uint64) []raft.Entry {
	var es []raft.Entry
	for i := first; i <= last; i++ {
		es = append(es, testEntry(i))
	}
	return es
}

func openT(t testing.TB, dir string, mutate ...func(*Options)) (*Storage, *Recovered) {
	t.Helper()
	s, rec, err := openE(t, dir, mutate...)
	require.NoError(t, err)
	return s, rec
}

func openE(t testing.TB, dir string, mutate ...func(*Options)) (*Storage, *Recovered, error) {
	opts := Options{Dir: dir, Logger: zaptest.NewLogger(t)}
	for _, m := range mutate {
		m(&opts)
	}
	return Open(opts)
}

func segBytes(n int64) func(*Options) { return func(o *Options) { o.SegmentBytes = n } }

func readOnly(o *Options) { o.ReadOnly = true }

// dirState maps each file name in dir to a hash of its content.
func dirState(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	m := map[string][32]byte{}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		m[de.Name()] = sha256.Sum256(b)
	}
	return m
}

func filesMatching(t testing.TB, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	require.NoError(t, err)
	for k := range m {
		m[k] = filepath.Base(m[k])
	}
	sort.Strings(m)
	return m
}

// copyDir copies the flat folder src into a new temp folder.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	des, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, de.Name()), b, 0o644))
	}
	return dst
}

func snapData(i uint64) []byte {
	return fmt.Appendf(nil, `{"Contents":{"last":"%d"},"Sessions":{}}`, i)
}

// snapDelta writes the delta that turns snapData of the chain's end into snapData(i).
func snapDelta(i uint64) func(*DeltaWriter) error {
	return func(w *DeltaWriter) error {
		if err := w.Set("Contents", []byte(`"last"`), fmt.Appendf(nil, `"%d"`, i)); err != nil {
			return err
		}
		return w.Replace("Sessions", []byte(`{}`))
	}
}

// crash abandons s as a killed process would: its files are closed (which
// releases the folder's lock, as the kernel does for a dead process) and
// nothing more is written: no hard-state file, no clean-stop marker.
func crash(s *Storage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFile()
	s.unlock()
	s.closed = true
}

// recState is the recovered state machine, the deltas written into it.
func recState(t testing.TB, rec *Recovered) []byte {
	t.Helper()
	data, err := rec.Deltas.Materialize(rec.Snapshot.Data)
	require.NoError(t, err)
	return data
}
