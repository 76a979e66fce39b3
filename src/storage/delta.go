package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// Incremental snapshots.
//
// A full snapshot (snapshot-<index>.json, the "base") costs the whole state
// to write. A delta (delta-<from>-<to>.jsonl) holds only what changed in the
// state machine between two snapshot indexes, as JSON Lines framed like the
// log's ({"crc":"<CRC-32C of rec>","rec":<rec>}):
//
//	{"kind":"delta","from":F,"index":T,"term":Tm,"peers":[..],"membership":{..}}   first line
//	{"kind":"set","field":"Contents","key":"k","value":<JSON>}                      the member k of the object field
//	{"kind":"del","field":"Contents","key":"k"}                                      member k removed
//	{"kind":"replace","field":"Sessions","value":<JSON>}                             the whole field replaced
//	{"kind":"end","records":N}                                                       last line: N records before it
//
// The state machine is one JSON object; a delta patches its top-level fields.
// The snapshot at T is the base with every delta of the chain applied in
// order: base at B, delta B..T1, delta T1..T2, ... A delta file is written
// atomically (temp file, fsync, rename, fsync folder) like a base, so a crash
// never leaves a torn one: any damage in it (a bad CRC, a missing end record,
// a chain with a gap) is refused with file and offset, never cut or skipped,
// because the log it replaced may already be deleted.
//
// Write amplification: a delta costs the bytes of the keys changed since the
// previous snapshot; a new base is written (from the node's memory) once the
// chain's deltas add up to DeltaMergeFraction of the base, which deletes the
// chain. Per changed byte at most 1 + 1/DeltaMergeFraction bytes are written,
// whatever the size of the state, and recovery reads at most
// (1 + DeltaMergeFraction) times the base.

// DeltaMergeFraction is the merge threshold: once the deltas of the chain add up to this share of
// the base, the next snapshot is a new base (see the comment above).
const DeltaMergeFraction = 1.0

func deltaName(from, to uint64) string {
	return fmt.Sprintf("delta-%016d-%016d.jsonl", from, to)
}

func parseDeltaName(name string) (from, to uint64, ok bool) {
	s, ok := strings.CutPrefix(name, "delta-")
	if !ok {
		return 0, 0, false
	}
	s, ok = strings.CutSuffix(s, ".jsonl")
	if !ok || len(s) != 33 || s[16] != '-' {
		return 0, 0, false
	}
	from, err1 := strconv.ParseUint(s[:16], 10, 64)
	to, err2 := strconv.ParseUint(s[17:], 10, 64)
	return from, to, err1 == nil && err2 == nil && deltaName(from, to) == name
}

// DeltaWriter receives the changes of one delta snapshot (see
// SaveSnapshotDelta). Its methods write through a buffer; an error is the
// file system's, or bad input.
type DeltaWriter struct {
	w   io.Writer
	buf []byte
	n   int
}

// Set records that the member key of the object field now holds value.
// key is the member name already encoded as a JSON string (with its quotes);
// value is one JSON value on one line.
func (d *DeltaWriter) Set(field string, key, value []byte) error {
	if !isJSONString(key) || !isRawJSON(value) {
		return encodeError{fmt.Errorf("delta set %s: key or value is not one-line JSON", field)}
	}
	b, start := beginRecord(d.buf[:0])
	b = append(b, `{"kind":"set","field":`...)
	b = strconv.AppendQuote(b, field)
	b = append(b, `,"key":`...)
	b = append(b, key...)
	b = append(b, `,"value":`...)
	b = append(b, value...)
	b = append(b, '}')
	return d.emit(endRecord(b, start))
}

// Delete records that the member key (a JSON string) of the object field is gone.
func (d *DeltaWriter) Delete(field string, key []byte) error {
	if !isJSONString(key) {
		return encodeError{fmt.Errorf("delta del %s: key is not a JSON string", field)}
	}
	b, start := beginRecord(d.buf[:0])
	b = append(b, `{"kind":"del","field":`...)
	b = strconv.AppendQuote(b, field)
	b = append(b, `,"key":`...)
	b = append(b, key...)
	b = append(b, '}')
	return d.emit(endRecord(b, start))
}

