package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

func TestSaveReopen(t *testing.T) {
	dir := t.TempDir()
	s, rec := openT(t, dir)
	assert.Empty(t, rec.Entries)
	assert.Nil(t, rec.Snapshot)
	assert.False(t, rec.CleanStop)

	hs := raft.HardState{Term: 2, Vote: 1, Commit: 3}
	require.NoError(t, s.Save(hs, testEntries(1, 10)))
	require.NoError(t, s.Save(raft.HardState{}, testEntries(11, 11)))
	require.NoError(t, s.Save(raft.HardState{Term: 2, Vote: 1, Commit: 11}, nil))
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Save(hs, nil), ErrClosed)

	s, rec = openT(t, dir)
	assert.True(t, rec.CleanStop)
	assert.False(t, rec.TornTail)
	assert.Equal(t, raft.HardState{Term: 2, Vote: 1, Commit: 11}, rec.HardState)
	assert.Equal(t, testEntries(1, 11), rec.Entries)
	assert.Equal(t, uint64(11), s.LastIndex())

	// hardstate.json is there for people and matches.
	b, err := os.ReadFile(filepath.Join(dir, hardStateFile))
	require.NoError(t, err)
	assert.JSONEq(t, `{"term":2,"vote":1,"commit":11}`, string(b))

	// A run that is not closed (a kill) is not a clean stop.
	require.NoError(t, s.Save(raft.HardState{}, testEntries(12, 20)))
	_, rec = openT(t, dir, readOnly)
	assert.False(t, rec.CleanStop)
	assert.Equal(t, testEntries(1, 20), rec.Entries)
}

func TestSaveRefusesBadArguments(t *testing.T) {
	s, _ := openT(t, t.TempDir())
	assert.Error(t, s.Save(raft.HardState{}, testEntries(2, 3)), "gap at the start")
	require.NoError(t, s.Save(raft.HardState{}, testEntries(1, 3)))
	assert.Error(t, s.Save(raft.HardState{}, testEntries(5, 6)), "gap")
	es := testEntries(4, 6)
	es[2].Index = 7
	assert.Error(t, s.Save(raft.HardState{}, es), "not contiguous")
	// Argument errors do not poison.
	require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: 3}, testEntries(4, 4)))
	assert.NoError(t, s.Err())
	assert.Error(t, s.Save(raft.HardState{}, testEntries(3, 5)), "overwrites a committed entry")
	require.NoError(t, s.Save(raft.HardState{}, testEntries(4, 5)), "overwriting above the commit is fine")
}

func TestSuffixOverwrite(t *testing.T) {
	for _, seg := range []int64{1 << 20, 300} {
		dir := t.TempDir()
		s, _ := openT(t, dir, segBytes(seg))
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 10)))
		over := []raft.Entry{{Term: 5, Index: 4, Data: []byte(`{"x":1}`)}, {Term: 5, Index: 5}}
		require.NoError(t, s.Save(raft.HardState{Term: 5}, over))
		require.NoError(t, s.Save(raft.HardState{}, []raft.Entry{{Term: 5, Index: 6}}))
		// Overwrite again, at the very first index.
		require.NoError(t, s.Save(raft.HardState{Term: 6}, []raft.Entry{{Term: 6, Index: 1}, {Term: 6, Index: 2}}))
		assert.Equal(t, uint64(2), s.LastIndex())
		require.NoError(t, s.Save(raft.HardState{}, []raft.Entry{{Term: 6, Index: 3}}))

		crash(s)
		_, rec := openT(t, dir, segBytes(seg))
		assert.Equal(t, []raft.Entry{{Term: 6, Index: 1}, {Term: 6, Index: 2}, {Term: 6, Index: 3}}, rec.Entries, "segment bytes %d", seg)
		assert.Equal(t, uint64(6), rec.HardState.Term)
	}
}

