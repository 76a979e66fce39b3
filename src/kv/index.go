package kv

import (
	"slices"
	"sort"
)

// keyIndex keeps a Store's keys in order, for Range and deletes by prefix:
// sorted chunks of keys, the chunks in order. Inserting or removing a key
// costs a binary search and a move of at most maxChunk strings (plus, on a
// split or an emptied chunk, a move of the chunk list), so a put of a new
// key stays cheap however many keys there are, and a listing costs
// O(log keys + listed keys) instead of a scan of the whole map.
//
// Invariant: every chunk is non-empty and sorted, every key of chunk i is
// below every key of chunk i+1, and the keys are exactly the map's.
type keyIndex struct {
	chunks [][]string
}

// maxChunk bounds a chunk; a fuller one splits in two.
const maxChunk = 512

// newKeyIndex indexes keys, which must be sorted and distinct.
func newKeyIndex(keys []string) keyIndex {
	var x keyIndex
	for len(keys) > 0 {
		n := min(len(keys), maxChunk/2)
		x.chunks = append(x.chunks, slices.Clip(keys[:n]))
		keys = keys[n:]
	}
	return x
}

// chunkFor returns the chunk where k is or would be: the last one whose
// first key is <= k, or 0.
func (x *keyIndex) chunkFor(k string) int {
	i := sort.Search(len(x.chunks), func(i int) bool { return x.chunks[i][0] > k })
	return max(i-1, 0)
}

// insert adds k (a no-op if present).
func (x *keyIndex) insert(k string) {
	if len(x.chunks) == 0 {
		x.chunks = [][]string{{k}}
		return
	}
	ci := x.chunkFor(k)
	c := x.chunks[ci]
	j, found := slices.BinarySearch(c, k)
	if found {
		return
	}
	c = slices.Insert(c, j, k)
	if len(c) > maxChunk {
		right := slices.Clone(c[len(c)/2:])
		x.chunks[ci] = slices.Clip(c[:len(c)/2])
		x.chunks = slices.Insert(x.chunks, ci+1, right)
		return
	}
	x.chunks[ci] = c
}

// remove deletes k (a no-op if absent).
func (x *keyIndex) remove(k string) {
	if len(x.chunks) == 0 {
		return
	}
	ci := x.chunkFor(k)
	c := x.chunks[ci]
	j, found := slices.BinarySearch(c, k)
	if !found {
		return
	}
	c = slices.Delete(c, j, j+1)
	if len(c) == 0 {
		x.chunks = slices.Delete(x.chunks, ci, ci+1)
		return
	}
	x.chunks[ci] = c
}

// ascend calls f with every key >= from, in order, until f returns false.
// f must not change the index.
func (x *keyIndex) ascend(from string, f func(string) bool) {
	if len(x.chunks) == 0 {
		return
	}
	ci := x.chunkFor(from)
	j, _ := slices.BinarySearch(x.chunks[ci], from)
	for ; ci < len(x.chunks); ci++ {
		for _, k := range x.chunks[ci][j:] {
			if !f(k) {
				return
			}
		}
		j = 0
	}
}
