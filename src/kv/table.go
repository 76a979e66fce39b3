package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"

	"raftkv/src/freelist"
)

// table holds the Store's keys in order, each with its value and metadata,
// laid out for a large state: a million keys of 256-byte values must fit in
// under 1.5 times their raw size (issue 19), and the garbage collector,
// which a large state's memory limit makes run often, must find next to
// nothing to scan.
//
// So the table holds no pointer per key. Each key, with its value and
// metadata, is a record appended to a slab, a large byte slice: the
// collector marks a slab as one object and never reads it. A key has a
// slot (a small number that never changes while the key lives), and the
// slot says where the key's current record is. Two indexes find slots: an
// open-addressing hash table of slots for lookups, and sorted chunks of
// slots for the key order (Range, deletes by prefix, snapshots); both
// compare keys by reading them from the records.
//
// A write appends a new record and leaves the old one dead; a slab whose
// dead bytes pass a quarter of it is compacted, its live records copied to
// the slab being filled and the slab dropped, so the slabs stay within
// about 4/3 of the live records however keys are overwritten.
//
// Records are never changed once written: a frozen copy (freeze) reads them
// later, off the lock, while new records are appended and old slabs
// dropped, because it holds its own references to the slabs it needs.
//
// Invariant: the live slots (those not free) are exactly the slots of the
// hash index and of the ordered index, each once; the ordered index's
// chunks are non-empty and sorted, each below the next; every slab's dead
// count is its capacity less its live records' bytes (the current slab's
// unused end is not counted until it is retired).
type table struct {
	refs      []recordRef // by slot; noRecord when free
	freeSlots []uint32
	slabs     freelist.Slice[slab] // a dropped slab's index is reused
	cur       uint32               // the slab records are appended to; noSlab before the first

	hash  []hashEntry
	order [][]uint32 // slots in key order, in chunks
	seed  maphash.Seed
}

// recordRef is where a record starts: its slab and offset.
type recordRef struct{ slab, off uint32 }

// noRecord is the recordRef of a free slot, or of one being written.
var noRecord = recordRef{slab: noSlab}

const noSlab = ^uint32(0)

type slab struct {
	b    []byte // records; never grown past its capacity, never rewritten
	dead int    // bytes of records that are no key's current record
}

// hashEntry is one place of the hash index: slot+1 (0: empty) and the low
// 32 bits of the key's hash, which place the entry and spare most key
// comparisons.
type hashEntry struct{ slot1, hash uint32 }

// slabSize is the capacity of a slab: large enough that slabs are few
// objects, small enough that compacting one is quick. A record larger than
// a quarter of it gets a slab of its own.
const slabSize = 256 << 10

// maxChunk bounds a chunk of the ordered index; a fuller one splits in two.
// A put of a new key moves at most this many slots (4 bytes each).
const maxChunk = 1024

// A record is: slot (4 bytes, little endian), the key's length (uvarint),
// the key, create_index, mod_index, version and the value's length
// (uvarints), the value.
const recordHeaderMax = 4 + 5*binary.MaxVarintLen64

func newTable() *table {
	return &table{seed: maphash.MakeSeed(), cur: noSlab}
}

// len is the number of keys.
func (t *table) len() int { return len(t.refs) - len(t.freeSlots) }

func (t *table) has(k string) bool {
	_, ok := t.find(k)
	return ok
}

// get returns k's value and metadata.
func (t *table) get(k string) (value string, m Meta, ok bool) {
	slot, ok := t.find(k)
	if !ok {
		return "", Meta{}, false
	}
	_, m, v := t.record(slot)
	return string(v), m, true
}

// meta returns k's metadata (zero if k is absent).
func (t *table) meta(k string) (Meta, bool) {
	slot, ok := t.find(k)
	if !ok {
		return Meta{}, false
	}
	_, m, _ := t.record(slot)
	return m, true
}

// record decodes slot's record. Key and value alias the slab: callers copy
// them before they leave the table.
func (t *table) record(slot uint32) (key []byte, m Meta, value []byte) {
	r := t.refs[slot]
	_, key, m, value, _ = decodeRecord(t.slabs.Items[r.slab].b, int(r.off))
	return key, m, value
}

