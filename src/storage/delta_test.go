package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// deltaFixture is a folder with a base at 20 and deltas 20..40 and 40..60
// (keys k00..k09 in the base; the deltas change some, delete some, add some).
func deltaFixture(t *testing.T) (dir string, want map[string]any) {
	t.Helper()
	dir = t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: testTerm(80), Vote: 1, Commit: 70}, testEntries(1, 80)))
	base := `{"Contents":{"k00":"a","k01":"b","k02":"c","k05":"d"},"Meta":{"k00":[1,1,1],"k01":[2,2,1],"k02":[3,3,1],"k05":[4,4,1]},"Sessions":{},"AppliedIndex":20}`
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 20, Term: testTerm(20), Peers: []raft.ID{0, 1, 2}, Data: []byte(base)}))
	require.NoError(t, s.SaveSnapshotDelta(raft.Snapshot{Index: 40, Term: testTerm(40), Peers: []raft.ID{0, 1, 2}}, 20, func(w *DeltaWriter) error {
		return errors.Join(
			w.Set("Contents", []byte(`"k01"`), []byte(`"B"`)), w.Set("Meta", []byte(`"k01"`), []byte(`[2,30,2]`)),
			w.Delete("Contents", []byte(`"k02"`)), w.Delete("Meta", []byte(`"k02"`)),
			w.Set("Contents", []byte(`"k03"`), []byte(`"new"`)), w.Set("Meta", []byte(`"k03"`), []byte(`[35,35,1]`)),
			w.Replace("Sessions", []byte(`{"c":{"Seq":1,"LastUsed":35,"Index":35}}`)), w.Replace("AppliedIndex", []byte(`40`)))
	}))
	require.NoError(t, s.SaveSnapshotDelta(raft.Snapshot{Index: 60, Term: testTerm(60), Peers: []raft.ID{0, 1, 2}}, 40, func(w *DeltaWriter) error {
		return errors.Join(
			w.Set("Contents", []byte(`"k\u00e9"`), []byte(`"x"`)), w.Set("Meta", []byte(`"k\u00e9"`), []byte(`[50,50,1]`)),
			w.Set("Contents", []byte(`"k02"`), []byte(`"again"`)), w.Set("Meta", []byte(`"k02"`), []byte(`[55,55,1]`)),
			w.Delete("Contents", []byte(`"k05"`)), w.Delete("Meta", []byte(`"k05"`)),
			w.Replace("Sessions", []byte(`{}`)), w.Replace("AppliedIndex", []byte(`60`)))
	}))
	base0, baseBytes, deltaBytes := s.SnapshotChain()
	require.Equal(t, uint64(20), base0)
	require.Equal(t, int64(len(base)), baseBytes)
	require.Positive(t, deltaBytes)
	require.Equal(t, uint64(60), s.SnapshotIndex())
	crash(s)
	want = map[string]any{
		"Contents":     map[string]any{"k00": "a", "k01": "B", "k02": "again", "k03": "new", "ké": "x"},
		"Meta":         map[string]any{"k00": []any{1.0, 1.0, 1.0}, "k01": []any{2.0, 30.0, 2.0}, "k02": []any{55.0, 55.0, 1.0}, "k03": []any{35.0, 35.0, 1.0}, "ké": []any{50.0, 50.0, 1.0}},
		"Sessions":     map[string]any{},
		"AppliedIndex": 60.0,
	}
	return dir, want
}

func decodeAny(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s", b)
	return m
}