func TestSegmentRotation(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, segBytes(2000))
	for i := uint64(1); i <= 200; i += 10 {
		require.NoError(t, s.Save(raft.HardState{Term: testTerm(i), Commit: i - 1}, testEntries(i, i+9)))
	}
	segs := filesMatching(t, dir, "wal-*.jsonl")
	assert.Greater(t, len(segs), 5)
	for _, name := range segs {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Less(t, st.Size(), int64(2000+4000), "%s rotated near the bound", name)
	}
	crash(s)
	_, rec := openT(t, dir, segBytes(2000))
	assert.Equal(t, testEntries(1, 200), rec.Entries)
	assert.Equal(t, raft.HardState{Term: testTerm(191), Commit: 190}, rec.HardState)
}

func TestCompactionAfterSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, segBytes(1500))
	save := func(first, last uint64) {
		require.NoError(t, s.Save(raft.HardState{Term: testTerm(last), Commit: last}, testEntries(first, last)))
	}
	for i := uint64(1); i <= 300; i += 10 {
		save(i, i+9)
	}
	// The segments behind the snapshot before the newest are deleted; the
	// interval between the two stays readable (see Storage.readFloor).
	before := filesMatching(t, dir, "wal-*.jsonl")
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 100, Term: testTerm(100), Peers: []raft.ID{0, 1, 2}, Data: snapData(100)}))
	assert.Subset(t, filesMatching(t, dir, "wal-*.jsonl"), before, "no snapshot before: nothing deleted")
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 150, Term: testTerm(150), Peers: []raft.ID{0, 1, 2}, Data: snapData(150)}))
	after := filesMatching(t, dir, "wal-*.jsonl")
	assert.Less(t, len(after), len(before), "segments wholly below the previous snapshot are deleted")
	got, err := s.ReadEntries(101, 151, 1<<30)
	require.NoError(t, err)
	assert.Equal(t, testEntries(101, 150), got, "the interval since the previous snapshot is still readable")
	_, err = s.ReadEntries(100, 101, 1<<30)
	assert.ErrorIs(t, err, raft.ErrCompacted)

	_, rec := openT(t, dir, readOnly)
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, raft.Snapshot{Index: 150, Term: testTerm(150), Peers: []raft.ID{0, 1, 2}, Data: snapData(150)}, *rec.Snapshot)
	assert.Equal(t, testEntries(151, 300), rec.Entries)
	// The remaining segments still hold entry 151 (no segment holding an entry above 150 was deleted).
	for _, name := range before {
		if !contains(after, name) {
			b, err := os.ReadFile(filepath.Join(dir, name))
			assert.True(t, os.IsNotExist(err), "%s", name)
			_ = b
		}
	}

	// Snapshots beyond the newest two are deleted.
	for _, i := range []uint64{200, 250, 290} {
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: i, Term: testTerm(i), Data: snapData(i)}))
	}
	assert.Equal(t, []string{snapshotName(250), snapshotName(290)}, filesMatching(t, dir, "snapshot-*.json"))
	assert.Empty(t, filesMatching(t, dir, "*.tmp"))
	save(301, 320)

	crash(s)
	_, rec = openT(t, dir)
	assert.Equal(t, uint64(290), rec.Snapshot.Index)
	assert.Equal(t, snapData(290), rec.Snapshot.Data)
	assert.Equal(t, testEntries(291, 320), rec.Entries)

	// jq .StateMachine.Contents works on the file, under its stable name too.
	target, err := os.Readlink(filepath.Join(dir, latestSnapshotLink))
	require.NoError(t, err)
	assert.Equal(t, snapshotName(290), target)
	var f struct {
		StateMachine struct{ Contents map[string]string }
	}
	b, err := os.ReadFile(filepath.Join(dir, latestSnapshotLink))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &f))
	assert.Equal(t, map[string]string{"last": "290"}, f.StateMachine.Contents)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestSnapshotBeyondOrConflictingWithLog(t *testing.T) {
	t.Run("beyond the log", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir)
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 10)))
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 500, Term: 9, Data: snapData(500)}))
		assert.Equal(t, uint64(500), s.LastIndex())
		assert.Error(t, s.Save(raft.HardState{}, testEntries(11, 11)))
		require.NoError(t, s.Save(raft.HardState{Term: 9, Commit: 500}, testEntries(501, 505)))
		crash(s)
		_, rec := openT(t, dir)
		assert.Equal(t, uint64(500), rec.Snapshot.Index)
		assert.Equal(t, testEntries(501, 505), rec.Entries)
	})
	t.Run("conflicting term", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir)
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 10)))
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 8, Term: 77, Data: snapData(8)}))
		assert.Equal(t, uint64(8), s.LastIndex(), "the log after a conflicting snapshot is discarded")
		require.NoError(t, s.Save(raft.HardState{}, []raft.Entry{{Term: 77, Index: 9}}))
		crash(s)
		_, rec := openT(t, dir)
		assert.Equal(t, []raft.Entry{{Term: 77, Index: 9}}, rec.Entries)
	})
	t.Run("matching term keeps the log", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir)
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 10)))
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 8, Term: testTerm(8), Data: snapData(8)}))
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 8, Term: testTerm(8), Data: snapData(8)}), "the same snapshot again is a no-op")
		assert.Error(t, s.SaveSnapshot(raft.Snapshot{Index: 7, Term: testTerm(7), Data: snapData(7)}), "older snapshot")
		crash(s)
		_, rec := openT(t, dir)
		assert.Equal(t, testEntries(9, 10), rec.Entries)
	})
	t.Run("crash between snapshot file and its log record", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir)
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 10)))
		// What SaveSnapshot writes first, alone: an installed snapshot whose term conflicts.
		require.NoError(t, writeAtomic(dir, snapshotName(8), encodeSnapshot(8, 77, nil, snapData(8))))
		crash(s)
		s2, rec := openT(t, dir)
		assert.Empty(t, rec.Entries)
		assert.NotEmpty(t, rec.Repairs)
		require.NoError(t, s2.Save(raft.HardState{}, []raft.Entry{{Term: 77, Index: 9}}))
		crash(s2)
		_, rec = openT(t, dir)
		assert.Equal(t, []raft.Entry{{Term: 77, Index: 9}}, rec.Entries)
	})
}