// key is slot's key, aliasing its slab.
func (t *table) key(slot uint32) []byte {
	k, _, _ := t.record(slot)
	return k
}

// decodeRecord decodes the record at b[off:], and returns where it ends.
func decodeRecord(b []byte, off int) (slot uint32, key []byte, m Meta, value []byte, end int) {
	slot = binary.LittleEndian.Uint32(b[off:])
	i := off + 4
	next := func() int {
		v, n := binary.Uvarint(b[i:])
		if n <= 0 {
			panic(fmt.Sprintf("kv: table: bad record at offset %d", off))
		}
		i += n
		return int(v)
	}
	kn := next()
	key = b[i : i+kn]
	i += kn
	m.CreateIndex, m.ModIndex, m.Version = uint64(next()), uint64(next()), uint64(next())
	vn := next()
	return slot, key, m, b[i : i+vn], i + vn
}

// set makes v and m k's value and metadata, and reports whether k is new.
func (t *table) set(k, v string, m Meta) (inserted bool) {
	slot, ok := t.find(k)
	if ok {
		t.kill(slot)
		writeRecord(t, slot, k, v, m)
		return false
	}
	slot = t.newSlot()
	writeRecord(t, slot, k, v, m)
	t.hashInsert(slot, t.hashOf(k))
	t.orderInsert(slot, k)
	return true
}

// del removes k and reports whether it was there.
func (t *table) del(k string) bool {
	slot, ok := t.find(k)
	if !ok {
		return false
	}
	t.hashDelete(slot, t.hashOf(k))
	t.orderDelete(slot, k)
	t.kill(slot)
	t.freeSlots = append(t.freeSlots, slot)
	return true
}

func (t *table) newSlot() uint32 {
	if n := len(t.freeSlots); n > 0 {
		slot := t.freeSlots[n-1]
		t.freeSlots = t.freeSlots[:n-1]
		return slot
	}
	t.refs = append(t.refs, noRecord)
	return uint32(len(t.refs) - 1)
}

// writeRecord appends slot's record and points the slot at it.
func writeRecord[V string | []byte](t *table, slot uint32, k string, v V, m Meta) {
	size := recordHeaderMax + len(k) + len(v)
	r := t.place(size)
	b := binary.LittleEndian.AppendUint32(t.slabs.Items[r.slab].b, slot)
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, m.CreateIndex)
	b = binary.AppendUvarint(b, m.ModIndex)
	b = binary.AppendUvarint(b, m.Version)
	b = binary.AppendUvarint(b, uint64(len(v)))
	t.slabs.Items[r.slab].b = append(b, v...)
	if size > slabSize/4 {
		t.retire(r.slab)
	}
	t.refs[slot] = r
}

// place returns where a record of at most size bytes goes: the end of the
// current slab, or a new current slab if it is full, or a slab of its own
// for a record over a quarter of a slab.
func (t *table) place(size int) recordRef {
	if size > slabSize/4 {
		return recordRef{slab: t.newSlab(size)}
	}
	// (A slab of its own is never the current slab: its end is already
	// retired.)
	if t.cur == noSlab || cap(t.slabs.Items[t.cur].b)-len(t.slabs.Items[t.cur].b) < size {
		if t.cur != noSlab {
			t.retire(t.cur)
		}
		t.cur = t.newSlab(slabSize)
	}
	return recordRef{slab: t.cur, off: uint32(len(t.slabs.Items[t.cur].b))}
}

// retire counts the unused end of a slab no more records go to as dead.
func (t *table) retire(i uint32) {
	s := &t.slabs.Items[i]
	s.dead += cap(s.b) - len(s.b)
}

// newSlab returns the index of a new empty slab of capacity size.
func (t *table) newSlab(size int) uint32 {
	return uint32(t.slabs.Add(slab{b: make([]byte, 0, size)}))
}

