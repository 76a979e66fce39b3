package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// Tests of defect (5): a log that lost records that were synced must be
// refused, never repaired as if the loss were a torn last write.

const (
	lostSnapAt = 100
	lostLast   = 300
	lostLag    = 5 // the commit index trails the log by this much
)

// lostFixture writes entries 1..lostLast in batches of 10 over small
// segments, the commit index lostLag behind the log, with a snapshot at
// lostSnapAt taken when the log reached 200 (so hardstate.json says commit
// 195 then). clean: Close (hardstate.json says commit 295, clean-stop.json
// says last index 300); otherwise abandoned like a killed process.
func lostFixture(t *testing.T, clean bool) (dir string, segs []string) {
	t.Helper()
	dir = t.TempDir()
	s, _ := openT(t, dir, segBytes(2000))
	for i := uint64(1); i <= lostLast; i += 10 {
		require.NoError(t, s.Save(raft.HardState{Term: testTerm(i + 9), Vote: 1, Commit: i + 9 - lostLag}, testEntries(i, i+9)))
		if i+9 == 200 {
			require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: lostSnapAt, Term: testTerm(lostSnapAt), Data: snapData(lostSnapAt)}))
		}
	}
	if clean {
		require.NoError(t, s.Close())
	} else {
		crash(s)
	}
	segs = filesMatching(t, dir, "wal-*.jsonl")
	require.GreaterOrEqual(t, len(segs), 4)
	return dir, segs
}

// segLines lists the lines of a segment with the entry each holds (0: none).
func segLines(t *testing.T, path string) []lineInfo {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var ls []lineInfo
	for off := 0; off < len(b); {
		end := off + bytes.IndexByte(b[off:], '\n') + 1
		r, err := decodeRecord(b[off : end-1])
		require.NoError(t, err)
		li := lineInfo{start: off, end: end}
		if r.kind == kindEntry {
			li.entry = r.entry.Index
		}
		ls = append(ls, li)
		off = end
	}
	return ls
}

func truncateAt(t *testing.T, path string, frac float64) {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, int64(float64(st.Size())*frac)))
}

