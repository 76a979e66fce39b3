package kv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

func casCmd(op Op, key, value string, cas uint64) []byte {
	return EncodeCommand(Command{Op: op, Key: key, Value: value, CAS: &cas})
}

func txnCmd(t api.TxnRequest) []byte { return EncodeCommand(Command{Op: OpTxn, Txn: &t}) }

func meta(c, m, v uint64) Meta { return Meta{CreateIndex: c, ModIndex: m, Version: v} }

func TestMetadata(t *testing.T) {
	s := New(Options{})
	check := func(key string, want Meta, wantFound bool) {
		t.Helper()
		_, m, found, _ := s.Entry(key)
		assert.Equal(t, wantFound, found, key)
		assert.Equal(t, want, m, key)
	}
	s.Apply(1, enc(OpPut, "a", "1"))
	check("a", meta(1, 1, 1), true)
	s.Apply(2, enc(OpAppend, "a", "2"))
	check("a", meta(1, 2, 2), true)
	s.ApplyNoop(3)
	s.Apply(4, enc(OpPut, "a", "3"))
	check("a", meta(1, 4, 3), true)
	s.Apply(5, enc(OpAppend, "b", "x")) // append creates
	check("b", meta(5, 5, 1), true)
	s.Apply(6, enc(OpDelete, "a", ""))
	check("a", Meta{}, false)
	s.Apply(7, enc(OpPut, "a", "again")) // a new life: create_index and version restart
	check("a", meta(7, 7, 1), true)
	s.Apply(8, enc(OpGet, "a", "")) // reads change nothing
	check("a", meta(7, 7, 1), true)
	s.Apply(9, enc(OpAppend, "b", strings.Repeat("x", MaxValueBytes))) // refused: unchanged
	check("b", meta(5, 5, 1), true)
}

func TestCompareAndSwap(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  map[string]string
	}{
		{"cas 0 creates an absent key", []step{
			{casCmd(OpPut, "k", "v", 0), Result{Index: 1}},
		}, map[string]string{"k": "v"}},
		{"cas 0 on an existing key fails with its metadata", []step{
			{enc(OpPut, "k", "v"), Result{Index: 1}},
			{casCmd(OpPut, "k", "w", 0), Result{Index: 2, Found: true, Meta: meta(1, 1, 1), Err: ErrCASFailed}},
		}, map[string]string{"k": "v"}},
		{"cas with the mod_index writes", []step{
			{enc(OpPut, "k", "v"), Result{Index: 1}},
			{enc(OpAppend, "k", "+"), Result{Index: 2, Found: true}},
			{casCmd(OpPut, "k", "w", 2), Result{Index: 3, Found: true}},
		}, map[string]string{"k": "w"}},
		{"cas with an old mod_index fails", []step{
			{enc(OpPut, "k", "v"), Result{Index: 1}},
			{enc(OpPut, "k", "v2"), Result{Index: 2, Found: true}},
			{casCmd(OpPut, "k", "w", 1), Result{Index: 3, Found: true, Meta: meta(1, 2, 2), Err: ErrCASFailed}},
		}, map[string]string{"k": "v2"}},
		{"cas N on an absent key fails", []step{
			{casCmd(OpPut, "k", "w", 7), Result{Index: 1, Err: ErrCASFailed}},
		}, map[string]string{}},
		{"delete cas with the mod_index deletes", []step{
			{enc(OpPut, "k", "v"), Result{Index: 1}},
			{casCmd(OpDelete, "k", "", 1), Result{Index: 2, Found: true}},
		}, map[string]string{}},
		{"delete cas with another mod_index keeps the key", []step{
			{enc(OpPut, "k", "v"), Result{Index: 1}},
			{casCmd(OpDelete, "k", "", 5), Result{Index: 2, Found: true, Meta: meta(1, 1, 1), Err: ErrCASFailed}},
		}, map[string]string{"k": "v"}},
		{"cas on append or get is a bad command", []step{
			{casCmd(OpAppend, "k", "v", 0), Result{Index: 1, Err: ErrBadCommand}},
			{casCmd(OpGet, "k", "", 0), Result{Index: 2, Err: ErrBadCommand}},
		}, map[string]string{}},
		{"a cas put too large fails as too large", []step{
			{casCmd(OpPut, "k", strings.Repeat("x", MaxValueBytes+1), 0), Result{Index: 1, Err: ErrTooLarge}},
		}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			run(t, s, tt.steps)
			assert.Equal(t, tt.want, s.table.contents())
			assert.Len(t, s.table.metas(), len(s.table.contents()))
		})
	}
}

