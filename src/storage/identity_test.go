package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

func openID(t *testing.T, dir string, readOnly bool) (Identity, error) {
	t.Helper()
	s, rec, err := Open(Options{Dir: dir, ReadOnly: readOnly})
	if err != nil {
		return Identity{}, err
	}
	require.NoError(t, s.Close())
	return rec.Identity, nil
}

// TestIdentity: an empty folder gets a random incarnation that stays; a
// wiped folder gets another; a folder with state but no identity (written
// before identities) adopts 0 and records it; a damaged identity is
// refused, naming the file.
func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	first, err := openID(t, dir, false)
	require.NoError(t, err)
	assert.True(t, first.Created)
	assert.NotZero(t, first.Incarnation)
	again, err := openID(t, dir, false)
	require.NoError(t, err)
	assert.Equal(t, Identity{Incarnation: first.Incarnation}, again, "the incarnation stays")

	require.NoError(t, os.RemoveAll(dir))
	wiped, err := openID(t, dir, false)
	require.NoError(t, err)
	assert.True(t, wiped.Created)
	assert.NotEqual(t, first.Incarnation, wiped.Incarnation, "a wiped folder is a new incarnation")

	legacy := t.TempDir()
	s, _, err := Open(Options{Dir: legacy})
	require.NoError(t, err)
	require.NoError(t, s.Save(raft.HardState{Term: 2, Vote: 1, Commit: 1}, []raft.Entry{{Term: 2, Index: 1, Type: raft.EntryNoop}}))
	require.NoError(t, s.Close())
	require.NoError(t, os.Remove(filepath.Join(legacy, identityFile)))
	ro, err := openID(t, legacy, true)
	require.NoError(t, err)
	assert.Equal(t, Identity{Adopted: true}, ro, "read-only: reported, not written")
	_, err = os.Stat(filepath.Join(legacy, identityFile))
	assert.ErrorIs(t, err, os.ErrNotExist)
	adopted, err := openID(t, legacy, false)
	require.NoError(t, err)
	assert.Equal(t, Identity{Adopted: true}, adopted)
	kept, err := openID(t, legacy, false)
	require.NoError(t, err)
	assert.Equal(t, Identity{}, kept, "incarnation 0, recorded")

	require.NoError(t, os.WriteFile(filepath.Join(legacy, identityFile), []byte(`{"incarnation":"zz"}`), 0o644))
	_, err = openID(t, legacy, false)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), identityFile)
}

// TestSnapshotMembershipRoundTrip: a snapshot keeps its configuration.
func TestSnapshotMembershipRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	conf := &raft.Membership{Members: []raft.Member{{ID: 0, Incarnation: 5}, {ID: 3, Incarnation: 9, Suffrage: raft.Learner, Meta: []byte(`{"name":"r3"}`)}}}
	require.NoError(t, s.SaveSnapshot(raft.Snapshot{Index: 4, Term: 2, Membership: conf, Data: []byte(`{"Contents":{}}`)}))
	require.NoError(t, s.Close())
	s, rec, err := Open(Options{Dir: dir})
	require.NoError(t, err)
	defer s.Close()
	require.NotNil(t, rec.Snapshot)
	assert.Equal(t, conf, rec.Snapshot.Membership)
}