// TestLostRecordsRefused damages a fixture in the ways an outside fault
// campaign found accepted silently, and a few neighbours, and checks that a
// writable Open refuses each with a *CorruptError naming the file, changes
// nothing on disk (nothing that cannot be proved torn is cut), and that a
// read-only Open reports the same error.
func TestLostRecordsRefused(t *testing.T) {
	cases := []struct {
		name  string
		clean bool
		// damage changes the fixture and returns the file the error must name.
		damage func(t *testing.T, dir string, segs []string) string
		want   []string // in the error message
	}{
		{
			name: "last segment truncated at 50%", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-1])
				truncateAt(t, p, 0.5)
				return p
			},
			want: []string{"log ends at index", "records that were synced are missing", "README"},
		},
		{
			name: "last segment truncated at 90%", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-1])
				truncateAt(t, p, 0.9)
				return p
			},
			want: []string{"log ends at index", "records that were synced are missing"},
		},
		{
			name: "last segment: whole records cut, commit in hardstate.json", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				// At a line boundary: no torn record at all, only missing
				// ones; and no clean-stop marker to tell: hardstate.json does.
				require.NoError(t, os.Remove(filepath.Join(dir, cleanStopFile)))
				p := filepath.Join(dir, segs[len(segs)-1])
				for _, li := range segLines(t, p) {
					if li.entry == lostLast-lostLag-1 {
						require.NoError(t, os.Truncate(p, int64(li.start)))
						return p
					}
				}
				t.Fatal("entry not in the last segment")
				return ""
			},
			want: []string{"log ends at index 293", "commit index recorded in hardstate.json is 295"},
		},
		{
			name: "last segment: whole records above the commit cut after a clean stop", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-1])
				for _, li := range segLines(t, p) {
					if li.entry == lostLast-1 {
						require.NoError(t, os.Truncate(p, int64(li.start)))
						return p
					}
				}
				t.Fatal("entry not in the last segment")
				return ""
			},
			want: []string{"log ends at index 298", "clean-stop.json says the log ended at index 300"},
		},
		{
			name: "zero-filled tail", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-1])
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				clear(b[len(b)*6/10:])
				require.NoError(t, os.WriteFile(p, b, 0o644))
				return p
			},
			want: []string{"log ends at index", "records that were synced are missing"},
		},
		{
			name: "non-last segment truncated mid-record", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-2])
				truncateAt(t, p, 0.5)
				return p
			},
		},
		{
			name: "non-last segment ends early at a record boundary", clean: false,
			damage: func(t *testing.T, dir string, segs []string) string {
				p := filepath.Join(dir, segs[len(segs)-2])
				ls := segLines(t, p)
				last := ls[len(ls)-1]
				for _, li := range ls {
					if li.entry != 0 {
						last = li
					}
				}
				require.NoError(t, os.Truncate(p, int64(last.start)))
				return p
			},
			want: []string{"the log ends at index", "was created to go on at index", "are missing"},
		},
		{
			name: "middle segment deleted", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				require.NoError(t, os.Remove(filepath.Join(dir, segs[len(segs)/2])))
				return filepath.Join(dir, segs[len(segs)/2+1])
			},
			want: []string{"missing"},
		},
		{
			name: "every segment deleted, snapshot and hardstate.json remain", clean: true,
			damage: func(t *testing.T, dir string, segs []string) string {
				for _, name := range segs {
					require.NoError(t, os.Remove(filepath.Join(dir, name)))
				}
				return filepath.Join(dir, "wal-*.jsonl")
			},
			want: []string{"no log segment", snapshotName(lostSnapAt), hardStateFile},
		},
		{
			name: "every segment deleted after a kill", clean: false,
			damage: func(t *testing.T, dir string, segs []string) string {
				for _, name := range segs {
					require.NoError(t, os.Remove(filepath.Join(dir, name)))
				}
				return filepath.Join(dir, "wal-*.jsonl")
			},
			want: []string{"no log segment", hardStateFile},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, segs := lostFixture(t, tc.clean)
			file := tc.damage(t, dir, segs)
			before := dirState(t, dir)

			_, rec, err := openE(t, dir)
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), "got %v, %+v", err, rec)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Equal(t, file, ce.File)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Nil(t, rec)
			delete(before, lockFileName)
			after := dirState(t, dir)
			delete(after, lockFileName)
			assert.Equal(t, before, after, "a refused open must not repair anything")

			_, _, roErr := openE(t, dir, readOnly)
			assert.Equal(t, err.Error(), roErr.Error())
		})
	}
}

// TestLostRecordsReadOnlyReturnsWhatItRead: inspect prints what is left
// of a folder that lost records, along with the error.
func TestLostRecordsReadOnlyReturnsWhatItRead(t *testing.T) {
	dir, segs := lostFixture(t, true)
	truncateAt(t, filepath.Join(dir, segs[len(segs)-1]), 0.5)
	s, rec, err := openE(t, dir, readOnly)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Nil(t, s)
	require.NotNil(t, rec)
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, uint64(lostSnapAt), rec.Snapshot.Index)
	require.NotEmpty(t, rec.Entries)
	assertEntries(t, lostSnapAt+1, rec.Entries[len(rec.Entries)-1].Index, rec.Entries)
	assert.False(t, rec.TornTail, "the damage is reported in the error, not as a repair")
	assert.Empty(t, rec.Repairs)
	assert.Equal(t, uint64(lostLast-lostLag), rec.HardState.Commit)
}

// TestTornTailAboveCommitStillRepaired: the loss of a killed node's last
// records above every commit index it recorded is what a torn write looks
// like, and is cut as before.
func TestTornTailAboveCommitStillRepaired(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage changes the last segment and returns the last entry left whole.
		damage func(t *testing.T, path string) uint64
	}{
		{"partial last entry", func(t *testing.T, path string) uint64 {
			// Entry 300's line and the hard state after it (commit 295)
			// are torn; the log's previous hard state says commit 285.
			for _, li := range segLines(t, path) {
				if li.entry == lostLast {
					require.NoError(t, os.Truncate(path, int64(li.start+(li.end-li.start)/2)))
				}
			}
			return lostLast - 1
		}},
		{"zeros after the last record", func(t *testing.T, path string) uint64 {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(make([]byte, 4096))
			require.NoError(t, err)
			require.NoError(t, f.Close())
			return lostLast
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, segs := lostFixture(t, false)
			last := tc.damage(t, filepath.Join(dir, segs[len(segs)-1]))
			s, rec := openT(t, dir)
			assert.True(t, rec.TornTail)
			assertEntries(t, lostSnapAt+1, last, rec.Entries)
			require.NoError(t, s.Close())
			_, rec = openT(t, dir)
			assert.False(t, rec.TornTail, "cut for good")
			assertEntries(t, lostSnapAt+1, last, rec.Entries)
		})
	}
}

