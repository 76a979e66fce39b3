package kv

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// naiveRange is Range by brute force: every key, filtered, sorted.
func naiveRange(m map[string]string, r RangeRequest) []string {
	var keys []string
	for k := range m {
		in := (r.Prefix && strings.HasPrefix(k, r.Start)) || (!r.Prefix && k >= r.Start && (r.End == "" || k < r.End))
		if in && (!r.HasAfter || k > r.After) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if r.Limit > 0 && len(keys) > r.Limit {
		keys = keys[:r.Limit]
	}
	return keys
}

// TestIndexMatchesTheMap: under random puts, appends, deletes, deletes by
// prefix, transactions and restores, the ordered index holds exactly the
// map's keys in order, with its invariants, and Range lists what a brute
// force filter of the map lists. Small chunks would hide splits: the key
// space is large enough to split and empty chunks many times.
func TestIndexMatchesTheMap(t *testing.T) {
	for seed := range int64(5) {
		rng := rand.New(rand.NewSource(seed))
		s := New(Options{})
		key := func() string { return fmt.Sprintf("%c/%04d", 'a'+rng.Intn(3), rng.Intn(2000)) }
		for i := uint64(1); i <= 6000; i++ {
			switch r := rng.Intn(100); {
			case r < 55:
				s.Apply(i, enc(OpPut, key(), "v"))
			case r < 65:
				s.Apply(i, enc(OpAppend, key(), "+"))
			case r < 88:
				s.Apply(i, enc(OpDelete, key(), ""))
			case r < 89:
				s.Apply(i, EncodeCommand(Command{Op: OpDelete, Key: key()[:4], Prefix: true}))
			case r < 98:
				tx := api.TxnRequest{Then: []api.TxnOp{{Op: api.OpPut, Key: key(), Value: "t"}, {Op: api.OpDelete, Key: key()}}}
				s.Apply(i, EncodeCommand(Command{Op: OpTxn, Txn: &tx}))
			default:
				snap, err := s.Snapshot()
				require.NoError(t, err)
				r := New(Options{})
				require.NoError(t, r.Restore(snap))
				s = r
				s.Apply(i, enc(OpPut, key(), "after restore"))
			}
			if i%200 != 0 {
				continue
			}
			require.Equal(t, slices.Sorted(maps.Keys(s.table.contents())), s.table.keys(), "seed %d index %d", seed, i)
			s.table.check(t)
			for range 20 {
				req := RangeRequest{Start: key()[:rng.Intn(7)], Limit: rng.Intn(50), KeysOnly: true}
				switch rng.Intn(3) {
				case 0:
					req.Prefix = true
				case 1:
					req.End = key()
				}
				if rng.Intn(2) == 0 {
					req.After, req.HasAfter = key(), true
				}
				got := s.Range(req).Keys
				require.Equal(t, naiveRange(s.table.contents(), req), got, "seed %d index %d %+v", seed, i, req)
			}
		}
	}
}
