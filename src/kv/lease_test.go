package kv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

func leaseCmd(op Op, id, renew uint64, ttlMillis int64) []byte {
	return EncodeCommand(Command{Op: op, Lease: id, Renew: renew, TTLMillis: ttlMillis})
}

func putLease(key, value string, id uint64) []byte {
	return EncodeCommand(Command{Op: OpPut, Key: key, Value: value, Lease: id})
}

// recorder collects a Store's hook calls.
type recorder struct {
	events  []Event
	renewed []LeaseInfo
	ended   []uint64
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Change:       func(e Event) { r.events = append(r.events, e) },
		LeaseRenewed: func(l LeaseInfo) { r.renewed = append(r.renewed, l) },
		LeaseEnded:   func(id uint64) { r.ended = append(r.ended, id) },
	}
}

func TestLeaseLifecycle(t *testing.T) {
	s := New(Options{})
	var rec recorder
	s.SetHooks(rec.hooks())

	res := s.Apply(1, leaseCmd(OpLeaseGrant, 0, 0, 5000))
	require.NoError(t, res.Err)
	require.Equal(t, &LeaseInfo{ID: 1, TTLMillis: 5000, Renew: 1}, res.Lease)
	require.NoError(t, s.Apply(2, putLease("a", "1", 1)).Err)
	require.NoError(t, s.Apply(3, putLease("b", "2", 1)).Err)
	require.NoError(t, s.Apply(4, enc(OpPut, "c", "3")).Err)
	assert.Equal(t, ErrLeaseNotFound, s.Apply(5, putLease("d", "4", 99)).Err, "a put on an unknown lease")
	_, ok := s.Get("d")
	assert.False(t, ok, "a refused put changes nothing")

	res = s.Apply(6, leaseCmd(OpLeaseKeepAlive, 1, 0, 0))
	require.NoError(t, res.Err)
	assert.Equal(t, uint64(6), res.Lease.Renew)
	// An expiry decided before the keep-alive applied is void: the
	// keep-alive was acknowledged.
	res = s.Apply(7, leaseCmd(OpLeaseExpire, 1, 1, 0))
	require.NoError(t, res.Err)
	assert.False(t, res.Found)
	_, ok = s.Get("a")
	assert.True(t, ok, "a stale expiry deleted a key")

	// A put without ?lease= detaches the key (etcd's rule).
	require.NoError(t, s.Apply(8, enc(OpPut, "b", "kept")).Err)
	keys, ok := s.LeaseKeys(1)
	require.True(t, ok)
	assert.Equal(t, []string{"a"}, keys)

	res = s.Apply(9, leaseCmd(OpLeaseExpire, 1, 6, 0))
	require.NoError(t, res.Err)
	assert.True(t, res.Found)
	assert.Equal(t, 1, res.Deleted)
	_, ok = s.Get("a")
	assert.False(t, ok, "the expired lease's key is still there")
	for _, k := range []string{"b", "c"} {
		_, ok = s.Get(k)
		assert.True(t, ok, k)
	}
	assert.Empty(t, s.Leases())
	assert.Equal(t, ErrLeaseNotFound, s.Apply(10, leaseCmd(OpLeaseKeepAlive, 1, 0, 0)).Err)

	assert.Equal(t, []Event{
		{Index: 2, Type: api.EventPut, Key: "a", Value: "1", Lease: 1},
		{Index: 3, Type: api.EventPut, Key: "b", Value: "2", Lease: 1},
		{Index: 4, Type: api.EventPut, Key: "c", Value: "3"},
		{Index: 8, Type: api.EventPut, Key: "b", Value: "kept"},
		{Index: 9, Type: api.EventExpire, Key: "a"},
	}, rec.events)
	assert.Equal(t, []LeaseInfo{{1, 5000, 1}, {1, 5000, 6}}, rec.renewed)
	assert.Equal(t, []uint64{1}, rec.ended)
}