// TestSegmentEndsEarlyBeforeSegmentWithoutEntries: the last segment holds
// only hard-state records (a vote after a rotation); the segment before it
// lost its last entries, above any recorded commit index. Only the name of
// the last segment, which says where the log went on, shows the loss.
func TestSegmentEndsEarlyBeforeSegmentWithoutEntries(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir, segBytes(1500))
	for i := uint64(1); i <= 100; i += 10 {
		require.NoError(t, s.Save(raft.HardState{Term: 1, Vote: 1, Commit: min(i+9, 50)}, testEntries(i, i+9)))
	}
	n := len(filesMatching(t, dir, "wal-*.jsonl"))
	for term := uint64(2); len(filesMatching(t, dir, "wal-*.jsonl")) == n; term++ {
		require.NoError(t, s.Save(raft.HardState{Term: term, Vote: 2, Commit: 50}, nil))
	}
	crash(s)
	segs := filesMatching(t, dir, "wal-*.jsonl")
	assert.Equal(t, segmentName(uint64(len(segs)), 101), segs[len(segs)-1])
	prev := filepath.Join(dir, segs[len(segs)-2])
	for _, li := range segLines(t, prev) {
		if li.entry == 96 {
			require.NoError(t, os.Truncate(prev, int64(li.start)))
		}
	}
	_, _, err := openE(t, dir)
	var ce *CorruptError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.Equal(t, prev, ce.File)
	assert.Contains(t, err.Error(), "entries 96..100 are missing")
}

// TestHardStateFileNewerThanLog: the log lost its last record, a vote in a
// new term (no entry after it, so no torn record and no index is short),
// after a clean stop wrote that vote to hardstate.json.
func TestHardStateFileNewerThanLog(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 1, Vote: 0, Commit: 5}, testEntries(1, 10)))
	require.NoError(t, s.Save(raft.HardState{Term: 7, Vote: 2, Commit: 5}, nil))
	require.NoError(t, s.Close())
	seg := filepath.Join(dir, filesMatching(t, dir, "wal-*.jsonl")[0])
	ls := segLines(t, seg)
	require.NoError(t, os.Truncate(seg, int64(ls[len(ls)-1].start)))
	_, _, err := openE(t, dir)
	var ce *CorruptError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.Equal(t, seg, ce.File)
	assert.Contains(t, err.Error(), "hardstate.json has term 7 vote 2")
}

// TestWALDeletedSnapshotAtCommit: the log is gone, the snapshot and a
// hardstate.json whose commit equals the snapshot index remain: nothing is
// short by index, but the term and vote in the log are lost.
func TestWALDeletedSnapshotAtCommit(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 2, Vote: 1, Commit: 50}, testEntries(1, 50)))
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 50, Term: testTerm(50), Data: snapData(50)}))
	require.NoError(t, s.Save(raft.HardState{Term: 3, Vote: 2, Commit: 50}, nil))
	crash(s)
	for _, name := range filesMatching(t, dir, "wal-*.jsonl") {
		require.NoError(t, os.Remove(filepath.Join(dir, name)))
	}
	_, _, err := openE(t, dir)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "no log segment")
}

// TestSaveRefusesCommitBeyondLog: the commit index written must never pass
// the durable end of the log, or recovery would refuse what Save wrote.
func TestSaveRefusesCommitBeyondLog(t *testing.T) {
	s, _ := openT(t, t.TempDir())
	require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: 3}, testEntries(1, 3)))
	assert.Error(t, s.Save(raft.HardState{Term: 1, Commit: 5}, testEntries(4, 4)))
	assert.Error(t, s.Save(raft.HardState{Term: 1, Commit: 4}, nil))
	assert.NoError(t, s.Err(), "an argument error does not poison")
	require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: 4}, testEntries(4, 4)))
	require.NoError(t, s.Close())
}
