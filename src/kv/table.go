package kv

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// table holds the Store's keys in order, each with its value and metadata,
// laid out for a large state: a million keys of 256-byte values must fit
// in well under twice their raw size (issue 19), and the collector must not
// have to visit every value on every cycle.
//
// The values and metadata live in records appended to slabs, large byte
// slices that hold no pointers: the collector marks a slab as one object
// and never scans it. A key maps to a slot, and the slot to where the key's
// current record is. A write appends a new record and leaves the old one
// dead; a slab whose dead bytes pass a quarter of it is compacted, its live
// records copied to the slab being filled and the slab dropped, so memory
// stays within about 4/3 of the live records however keys are overwritten.
//
// Records are never changed once written: a frozen copy (freeze) reads
// them later, off the lock, while new records are appended and old slabs
// dropped, because it holds its own references to the slabs it needs.
//
// Invariant: slots, refs (less free slots) and index hold the same keys;
// every slab's dead count is its bytes minus its live records' bytes.
type table struct {
	// slots maps a key to its slot. A slot, not the record's place,
	// because updating a map entry of an existing key would replace the
	// map's key string with the caller's, which may hold more than the
	// key; a slot never changes while the key lives.
	slots     map[string]uint32
	refs      []recordRef // by slot
	freeSlots []uint32
	slabs     []slab
	freeSlabs []uint32 // indexes of dropped slabs, to reuse
	cur       uint32   // the slab records are appended to
	index     keyIndex
}

// recordRef is where a record starts: its slab and offset.
type recordRef struct{ slab, off uint32 }

// noRecord is the recordRef of a slot being written or free.
var noRecord = recordRef{slab: ^uint32(0)}

type slab struct {
	b    []byte // records; never grown past its capacity, never rewritten
	dead int    // bytes of records that are no key's current record
}

// slabSize is the capacity of a slab: large enough that slabs are few
// objects, small enough that compacting one is quick. A record larger than
// a quarter of it gets a slab of its own.
const slabSize = 256 << 10

// A record is: slot (4 bytes, little endian), create_index, mod_index,
// version and the value's length (uvarints), the value.
const recordHeaderMax = 4 + 4*binary.MaxVarintLen64

func newTable() *table {
	return &table{slots: make(map[string]uint32)}
}

func (t *table) len() int { return len(t.slots) }

func (t *table) has(k string) bool {
	_, ok := t.slots[k]
	return ok
}

// get returns k's value and metadata.
func (t *table) get(k string) (value string, m Meta, ok bool) {
	slot, ok := t.slots[k]
	if !ok {
		return "", Meta{}, false
	}
	_, m, v := t.record(t.refs[slot])
	return string(v), m, true
}

// meta returns k's metadata (zero if k is absent).
func (t *table) meta(k string) (Meta, bool) {
	slot, ok := t.slots[k]
	if !ok {
		return Meta{}, false
	}
	_, m, _ := t.record(t.refs[slot])
	return m, true
}

// record decodes the record at r. The value aliases the slab: callers copy
// it before it leaves the table.
func (t *table) record(r recordRef) (slot uint32, m Meta, value []byte) {
	slot, m, value, _ = decodeRecord(t.slabs[r.slab].b, int(r.off))
	return slot, m, value
}

// decodeRecord decodes the record at b[off:], and returns where it ends.
func decodeRecord(b []byte, off int) (slot uint32, m Meta, value []byte, end int) {
	slot = binary.LittleEndian.Uint32(b[off:])
	i := off + 4
	next := func() uint64 {
		v, n := binary.Uvarint(b[i:])
		if n <= 0 {
			panic(fmt.Sprintf("kv: table: bad record at offset %d", off))
		}
		i += n
		return v
	}
	m.CreateIndex, m.ModIndex, m.Version = next(), next(), next()
	n := int(next())
	return slot, m, b[i : i+n], i + n
}

// set makes v and m k's value and metadata, and reports whether k is new.
func (t *table) set(k, v string, m Meta) (inserted bool) {
	slot, ok := t.slots[k]
	if ok {
		t.kill(slot)
	} else {
		if n := len(t.freeSlots); n > 0 {
			slot, t.freeSlots = t.freeSlots[n-1], t.freeSlots[:n-1]
		} else {
			slot = uint32(len(t.refs))
			t.refs = append(t.refs, recordRef{})
		}
		t.slots[k] = slot
		t.index.insert(k)
	}
	writeRecord(t, slot, v, m)
	return !ok
}

// writeRecord appends slot's record and points the slot at it.
func writeRecord[V string | []byte](t *table, slot uint32, v V, m Meta) {
	size := recordHeaderMax + len(v)
	r := t.place(size)
	b := binary.LittleEndian.AppendUint32(t.slabs[r.slab].b, slot)
	b = binary.AppendUvarint(b, m.CreateIndex)
	b = binary.AppendUvarint(b, m.ModIndex)
	b = binary.AppendUvarint(b, m.Version)
	b = binary.AppendUvarint(b, uint64(len(v)))
	t.slabs[r.slab].b = append(b, v...)
	if size > slabSize/4 {
		t.retire(r.slab)
	}
	t.refs[slot] = r
}