// kill marks slot's record dead, and compacts its slab once a quarter of
// it is dead. The slot then refers to no record until it is written.
func (t *table) kill(slot uint32) {
	r := t.refs[slot]
	t.refs[slot] = noRecord
	s := &t.slabs.Items[r.slab]
	_, _, _, _, end := decodeRecord(s.b, int(r.off))
	s.dead += end - int(r.off)
	if r.slab != t.cur && s.dead*4 >= cap(s.b) {
		t.compact(r.slab)
	}
}

// compact copies the live records of slab i, unchanged, to the current
// slab and drops slab i. A frozen copy that still reads slab i holds its
// own reference to it.
func (t *table) compact(i uint32) {
	b := t.slabs.Items[i].b
	for off := 0; off < len(b) && t.slabs.Items[i].dead < cap(b); {
		slot, _, _, _, end := decodeRecord(b, off)
		if int(slot) < len(t.refs) && t.refs[slot] == (recordRef{i, uint32(off)}) {
			r := t.place(end - off)
			t.slabs.Items[r.slab].b = append(t.slabs.Items[r.slab].b, b[off:end]...)
			t.refs[slot] = r
			t.slabs.Items[i].dead += end - off
			if end-off > slabSize/4 {
				t.retire(r.slab)
			}
		}
		off = end
	}
	if t.slabs.Items[i].dead != cap(b) {
		panic(fmt.Sprintf("kv: table: slab %d compacted with %d of %d bytes dead", i, t.slabs.Items[i].dead, cap(b)))
	}
	t.slabs.Free(int(i))
}

// The hash index: open addressing with linear probing, at most half full,
// deletion by shifting the entries after back (no tombstones).

func (t *table) hashOf(k string) uint32 { return uint32(maphash.String(t.seed, k)) }

// find returns k's slot.
func (t *table) find(k string) (uint32, bool) {
	if len(t.hash) == 0 {
		return 0, false
	}
	h := t.hashOf(k)
	mask := uint32(len(t.hash) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		e := t.hash[i]
		if e.slot1 == 0 {
			return 0, false
		}
		if e.hash == h && string(t.key(e.slot1-1)) == k {
			return e.slot1 - 1, true
		}
	}
}

func (t *table) hashInsert(slot, h uint32) {
	if 2*(t.len()+1) > len(t.hash) {
		t.hashResize(max(16, 2*len(t.hash)))
	}
	t.hashPut(hashEntry{slot + 1, h})
}

// hashPut puts e in the first empty place from its home on.
func (t *table) hashPut(e hashEntry) {
	mask := uint32(len(t.hash) - 1)
	i := e.hash & mask
	for t.hash[i].slot1 != 0 {
		i = (i + 1) & mask
	}
	t.hash[i] = e
}

// hashResize moves the entries to a hash index of n places (a power of two).
func (t *table) hashResize(n int) {
	old := t.hash
	t.hash = make([]hashEntry, n)
	for _, e := range old {
		if e.slot1 != 0 {
			t.hashPut(e)
		}
	}
}

func (t *table) hashDelete(slot, h uint32) {
	mask := uint32(len(t.hash) - 1)
	i := h & mask
	for t.hash[i].slot1 != slot+1 {
		i = (i + 1) & mask
	}
	// Shift back every following entry of the run that may move into the
	// hole: one whose home is not in (hole, its place].
	for j := (i + 1) & mask; t.hash[j].slot1 != 0; j = (j + 1) & mask {
		home := t.hash[j].hash & mask
		if (j-home)&mask >= (j-i)&mask {
			t.hash[i] = t.hash[j]
			i = j
		}
	}
	t.hash[i] = hashEntry{}
}

// The ordered index: chunks of slots, sorted by key.

// chunkFor returns the chunk where k is or would be: the last one whose
// first key is <= k, or 0.
func (t *table) chunkFor(k []byte) int {
	// New keys often come in order (a bulk load): try the last chunk first.
	if n := len(t.order); n > 0 && bytes.Compare(t.key(t.order[n-1][0]), k) <= 0 {
		return n - 1
	}
	i, _ := slices.BinarySearchFunc(t.order, k, func(c []uint32, k []byte) int {
		if bytes.Compare(t.key(c[0]), k) <= 0 {
			return -1
		}
		return 1
	})
	return max(i-1, 0)
}