func TestSnapshotRefusesNonJSON(t *testing.T) {
	s, _ := openT(t, t.TempDir())
	require.NoError(t, s.Save(raft.HardState{}, testEntries(1, 3)))
	for _, d := range [][]byte{nil, []byte("not json"), []byte(`{"a":`), []byte("\"\xff\"")} {
		assert.Error(t, s.SaveSnapshot(raft.Snapshot{Index: 2, Term: 1, Data: d}), "%q", d)
	}
	assert.NoError(t, s.Err(), "argument errors do not poison")
}

func TestReadOnlyChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, segBytes(1000))
	for i := uint64(1); i <= 100; i += 10 {
		require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: i}, testEntries(i, i+9)))
	}
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 50, Term: testTerm(50), Data: snapData(50)}))
	require.NoError(t, s.Close())
	// Leave repair work: a torn tail and a stale temp file.
	segs := filesMatching(t, dir, "wal-*.jsonl")
	f, err := os.OpenFile(filepath.Join(dir, segs[len(segs)-1]), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"crc":"0000`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "snapshot-0000000000000090.json.tmp"), []byte("{"), 0o644))

	before := dirState(t, dir)
	ro, rec := openT(t, dir, readOnly)
	assert.True(t, rec.TornTail)
	assert.True(t, rec.CleanStop)
	assert.Len(t, rec.Repairs, 3, "torn tail, temp file, clean-stop marker: %v", rec.Repairs)
	assert.Equal(t, testEntries(51, 100), rec.Entries)
	assert.ErrorIs(t, ro.Save(raft.HardState{Term: 9}, nil), ErrReadOnly)
	assert.ErrorIs(t, ro.SaveSnapshot(raft.Snapshot{Index: 60, Term: 1, Data: snapData(60)}), ErrReadOnly)
	require.NoError(t, ro.Close())
	assert.Equal(t, before, dirState(t, dir), "read-only open must not change a byte")

	// A writable open repairs.
	_, rec = openT(t, dir)
	assert.True(t, rec.TornTail)
	assert.Equal(t, testEntries(51, 100), rec.Entries)
	_, rec = openT(t, dir, readOnly)
	assert.False(t, rec.TornTail)
	assert.Empty(t, rec.Repairs)

	_, _, err = openE(t, filepath.Join(dir, "missing"), readOnly)
	assert.Error(t, err, "read-only does not create the folder")
}

func TestPoisonedAfterError(t *testing.T) {
	tests := map[string]func(s *Storage){
		"file closed underneath": func(s *Storage) { s.cur.Close() },
		"fsync fails": func(s *Storage) {
			s.sync = func(*os.File) error { return errors.New("injected EIO") }
		},
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openT(t, dir)
			require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 5)))
			breakIt(s)
			err := s.Save(raft.HardState{}, testEntries(6, 6))
			require.Error(t, err)
			s.sync = fdatasync // even once the cause is gone, the storage stays failed
			for _, later := range []error{
				s.Save(raft.HardState{Term: 2}, nil),
				s.Save(raft.HardState{}, testEntries(6, 6)),
				s.SaveSnapshot(raft.Snapshot{Index: 3, Term: 1, Data: snapData(3)}),
				s.Close(),
			} {
				assert.Same(t, err, later, "every later call returns the same error")
			}
			assert.Same(t, err, s.Err())
			_, rec := openT(t, dir)
			assert.False(t, rec.CleanStop)
			assert.Equal(t, testEntries(1, 5), rec.Entries[:5])
		})
	}
	t.Run("snapshot write fails", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openT(t, dir)
		require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 5)))
		// A folder where the snapshot file should go makes the rename fail.
		require.NoError(t, os.Mkdir(filepath.Join(dir, snapshotName(3)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, snapshotName(3), "x"), nil, 0o644))
		err := s.SaveSnapshot(raft.Snapshot{Index: 3, Term: 1, Data: snapData(3)})
		require.Error(t, err)
		assert.Same(t, err, s.Save(raft.HardState{}, testEntries(6, 6)))
	})
}