// Replace records that the field now holds value as a whole. A field is
// either replaced or patched member by member, never both in one chain.
func (d *DeltaWriter) Replace(field string, value []byte) error {
	if !isRawJSON(value) {
		return encodeError{fmt.Errorf("delta replace %s: value is not one-line JSON", field)}
	}
	b, start := beginRecord(d.buf[:0])
	b = append(b, `{"kind":"replace","field":`...)
	b = strconv.AppendQuote(b, field)
	b = append(b, `,"value":`...)
	b = append(b, value...)
	b = append(b, '}')
	return d.emit(endRecord(b, start))
}

func (d *DeltaWriter) emit(b []byte) error {
	d.buf = b
	d.n++
	_, err := d.w.Write(b)
	return err
}

func isJSONString(b []byte) bool {
	return len(b) >= 2 && b[0] == '"' && isRawJSON(b)
}

// deltaHead is a delta's first record.
type deltaHead struct {
	Kind       string           `json:"kind"`
	From       uint64           `json:"from"`
	Index      uint64           `json:"index"`
	Term       uint64           `json:"term"`
	Peers      []raft.ID        `json:"peers"`
	Membership *raft.Membership `json:"membership,omitempty"`
}

// SaveSnapshotDelta saves the snapshot at meta.Index as a delta on top of
// the current snapshot chain: encode writes, through the DeltaWriter, every
// change of the state machine since the current snapshot index (which the
// caller must know, see SnapshotChain). It needs a base; the log and the
// older files are handled as by SaveSnapshotFrom. An error from encode
// aborts the save without poisoning the Storage.
func (s *Storage) SaveSnapshotDelta(meta raft.Snapshot, from uint64, encode func(*DeltaWriter) error) error {
	snap := raft.Snapshot{Index: meta.Index, Term: meta.Term, Peers: meta.Peers, Membership: meta.Membership}
	s.mu.Lock()
	done, err := s.checkSnapshot(snap)
	if err == nil && !done && (s.baseIndex == 0 || from != s.snapIndex) {
		err = fmt.Errorf("storage: delta snapshot from %d does not follow the snapshot chain (base %d, ends at %d)", from, s.baseIndex, s.snapIndex)
	}
	s.mu.Unlock()
	if done || err != nil {
		return err
	}
	name := deltaName(from, snap.Index)
	var size int64
	werr := writeAtomicFunc(s.dir, name, func(w io.Writer) error {
		cw := &CountingWriter{W: w}
		if err := writeDeltaFile(cw, from, snap, encode); err != nil {
			return err
		}
		size = cw.N
		return nil
	})
	return s.finishSnapshot(snap, name, werr, func() { s.deltaBytes += size })
}

// CountingWriter counts the bytes written through it to W (N): the size of
// a snapshot as it is streamed to its file.
type CountingWriter struct {
	W io.Writer
	N int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

func writeDeltaFile(w io.Writer, from uint64, snap raft.Snapshot, encode func(*DeltaWriter) error) error {
	head, err := json.Marshal(deltaHead{Kind: "delta", From: from, Index: snap.Index, Term: snap.Term, Peers: snap.Peers, Membership: snap.Membership})
	if err != nil {
		return encodeError{err}
	}
	b, start := beginRecord(nil)
	b = endRecord(append(b, head...), start)
	if _, err := w.Write(b); err != nil {
		return err
	}
	d := &DeltaWriter{w: w}
	if err := encode(d); err != nil {
		var werr writeError
		var eerr encodeError
		if errors.As(err, &werr) || errors.As(err, &eerr) {
			return err
		}
		return encodeError{err}
	}
	b, start = beginRecord(d.buf[:0])
	b = append(b, `{"kind":"end","records":`...)
	b = strconv.AppendInt(b, int64(d.n), 10)
	b = endRecord(append(b, '}'), start)
	_, err = w.Write(b)
	return err
}

// SnapshotChain describes the stored snapshot: the index of its base, the
// base's size and the bytes of the deltas on top of it (the node writes a
// new base once deltaBytes reaches DeltaMergeFraction of baseBytes).
func (s *Storage) SnapshotChain() (baseIndex uint64, baseBytes, deltaBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseIndex, s.baseBytes, s.deltaBytes
}

// deltaFile is one delta, read and checked.
type deltaFile struct {
	name     string
	from, to uint64
	head     deltaHead
	size     int64
	patches  []patch
}

type patch struct {
	op    string // set, del, replace
	field string
	key   string // decoded; set and del
	rawKy []byte // the key as written (a JSON string)
	value []byte // set, replace
	off   int64
}

// fastPatch reads a set or del record in the spelling DeltaWriter writes
// ({"kind":"set","field":"F","key":K,"value":V}, {"kind":"del",...} without
// value) without encoding/json: a delta holds a record per changed key and
// a restart reads them all. Anything spelled otherwise gives ok false and
// is read by encoding/json, which refuses what is malformed.
func fastPatch(rec []byte) (p patch, ok bool) {
	v := validator{b: rec}
	switch {
	case bytes.HasPrefix(rec, []byte(`{"kind":"set","field":"`)):
		p.op = "set"
	case bytes.HasPrefix(rec, []byte(`{"kind":"del","field":"`)):
		p.op = "del"
	default:
		return p, false
	}
	v.i = len(`{"kind":"set","field":`)
	start := v.i
	if !v.str() {
		return p, false
	}
	field := rec[start+1 : v.i-1]
	if len(field) == 0 || bytes.IndexByte(field, '\\') >= 0 || !bytes.HasPrefix(rec[v.i:], []byte(`,"key":"`)) {
		return p, false
	}
	p.field = string(field)
	v.i += len(`,"key":`)
	start = v.i
	if !v.str() {
		return p, false
	}
	p.rawKy = rec[start:v.i]
	if raw := p.rawKy[1 : len(p.rawKy)-1]; bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		p.key = string(raw)
	} else if json.Unmarshal(p.rawKy, &p.key) != nil {
		return p, false
	}
	if p.op == "del" {
		return p, v.i == len(rec)-1 && rec[v.i] == '}'
	}
	if !bytes.HasPrefix(rec[v.i:], []byte(`,"value":`)) || rec[len(rec)-1] != '}' {
		return p, false
	}
	p.value = rec[v.i+len(`,"value":`) : len(rec)-1]
	return p, isRawJSON(p.value)
}

