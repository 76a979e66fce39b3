package linearizability

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"raftkv/src/api"
)

func u(n uint64) *uint64 { return &n }

// seq makes a sequential history: op i runs in [10i, 10i+5].
func seq(ops ...Op) []Op {
	for i := range ops {
		ops[i].Call, ops[i].Return = int64(10*i), int64(10*i+5)
		if !ops[i].Unknown {
			ops[i].Ok = true
		}
	}
	return ops
}

func TestKVModel(t *testing.T) {
	put := func(k, v string, idx uint64) Op { return Op{Kind: api.OpPut, Key: k, Value: v, Index: idx} }
	get := func(k, v string, mod uint64) Op {
		return Op{Kind: api.OpGet, Key: k, Output: v, Found: true, ModIndex: mod}
	}
	absent := func(k string) Op { return Op{Kind: api.OpGet, Key: k} }
	cas := func(k, v string, n, idx uint64) Op {
		return Op{Kind: api.OpPut, Key: k, Value: v, CAS: u(n), Index: idx}
	}
	conflict := func(k string, n uint64, found bool, mod uint64) Op {
		return Op{Kind: api.OpPut, Key: k, Value: "x", CAS: u(n), Conflict: true, Found: found, ModIndex: mod}
	}
	list := func(p string, kvs ...api.ValueBody) Op { return Op{Kind: KindList, Prefix: p, List: kvs} }
	kv := func(k, v string, mod uint64) api.ValueBody {
		return api.ValueBody{Key: k, Value: v, KeyMeta: api.KeyMeta{ModIndex: mod}}
	}
	txn := func(req api.TxnRequest, out api.TxnBody) Op { return Op{Kind: KindTxn, Txn: &req, TxnOut: &out} }
	transfer := api.TxnRequest{
		Compare: []api.TxnCompare{{Key: "a", Target: api.TargetValue, Value: "1"}},
		Then:    []api.TxnOp{{Op: api.OpPut, Key: "a", Value: "0"}, {Op: api.OpPut, Key: "b", Value: "1"}},
	}
	tests := []struct {
		name string
		ops  []Op
		want bool
	}{
		{"cas 0 then cas with its index", seq(cas("k", "a", 0, 3), get("k", "a", 3), cas("k", "b", 3, 4), get("k", "b", 4)), true},
		{"two cas 0 both succeed", seq(cas("k", "a", 0, 3), cas("k", "b", 0, 4)), false},
		{"cas with a stale index succeeds", seq(put("k", "a", 3), put("k", "b", 4), cas("k", "c", 3, 5)), false},
		{"conflict reporting the index", seq(put("k", "a", 3), conflict("k", 0, true, 3), conflict("k", 2, true, 3)), true},
		{"conflict on an absent key", seq(conflict("k", 5, false, 0)), true},
		{"conflict where the compare held", seq(put("k", "a", 3), conflict("k", 3, true, 3)), false},
		{"get reports a wrong mod_index", seq(put("k", "a", 3), get("k", "a", 4)), false},
		{"unknown write, then a read teaches the index", seq(Op{Kind: api.OpPut, Key: "k", Value: "a", Unknown: true}, get("k", "a", 9), cas("k", "b", 9, 10)), true},
		{"unknown cas on an unknown index: either way", seq(
			Op{Kind: api.OpPut, Key: "k", Value: "a", Unknown: true},
			Op{Kind: api.OpPut, Key: "k", Value: "b", CAS: u(7), Unknown: true},
			get("k", "a", 0)), true},
		{"delete cas", seq(put("k", "a", 3), Op{Kind: api.OpDelete, Key: "k", CAS: u(3), Index: 4}, absent("k")), true},
		{"list sees every key under the prefix", seq(put("d/a", "1", 1), put("d/b", "2", 2), put("e", "3", 3),
			list("d/", kv("d/a", "1", 1), kv("d/b", "2", 2))), true},
		{"list misses a key", seq(put("d/a", "1", 1), put("d/b", "2", 2), list("d/", kv("d/a", "1", 1))), false},
		{"list of an empty prefix", seq(list("x/")), true},
		{"delete prefix", seq(put("d/a", "1", 1), put("d/b", "2", 2), Op{Kind: api.OpDelete, Key: "d/", IsPrefix: true, Index: 3}, list("d/"), absent("d/a")), true},
		{"transaction, all at once", seq(put("a", "1", 1), put("b", "0", 2), txn(transfer, api.TxnBody{Succeeded: true, Index: 3, Results: make([]api.TxnOpResult, 2)}),
			get("a", "0", 3), get("b", "1", 3)), true},
		{"transaction applied half", seq(put("a", "1", 1), put("b", "0", 2), txn(transfer, api.TxnBody{Succeeded: true, Index: 3, Results: make([]api.TxnOpResult, 2)}),
			get("a", "0", 3), get("b", "0", 2)), false},
		{"transaction on the wrong branch", seq(put("a", "2", 1), txn(transfer, api.TxnBody{Succeeded: true, Index: 3, Results: make([]api.TxnOpResult, 2)})), false},
		{"transaction get sees its own writes", seq(txn(api.TxnRequest{Then: []api.TxnOp{{Op: api.OpAppend, Key: "q", Value: "x"}, {Op: api.OpGet, Key: "q"}}},
			api.TxnBody{Succeeded: true, Index: 5, Results: []api.TxnOpResult{{}, {Found: true, Value: "x", KeyMeta: &api.KeyMeta{ModIndex: 5}}}})), true},
		{"transaction get reads wrong", seq(put("q", "y", 1), txn(api.TxnRequest{Then: []api.TxnOp{{Op: api.OpGet, Key: "q"}}},
			api.TxnBody{Succeeded: true, Index: 5, Results: []api.TxnOpResult{{Found: false}}})), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check(tt.ops, 0)
			assert.Equal(t, tt.want, res.Linearizable, "%s", res)
		})
	}
	// Concurrent: two overlapping cas 0 on one key cannot both succeed,
	// whatever the order.
	a := Op{ClientID: 0, Kind: api.OpPut, Key: "k", Value: "a", CAS: u(0), Index: 3, Ok: true, Call: 0, Return: 10}
	b := Op{ClientID: 1, Kind: api.OpPut, Key: "k", Value: "b", CAS: u(0), Index: 4, Ok: true, Call: 1, Return: 9}
	assert.False(t, Check([]Op{a, b}, 0).Linearizable)
	b.Conflict, b.Found, b.ModIndex, b.Index = true, true, 3, 0
	assert.True(t, Check([]Op{a, b}, 0).Linearizable)
}