func TestOpenRefusesDamage(t *testing.T) {
	build := func(t *testing.T) string {
		dir := t.TempDir()
		s, _ := openT(t, dir, segBytes(1000))
		for i := uint64(1); i <= 100; i += 10 {
			require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: i}, testEntries(i, i+9)))
		}
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 30, Term: testTerm(30), Data: snapData(30)}))
		require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 60, Term: testTerm(60), Data: snapData(60)}))
		require.NoError(t, s.Close())
		return dir
	}
	tests := map[string]struct {
		damage func(t *testing.T, dir string) string // returns the file the error must name
	}{
		"newest snapshot does not parse": {func(t *testing.T, dir string) string {
			name := snapshotName(60)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(`{"Index":60,`), 0o644))
			return name
		}},
		"snapshot content flipped": {func(t *testing.T, dir string) string {
			name := snapshotName(60)
			b, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			b[len(b)-8] ^= 1
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			return name
		}},
		"middle segment missing": {func(t *testing.T, dir string) string {
			segs := filesMatching(t, dir, "wal-*.jsonl")
			require.Greater(t, len(segs), 2)
			require.NoError(t, os.Remove(filepath.Join(dir, segs[1])))
			return segs[2]
		}},
		"first segment missing": {func(t *testing.T, dir string) string {
			// The first segment with an entry above the snapshot (the ones
			// before it are kept for followers; losing them loses nothing).
			segs := filesMatching(t, dir, "wal-*.jsonl")
			k := 0
			for k+1 < len(segs) && segFirst(t, segs[k+1]) <= 61 {
				k++
			}
			require.NoError(t, os.Remove(filepath.Join(dir, segs[k])))
			return segs[k+1]
		}},
		"record swapped": {func(t *testing.T, dir string) string {
			segs := filesMatching(t, dir, "wal-*.jsonl")
			name := segs[len(segs)-2]
			b, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			lines := splitLines(b)
			require.Greater(t, len(lines), 4)
			lines[2], lines[3] = lines[3], lines[2]
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), joinLines(lines), 0o644))
			return name
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := build(t)
			file := tt.damage(t, dir)
			before := dirState(t, dir)
			_, _, err := openE(t, dir)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), file)
			assert.Equal(t, before, dirState(t, dir), "a refused open changes nothing")
		})
	}
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := indexNL(b)
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return len(b) - 1
}