// TestDeltaChainRecovers: recovery applies the deltas on the base, in
// order, and the materialized state keeps the base's key order (sorted).
func TestDeltaChainRecovers(t *testing.T) {
	dir, want := deltaFixture(t)
	s, rec := openT(t, dir)
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, uint64(60), rec.Snapshot.Index)
	assert.Equal(t, testTerm(60), rec.Snapshot.Term)
	assert.Equal(t, want, decodeAny(t, recState(t, rec)))
	assert.Contains(t, string(recState(t, rec)), `{"Contents":{"k00":"a","k01":"B","k02":"again","k03":"new","k\u00e9":"x"}`)
	assertEntries(t, 61, 80, rec.Entries)

	// LoadSnapshot and WriteSnapshotTo give the same state, the latter as
	// one self-contained snapshot file that loads as a base.
	snap, err := s.LoadSnapshot()
	require.NoError(t, err)
	assert.Equal(t, recState(t, rec), snap.Data)
	var buf bytes.Buffer
	idx, term, err := s.WriteSnapshotTo(&buf)
	require.NoError(t, err)
	assert.Equal(t, []uint64{60, testTerm(60)}, []uint64{idx, term})
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, snapshotName(60)), buf.Bytes(), 0o644))
	o := &Storage{dir: other}
	got, err := o.loadSnapshot(snapshotName(60))
	require.NoError(t, err)
	assert.Equal(t, want, decodeAny(t, got.Data))

	// A merge: a base at the end of the chain replaces the deltas.
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 60, Term: testTerm(60), Peers: []raft.ID{0, 1, 2}, Data: recState(t, rec)}))
	base, _, deltaBytes := s.SnapshotChain()
	assert.Equal(t, uint64(60), base)
	assert.Zero(t, deltaBytes)
	assert.Empty(t, filesMatching(t, dir, "delta-*.jsonl"))
	link, err := os.Readlink(filepath.Join(dir, latestSnapshotLink))
	require.NoError(t, err)
	assert.Equal(t, snapshotName(60), link)
	require.NoError(t, s.Close())
	_, rec = openT(t, dir)
	assert.Equal(t, want, decodeAny(t, recState(t, rec)))
	assertEntries(t, 61, 80, rec.Entries)
}

// TestDeltaRefusals: a delta needs a base and must continue the chain.
func TestDeltaRefusals(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 1, Vote: 1, Commit: 30}, testEntries(1, 30)))
	err := s.SaveSnapshotDelta(raft.Snapshot{Index: 10, Term: testTerm(10)}, 0, snapDelta(10))
	require.ErrorContains(t, err, "does not follow the snapshot chain")
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 10, Term: testTerm(10), Data: snapData(10)}))
	err = s.SaveSnapshotDelta(raft.Snapshot{Index: 20, Term: testTerm(20)}, 5, snapDelta(20))
	require.ErrorContains(t, err, "does not follow the snapshot chain")
	err = s.SaveSnapshotDelta(raft.Snapshot{Index: 20, Term: testTerm(20)}, 10, func(w *DeltaWriter) error {
		return w.Set("Contents", []byte(`k`), []byte(`"v"`))
	})
	require.ErrorContains(t, err, "not one-line JSON")
	require.NoError(t, s.Err(), "bad input does not poison")
	assert.Empty(t, filesMatching(t, dir, "delta-*"))
	require.NoError(t, s.SaveSnapshotDelta(raft.Snapshot{Index: 20, Term: testTerm(20)}, 10, snapDelta(20)))
	require.NoError(t, s.Close())
}