func TestDeletePrefix(t *testing.T) {
	s := New(Options{})
	for i, k := range []string{"a/1", "a/2", "a/b/3", "ab", "b"} {
		s.Apply(uint64(i+1), enc(OpPut, k, "v"))
	}
	res := s.Apply(6, EncodeCommand(Command{Op: OpDelete, Key: "a/", Prefix: true}))
	assert.Equal(t, Result{Index: 6, Found: true, Deleted: 3}, res)
	assert.Equal(t, map[string]string{"ab": "v", "b": "v"}, s.table.contents())
	assert.Len(t, s.table.metas(), 2)
	assert.Equal(t, Result{Index: 7}, s.Apply(7, EncodeCommand(Command{Op: OpDelete, Key: "zz", Prefix: true})))
	// An empty prefix (every key) is not a key: refused, like any empty key.
	assert.Equal(t, Result{Index: 8, Err: ErrBadKey}, s.Apply(8, EncodeCommand(Command{Op: OpDelete, Prefix: true})))
	assert.Equal(t, Result{Index: 9, Err: ErrBadCommand}, s.Apply(9, EncodeCommand(Command{Op: OpPut, Key: "a", Prefix: true})))
	assert.Len(t, s.table.contents(), 2)
}

func TestTxn(t *testing.T) {
	yes := func(c api.TxnCompare) api.TxnRequest {
		return api.TxnRequest{Compare: []api.TxnCompare{c},
			Then: []api.TxnOp{{Op: api.OpPut, Key: "r", Value: "then"}},
			Else: []api.TxnOp{{Op: api.OpPut, Key: "r", Value: "else"}}}
	}
	// The state every compare case starts from: a = "v" at index 1, then
	// appended at 2 (create 1, mod 2, version 2); b absent.
	compares := []struct {
		c    api.TxnCompare
		then bool
	}{
		{api.TxnCompare{Key: "a", Target: "value", Value: "v+"}, true},
		{api.TxnCompare{Key: "a", Target: "value", Value: "v"}, false},
		{api.TxnCompare{Key: "a", Target: "value", Op: "!=", Value: "v"}, true},
		{api.TxnCompare{Key: "a", Target: "value", Op: ">", Value: "v"}, true},
		{api.TxnCompare{Key: "a", Target: "value", Op: "<", Value: "v"}, false},
		{api.TxnCompare{Key: "b", Target: "value", Op: "!=", Value: "x"}, false}, // absent: false whatever op
		{api.TxnCompare{Key: "a", Target: "mod_index", Number: 2}, true},
		{api.TxnCompare{Key: "a", Target: "mod_index", Number: 1}, false},
		{api.TxnCompare{Key: "a", Target: "mod_index", Op: "<", Number: 3}, true},
		{api.TxnCompare{Key: "a", Target: "create_index", Number: 1}, true},
		{api.TxnCompare{Key: "a", Target: "create_index", Op: ">", Number: 1}, false},
		{api.TxnCompare{Key: "a", Target: "version", Number: 2}, true},
		{api.TxnCompare{Key: "a", Target: "version", Op: "!=", Number: 2}, false},
		{api.TxnCompare{Key: "b", Target: "version", Number: 0}, true},
		{api.TxnCompare{Key: "b", Target: "mod_index", Number: 0}, true},
		{api.TxnCompare{Key: "a", Target: "exists", Exists: true}, true},
		{api.TxnCompare{Key: "b", Target: "exists", Exists: true}, false},
		{api.TxnCompare{Key: "b", Target: "exists", Exists: false}, true},
		{api.TxnCompare{Key: "a", Target: "exists", Op: "!=", Exists: true}, false},
	}
	for _, tc := range compares {
		t.Run("compare "+tc.c.Key+" "+tc.c.Target+" "+tc.c.Op, func(t *testing.T) {
			s := New(Options{})
			s.Apply(1, enc(OpPut, "a", "v"))
			s.Apply(2, enc(OpAppend, "a", "+"))
			res := s.Apply(3, txnCmd(yes(tc.c)))
			require.NoError(t, res.Err)
			assert.Equal(t, tc.then, res.Txn.Succeeded)
			want := "else"
			if tc.then {
				want = "then"
			}
			assert.Equal(t, want, s.table.contents()["r"])
		})
	}

	t.Run("operations run in order, at one index", func(t *testing.T) {
		s := New(Options{})
		s.Apply(1, enc(OpPut, "x", "old"))
		res := s.Apply(2, txnCmd(api.TxnRequest{
			Compare: []api.TxnCompare{{Key: "x", Target: "value", Value: "old"}, {Key: "y", Target: "exists"}},
			Then: []api.TxnOp{
				{Op: api.OpPut, Key: "y", Value: "1"},
				{Op: api.OpAppend, Key: "y", Value: "2"},
				{Op: api.OpGet, Key: "y"},
				{Op: api.OpDelete, Key: "x"},
				{Op: api.OpGet, Key: "x"},
			},
		}))
		require.NoError(t, res.Err)
		m := meta(2, 2, 2)
		assert.Equal(t, &api.TxnBody{Succeeded: true, Index: 2, Results: []api.TxnOpResult{
			{Op: api.OpPut, Key: "y"},
			{Op: api.OpAppend, Key: "y", Found: true},
			{Op: api.OpGet, Key: "y", Found: true, Value: "12", KeyMeta: &m},
			{Op: api.OpDelete, Key: "x", Found: true},
			{Op: api.OpGet, Key: "x"},
		}}, res.Txn)
		assert.Equal(t, map[string]string{"y": "12"}, s.table.contents())
		assert.Equal(t, map[string]Meta{"y": m}, s.table.metas())
	})

	t.Run("one failing operation applies nothing", func(t *testing.T) {
		s := New(Options{})
		s.Apply(1, enc(OpPut, "big", strings.Repeat("x", MaxValueBytes-1)))
		res := s.Apply(2, txnCmd(api.TxnRequest{Then: []api.TxnOp{
			{Op: api.OpPut, Key: "first", Value: "1"},
			{Op: api.OpAppend, Key: "big", Value: "yy"},
		}}))
		assert.Equal(t, Result{Index: 2, Err: ErrTooLarge}, res)
		assert.NotContains(t, s.table.contents(), "first")
		assert.Equal(t, meta(1, 1, 1), s.table.metas()["big"])
	})

	bad := []struct {
		name string
		txn  api.TxnRequest
	}{
		{"unknown target", api.TxnRequest{Compare: []api.TxnCompare{{Key: "a", Target: "lease"}}}},
		{"unknown op", api.TxnRequest{Compare: []api.TxnCompare{{Key: "a", Target: "value", Op: "~"}}}},
		{"exists with <", api.TxnRequest{Compare: []api.TxnCompare{{Key: "a", Target: "exists", Op: "<"}}}},
		{"number on value", api.TxnRequest{Compare: []api.TxnCompare{{Key: "a", Target: "value", Number: 3}}}},
		{"value on version", api.TxnRequest{Compare: []api.TxnCompare{{Key: "a", Target: "version", Value: "3"}}}},
		{"empty key", api.TxnRequest{Then: []api.TxnOp{{Op: api.OpPut, Key: "", Value: "v"}}}},
		{"unknown operation", api.TxnRequest{Then: []api.TxnOp{{Op: "cas", Key: "a"}}}},
		{"get with a value", api.TxnRequest{Else: []api.TxnOp{{Op: api.OpGet, Key: "a", Value: "v"}}}},
		{"too many", api.TxnRequest{Then: make([]api.TxnOp, api.MaxTxnOps+1)}},
	}
	for _, tc := range bad {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			require.Error(t, ValidateTxn(&tc.txn))
			s := New(Options{})
			assert.Equal(t, Result{Index: 1, Err: ErrBadTxn}, s.Apply(1, txnCmd(tc.txn)))
		})
	}
	t.Run("refused: a txn entry with a key", func(t *testing.T) {
		s := New(Options{})
		tx := api.TxnRequest{}
		assert.Equal(t, ErrBadTxn, s.Apply(1, EncodeCommand(Command{Op: OpTxn, Key: "k", Txn: &tx})).Err)
		assert.Equal(t, ErrBadTxn, s.Apply(2, EncodeCommand(Command{Op: OpTxn})).Err)
		assert.Equal(t, ErrBadCommand, s.Apply(3, EncodeCommand(Command{Op: OpPut, Key: "k", Txn: &tx})).Err)
	})
}

