package storage

import (
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

var (
	corruptIterations = flag.Int("corrupt.iterations", 300, "damaged copies opened by TestCorruption")
	corruptSeed       = flag.Uint64("corrupt.seed", 0, "seed of TestCorruption (0: from the clock, logged)")
)

// lineInfo is one line of a segment of the fixture.
type lineInfo struct {
	start, end int // end includes the newline
	entry      uint64
}

// TestCorruption damages one log segment of a fixture at a random offset, by
// truncating it or by changing one byte, and checks Open against what the
// damage allows: in the last segment, damage that reaches the end of the
// file is a torn tail, cut off; everything else is refused with the file and
// the offset of the damaged line.
func TestCorruption(t *testing.T) {
	seed := *corruptSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -corrupt.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 3))

	fixture := t.TempDir()
	s, _ := openT(t, fixture, segBytes(2500))
	for i := uint64(1); i+6 <= 300; i += 7 {
		require.NoError(t, s.Save(raft.HardState{Term: testTerm(i + 6), Vote: 2, Commit: i}, testEntries(i, i+6)))
	}
	const snapAt = 100
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: snapAt, Term: testTerm(snapAt), Data: snapData(snapAt)}))
	require.NoError(t, s.Save(raft.HardState{}, testEntries(295, 310)))
	segs := filesMatching(t, fixture, "wal-*.jsonl")
	require.Greater(t, len(segs), 3)
	// SaveSnapshot wrote hardstate.json: the log must still reach its commit index.
	hsFile, err := os.ReadFile(filepath.Join(fixture, hardStateFile))
	require.NoError(t, err)
	var fileHS raft.HardState
	require.NoError(t, json.Unmarshal(hsFile, &fileHS))
	require.Greater(t, fileHS.Commit, uint64(snapAt))

	lines := map[string][]lineInfo{}
	for _, name := range segs {
		b, err := os.ReadFile(filepath.Join(fixture, name))
		require.NoError(t, err)
		for off := 0; off < len(b); {
			end := off + indexNL(b[off:]) + 1
			r, err := decodeRecord(b[off : end-1])
			require.NoError(t, err)
			li := lineInfo{start: off, end: end}
			if r.kind == kindEntry {
				li.entry = r.entry.Index
			}
			lines[name] = append(lines[name], li)
			off = end
		}
	}

	var torn, refused, repairedClean int
	for it := 0; it < *corruptIterations; it++ {
		dir := copyDir(t, fixture)
		segIdx := rng.IntN(len(segs))
		if rng.IntN(3) == 0 {
			segIdx = len(segs) - 1 // where torn tails are
		}
		name := segs[segIdx]
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		off := rng.IntN(len(b))
		ls := lines[name]
		l := 0
		for ls[l].end <= off {
			l++
		}
		isLast := segIdx == len(segs)-1
		truncate := rng.IntN(2) == 0
		var damagedEnd int // where the damaged region of the file ends
		var what string
		if truncate {
			require.NoError(t, os.Truncate(path, int64(off)))
			damagedEnd = len(b)
			what = "truncate"
		} else {
			b[off] ^= byte(1 + rng.IntN(255))
			require.NoError(t, os.WriteFile(path, b, 0o644))
			damagedEnd = ls[l].end
			if off == ls[l].end-1 && l+1 < len(ls) {
				damagedEnd = ls[l+1].end // a changed newline joins two lines
			}
			what = "flip"
		}
		msg := []any{"iteration %d: %s %s at %d (line %d at %d)", it, what, name, off, l, ls[l].start}

		_, rec, err := openE(t, dir)
		atBoundary := truncate && off == ls[l].start
		// Entries lost if the open succeeds: all entry lines from line l on.
		lost := false
		for _, li := range ls[l:] {
			lost = lost || li.entry != 0
		}
		// Where the log ends if the damage at the end of the last segment is cut off.
		last := uint64(snapAt)
		for _, li := range ls[:l] {
			last = max(last, li.entry)
		}
		for _, other := range segs[:segIdx] {
			for _, li := range lines[other] {
				last = max(last, li.entry)
			}
		}
		switch {
		case isLast && damagedEnd == len(b) && last < fileHS.Commit:
			// Not a torn write: the cut would drop entries hardstate.json
			// says were committed, so they were synced.
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), msg...)
			assert.Equal(t, path, ce.File, msg...)
			assert.Contains(t, ce.Reason, hardStateFile, msg...)
			refused++
		case isLast && damagedEnd == len(b):
			// A torn tail: cut at the damaged line, nothing else lost.
			require.NoError(t, err, msg...)
			assert.Equal(t, !atBoundary, rec.TornTail, msg...)
			assertEntries(t, snapAt+1, last, rec.Entries, msg...)
			if rec.TornTail {
				torn++
			}
		case atBoundary && !lost:
			// Only hard-state lines were cut off the end of a segment; the
			// next segment starts with the same hard state again.
			require.NoError(t, err, msg...)
			assertEntries(t, snapAt+1, 310, rec.Entries, msg...)
			repairedClean++
		case atBoundary:
			// Whole lines missing at the end of a segment: the next
			// segment does not follow on.
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), msg...)
			refused++
		default:
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), msg...)
			assert.Equal(t, path, ce.File, msg...)
			assert.Equal(t, int64(ls[l].start), ce.Offset, msg...)
			assert.Contains(t, err.Error(), name, msg...)
			refused++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d iterations: %d torn tails repaired, %d refused, %d harmless", *corruptIterations, torn, refused, repairedClean)
}

// assertEntries checks that es are exactly the test entries first..last,
// reporting only the first difference.
func assertEntries(t *testing.T, first, last uint64, es []raft.Entry, msg ...any) {
	t.Helper()
	if !assert.Equal(t, int(last+1-first), len(es), msg...) {
		if len(es) > 0 {
			t.Logf("got entries %d..%d", es[0].Index, es[len(es)-1].Index)
		}
		return
	}
	for k := range es {
		if !assert.Equal(t, testEntry(first+uint64(k)), es[k], msg...) {
			return
		}
	}
}