// TestDeltaDamageRefused: any damage of a delta file (a flipped byte, a
// cut, a missing delta in the chain, a missing base) fails Open with a
// CorruptError naming the file, and the offset when there is one. A delta
// is written atomically, so nothing in it is ever a torn write to cut.
func TestDeltaDamageRefused(t *testing.T) {
	fixture, _ := deltaFixture(t)
	deltas := filesMatching(t, fixture, "delta-*.jsonl")
	require.Len(t, deltas, 2)
	refuse := func(t *testing.T, dir, file string, wantOffset bool) {
		t.Helper()
		_, _, err := openE(t, dir)
		var ce *CorruptError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, filepath.Join(dir, file), ce.File)
		if wantOffset {
			assert.GreaterOrEqual(t, ce.Offset, int64(0), "%v", err)
		}
		// Read-only too (inspect).
		_, _, err = openE(t, dir, readOnly)
		require.ErrorIs(t, err, ErrCorrupt)
	}
	for _, name := range deltas {
		b, err := os.ReadFile(filepath.Join(fixture, name))
		require.NoError(t, err)
		for off := 0; off < len(b); off++ {
			dir := copyDir(t, fixture)
			c := bytes.Clone(b)
			c[off] ^= 0x01
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), c, 0o644))
			t.Run(fmt.Sprintf("flip %s at %d", name, off), func(t *testing.T) { refuse(t, dir, name, true) })
			if off%7 == 0 {
				dir := copyDir(t, fixture)
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), b[:off], 0o644))
				t.Run(fmt.Sprintf("truncate %s at %d", name, off), func(t *testing.T) { refuse(t, dir, name, off > 0) })
			}
		}
	}
	t.Run("missing first delta", func(t *testing.T) {
		dir := copyDir(t, fixture)
		require.NoError(t, os.Remove(filepath.Join(dir, deltas[0])))
		refuse(t, dir, deltas[1], false)
	})
	t.Run("missing base", func(t *testing.T) {
		dir := copyDir(t, fixture)
		require.NoError(t, os.Remove(filepath.Join(dir, snapshotName(20))))
		refuse(t, dir, deltas[0], false)
	})
	t.Run("missing last delta", func(t *testing.T) {
		// The log records the snapshot at 60: without the delta that
		// reaches it, entries 41..60 are lost (their segments may be gone).
		dir := copyDir(t, fixture)
		require.NoError(t, os.Remove(filepath.Join(dir, deltas[1])))
		_, _, err := openE(t, dir)
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "the log records a snapshot at 60 but the newest snapshot file is at 40")
	})
}

// TestDeltaCrashLeftovers: what a crash leaves in the middle of a delta
// write or a merge is recovered from, and nothing is lost.
func TestDeltaCrashLeftovers(t *testing.T) {
	fixture, want := deltaFixture(t)
	t.Run("unfinished delta temp file", func(t *testing.T) {
		dir := copyDir(t, fixture)
		require.NoError(t, os.WriteFile(filepath.Join(dir, deltaName(60, 75)+tmpSuffix), []byte(`{"crc":"00`), 0o644))
		s, rec := openT(t, dir)
		assert.Equal(t, want, decodeAny(t, recState(t, rec)))
		assertEntries(t, 61, 80, rec.Entries)
		assert.Empty(t, filesMatching(t, dir, "*.tmp"))
		require.NoError(t, s.Close())
	})
	t.Run("delta written, log record not", func(t *testing.T) {
		// The delta 60..75 made it; the crash came before its log record.
		dir := copyDir(t, fixture)
		s, _ := openT(t, dir)
		require.NoError(t, s.SaveSnapshotDelta(raft.Snapshot{Index: 75, Term: testTerm(75)}, 60, func(w *DeltaWriter) error {
			return errors.Join(w.Delete("Contents", []byte(`"k00"`)), w.Delete("Meta", []byte(`"k00"`)), w.Replace("AppliedIndex", []byte(`75`)))
		}))
		crash(s)
		// Take the mark back out of the log: as if the crash came before it.
		dropLastSnapshotMark(t, dir)
		s, rec := openT(t, dir)
		assert.Equal(t, uint64(75), rec.Snapshot.Index)
		assert.NotContains(t, decodeAny(t, recState(t, rec))["Contents"], "k00")
		assertEntries(t, 76, 80, rec.Entries)
		assert.Contains(t, rec.Repairs, "record snapshot 75 in the log (a snapshot was interrupted)")
		require.NoError(t, s.Close())
	})
	t.Run("merge written, deltas not deleted", func(t *testing.T) {
		dir := copyDir(t, fixture)
		s, rec := openT(t, dir)
		data := recState(t, rec)
		crash(s)
		require.NoError(t, os.WriteFile(filepath.Join(dir, snapshotName(60)), encodeSnapshot(60, testTerm(60), []raft.ID{0, 1, 2}, data), 0o644))
		s, rec = openT(t, dir)
		assert.Equal(t, want, decodeAny(t, recState(t, rec)))
		base, _, deltaBytes := s.SnapshotChain()
		assert.Equal(t, []int64{60, 0}, []int64{int64(base), deltaBytes})
		require.NoError(t, s.Save(raft.HardState{}, testEntries(81, 90)))
		require.NoError(t, s.SaveSnapshotDelta(raft.Snapshot{Index: 85, Term: testTerm(85)}, 60, snapDelta(85)))
		assert.Equal(t, []string{deltaName(60, 85)}, filesMatching(t, dir, "delta-*.jsonl"), "the merged deltas are deleted")
		require.NoError(t, s.Close())
	})
	t.Run("merge temp file", func(t *testing.T) {
		dir := copyDir(t, fixture)
		require.NoError(t, os.WriteFile(filepath.Join(dir, snapshotName(60)+tmpSuffix), []byte(`{"Index":60,"Ter`), 0o644))
		s, rec := openT(t, dir)
		assert.Equal(t, want, decodeAny(t, recState(t, rec)))
		require.NoError(t, s.Close())
	})
}