// deltaRec is a patch record's shape.
type deltaRec struct {
	Kind    string          `json:"kind"`
	Field   string          `json:"field"`
	Key     json.RawMessage `json:"key"`
	Value   json.RawMessage `json:"value"`
	Records *int            `json:"records"`
}

// loadDelta reads and checks a delta file: every line framed and its CRC
// right, the head matching the name, the end record last with the count of
// the records before it. Any damage fails with the file and offset.
func (s *Storage) loadDelta(name string) (*deltaFile, error) {
	from, to, _ := parseDeltaName(name)
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	d := &deltaFile{name: name, from: from, to: to, size: int64(len(b))}
	var off int64
	sawHead, sawEnd := false, false
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, s.corrupt(name, off, "incomplete last line (a delta is written atomically: this is not a torn write)")
		}
		line := b[:nl]
		rec, why := unframe(line)
		if why != "" {
			return nil, s.corrupt(name, off, why)
		}
		if sawEnd {
			return nil, s.corrupt(name, off, "a record after the end record")
		}
		if !sawHead {
			if err := strictUnmarshal(rec, &d.head); err != nil || d.head.Kind != "delta" {
				return nil, s.corrupt(name, off, "the first record is not a delta head")
			}
			if d.head.From != from || d.head.Index != to {
				return nil, s.corrupt(name, off, fmt.Sprintf("the head says %d..%d, the name %d..%d", d.head.From, d.head.Index, from, to))
			}
			if d.head.Membership != nil {
				if err := d.head.Membership.Validate(); err != nil {
					return nil, s.corrupt(name, off, "delta membership: "+err.Error())
				}
			}
			sawHead = true
		} else if p, ok := fastPatch(rec); ok {
			p.off = off
			d.patches = append(d.patches, p)
		} else {
			var r deltaRec
			if err := strictUnmarshal(rec, &r); err != nil {
				return nil, s.corrupt(name, off, "record does not parse: "+err.Error())
			}
			p := patch{op: r.Kind, field: r.Field, value: r.Value, off: off}
			switch r.Kind {
			case "set", "del":
				if r.Field == "" || r.Key == nil || (r.Kind == "set") != (r.Value != nil) || r.Records != nil {
					return nil, s.corrupt(name, off, r.Kind+" record lacks field, key or value, or has extra fields")
				}
				if err := json.Unmarshal(r.Key, &p.key); err != nil {
					return nil, s.corrupt(name, off, "key is not a JSON string")
				}
				p.rawKy = r.Key
			case "replace":
				if r.Field == "" || r.Value == nil || r.Key != nil || r.Records != nil {
					return nil, s.corrupt(name, off, "replace record lacks field or value, or has extra fields")
				}
			case "end":
				if r.Records == nil || *r.Records != len(d.patches) || r.Field != "" || r.Key != nil || r.Value != nil {
					return nil, s.corrupt(name, off, fmt.Sprintf("end record does not count the %d records before it", len(d.patches)))
				}
				sawEnd = true
			default:
				return nil, s.corrupt(name, off, fmt.Sprintf("unknown record kind %q", r.Kind))
			}
			if r.Kind != "end" {
				d.patches = append(d.patches, p)
			}
		}
		b = b[nl+1:]
		off += int64(nl + 1)
	}
	if !sawEnd {
		return nil, s.corrupt(name, off, "no end record (a delta is written atomically: this is not a torn write)")
	}
	return d, nil
}