func joinLines(lines [][]byte) []byte {
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
	}
	return b
}

func TestSaveHardStateNoSync(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, s.Save(raft.HardState{Term: 2, Vote: 1, Commit: 0}, []raft.Entry{{Term: 2, Index: 1}, {Term: 2, Index: 2}}))
	require.NoError(t, s.SaveHardStateNoSync(raft.HardState{Term: 2, Vote: 1, Commit: 2}))
	assert.Error(t, s.SaveHardStateNoSync(raft.HardState{Term: 3, Vote: 1, Commit: 2}), "a term change must be synced")
	assert.Error(t, s.SaveHardStateNoSync(raft.HardState{Term: 2, Vote: 1, Commit: 3}), "commit beyond the log")
	// Reopened without Close, as after a kill: the commit is there.
	_, rec, err := Open(Options{Dir: dir, ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, raft.HardState{Term: 2, Vote: 1, Commit: 2}, rec.HardState)
}

func TestSaveSnapshotFromStreams(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 40)))

	// An encoder that fails leaves no file and does not fail the Storage.
	boom := errors.New("encoder failed")
	err := s.SaveSnapshotFrom(raft.Snapshot{Index: 20, Term: testTerm(20)}, func(w io.Writer) error {
		if _, err := w.Write([]byte(`{"partial":`)); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.NoError(t, s.Err())
	_, statErr := os.Stat(filepath.Join(dir, snapshotName(20)))
	assert.True(t, os.IsNotExist(statErr), "no snapshot file after a failed encoder")
	assert.Zero(t, s.SnapshotIndex())

	// A state written in many small pieces comes back whole, with its CRC.
	want := snapData(30)
	require.NoError(t, s.SaveSnapshotFrom(raft.Snapshot{Index: 30, Term: testTerm(30), Peers: []raft.ID{0, 1, 2}}, func(w io.Writer) error {
		for _, c := range want {
			if _, err := w.Write([]byte{c}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.Save(raft.HardState{}, testEntries(41, 41)))
	got, err := s.LoadSnapshot()
	require.NoError(t, err)
	assert.Equal(t, raft.Snapshot{Index: 30, Term: testTerm(30), Peers: []raft.ID{0, 1, 2}, Data: want}, *got)

	var file map[string]json.RawMessage
	b, err := os.ReadFile(filepath.Join(dir, latestSnapshotLink))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &file), "the file is one JSON object, for jq")
	assert.JSONEq(t, string(want), string(file["StateMachine"]))

	crash(s)
	_, rec := openT(t, dir)
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, want, rec.Snapshot.Data)
	assert.Equal(t, uint64(41), rec.Entries[len(rec.Entries)-1].Index)
}

// segFirst is the index of the first entry of the segment file name.
func segFirst(t *testing.T, name string) uint64 {
	t.Helper()
	var seq, first uint64
	_, err := fmt.Sscanf(name, "wal-%d-%d.jsonl", &seq, &first)
	require.NoError(t, err, name)
	return first
}