// dropLastSnapshotMark removes the last snapshot record from the last segment.
func dropLastSnapshotMark(t *testing.T, dir string) {
	t.Helper()
	segs := filesMatching(t, dir, "wal-*.jsonl")
	for k := len(segs) - 1; k >= 0; k-- {
		path := filepath.Join(dir, segs[k])
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := bytes.SplitAfter(b, []byte("\n"))
		for i := len(lines) - 1; i >= 0; i-- {
			if bytes.Contains(lines[i], []byte(`"kind":"snapshot"`)) {
				out := bytes.Join(append(lines[:i:i], lines[i+1:]...), nil)
				require.NoError(t, os.WriteFile(path, out, 0o644))
				return
			}
		}
	}
	t.Fatal("no snapshot record")
}

// TestMaterialize: patches apply to any spelling of the base (white space,
// unsorted members, escaped names) and new members keep a sorted base sorted.
func TestMaterialize(t *testing.T) {
	ps := newPatchSet()
	for _, p := range []patch{
		{op: "set", field: "C", key: "b", rawKy: []byte(`"b"`), value: []byte(`2`)},
		{op: "set", field: "C", key: "d", rawKy: []byte(`"d"`), value: []byte(`4`)},
		{op: "del", field: "C", key: "a", rawKy: []byte(`"a"`)},
		{op: "set", field: "N", key: "x", rawKy: []byte(`"x"`), value: []byte(`true`)},
		{op: "replace", field: "R", value: []byte(`[1]`)},
	} {
		require.Empty(t, ps.add(p))
	}
	for _, tc := range []struct{ base, want string }{
		{`{"C":{"a":1,"b":1,"c":1},"R":0}`, `{"C":{"b":2,"c":1,"d":4},"R":[1],"N":{"x":true}}`},
		{` { "R" : 0 , "C" : { "c" : 1 , "\u0061" : 1 } } `, `{"R":[1],"C":{"b":2,"c":1,"d":4},"N":{"x":true}}`},
		{`{"C":{"d":0,"b":0}}`, `{"C":{"b":2,"d":4},"N":{"x":true},"R":[1]}`},
	} {
		var out bytes.Buffer
		require.NoError(t, materialize(&out, []byte(tc.base), ps), tc.base)
		assert.Equal(t, tc.want, out.String(), tc.base)
	}
	for _, bad := range []string{`[]`, `{"C":[1]}`, `{"C":{"a":1}`, `{"C":{"a" 1}}`, `{"C":{}} x`} {
		var out bytes.Buffer
		assert.Error(t, materialize(&out, []byte(bad), ps), bad)
	}
	assert.NotEmpty(t, ps.add(patch{op: "set", field: "R", key: "k", rawKy: []byte(`"k"`), value: []byte(`1`)}))
	assert.NotEmpty(t, ps.add(patch{op: "replace", field: "C", value: []byte(`1`)}))
}