func TestLeaseRevokeAndBadCommands(t *testing.T) {
	s := New(Options{})
	assert.Equal(t, ErrBadTTL, s.Apply(1, leaseCmd(OpLeaseGrant, 0, 0, 10)).Err)
	assert.Equal(t, ErrBadTTL, s.Apply(2, leaseCmd(OpLeaseGrant, 0, 0, int64(MaxLeaseTTL/1e6)+1)).Err)
	require.NoError(t, s.Apply(3, leaseCmd(OpLeaseGrant, 0, 0, 1000)).Err)
	require.NoError(t, s.Apply(4, putLease("x/1", "v", 3)).Err)
	require.NoError(t, s.Apply(5, putLease("x/2", "v", 3)).Err)
	assert.Equal(t, ErrBadCommand, s.Apply(6, EncodeCommand(Command{Op: OpAppend, Key: "x/1", Value: "v", Lease: 3})).Err)
	assert.Equal(t, ErrBadCommand, s.Apply(7, EncodeCommand(Command{Op: OpLeaseRevoke, Lease: 3, Renew: 3})).Err)
	// Deleting a leased key detaches it.
	require.NoError(t, s.Apply(8, enc(OpDelete, "x/2", "")).Err)
	res := s.Apply(9, leaseCmd(OpLeaseRevoke, 3, 0, 0))
	require.NoError(t, res.Err)
	assert.Equal(t, 1, res.Deleted)
	assert.Equal(t, 0, s.Len())
}

func TestLeaseSnapshotRoundTripAndOldSnapshots(t *testing.T) {
	s := New(Options{})
	before, err := s.Snapshot()
	require.NoError(t, err)
	assert.NotContains(t, string(before), "Leases", "a state without leases encodes as before leases existed")

	s.Apply(1, leaseCmd(OpLeaseGrant, 0, 0, 3000))
	s.Apply(2, putLease("k", "v", 1))
	s.Apply(3, EncodeCommand(Command{Op: OpLeaseKeepAlive, Lease: 1, ClientID: "c", Seq: 1}))
	data, err := s.Snapshot()
	require.NoError(t, err)
	assert.Contains(t, string(data), `"Leases":{"1":{"TTL":3000,"Renew":3,"Keys":["k"]}}`)

	r := New(Options{})
	require.NoError(t, r.Restore(data))
	again, err := r.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, string(data), string(again))
	// The session remembers the keep-alive's answer.
	res := r.Apply(4, EncodeCommand(Command{Op: OpLeaseKeepAlive, Lease: 1, ClientID: "c", Seq: 1}))
	assert.Equal(t, &LeaseInfo{ID: 1, TTLMillis: 3000, Renew: 3}, res.Lease)
	// The restored lease still owns its key.
	require.NoError(t, r.Apply(5, leaseCmd(OpLeaseRevoke, 1, 0, 0)).Err)
	assert.Equal(t, 0, r.Len())

	// A snapshot of a version before leases loads, with none.
	old := New(Options{})
	require.NoError(t, old.Restore([]byte(`{"Contents":{"a":"b"},"Sessions":{},"AppliedIndex":4}`)))
	assert.Empty(t, old.Leases())

	// Damage is refused loudly.
	for name, bad := range map[string]string{
		"key not in contents": `{"Contents":{},"Sessions":{},"Leases":{"1":{"TTL":3000,"Renew":1,"Keys":["zz"]}},"AppliedIndex":4}`,
		"renew past applied":  `{"Contents":{},"Sessions":{},"Leases":{"1":{"TTL":3000,"Renew":9,"Keys":[]}},"AppliedIndex":4}`,
		"bad ttl":             `{"Contents":{},"Sessions":{},"Leases":{"1":{"TTL":1,"Renew":1,"Keys":[]}},"AppliedIndex":4}`,
		"bad id":              `{"Contents":{},"Sessions":{},"Leases":{"01":{"TTL":3000,"Renew":1,"Keys":[]}},"AppliedIndex":4}`,
	} {
		assert.Error(t, New(Options{}).Restore([]byte(bad)), name)
	}
}

func TestTxnAndPrefixDeleteEvents(t *testing.T) {
	s := New(Options{})
	var rec recorder
	s.SetHooks(rec.hooks())
	s.Apply(1, enc(OpPut, "p/a", "1"))
	s.Apply(2, txnCmd(api.TxnRequest{Then: []api.TxnOp{{Op: api.OpAppend, Key: "p/a", Value: "2"}, {Op: api.OpPut, Key: "p/b", Value: "3"}}}))
	s.Apply(3, EncodeCommand(Command{Op: OpDelete, Key: "p/", Prefix: true}))
	assert.Equal(t, []Event{
		{Index: 1, Type: api.EventPut, Key: "p/a", Value: "1"},
		{Index: 2, Type: api.EventAppend, Key: "p/a", Value: "12"},
		{Index: 2, Type: api.EventPut, Key: "p/b", Value: "3"},
		{Index: 3, Type: api.EventDelete, Key: "p/a"},
		{Index: 3, Type: api.EventDelete, Key: "p/b"},
	}, rec.events)
}
