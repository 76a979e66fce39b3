package kv

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// contents returns the table's keys and values as a map.
func (t *table) contents() map[string]string {
	m := make(map[string]string, t.len())
	for k := range t.slots {
		m[k], _, _ = t.get(k)
	}
	return m
}

// metas returns the table's keys and metadata as a map.
func (t *table) metas() map[string]Meta {
	m := make(map[string]Meta, t.len())
	for k := range t.slots {
		m[k], _ = t.meta(k)
	}
	return m
}

// check verifies the table's invariants: slots, refs and index agree, and
// every slab's dead count is its size less its live records.
func (t *table) check(tb testing.TB) {
	tb.Helper()
	require.Equal(tb, slices.Sorted(maps.Keys(t.slots)), t.index.all(), "index")
	require.Equal(tb, len(t.refs), len(t.slots)+len(t.freeSlots), "slots")
	live := make([]int, len(t.slabs))
	for k, slot := range t.slots {
		r := t.refs[slot]
		require.NotNil(tb, t.slabs[r.slab].b, "key %q in a dropped slab", k)
		got, _, _, end := decodeRecord(t.slabs[r.slab].b, int(r.off))
		require.Equal(tb, slot, got, "key %q's record names another slot", k)
		live[r.slab] += end - int(r.off)
	}
	free := make(map[uint32]bool)
	for _, i := range t.freeSlabs {
		free[i] = true
	}
	for i, s := range t.slabs {
		if free[uint32(i)] {
			require.Nil(tb, s.b, "a free slab holds records")
			continue
		}
		unused := 0
		if uint32(i) == t.cur {
			unused = cap(s.b) - len(s.b) // not retired yet
		}
		require.Equal(tb, cap(s.b)-live[i]-unused, s.dead, "slab %d's dead bytes", i)
		if uint32(i) != t.cur {
			require.Less(tb, s.dead*4, cap(s.b), "slab %d is a quarter dead and was not compacted", i)
		}
	}
}

// TestTableMatchesAMap: under random sets and deletes of values from empty
// to larger than a quarter slab, the table holds what a map holds, with its
// invariants, and a frozen copy taken midway keeps reading what it froze
// while later writes compact the slabs under it.
func TestTableMatchesAMap(t *testing.T) {
	for seed := range int64(4) {
		rng := rand.New(rand.NewSource(seed))
		tab := newTable()
		want := map[string]string{}
		wantMeta := map[string]Meta{}
		var frozen frozenTable
		var frozenWant map[string]string
		for i := uint64(1); i <= 30000; i++ {
			k := fmt.Sprintf("k%04d", rng.Intn(1500))
			if rng.Intn(4) == 0 {
				_, had := want[k]
				require.Equal(t, had, tab.del(k))
				delete(want, k)
				delete(wantMeta, k)
			} else {
				n := rng.Intn(600)
				if rng.Intn(500) == 0 {
					n = slabSize/4 + rng.Intn(slabSize)
				}
				v := strings.Repeat(string(rune('a'+i%26)), n)
				m := Meta{CreateIndex: i / 2, ModIndex: i, Version: i % 7}
				_, had := want[k]
				require.Equal(t, !had, tab.set(k, v, m))
				want[k], wantMeta[k] = v, m
			}
			if i == 10000 {
				frozen, frozenWant = tab.freeze(), maps.Clone(want)
			}
			if i%2500 == 0 {
				tab.check(t)
				require.Equal(t, want, tab.contents(), "seed %d at %d", seed, i)
				require.Equal(t, wantMeta, tab.metas(), "seed %d at %d", seed, i)
			}
		}
		frozen.sort()
		got := map[string]string{}
		for i, r := range frozen.records {
			v, _ := frozen.at(i)
			got[r.key] = string(v)
		}
		require.Equal(t, frozenWant, got, "seed %d: the frozen copy", seed)
	}
}

// TestTableLoad: a loaded table is the table the same sets make.
func TestTableLoad(t *testing.T) {
	keys := []string{"a", "b", "c/1", "c/2"}
	tab := newTable()
	tab.load(keys, func(i int) ([]byte, Meta) {
		return []byte(strings.Repeat("v", i*100)), Meta{CreateIndex: 1, ModIndex: uint64(i + 1), Version: 1}
	})
	tab.check(t)
	for i, k := range keys {
		v, m, ok := tab.get(k)
		require.True(t, ok)
		require.Equal(t, strings.Repeat("v", i*100), v)
		require.Equal(t, uint64(i+1), m.ModIndex)
	}
}