// seedDelta is a valid delta file with every record kind.
func seedDelta() []byte {
	var b bytes.Buffer
	err := writeDeltaFile(&b, 20, raft.Snapshot{Index: 40, Term: 2, Peers: []raft.ID{0, 1}}, func(w *DeltaWriter) error {
		return errors.Join(w.Set("Contents", []byte(`"k"`), []byte(`"v"`)), w.Set("Meta", []byte(`"k"`), []byte(`[21,30,2]`)),
			w.Delete("Contents", []byte(`"gone"`)), w.Set("Leases", []byte(`"7"`), []byte(`{"TTL":5000,"Renew":7,"Keys":["k"]}`)),
			w.Delete("Leases", []byte(`"3"`)), w.Replace("Sessions", []byte(`{}`)), w.Replace("AppliedIndex", []byte(`40`)))
	})
	if err != nil {
		panic(err)
	}
	return b.Bytes()
}

// FuzzDeltaFile: arbitrary bytes as a delta file never panic the reader or
// the materializer; what the reader accepts has a head matching its name
// and an end record, and materializes onto a base into valid JSON.
// The committed corpus (testdata/fuzz/FuzzDeltaFile) holds the seed and
// damaged variants.
func FuzzDeltaFile(f *testing.F) {
	seed := seedDelta()
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(bytes.Replace(seed, []byte(`"kind":"del"`), []byte(`"kind":"set"`), 1))
	f.Add(regexp.MustCompile(`"records":\d+`).ReplaceAll(seed, []byte(`"records":99`)))
	dir := f.TempDir()
	s := &Storage{dir: dir}
	name := deltaName(20, 40)
	f.Fuzz(func(t *testing.T, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		d, err := s.loadDelta(name)
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.Equal(t, uint64(20), d.head.From)
		require.Equal(t, uint64(40), d.head.Index)
		ps := newPatchSet()
		for _, p := range d.patches {
			if ps.add(p) != "" {
				return
			}
		}
		var out bytes.Buffer
		if materialize(&out, []byte(`{"Contents":{"a":"1","k":"0"},"Meta":{},"Sessions":{"x":{}},"AppliedIndex":20}`), ps) == nil {
			require.True(t, json.Valid(out.Bytes()), "%s", out.Bytes())
		}
	})
}

// FuzzFastPatch: what fastPatch reads from a record, encoding/json reads
// the same (kind, field, key, value); what it does not read is left to
// encoding/json.
func FuzzFastPatch(f *testing.F) {
	f.Add([]byte(`{"kind":"set","field":"Contents","key":"k","value":"v"}`))
	f.Add([]byte(`{"kind":"del","field":"Meta","key":"k\u00e9"}`))
	f.Add([]byte(`{"kind":"set","field":"Leases","key":"7","value":{"TTL":5000,"Renew":7,"Keys":["k"]}}`))
	f.Add([]byte("{\"kind\":\"set\",\"field\":\"Contents\",\"key\":\"\xff\",\"value\":[1,2]}"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		p, ok := fastPatch(rec)
		if !ok {
			return
		}
		var r deltaRec
		require.NoError(t, strictUnmarshal(rec, &r), "%s", rec)
		assert.Equal(t, r.Kind, p.op)
		assert.Equal(t, r.Field, p.field)
		var key string
		require.NoError(t, json.Unmarshal(r.Key, &key))
		assert.Equal(t, key, p.key)
		assert.Equal(t, string(r.Key), string(p.rawKy))
		assert.Equal(t, string(r.Value), string(p.value))
	})
}