// TestExactlyOnceCASAndTxn: a retried compare-and-swap or transaction gets
// its first result, even though the state it compared has changed since.
func TestExactlyOnceCASAndTxn(t *testing.T) {
	s := New(Options{})
	zero := uint64(0)
	cas := EncodeCommand(Command{Op: OpPut, Key: "lock", Value: "me", CAS: &zero, ClientID: "c", Seq: 1})
	assert.Equal(t, Result{Index: 1}, s.Apply(1, cas))
	// The retry would now fail its compare: it must not, nor apply again.
	assert.Equal(t, Result{Index: 1}, s.Apply(2, cas))
	tx := api.TxnRequest{Compare: []api.TxnCompare{{Key: "n", Target: "exists", Exists: false}},
		Then: []api.TxnOp{{Op: api.OpAppend, Key: "n", Value: "1"}, {Op: api.OpGet, Key: "n"}},
		Else: []api.TxnOp{{Op: api.OpAppend, Key: "n", Value: "X"}}}
	txn := EncodeCommand(Command{Op: OpTxn, Txn: &tx, ClientID: "c", Seq: 2})
	first := s.Apply(3, txn)
	require.NoError(t, first.Err)
	require.True(t, first.Txn.Succeeded)
	again := s.Apply(4, txn)
	assert.Equal(t, first, again)
	assert.Equal(t, "1", s.table.contents()["n"])
	// And across a snapshot: the remembered results are in it.
	snap, err := s.Snapshot()
	require.NoError(t, err)
	r := New(Options{})
	require.NoError(t, r.Restore(snap))
	assert.Equal(t, first, r.Apply(5, txn))
	failed := EncodeCommand(Command{Op: OpPut, Key: "lock", Value: "you", CAS: &zero, ClientID: "d", Seq: 1})
	f1 := r.Apply(6, failed)
	assert.Equal(t, ErrCASFailed, f1.Err)
	snap, err = r.Snapshot()
	require.NoError(t, err)
	r2 := New(Options{})
	require.NoError(t, r2.Restore(snap))
	assert.Equal(t, f1, r2.Apply(7, failed))
	again2, err := r2.Snapshot()
	require.NoError(t, err)
	assert.Contains(t, string(again2), `"Meta":[1,1,1]`)
}