// del removes k and reports whether it was there.
func (t *table) del(k string) bool {
	slot, ok := t.slots[k]
	if !ok {
		return false
	}
	t.kill(slot)
	delete(t.slots, k)
	t.index.remove(k)
	t.freeSlots = append(t.freeSlots, slot)
	return true
}

// ascend calls f with every key >= from, in order, until f returns false.
// f must not change the table.
func (t *table) ascend(from string, f func(k string) bool) { t.index.ascend(from, f) }

// place returns where a record of at most size bytes goes: the end of the
// current slab, or a new current slab if it is full, or a slab of its own
// for a record over a quarter of a slab.
func (t *table) place(size int) recordRef {
	if size > slabSize/4 {
		return recordRef{slab: t.newSlab(size)}
	}
	if len(t.slabs) == 0 || cap(t.slabs[t.cur].b)-len(t.slabs[t.cur].b) < size {
		if len(t.slabs) > 0 {
			t.retire(t.cur)
		}
		t.cur = t.newSlab(slabSize)
	}
	return recordRef{slab: t.cur, off: uint32(len(t.slabs[t.cur].b))}
}

// retire counts the unused end of a slab no more records go to as dead.
func (t *table) retire(i uint32) {
	s := &t.slabs[i]
	s.dead += cap(s.b) - len(s.b)
}

// newSlab returns the index of a new empty slab of capacity size.
func (t *table) newSlab(size int) uint32 {
	s := slab{b: make([]byte, 0, size)}
	if n := len(t.freeSlabs); n > 0 {
		i := t.freeSlabs[n-1]
		t.freeSlabs = t.freeSlabs[:n-1]
		t.slabs[i] = s
		return i
	}
	t.slabs = append(t.slabs, s)
	return uint32(len(t.slabs) - 1)
}

// kill marks slot's record dead, and compacts its slab once a quarter of it
// is dead. The slot then refers to no record until it is written.
func (t *table) kill(slot uint32) {
	r := t.refs[slot]
	t.refs[slot] = noRecord
	s := &t.slabs[r.slab]
	_, _, _, end := decodeRecord(s.b, int(r.off))
	s.dead += end - int(r.off)
	if r.slab != t.cur && s.dead*4 >= cap(s.b) {
		t.compact(r.slab)
	}
}

// compact copies the live records of slab i, unchanged, to the current
// slab and drops slab i. A frozen copy that still reads slab i holds its
// own reference to it.
func (t *table) compact(i uint32) {
	b := t.slabs[i].b
	for off := 0; off < len(b) && t.slabs[i].dead < cap(b); {
		slot, _, _, end := decodeRecord(b, off)
		if int(slot) < len(t.refs) && t.refs[slot] == (recordRef{i, uint32(off)}) {
			r := t.place(end - off)
			t.slabs[r.slab].b = append(t.slabs[r.slab].b, b[off:end]...)
			t.refs[slot] = r
			t.slabs[i].dead += end - off
			if end-off > slabSize/4 {
				t.retire(r.slab)
			}
		}
		off = end
	}
	if t.slabs[i].dead != cap(b) {
		panic(fmt.Sprintf("kv: table: slab %d compacted with %d of %d bytes dead", i, t.slabs[i].dead, cap(b)))
	}
	t.slabs[i] = slab{}
	t.freeSlabs = append(t.freeSlabs, i)
}

// load fills an empty table with keys, which must be sorted and distinct,
// and each key's value and metadata from get: the index is built from the
// order as it is, and the records are written in key order.
func (t *table) load(keys []string, get func(i int) ([]byte, Meta)) {
	// Not sized by a hint: a map of a million keys made at its final size
	// takes 55 bytes a key, grown to it 39 (its tables fill before they
	// split), for 0.1 s more.
	t.slots = make(map[string]uint32)
	t.refs = make([]recordRef, 0, len(keys))
	for i, k := range keys {
		v, m := get(i)
		slot := uint32(len(t.refs))
		t.refs = append(t.refs, recordRef{})
		t.slots[k] = slot
		writeRecord(t, slot, v, m)
	}
	t.index = newKeyIndex(keys)
}

// frozenTable is a table's keys and records at one moment.
type frozenTable struct {
	records []frozenRecord
	slabs   [][]byte // the table's slabs then, so that none is dropped under it
}

type frozenRecord struct {
	key string
	ref recordRef
}

// freeze copies the table's keys and where their records are, unordered:
// the map is iterated rather than the index, because looking a million
// keys up in the map one by one costs far more than the copy, and sorting
// is left to the caller, off the lock.
func (t *table) freeze() frozenTable {
	f := frozenTable{records: make([]frozenRecord, 0, len(t.slots)), slabs: make([][]byte, len(t.slabs))}
	for i, s := range t.slabs {
		f.slabs[i] = s.b
	}
	for k, slot := range t.slots {
		f.records = append(f.records, frozenRecord{k, t.refs[slot]})
	}
	return f
}

// sort orders the records by key.
func (f frozenTable) sort() {
	slices.SortFunc(f.records, func(a, b frozenRecord) int { return strings.Compare(a.key, b.key) })
}

// at returns record i's value and metadata. The value aliases a slab.
func (f frozenTable) at(i int) (value []byte, m Meta) {
	r := f.records[i].ref
	_, m, value, _ = decodeRecord(f.slabs[r.slab], int(r.off))
	return value, m
}
