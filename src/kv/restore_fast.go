package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// decodeSnapshotFast decodes a snapshot in the spelling EncodeTo writes
// ({"Contents":{..},"Meta":{..}, then "Sessions", "Leases" and
// "AppliedIndex", no white space, keys sorted and in the same order in
// Contents and Meta) with a hand-written parser, straight into a table:
// encoding/json takes about ten times longer on the key-value map, and a
// restart waits for it. It gives exactly what encoding/json gives (a string
// with an escape or a byte outside ASCII is handed to encoding/json), or
// ok = false for anything spelled otherwise, which Restore then decodes
// with encoding/json (and its errors).
func decodeSnapshotFast(data []byte) (snap snapshotJSON, ok bool) {
	p := &fastParser{b: data}
	if !p.lit(`{"Contents":{`) {
		return snap, false
	}
	// Plain values go from the snapshot's bytes to the table's slabs
	// without a string of their own in between.
	var d decodedKeys
	for !p.lit("}") {
		if len(d.keys) > 0 && !p.lit(",") {
			return snap, false
		}
		k, ok1 := p.str()
		if !ok1 || len(d.keys) > 0 && k <= d.keys[len(d.keys)-1] || !p.lit(":") {
			return snap, false // unsorted or repeated keys: the slow way
		}
		start := p.i
		v, plain, ok2 := p.strPlain()
		if !ok2 {
			return snap, false
		}
		if plain {
			d.add(k, data[start+1:p.i-1], Meta{})
		} else {
			d.add(k, []byte(v), Meta{})
		}
	}
	if !p.lit(`,"Meta":{`) {
		return snap, false
	}
	n := 0
	for ; !p.lit("}"); n++ {
		if n > 0 && !p.lit(",") {
			return snap, false
		}
		k, ok1 := p.str()
		if !ok1 || n >= len(d.keys) || k != d.keys[n] || !p.lit(":[") {
			return snap, false // not Contents' keys in order: the slow way
		}
		var m [3]uint64
		for j := range m {
			if j > 0 && !p.lit(",") {
				return snap, false
			}
			if m[j], ok1 = p.uint(); !ok1 {
				return snap, false
			}
		}
		if !p.lit("]") {
			return snap, false
		}
		d.metas[n] = Meta{CreateIndex: m[0], ModIndex: m[1], Version: m[2]}
	}
	if n != len(d.keys) {
		return snap, false
	}
	// The rest (the session table, the leases, the applied index, in any
	// order: a delta chain's materialized state adds Leases last) is small:
	// encoding/json, strictly, on an object of the members after Meta.
	if !p.lit(",") {
		return snap, false
	}
	rest := append([]byte{'{'}, p.b[p.i:]...)
	var tail struct {
		Sessions     map[string]sessionJSON
		Leases       map[string]leaseJSON
		AppliedIndex *uint64
	}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if dec.Decode(&tail) != nil || dec.InputOffset() != int64(len(rest)) || tail.Sessions == nil || tail.AppliedIndex == nil {
		return snap, false
	}
	snap.Sessions, snap.Leases, snap.AppliedIndex = tail.Sessions, tail.Leases, *tail.AppliedIndex
	snap.decoded = &d
	return snap, true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a JSON string: plain ASCII directly, anything else through
// encoding/json (escapes, UTF-8 and its replacement of invalid bytes).
func (p *fastParser) str() (string, bool) {
	start := p.i
	s, plain, ok := p.strPlain()
	if plain {
		return string(p.b[start+1 : p.i-1]), true
	}
	return s, ok
}

// strPlain is str without the string for plain ASCII: plain reports that
// the string is the bytes between the quotes as they are.
func (p *fastParser) strPlain() (s string, plain, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false, false
	}
	start := p.i
	j := plainPrefixBytes(p.b, p.i+1)
	if j < len(p.b) && p.b[j] == '"' {
		p.i = j + 1
		return "", true, true
	}
	// The slow way: find the closing quote, skipping escapes.
	for j < len(p.b) && p.b[j] != '"' {
		if p.b[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(p.b) {
		return "", false, false
	}
	if json.Unmarshal(p.b[start:j+1], &s) != nil {
		return "", false, false
	}
	p.i = j + 1
	return s, false, true
}

func (p *fastParser) uint() (uint64, bool) {
	j := p.i
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == p.i || (p.b[p.i] == '0' && j-p.i > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return n, true
}
