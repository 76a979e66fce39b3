package kv

import (
	"fmt"
	"io"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/raft"
	"raftkv/src/storage"
)

// deltaRun applies a random stream of every kind of write (put, append,
// delete, delete by prefix, transactions, sessions, leases granted, kept
// alive, revoked and expired, keys put with a lease) to a Store and saves
// snapshots through the real storage, as the node does: a base, then deltas
// (FreezeDelta), now and then a new base (FreezeBase). After every snapshot
// the folder is read back (base + deltas materialized) and restored into a
// fresh Store, whose snapshot must equal the live Store's at that index.
// It returns the first mismatch ("" when none).
func deltaRun(t *testing.T, seed int64) string {
	rng := rand.New(rand.NewSource(seed))
	dir := t.TempDir()
	disk, _, err := storage.Open(storage.Options{Dir: dir})
	require.NoError(t, err)
	defer disk.Close()
	s := New(Options{MaxSessions: 5})
	key := func() string { return fmt.Sprintf("%c/%d", 'a'+rng.Intn(3), rng.Intn(40)) }
	var deltas int
	for i := uint64(1); i <= 3000; i++ {
		client := fmt.Sprintf("c%d", rng.Intn(8))
		switch r := rng.Intn(100); {
		case r < 40:
			s.Apply(i, EncodeCommand(Command{Op: OpPut, Key: key(), Value: fmt.Sprint(i), ClientID: client, Seq: i}))
		case r < 55:
			s.Apply(i, EncodeCommand(Command{Op: OpAppend, Key: key(), Value: "+"}))
		case r < 75:
			s.Apply(i, EncodeCommand(Command{Op: OpDelete, Key: key()}))
		case r < 77:
			s.Apply(i, EncodeCommand(Command{Op: OpDelete, Key: key()[:3], Prefix: true}))
		case r < 90:
			tx := api.TxnRequest{Then: []api.TxnOp{{Op: api.OpPut, Key: key(), Value: "t"}, {Op: api.OpDelete, Key: key()}}}
			s.Apply(i, EncodeCommand(Command{Op: OpTxn, Txn: &tx, ClientID: client, Seq: i}))
		case r < 92:
			s.Apply(i, EncodeCommand(Command{Op: OpLeaseGrant, TTLMillis: 5000, ClientID: client, Seq: i}))
		case r < 97:
			if ls := s.Leases(); len(ls) > 0 {
				l := ls[rng.Intn(len(ls))]
				switch rng.Intn(4) {
				case 0:
					s.Apply(i, EncodeCommand(Command{Op: OpPut, Key: key(), Value: "leased", Lease: l.ID}))
				case 1:
					s.Apply(i, EncodeCommand(Command{Op: OpLeaseKeepAlive, Lease: l.ID, ClientID: client, Seq: i}))
				case 2:
					s.Apply(i, EncodeCommand(Command{Op: OpLeaseRevoke, Lease: l.ID}))
				default:
					s.Apply(i, EncodeCommand(Command{Op: OpLeaseExpire, Lease: l.ID, Renew: l.Renew}))
				}
				break
			}
			s.ApplyNoop(i)
		default:
			s.ApplyNoop(i)
		}
		if rng.Intn(60) != 0 {
			continue
		}
		meta := raft.Snapshot{Index: i, Term: 1, Peers: []raft.ID{0}}
		base, _, _ := disk.SnapshotChain()
		if base > 0 && rng.Intn(5) != 0 {
			d, ok := s.FreezeDelta()
			require.True(t, ok)
			require.Equal(t, disk.SnapshotIndex(), d.From())
			require.NoError(t, disk.SaveSnapshotDelta(meta, d.From(), func(w *storage.DeltaWriter) error { return d.EncodeTo(w) }))
			deltas++
		} else {
			f := s.FreezeBase()
			require.NoError(t, disk.SaveSnapshotFrom(meta, func(w io.Writer) error { return f.EncodeTo(w) }))
		}
		// Both ways a chain is read back: written into one state
		// (LoadSnapshot, what a leader sends) and applied to the decoded
		// base (what a restart does).
		snap, err := disk.LoadSnapshot()
		require.NoError(t, err)
		r := New(Options{MaxSessions: 5})
		require.NoError(t, r.Restore(snap.Data))
		if got, want := mustSnapshot(t, r), mustSnapshot(t, s); got != want {
			return fmt.Sprintf("at %d (after %d deltas):\n got %.300s\nwant %.300s", i, deltas, got, want)
		}
		_, rec, err := storage.Open(storage.Options{Dir: dir, ReadOnly: true})
		require.NoError(t, err)
		r = New(Options{MaxSessions: 5})
		if err := r.RestoreChain(rec.Snapshot.Data, rec.Deltas); err != nil {
			return fmt.Sprintf("restart at %d (after %d deltas): %v", i, deltas, err)
		}
		if got, want := mustSnapshot(t, r), mustSnapshot(t, s); got != want {
			return fmt.Sprintf("restart at %d (after %d deltas):\n got %.300s\nwant %.300s", i, deltas, got, want)
		}
	}
	require.Positive(t, deltas)
	return ""
}

