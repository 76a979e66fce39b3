package storage

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// sendFile copies the leader's newest snapshot, as OpenSnapshot reads it,
// to path: what the follower's staging file holds once the stream is in.
func sendFile(t *testing.T, leader *Storage, path string) *SnapshotFile {
	t.Helper()
	f, err := leader.OpenSnapshot()
	require.NoError(t, err)
	require.NotNil(t, f)
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return f
}

// TestStreamedSnapshotInstalls: the leader's snapshot file, sent byte for
// byte, verifies and installs on the follower, which recovers it after a
// restart; the follower's log after it is discarded when it does not hold
// the snapshot's last entry, kept when it does.
func TestStreamedSnapshotInstalls(t *testing.T) {
	ldir, fdir := t.TempDir(), t.TempDir()
	leader, _ := openT(t, ldir)
	require.NoError(t, leader.Save(raft.HardState{Term: 2, Vote: 0, Commit: 300}, testEntries(1, 300)))
	conf := raft.Membership{Members: []raft.Member{{ID: 0, Incarnation: 3}, {ID: 1, Incarnation: 4}}}
	require.NoError(t, leader.SaveSnapshot(raft.Snapshot{Index: 250, Term: testTerm(250), Membership: &conf, Data: snapData(250)}))

	follower, _ := openT(t, fdir)
	require.NoError(t, follower.Save(raft.HardState{Term: 2, Vote: 0, Commit: 20}, testEntries(1, 40)))
	staged := filepath.Join(fdir, "incoming.tmp")
	f := sendFile(t, leader, staged)
	assert.Equal(t, uint64(250), f.Index())
	assert.Equal(t, testTerm(250), f.Term())
	require.NoError(t, f.Close())

	snap, err := follower.VerifySnapshotFile(staged, 250, testTerm(250))
	require.NoError(t, err)
	assert.Equal(t, snapData(250), []byte(snap.Data))
	assert.Equal(t, conf, *snap.Membership)
	meta := *snap
	meta.Data = nil
	require.NoError(t, follower.InstallSnapshotFile(staged, meta))
	assert.NoFileExists(t, staged)
	assert.Equal(t, uint64(250), follower.LastIndex(), "the log did not hold entry 250: discarded")
	require.NoError(t, follower.Save(raft.HardState{Term: 2, Vote: 0, Commit: 260}, testEntries(251, 260)))
	require.NoError(t, follower.Close())

	again, rec := openT(t, fdir)
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, uint64(250), rec.Snapshot.Index)
	assert.Equal(t, snapData(250), []byte(rec.Snapshot.Data))
	assert.Equal(t, testEntries(251, 260), rec.Entries)
	require.NoError(t, again.Close())
	require.NoError(t, leader.Close())
}

// TestStreamedSnapshotRefusedWhenDamaged: a staged file that is not the
// leader's byte for byte, or not the snapshot announced, is refused with
// its path, and nothing is installed.
func TestStreamedSnapshotRefusedWhenDamaged(t *testing.T) {
	ldir, fdir := t.TempDir(), t.TempDir()
	leader, _ := openT(t, ldir)
	require.NoError(t, leader.Save(raft.HardState{Term: 2, Vote: 0, Commit: 30}, testEntries(1, 30)))
	require.NoError(t, leader.SaveSnapshot(raft.Snapshot{Index: 30, Term: testTerm(30), Data: snapData(30)}))
	follower, _ := openT(t, fdir)
	staged := filepath.Join(fdir, "incoming.tmp")
	require.NoError(t, sendFile(t, leader, staged).Close())
	b, err := os.ReadFile(staged)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		content     []byte
		index, term uint64
	}{
		"a flipped byte in the state": {flip(b, len(b)-40), 30, testTerm(30)},
		"cut short":                   {b[:len(b)/2], 30, testTerm(30)},
		"another index":               {b, 31, testTerm(30)},
		"another term":                {b, 30, testTerm(30) + 1},
	} {
		require.NoError(t, os.WriteFile(staged, tc.content, 0o644))
		_, err := follower.VerifySnapshotFile(staged, tc.index, tc.term)
		var ce *CorruptError
		require.True(t, errors.As(err, &ce), "%s: %v", name, err)
		assert.Equal(t, staged, ce.File, name)
	}
	assert.Zero(t, follower.SnapshotIndex())
	require.NoError(t, follower.Close())
	require.NoError(t, leader.Close())
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

// TestStreamedDeltaChainInstalls: when the leader's newest snapshot is a
// delta, OpenSnapshot sends base and deltas as one snapshot file (left in
// no file of the folder), which verifies and installs on the follower as
// its base.
func TestStreamedDeltaChainInstalls(t *testing.T) {
	ldir, want := deltaFixture(t)
	leader, _ := openT(t, ldir)
	fdir := t.TempDir()
	follower, _ := openT(t, fdir)
	staged := filepath.Join(fdir, "incoming.tmp")
	f := sendFile(t, leader, staged)
	assert.Equal(t, uint64(60), f.Index())
	assert.Equal(t, testTerm(60), f.Term())
	require.NoError(t, f.Close())
	assert.Empty(t, filesMatching(t, ldir, "*.tmp"), "the file sent was unlinked when opened")

	snap, err := follower.VerifySnapshotFile(staged, 60, testTerm(60))
	require.NoError(t, err)
	assert.Equal(t, want, decodeAny(t, snap.Data))
	meta := *snap
	meta.Data = nil
	require.NoError(t, follower.InstallSnapshotFile(staged, meta))
	base, _, deltaBytes := follower.SnapshotChain()
	assert.Equal(t, uint64(60), base, "a received snapshot is a base")
	assert.Zero(t, deltaBytes)
	require.NoError(t, follower.Close())
	require.NoError(t, leader.Close())
}
