package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// TestLockRefusesSecondWriter: a second writable Open of a folder fails
// with a *LockedError naming the folder and the holder's PID, even in the
// same process (flock belongs to the open file description, so a second
// open(2) and flock(2) conflict with the first on Linux); Close releases it.
func TestLockRefusesSecondWriter(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: 1}, testEntries(1, 3)))
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b))

	_, rec, err := openE(t, dir)
	require.ErrorIs(t, err, ErrLocked)
	assert.Nil(t, rec)
	var le *LockedError
	require.True(t, errors.As(err, &le))
	assert.Equal(t, dir, le.Dir)
	assert.Equal(t, os.Getpid(), le.PID)
	assert.Contains(t, err.Error(), dir+" is in use by another raftkv process (pid "+strconv.Itoa(os.Getpid())+")")
	assert.NoError(t, s.Err(), "the holder goes on")
	require.NoError(t, s.Save(raft.HardState{}, testEntries(4, 4)))

	require.NoError(t, s.Close())
	s2, rec := openT(t, dir)
	assert.Equal(t, testEntries(1, 4), rec.Entries)
	require.NoError(t, s2.Close())
}

// TestLockStaleFileDoesNotBlock: a LOCK file left by a process that died
// (no flock held on it) blocks nobody; its PID is replaced.
func TestLockStaleFileDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, lockFileName), []byte("4194303999\n"), 0o644))
	s, _ := openT(t, dir)
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b))
	require.NoError(t, s.Close())
}

// TestLockReleasedWhenOpenFailsOrPoisoned: a refused Open and a Close of a
// poisoned Storage leave the folder free.
func TestLockReleasedWhenOpenFailsOrPoisoned(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, hardStateFile), []byte("not json"), 0o644))
	_, _, err := openE(t, dir)
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = openE(t, dir)
	require.ErrorIs(t, err, ErrCorrupt, "not ErrLocked: the failed open released the lock")
	require.NoError(t, os.Remove(filepath.Join(dir, hardStateFile)))

	s, _ := openT(t, dir)
	s.sync = func(*os.File) error { return errors.New("injected fsync failure") }
	require.Error(t, s.Save(raft.HardState{Term: 1}, testEntries(1, 1)))
	require.Error(t, s.Close(), "poisoned")
	s2, _ := openT(t, dir)
	require.NoError(t, s2.Close())
}

// TestReadOnlyTakesNoLock: inspect works next to a running node, and on a
// folder without a LOCK file it creates none (nor anything else).
func TestReadOnlyTakesNoLock(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, dir)
	require.NoError(t, s.Save(raft.HardState{Term: 1, Commit: 2}, testEntries(1, 3)))
	ro, rec := openT(t, dir, readOnly)
	assert.Equal(t, testEntries(1, 3), rec.Entries)
	require.NoError(t, ro.Close())
	require.NoError(t, s.Save(raft.HardState{}, testEntries(4, 4)), "the node was not disturbed")
	require.NoError(t, s.Close())

	require.NoError(t, os.Remove(filepath.Join(dir, lockFileName)))
	before := dirState(t, dir)
	ro, _ = openT(t, dir, readOnly)
	require.NoError(t, ro.Close())
	assert.Equal(t, before, dirState(t, dir))
	assert.NoFileExists(t, filepath.Join(dir, lockFileName))
}
