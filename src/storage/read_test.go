package storage

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// modelLog is what ReadEntries must give back: the log above floor, the
// snapshot before the newest (snap) since the last reopening, else snap.
type modelLog struct {
	snap, floor uint64
	ents        map[uint64]raft.Entry
	last        uint64
}

// checkReads reads random ranges of the live log back and compares them
// with the model.
func checkReads(t *testing.T, s *Storage, m *modelLog, rng *rand.Rand, what string) {
	t.Helper()
	if m.last <= m.floor {
		return
	}
	for range 40 {
		lo := m.floor + 1 + uint64(rng.Intn(int(m.last-m.floor)))
		hi := lo + 1 + uint64(rng.Intn(int(m.last-lo+1)))
		maxBytes := uint64(1 << 30)
		if rng.Intn(3) == 0 {
			maxBytes = uint64(rng.Intn(200))
		}
		got, err := s.ReadEntries(lo, hi, maxBytes)
		require.NoError(t, err, "%s: [%d, %d)", what, lo, hi)
		require.NotEmpty(t, got)
		var size uint64
		for k, e := range got {
			require.Equal(t, m.ents[lo+uint64(k)], e, "%s: [%d, %d) entry %d", what, lo, hi, lo+uint64(k))
			size += uint64(len(e.Data))
		}
		if uint64(len(got)) < hi-lo {
			// Cut short only by maxBytes: the next entry would pass it.
			require.Greater(t, size+uint64(len(m.ents[lo+uint64(len(got))].Data)), maxBytes, "%s: [%d, %d) cut short", what, lo, hi)
		} else if len(got) > 1 {
			require.LessOrEqual(t, size, maxBytes, "%s: [%d, %d)", what, lo, hi)
		}
	}
	_, err := s.ReadEntries(m.floor, m.floor+1, 1<<20)
	if m.floor > 0 {
		require.ErrorIs(t, err, raft.ErrCompacted, what)
	}
}

// TestReadEntriesMatchesTheLog writes a log with small segments (many
// rotations), conflicting suffixes replaced (truncations) and snapshots,
// and reads random ranges back after each step and after reopening.
func TestReadEntriesMatchesTheLog(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	dir := t.TempDir()
	s, _ := openT(t, dir, segBytes(4<<10))
	m := &modelLog{ents: map[uint64]raft.Entry{}}
	var commit uint64
	for step := range 150 {
		switch r := rng.Intn(10); {
		case r < 7 || m.last == commit:
			n := 1 + rng.Intn(20)
			first := m.last + 1
			if r < 2 && m.last > commit {
				// Replace a suffix above the commit index, with a newer term.
				first = commit + 1 + uint64(rng.Intn(int(m.last-commit)))
			}
			var ents []raft.Entry
			for i := first; i < first+uint64(n); i++ {
				e := testEntry(i)
				e.Term = testTerm(i) + uint64(step)
				ents = append(ents, e)
			}
			// Terms never go down along the log.
			for i := range ents {
				ents[i].Term = max(ents[i].Term, m.ents[first-1].Term)
			}
			commit = min(commit+uint64(rng.Intn(10)), first-1)
			require.NoError(t, s.Save(raft.HardState{Term: ents[len(ents)-1].Term, Vote: 1, Commit: commit}, ents))
			for _, e := range ents {
				m.ents[e.Index] = e
			}
			m.last = ents[len(ents)-1].Index
		case r < 8 && commit > m.snap:
			idx := m.snap + 1 + uint64(rng.Intn(int(commit-m.snap)))
			require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: idx, Term: m.ents[idx].Term, Data: snapData(idx)}))
			m.floor, m.snap = m.snap, idx
		case r < 9:
			require.NoError(t, s.Close())
			s, _ = openT(t, dir, segBytes(4<<10))
			m.floor = m.snap
		default:
			crash(s)
			s, _ = openT(t, dir, segBytes(4<<10))
			m.floor = m.snap
		}
		checkReads(t, s, m, rng, fmt.Sprintf("step %d", step))
	}
	require.Greater(t, len(filesMatching(t, dir, "wal-*")), 2, "the log spans several segments")
	require.NoError(t, s.Close())
}

// TestReadEntriesRefusesDamage: a record flipped on disk after it was
// written is refused with its file and offset, never returned.
func TestReadEntriesRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 9, Vote: 1, Commit: 50}, testEntries(1, 50)))
	seg := filepath.Join(dir, filesMatching(t, dir, "wal-*")[0])
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	// Flip a byte inside entry 30's line.
	off := 0
	for i := 0; i < 29; i++ {
		off += 1 + indexByte(b[off:], '\n')
	}
	b[off+40] ^= 0x01
	require.NoError(t, os.WriteFile(seg, b, 0o644))
	_, err = s.ReadEntries(25, 35, 1<<20)
	var ce *CorruptError
	require.True(t, errors.As(err, &ce), "got %v", err)
	assert.Equal(t, seg, ce.File)
	assert.Equal(t, int64(off), ce.Offset)
	got, err := s.ReadEntries(1, 29, 1<<20)
	require.NoError(t, err, "the records before the damage still read")
	assert.Equal(t, testEntries(1, 28), got)
	crash(s)
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}