// unframe checks a line's CRC and returns its rec, or why it is damaged.
func unframe(line []byte) (rec []byte, why string) {
	if len(line) >= minLineLength && string(line[:crcOffset]) == linePrefix[:crcOffset] &&
		string(line[crcOffset+8:recOffset]) == linePrefix[crcOffset+8:] && line[len(line)-1] == '}' {
		rec = line[recOffset : len(line)-1]
		crc := string(line[crcOffset : crcOffset+8])
		if !isLowerHex8(crc) || fmt.Sprintf("%08x", crc32.Checksum(rec, castagnoli)) != crc {
			return nil, "CRC mismatch"
		}
		if !validJSON(rec) {
			return nil, "record is not JSON"
		}
		return rec, ""
	}
	m, err := unmarshalObject(line)
	if err != nil || len(m) != 2 || m["crc"] == nil || m["rec"] == nil {
		return nil, "line is not {\"crc\":..,\"rec\":..}"
	}
	var crc string
	if json.Unmarshal(m["crc"], &crc) != nil || !isLowerHex8(crc) {
		return nil, "bad crc field"
	}
	rec = m["rec"]
	if fmt.Sprintf("%08x", crc32.Checksum(rec, castagnoli)) != crc {
		return nil, "CRC mismatch"
	}
	return rec, ""
}

// chain is the newest base and the deltas that follow it, in order.
type chain struct {
	base   uint64
	deltas []string
}

// findChain picks the deltas that continue the newest base. Deltas that end
// at or below the base are leftovers of a merge that crashed before it
// deleted them (ignored, and deleted by the next compact). Any other delta
// that does not continue the chain is damage: two that start at one index,
// or one that starts past the chain's end (a delta in between is missing).
func (s *Storage) findChain(l dirListing) (chain, error) {
	var c chain
	if len(l.snaps) == 0 {
		if len(l.deltas) > 0 {
			return c, s.corrupt(l.deltas[0], -1, "a delta snapshot but no base snapshot file: "+lostAdvice)
		}
		return c, nil
	}
	c.base = l.snaps[len(l.snaps)-1]
	end := c.base
	for _, name := range l.deltas { // sorted by from, then to
		from, to, _ := parseDeltaName(name)
		switch {
		case to <= c.base:
			continue
		case from < end || to <= from:
			return c, s.corrupt(name, -1, fmt.Sprintf("delta %d..%d overlaps the snapshot chain ending at %d", from, to, end))
		case from > end:
			return c, s.corrupt(name, -1, fmt.Sprintf("delta %d..%d does not follow the snapshot chain ending at %d: a delta is missing; %s", from, to, end, lostAdvice))
		}
		c.deltas = append(c.deltas, name)
		end = to
	}
	return c, nil
}

// loadChain reads the base and the deltas of c and returns the base's
// snapshot with its state machine as the base holds it (Index, Term and
// configuration the newest delta's), the deltas' net effect on it (nil
// when there are none), the base's size and the deltas' size.
func (s *Storage) loadChain(c chain) (snap *raft.Snapshot, deltas *Deltas, baseBytes, deltaBytes int64, err error) {
	base, err := s.loadSnapshot(snapshotName(c.base))
	if err != nil {
		return nil, nil, 0, 0, err
	}
	baseBytes = int64(len(base.Data))
	if len(c.deltas) == 0 {
		return base, nil, baseBytes, 0, nil
	}
	ps := newPatchSet()
	snap = base
	for _, name := range c.deltas {
		d, err := s.loadDelta(name)
		if err != nil {
			return nil, nil, 0, 0, err
		}
		for _, p := range d.patches {
			if why := ps.add(p); why != "" {
				return nil, nil, 0, 0, s.corrupt(name, p.off, why)
			}
		}
		deltaBytes += d.size
		snap = &raft.Snapshot{Index: d.head.Index, Term: d.head.Term, Peers: d.head.Peers, Membership: d.head.Membership, Data: base.Data}
	}
	return snap, &Deltas{ps: ps}, baseBytes, deltaBytes, nil
}