// search returns where k is or would be in chunk c.
func (t *table) search(c []uint32, k []byte) (int, bool) {
	return slices.BinarySearchFunc(c, k, func(slot uint32, k []byte) int { return bytes.Compare(t.key(slot), k) })
}

func (t *table) orderInsert(slot uint32, key string) {
	if len(t.order) == 0 {
		t.order = [][]uint32{{slot}}
		return
	}
	k := []byte(key)
	ci := t.chunkFor(k)
	c := t.order[ci]
	j, _ := t.search(c, k)
	c = slices.Insert(c, j, slot)
	if len(c) > maxChunk {
		right := slices.Clone(c[len(c)/2:])
		t.order[ci] = slices.Clip(c[:len(c)/2])
		t.order = slices.Insert(t.order, ci+1, right)
		return
	}
	t.order[ci] = c
}

func (t *table) orderDelete(slot uint32, key string) {
	k := []byte(key)
	ci := t.chunkFor(k)
	c := t.order[ci]
	j, found := t.search(c, k)
	if !found || c[j] != slot {
		panic(fmt.Sprintf("kv: table: key %q is not in the ordered index", key))
	}
	c = slices.Delete(c, j, j+1)
	if len(c) == 0 {
		t.order = slices.Delete(t.order, ci, ci+1)
		return
	}
	t.order[ci] = c
}

// ascend calls f with every key >= from, in order, until f returns false.
// f must not change the table.
func (t *table) ascend(from string, f func(k string) bool) {
	if len(t.order) == 0 {
		return
	}
	k := []byte(from)
	ci := t.chunkFor(k)
	j, _ := t.search(t.order[ci], k)
	for ; ci < len(t.order); ci++ {
		for _, slot := range t.order[ci][j:] {
			if !f(string(t.key(slot))) {
				return
			}
		}
		j = 0
	}
}

// decodedKeys are a state's keys in order, each with its value and
// metadata, as a snapshot decodes them, before they go into a table.
// Invariant: keys are sorted and distinct; the three slices are as long.
type decodedKeys struct {
	keys   []string
	values [][]byte
	metas  []Meta
}

func (d *decodedKeys) add(k string, v []byte, m Meta) {
	d.keys = append(d.keys, k)
	d.values = append(d.values, v)
	d.metas = append(d.metas, m)
}

// table returns a table of the keys; the records are written in key order.
func (d *decodedKeys) table() *table {
	t := newTable()
	t.refs = make([]recordRef, len(d.keys))
	n := 16
	for n < 2*len(d.keys) {
		n *= 2
	}
	t.hash = make([]hashEntry, n)
	for i, k := range d.keys {
		writeRecord(t, uint32(i), k, d.values[i], d.metas[i])
		t.hashPut(hashEntry{uint32(i) + 1, t.hashOf(k)})
	}
	for i := 0; i < len(d.keys); i += maxChunk / 2 {
		c := make([]uint32, min(maxChunk/2, len(d.keys)-i))
		for j := range c {
			c[j] = uint32(i + j)
		}
		t.order = append(t.order, c)
	}
	return t
}

// frozenTable is a table's records in key order at one moment.
type frozenTable struct {
	refs  []recordRef
	slabs [][]byte // the table's slabs then, so that none is dropped under it
}

// freeze copies where the records are, in key order: 8 bytes a key, and
// no sorting.
func (t *table) freeze() frozenTable {
	f := frozenTable{refs: make([]recordRef, 0, t.len()), slabs: make([][]byte, len(t.slabs.Items))}
	for i, s := range t.slabs.Items {
		f.slabs[i] = s.b
	}
	for _, c := range t.order {
		for _, slot := range c {
			f.refs = append(f.refs, t.refs[slot])
		}
	}
	return f
}

// at returns record i's key, value and metadata. Key and value alias a slab.
func (f frozenTable) at(i int) (key, value []byte, m Meta) {
	r := f.refs[i]
	_, key, m, value, _ = decodeRecord(f.slabs[r.slab], int(r.off))
	return key, value, m
}
