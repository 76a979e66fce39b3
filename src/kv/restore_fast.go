package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// decodeSnapshotFast decodes a snapshot in the spelling EncodeTo writes
// ({"Contents":{..},"Meta":{..}, then "Sessions", "Leases" and
// "AppliedIndex", no white space) with a hand-written parser: encoding/json takes about ten
// times longer on the key-value map, and a restart waits for it. It gives
// exactly what encoding/json gives (a string with an escape or a byte
// outside ASCII is handed to encoding/json), or ok = false for anything
// spelled otherwise, which Restore then decodes with encoding/json (and
// its errors).
func decodeSnapshotFast(data []byte) (snap snapshotJSON, ok bool) {
	p := &fastParser{b: data}
	if !p.lit(`{"Contents":{`) {
		return snap, false
	}
	// Pairs first, then a map of the right size: growing a map of a
	// million keys rehashes it again and again. The pairs go in blocks, so
	// that no growing slice copies them again and again either.
	type kvPair struct{ k, v string }
	const block = 1 << 14
	var blocks [][]kvPair
	n := 0
	for !p.lit("}") {
		if n > 0 && !p.lit(",") {
			return snap, false
		}
		k, ok1 := p.str()
		ok2 := p.lit(":")
		v, ok3 := p.str()
		if !ok1 || !ok2 || !ok3 {
			return snap, false
		}
		if n%block == 0 {
			blocks = append(blocks, make([]kvPair, 0, block))
		}
		blocks[len(blocks)-1] = append(blocks[len(blocks)-1], kvPair{k, v})
		n++
	}
	snap.Contents = make(map[string]string, n)
	// The writer sorts the keys (EncodeTo, and a delta chain's merge keeps
	// them sorted): kept in that order, the key index is built without
	// sorting a million strings again.
	snap.keys = make([]string, 0, n)
	for _, b := range blocks {
		for _, kv := range b {
			if _, dup := snap.Contents[kv.k]; !dup {
				snap.keys = append(snap.keys, kv.k)
			}
			snap.Contents[kv.k] = kv.v
		}
	}
	blocks = nil
	if !p.lit(`,"Meta":{`) {
		return snap, false
	}
	// Straight into the Store's type (see restoreMeta).
	snap.meta = make(map[string]Meta, len(snap.Contents))
	for n := 0; !p.lit("}"); n++ {
		if n > 0 && !p.lit(",") {
			return snap, false
		}
		k, ok1 := p.str()
		if !ok1 || !p.lit(":[") {
			return snap, false
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
		snap.meta[k] = Meta{CreateIndex: m[0], ModIndex: m[1], Version: m[2]}
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
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	start := p.i
	j := p.i + 1
	for j < len(p.b) {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return string(p.b[start+1 : j]), true
		}
		if c < 0x20 || c >= 0x80 || c == '\\' {
			break
		}
		j++
	}
	// The slow way: find the closing quote, skipping escapes.
	for j < len(p.b) && p.b[j] != '"' {
		if p.b[j] == '\\' {
			j++
		}
		j++
	}
	if j >= len(p.b) {
		return "", false
	}
	var s string
	if json.Unmarshal(p.b[start:j+1], &s) != nil {
		return "", false
	}
	p.i = j + 1
	return s, true
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