// TestDeltaSnapshotsMatchState: see deltaRun. Planted bug: deletes that
// are not marked changed (so the deltas miss them) must be caught.
func TestDeltaSnapshotsMatchState(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		assert.Empty(t, deltaRun(t, seed), "seed %d", seed)
	}
	t.Run("planted: deletes left out of the deltas", func(t *testing.T) {
		// The classic bug of an incremental format: no tombstones. A key
		// deleted since the last snapshot comes back after a restore.
		testHookMarkChanged = func(s *Store, k string) bool { return s.table.has(k) }
		defer func() { testHookMarkChanged = nil }()
		for seed := int64(1); seed <= 5; seed++ {
			assert.NotEmpty(t, deltaRun(t, seed), "seed %d: the planted bug went unnoticed", seed)
		}
	})
	t.Run("planted: a restart that skips the deltas' deletes", func(t *testing.T) {
		testHookApplyDelete = func(field, key string) bool { return field != "Contents" }
		defer func() { testHookApplyDelete = nil }()
		for seed := int64(1); seed <= 5; seed++ {
			assert.NotEmpty(t, deltaRun(t, seed), "seed %d: the planted bug went unnoticed", seed)
		}
	})
	t.Run("planted: ended leases left out of the deltas", func(t *testing.T) {
		// The same bug for leases: a lease revoked or expired since the
		// last snapshot comes back after a restore (with its keys gone).
		testHookMarkLeaseChanged = func(s *Store, id uint64) bool { return s.leases[id] != nil }
		defer func() { testHookMarkLeaseChanged = nil }()
		for seed := int64(1); seed <= 5; seed++ {
			assert.NotEmpty(t, deltaRun(t, seed), "seed %d: the planted bug went unnoticed", seed)
		}
	})
	t.Run("planted: keep-alives left out of the deltas", func(t *testing.T) {
		// A renewal missing from the delta gives a restored lease an old
		// renew index: an expiry decided on it would then apply on one
		// replica and not on another.
		testHookMarkLeaseChanged = func(s *Store, id uint64) bool { l := s.leases[id]; return l == nil || l.Renew == l.ID }
		defer func() { testHookMarkLeaseChanged = nil }()
		for seed := int64(1); seed <= 5; seed++ {
			assert.NotEmpty(t, deltaRun(t, seed), "seed %d: the planted bug went unnoticed", seed)
		}
	})
}

// TestFreezeDeltaAfterMetaLessRestore: a Store restored from a snapshot
// without Meta (an old version's) takes no delta until a base.
func TestFreezeDeltaAfterMetaLessRestore(t *testing.T) {
	s := New(Options{})
	require.NoError(t, s.Restore([]byte(`{"Contents":{"a":"1"},"Sessions":{},"AppliedIndex":5}`)))
	_, ok := s.FreezeDelta()
	assert.False(t, ok)
	s.FreezeBase()
	d, ok := s.FreezeDelta()
	require.True(t, ok)
	assert.Equal(t, uint64(5), d.From())
}