func TestRange(t *testing.T) {
	s := New(Options{})
	keys := []string{"a", "a/1", "a/2", "a/b/1", "a/b/2", "a/c", "b", "c/x"}
	for i, k := range keys {
		s.Apply(uint64(i+1), enc(OpPut, k, "v"+k))
	}
	names := func(r RangeResult) []string {
		if r.Keys != nil {
			return r.Keys
		}
		var out []string
		for _, e := range r.Entries {
			out = append(out, e.Key)
		}
		return out
	}
	tests := []struct {
		name string
		req  RangeRequest
		want []string
		more bool
	}{
		{"every key", RangeRequest{Prefix: true}, keys, false},
		{"a prefix", RangeRequest{Start: "a/", Prefix: true}, []string{"a/1", "a/2", "a/b/1", "a/b/2", "a/c"}, false},
		{"no match", RangeRequest{Start: "zz", Prefix: true}, nil, false},
		{"half-open range", RangeRequest{Start: "a/1", End: "a/c"}, []string{"a/1", "a/2", "a/b/1", "a/b/2"}, false},
		{"range to the end", RangeRequest{Start: "b"}, []string{"b", "c/x"}, false},
		{"limit", RangeRequest{Prefix: true, Limit: 3}, []string{"a", "a/1", "a/2"}, true},
		{"limit exactly the rest", RangeRequest{Start: "b", Limit: 2}, []string{"b", "c/x"}, false},
		{"continuation", RangeRequest{Prefix: true, Limit: 3, After: "a/2", HasAfter: true}, []string{"a/b/1", "a/b/2", "a/c"}, true},
		{"keys only", RangeRequest{Start: "a/b", Prefix: true, KeysOnly: true}, []string{"a/b/1", "a/b/2"}, false},
		{"separator", RangeRequest{Start: "a/", Prefix: true, KeysOnly: true, Separator: "/"}, []string{"a/1", "a/2", "a/b/", "a/c"}, false},
		{"separator at the top", RangeRequest{Prefix: true, KeysOnly: true, Separator: "/"}, []string{"a", "a/", "b", "c/"}, false},
		{"separator with limit", RangeRequest{Start: "a/", Prefix: true, KeysOnly: true, Separator: "/", Limit: 3}, []string{"a/1", "a/2", "a/b/"}, true},
		{"separator continuation skips the group", RangeRequest{Start: "a/", Prefix: true, KeysOnly: true, Separator: "/", After: "a/b/", HasAfter: true}, []string{"a/c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Range(tt.req)
			assert.Equal(t, tt.want, names(r))
			assert.Equal(t, tt.more, r.More)
			assert.Equal(t, uint64(len(keys)), r.Applied)
			if len(tt.want) > 0 {
				assert.Equal(t, tt.want[len(tt.want)-1], r.Last)
			}
		})
	}
	r := s.Range(RangeRequest{Start: "a/1", End: "a/2"})
	assert.Equal(t, []api.ValueBody{{Key: "a/1", Value: "va/1", KeyMeta: meta(2, 2, 1)}}, r.Entries)
	r = s.Range(RangeRequest{Prefix: true, MaxBytes: 3 * entryOverhead})
	assert.True(t, r.TooLarge)
	assert.Empty(t, r.Entries)
	r = s.Range(RangeRequest{Prefix: true, Limit: 2, MaxBytes: 3 * entryOverhead})
	assert.False(t, r.TooLarge)
	assert.Len(t, r.Entries, 2)
}

