package kv

import (
	"bytes"
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
	t.ascend("", func(k string) bool {
		m[k], _, _ = t.get(k)
		return true
	})
	return m
}

// metas returns the table's keys and metadata as a map.
func (t *table) metas() map[string]Meta {
	m := make(map[string]Meta, t.len())
	t.ascend("", func(k string) bool {
		m[k], _ = t.meta(k)
		return true
	})
	return m
}

// keys returns the table's keys in the ordered index's order.
func (t *table) keys() []string {
	var keys []string
	t.ascend("", func(k string) bool {
		keys = append(keys, k)
		return true
	})
	return keys
}

// check verifies the table's invariants (see table).
func (t *table) check(tb testing.TB) {
	tb.Helper()
	live := map[uint32]bool{}
	for slot, r := range t.refs {
		if r != noRecord {
			live[uint32(slot)] = true
		}
	}
	require.Equal(tb, len(t.refs), len(live)+len(t.freeSlots), "free slots")
	require.LessOrEqual(tb, 2*len(live), len(t.hash), "the hash index is at most half full")
	hashed := map[uint32]bool{}
	for _, e := range t.hash {
		if e.slot1 != 0 {
			slot := e.slot1 - 1
			require.True(tb, live[slot] && !hashed[slot], "slot %d in the hash index", slot)
			hashed[slot] = true
			require.Equal(tb, t.hashOf(string(t.key(slot))), e.hash)
			got, ok := t.find(string(t.key(slot)))
			require.True(tb, ok && got == slot, "slot %d is not found by its key", slot)
		}
	}
	require.Len(tb, hashed, len(live))
	ordered := map[uint32]bool{}
	var prev []byte
	for _, c := range t.order {
		require.NotEmpty(tb, c)
		require.LessOrEqual(tb, len(c), maxChunk)
		for _, slot := range c {
			require.True(tb, live[slot] && !ordered[slot], "slot %d in the ordered index", slot)
			ordered[slot] = true
			k := t.key(slot)
			require.True(tb, prev == nil || bytes.Compare(prev, k) < 0, "keys %q, %q out of order", prev, k)
			prev = k
		}
	}
	require.Len(tb, ordered, len(live))
	bytesLive := make([]int, len(t.slabs.Items))
	for slot := range live {
		r := t.refs[slot]
		require.NotNil(tb, t.slabs.Items[r.slab].b, "slot %d in a dropped slab", slot)
		got, _, _, _, end := decodeRecord(t.slabs.Items[r.slab].b, int(r.off))
		require.Equal(tb, slot, got, "slot %d's record names another slot", slot)
		bytesLive[r.slab] += end - int(r.off)
	}
	dropped := 0
	for i, s := range t.slabs.Items {
		if s.b == nil {
			require.Zero(tb, bytesLive[i], "slab %d was dropped with live records", i)
			dropped++
			continue
		}
		unused := 0
		if uint32(i) == t.cur {
			unused = cap(s.b) - len(s.b) // not retired yet
		}
		require.Equal(tb, cap(s.b)-bytesLive[i]-unused, s.dead, "slab %d's dead bytes", i)
		if uint32(i) != t.cur {
			require.Less(tb, s.dead*4, cap(s.b), "slab %d is a quarter dead and was not compacted", i)
		}
	}
	require.Equal(tb, t.slabs.Freed(), dropped, "dropped slabs are free")
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
				require.Equal(t, slices.Sorted(maps.Keys(want)), tab.keys())
			}
		}
		got := map[string]string{}
		var keys []string
		for i := range frozen.refs {
			k, v, _ := frozen.at(i)
			got[string(k)] = string(v)
			keys = append(keys, string(k))
		}
		require.True(t, slices.IsSorted(keys), "the frozen copy is in key order")
		require.Equal(t, frozenWant, got, "seed %d: the frozen copy", seed)
	}
}

// TestTableFirstRecordLarge: a table whose first record has a slab of its
// own (once retired twice, as if it were the current slab: a node
// panicked on compacting it).
func TestTableFirstRecordLarge(t *testing.T) {
	tab := newTable()
	tab.set("big", strings.Repeat("b", slabSize/2), Meta{CreateIndex: 1, ModIndex: 1, Version: 1})
	for i := range 200 {
		tab.set(fmt.Sprintf("k%d", i%50), "v", Meta{CreateIndex: 1, ModIndex: uint64(i + 2), Version: 1})
		tab.check(t)
	}
	tab.set("big", "small now", Meta{CreateIndex: 1, ModIndex: 300, Version: 2})
	tab.check(t)
	v, _, ok := tab.get("big")
	require.True(t, ok)
	require.Equal(t, "small now", v)
}

// TestTableLoad: a table of decoded keys is the table the same sets make.
func TestTableLoad(t *testing.T) {
	keys := []string{"a", "b", "c/1", "c/2"}
	var d decodedKeys
	for i, k := range keys {
		d.add(k, []byte(strings.Repeat("v", i*100)), Meta{CreateIndex: 1, ModIndex: uint64(i + 1), Version: 1})
	}
	tab := d.table()
	tab.check(t)
	for i, k := range keys {
		v, m, ok := tab.get(k)
		require.True(t, ok)
		require.Equal(t, strings.Repeat("v", i*100), v)
		require.Equal(t, uint64(i+1), m.ModIndex)
	}
}