// TestDecodeSnapshotFast: the hand-written decoder gives what encoding/json
// gives on every snapshot it takes, takes every snapshot EncodeTo writes,
// and hands anything spelled otherwise back (ok false).
func TestDecodeSnapshotFast(t *testing.T) {
	same := func(t *testing.T, data []byte) {
		t.Helper()
		fast, ok := decodeSnapshotFast(data)
		require.True(t, ok, "%s", data)
		requireDecodesAlike(t, data, fast)
	}
	for seed := int64(1); seed <= 3; seed++ {
		s := New(Options{})
		for _, e := range randomStream(uint64(seed), 400) {
			applyEntry(s, e)
		}
		same(t, []byte(mustSnapshot(t, s)))
	}
	// Escapes, UTF-8, invalid UTF-8 (replaced by U+FFFD, as encoding/json does).
	same(t, []byte("{\"Contents\":{\"a\\\"b\":\"\\u00e9\\n\",\"ключ\":\"\xff\"},\"Meta\":{\"a\\\"b\":[1,2,3],\"ключ\":[1,1,1]},\"Sessions\":{\"c\":{\"Seq\":1,\"LastUsed\":2,\"Index\":2}},\"AppliedIndex\":9}"))
	// Leases, before and after the applied index (a materialized delta
	// chain adds the field last).
	same(t, []byte(`{"Contents":{"a":"1"},"Meta":{"a":[3,3,1]},"Sessions":{"c":{"Seq":1,"LastUsed":2,"Index":2,"Lease":[2,5000,2]}},"Leases":{"2":{"TTL":5000,"Renew":2,"Keys":["a"]}},"AppliedIndex":3}`))
	same(t, []byte(`{"Contents":{"a":"1"},"Meta":{"a":[3,3,1]},"Sessions":{},"AppliedIndex":3,"Leases":{"2":{"TTL":5000,"Renew":2,"Keys":["a"]}}}`))
	for _, other := range []string{
		` {"Contents":{},"Meta":{},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"a":"1"},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"a":1},"Meta":{},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{},"Meta":{"a":[1,01,1]},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{},"Meta":{},"Sessions":{"c":{"Bad":1}},"AppliedIndex":1}`,
		`{"Contents":{},"Meta":{},"Sessions":{},"AppliedIndex":1,"X":2}`,
		`{"Contents":{},"Meta":{},"Sessions":{},"AppliedIndex":-1}`,
		`{"Contents":{"a":"1",},"Meta":{},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"b":"1","a":"2"},"Meta":{"b":[1,1,1],"a":[1,1,1]},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"a":"1","a":"2"},"Meta":{"a":[1,1,1],"a":[1,1,1]},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"a":"1","b":"2"},"Meta":{"b":[1,1,1],"a":[1,1,1]},"Sessions":{},"AppliedIndex":1}`,
		`{"Contents":{"a":"1","b":"2"},"Meta":{"a":[1,1,1]},"Sessions":{},"AppliedIndex":1}`,
	} {
		_, ok := decodeSnapshotFast([]byte(other))
		assert.False(t, ok, other)
	}
}

// FuzzDecodeSnapshotFast: whatever the hand-written decoder takes,
// encoding/json takes too and decodes to the same state.
func FuzzDecodeSnapshotFast(f *testing.F) {
	f.Add([]byte(`{"Contents":{"a":"1","b":"x\"y"},"Meta":{"a":[1,2,3],"b":[2,2,1]},"Sessions":{},"AppliedIndex":3}`))
	f.Add([]byte("{\"Contents\":{\"a\\\"b\":\"\\u00e9\\n\",\"ключ\":\"\xff\"},\"Meta\":{\"a\\\"b\":[1,2,3],\"ключ\":[1,1,1]},\"Sessions\":{\"c\":{\"Seq\":1,\"LastUsed\":2,\"Index\":2}},\"AppliedIndex\":9}"))
	f.Add([]byte(`{"Contents":{"a":"1"},"Meta":{"a":[3,3,1]},"Sessions":{},"AppliedIndex":3,"Leases":{"2":{"TTL":5000,"Renew":2,"Keys":["a"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeSnapshotFast(data)
		if !ok {
			return
		}
		requireDecodesAlike(t, data, fast)
	})
}

// requireDecodesAlike checks that encoding/json decodes data, which the
// fast decoder decoded to fast, to the same state.
func requireDecodesAlike(t *testing.T, data []byte, fast snapshotJSON) {
	t.Helper()
	slow, err := decodeSnapshotJSON(data)
	require.NoError(t, err, "the fast decoder took what encoding/json refuses")
	require.Empty(t, slow.gatherKeys())
	slowTable, fastTable := slow.decoded.table(), fast.decoded.table()
	require.Equal(t, slowTable.contents(), fastTable.contents())
	require.Equal(t, slowTable.metas(), fastTable.metas())
	require.Equal(t, slow.Sessions, fast.Sessions)
	require.Equal(t, slow.Leases, fast.Leases)
	require.Equal(t, slow.AppliedIndex, fast.AppliedIndex)
	fastTable.check(t)
}