// Deltas is the net effect of a chain of delta files on its base's state
// machine (Recovered.Deltas): per top-level field, a new value of the
// whole field, or new values of some members of an object field. A restart
// applies it to the decoded base (kv.Store.RestoreChain) rather than
// writing base and deltas into one more copy of the state: at a million
// keys that copy took seconds of a restart.
type Deltas struct{ ps *patchSet }

// Each calls fn for every field replaced whole (member false, key "") and
// every member of an object field set (value its JSON) or removed (value
// nil). A nil Deltas has none.
func (d *Deltas) Each(fn func(field string, member bool, key string, value []byte) error) error {
	if d == nil {
		return nil
	}
	for field, fp := range d.ps.fields {
		if fp.replace != nil {
			if err := fn(field, false, "", fp.replace); err != nil {
				return err
			}
			continue
		}
		for key, kp := range fp.keys {
			if err := fn(field, true, key, kp.value); err != nil {
				return err
			}
		}
	}
	return nil
}

// Materialize returns the state machine data with the deltas applied, as
// one JSON object (the form a snapshot file holds).
func (d *Deltas) Materialize(data []byte) ([]byte, error) {
	if d == nil {
		return data, nil
	}
	var out bytes.Buffer
	out.Grow(len(data) + len(data)/8)
	if err := materialize(&out, data, d.ps); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// patchSet is the net effect of a chain of deltas.
type patchSet struct {
	fields map[string]*fieldPatch
}

type fieldPatch struct {
	replace []byte
	keys    map[string]keyPatch
}

type keyPatch struct {
	raw   []byte // the key as a JSON string
	value []byte // nil: deleted
}

func newPatchSet() *patchSet { return &patchSet{fields: map[string]*fieldPatch{}} }

func (ps *patchSet) add(p patch) string {
	fp := ps.fields[p.field]
	if fp == nil {
		fp = &fieldPatch{}
		ps.fields[p.field] = fp
	}
	switch p.op {
	case "replace":
		if fp.keys != nil {
			return fmt.Sprintf("field %q is both patched and replaced", p.field)
		}
		fp.replace = p.value
	default:
		if fp.replace != nil {
			return fmt.Sprintf("field %q is both replaced and patched", p.field)
		}
		if fp.keys == nil {
			fp.keys = map[string]keyPatch{}
		}
		fp.keys[p.key] = keyPatch{raw: p.rawKy, value: p.value} // value nil for del
	}
	return ""
}

// materialize writes base (a JSON object) with ps applied: replaced fields
// take their new value, patched object fields their members' new values,
// deleted members are left out; new members and fields go in sorted order
// (a sorted base stays sorted). Everything else is copied as it is.
func materialize(w *bytes.Buffer, base []byte, ps *patchSet) error {
	v := validator{b: base}
	v.ws()
	if v.peek() != '{' {
		return errors.New("not an object")
	}
	v.i++
	w.WriteByte('{')
	seen := map[string]bool{}
	first := true
	for {
		v.ws()
		if v.peek() == '}' {
			v.i++
			break
		}
		if !first {
			if v.peek() != ',' {
				return fmt.Errorf("at %d: want , or }", v.i)
			}
			v.i++
			v.ws()
		}
		name, raw, val, err := member(&v)
		if err != nil {
			return err
		}
		seen[name] = true
		if !first {
			w.WriteByte(',')
		}
		first = false
		w.Write(raw)
		w.WriteByte(':')
		fp := ps.fields[name]
		switch {
		case fp == nil:
			w.Write(val)
		case fp.replace != nil:
			w.Write(fp.replace)
		default:
			if err := mergeObject(w, val, fp.keys); err != nil {
				return fmt.Errorf("field %s: %w", name, err)
			}
		}
	}
	v.ws()
	if v.i != len(v.b) {
		return fmt.Errorf("at %d: data after the object", v.i)
	}
	names := make([]string, 0, len(ps.fields))
	for name := range ps.fields {
		if !seen[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if !first {
			w.WriteByte(',')
		}
		first = false
		q, _ := json.Marshal(name)
		w.Write(q)
		w.WriteByte(':')
		fp := ps.fields[name]
		if fp.replace != nil {
			w.Write(fp.replace)
		} else if err := mergeObject(w, []byte("{}"), fp.keys); err != nil {
			return err
		}
	}
	w.WriteByte('}')
	return nil
}

// member reads `"name": value` at v.i: the decoded name, its raw bytes, the raw value.
func member(v *validator) (name string, raw, val []byte, err error) {
	start := v.i
	if v.peek() != '"' || !v.str() {
		return "", nil, nil, fmt.Errorf("at %d: want a member name", start)
	}
	raw = v.b[start:v.i]
	if bytes.IndexByte(raw, '\\') < 0 {
		name = string(raw[1 : len(raw)-1])
	} else if err := json.Unmarshal(raw, &name); err != nil {
		return "", nil, nil, fmt.Errorf("at %d: %w", start, err)
	}
	v.ws()
	if v.peek() != ':' {
		return "", nil, nil, fmt.Errorf("at %d: want a colon", v.i)
	}
	v.i++
	v.ws()
	vs := v.i
	if !v.value(0) {
		return "", nil, nil, fmt.Errorf("at %d: bad value", vs)
	}
	return name, raw, v.b[vs:v.i], nil
}

// mergeObject writes the object obj with the member patches applied.
func mergeObject(w *bytes.Buffer, obj []byte, keys map[string]keyPatch) error {
	pending := make([]string, 0, len(keys))
	for k := range keys {
		pending = append(pending, k)
	}
	slices.Sort(pending)
	pi := 0
	first := true
	put := func(raw, val []byte) {
		if !first {
			w.WriteByte(',')
		}
		first = false
		w.Write(raw)
		w.WriteByte(':')
		w.Write(val)
	}
	// emitPending writes the patched members that sort before limit (all, if end).
	emitPending := func(limit string, end bool) {
		for pi < len(pending) && (end || pending[pi] < limit) {
			if p := keys[pending[pi]]; p.value != nil {
				put(p.raw, p.value)
			}
			pi++
		}
	}
	v := validator{b: obj}
	v.ws()
	if v.peek() != '{' {
		return errors.New("not an object")
	}
	v.i++
	w.WriteByte('{')
	firstIn := true
	for {
		v.ws()
		if v.peek() == '}' {
			break
		}
		if !firstIn {
			if v.peek() != ',' {
				return fmt.Errorf("at %d: want , or }", v.i)
			}
			v.i++
			v.ws()
		}
		firstIn = false
		name, raw, val, err := member(&v)
		if err != nil {
			return err
		}
		emitPending(name, false)
		if p, ok := keys[name]; ok {
			// Patched: written here, or already (the base is not sorted).
			if pi < len(pending) && pending[pi] == name {
				if p.value != nil {
					put(p.raw, p.value)
				}
				pi++
			}
			continue
		}
		put(raw, val)
	}
	emitPending("", true)
	w.WriteByte('}')
	return nil
}

// removeStaleDeltas deletes the deltas that end at or below the newest base
// (a merge made them garbage).
func (s *Storage) removeStaleDeltas(l dirListing) error {
	for _, name := range l.deltas {
		if _, to, _ := parseDeltaName(name); to <= s.baseIndex {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return err
			}
			s.lg.Debug("delta snapshot deleted", zap.String("file", name))
		}
	}
	return nil
}

// WriteSnapshotTo writes the newest snapshot as one self-contained snapshot
// file (the snapshot-<index>.json format: base and deltas materialized) to
// w, and returns its index and term; index 0 when there is none. It is the
// seam for whoever needs the whole state as one stream (a leader sending a
// snapshot, a backup).
func (s *Storage) WriteSnapshotTo(w io.Writer) (index, term uint64, err error) {
	snap, err := s.LoadSnapshot()
	if err != nil || snap == nil {
		return 0, 0, err
	}
	bw := bufio.NewWriter(w)
	if err := writeSnapshotFile(bw, *snap, func(w io.Writer) error {
		_, err := w.Write(snap.Data)
		return err
	}); err != nil {
		return 0, 0, err
	}
	return snap.Index, snap.Term, bw.Flush()
}