func TestRestoreMeta(t *testing.T) {
	t.Run("a snapshot without metadata", func(t *testing.T) {
		s := New(Options{})
		require.NoError(t, s.Restore([]byte(`{"Contents":{"a":"1"},"Sessions":{},"AppliedIndex":40}`)))
		_, m, found, _ := s.Entry("a")
		assert.True(t, found)
		assert.Equal(t, meta(40, 40, 1), m)
		zero := uint64(40)
		assert.NoError(t, s.Apply(41, casCmd(OpPut, "a", "2", zero)).Err)
	})
	for _, tc := range []struct{ name, snap, err string }{
		{"meta of an absent key", `{"Contents":{},"Meta":{"a":[1,1,1]},"AppliedIndex":4}`, "not in Contents"},
		{"a key without meta", `{"Contents":{"a":"1","b":"2"},"Meta":{"a":[1,1,1]},"AppliedIndex":4}`, `"b" has no meta`},
		{"mod after applied", `{"Contents":{"a":"1"},"Meta":{"a":[1,5,1]},"AppliedIndex":4}`, "does not fit"},
		{"create after mod", `{"Contents":{"a":"1"},"Meta":{"a":[3,2,1]},"AppliedIndex":4}`, "does not fit"},
		{"version 0", `{"Contents":{"a":"1"},"Meta":{"a":[1,2,0]},"AppliedIndex":4}`, "does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{})
			s.Apply(1, enc(OpPut, "keep", "me"))
			err := s.Restore([]byte(tc.snap))
			require.ErrorContains(t, err, tc.err)
			v, _, found, _ := s.Entry("keep")
			assert.True(t, found, "a refused snapshot changes nothing")
			assert.Equal(t, "me", v)
		})
	}
}
