package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"unicode/utf8"

	"raftkv/src/raft"
)

// recKind says what one log line holds.
type recKind uint8

const (
	kindEntry     recKind = iota + 1 // a log entry
	kindHardState                    // term, vote, commit
	kindTruncate                     // drop every entry at index >= record.index
	kindSnapshot                     // a snapshot at (index, term) was made durable; keep_log says whether the log after it stays
)

var kindNames = [...]string{
	kindEntry:     "entry",
	kindHardState: "hardstate",
	kindTruncate:  "truncate",
	kindSnapshot:  "snapshot",
}

func (k recKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("recKind(%d)", uint8(k))
}

// record is one decoded log line.
type record struct {
	kind  recKind
	entry raft.Entry     // kindEntry
	hs    raft.HardState // kindHardState
	index uint64         // kindTruncate, kindSnapshot
	term  uint64         // kindSnapshot
	keep  bool           // kindSnapshot: the log after index was kept (else discarded)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const hexDigits = "0123456789abcdef"

// A line is `{"crc":"<8 hex digits>","rec":<rec>}` + "\n"; the CRC-32C covers
// the exact bytes of <rec>. The prefix has a fixed width so the encoder can
// write <rec> in place and patch the CRC in afterwards (no copy).
const (
	linePrefix    = `{"crc":"00000000","rec":`
	crcOffset     = len(`{"crc":"`)
	recOffset     = len(linePrefix)
	minLineLength = recOffset + len(`{}}`)
)

func beginRecord(buf []byte) ([]byte, int) {
	return append(buf, linePrefix...), len(buf)
}

func endRecord(buf []byte, start int) []byte {
	c := crc32.Checksum(buf[start+recOffset:], castagnoli)
	for i := 7; i >= 0; i-- {
		buf[start+crcOffset+i] = hexDigits[c&0xf]
		c >>= 4
	}
	return append(buf, "}\n"...)
}

// appendEntry appends e as one line. Data that is a JSON value (valid UTF-8,
// no line break, no surrounding white space) is written raw as "cmd" so that
// jq shows it; other data is base64 in "data"; nil data is omitted and empty
// non-nil data is `"data":""`, so decoding gives back exactly e.Data.
func appendEntry(buf []byte, e *raft.Entry) []byte {
	buf, st := beginRecord(buf)
	buf = append(buf, `{"kind":"entry","term":`...)
	buf = strconv.AppendUint(buf, e.Term, 10)
	buf = append(buf, `,"index":`...)
	buf = strconv.AppendUint(buf, e.Index, 10)
	buf = append(buf, `,"type":`...)
	buf = strconv.AppendUint(buf, uint64(e.Type), 10)
	switch {
	case e.Data == nil:
	case isRawJSON(e.Data):
		buf = append(buf, `,"cmd":`...)
		buf = append(buf, e.Data...)
	default:
		buf = append(buf, `,"data":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, e.Data)
		buf = append(buf, '"')
	}
	buf = append(buf, '}')
	return endRecord(buf, st)
}

func appendHardState(buf []byte, hs raft.HardState) []byte {
	buf, st := beginRecord(buf)
	buf = append(buf, `{"kind":"hardstate","term":`...)
	buf = strconv.AppendUint(buf, hs.Term, 10)
	buf = append(buf, `,"vote":`...)
	buf = strconv.AppendInt(buf, int64(hs.Vote), 10)
	buf = append(buf, `,"commit":`...)
	buf = strconv.AppendUint(buf, hs.Commit, 10)
	buf = append(buf, '}')
	return endRecord(buf, st)
}

func appendTruncate(buf []byte, index uint64) []byte {
	buf, st := beginRecord(buf)
	buf = append(buf, `{"kind":"truncate","index":`...)
	buf = strconv.AppendUint(buf, index, 10)
	buf = append(buf, '}')
	return endRecord(buf, st)
}

func appendSnapshotMark(buf []byte, index, term uint64, keep bool) []byte {
	buf, st := beginRecord(buf)
	buf = append(buf, `{"kind":"snapshot","index":`...)
	buf = strconv.AppendUint(buf, index, 10)
	buf = append(buf, `,"term":`...)
	buf = strconv.AppendUint(buf, term, 10)
	buf = append(buf, `,"keep_log":`...)
	buf = strconv.AppendBool(buf, keep)
	buf = append(buf, '}')
	return endRecord(buf, st)
}

// isRawJSON reports whether d can be stored verbatim as the "cmd" field of a
// line and read back byte for byte by both decoders.
func isRawJSON(d []byte) bool {
	if len(d) == 0 || isSpace(d[0]) || isSpace(d[len(d)-1]) {
		return false
	}
	if bytes.IndexByte(d, '\n') >= 0 || bytes.IndexByte(d, '\r') >= 0 {
		return false
	}
	return validJSON(d)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// errBadCRC marks a line whose envelope parses but whose CRC does not match.
var errBadCRC = errors.New("CRC mismatch")

// decodeRecord decodes one line (without its trailing newline). The lines
// this package writes take a fast hand-written path; anything else (a line
// rewritten by a person or a tool, or damage) takes the encoding/json path,
// which is the reference: the fast path accepts only what it also accepts,
// with the same result (FuzzDecodeRecord checks this). Arbitrary input never
// panics; a zero-copy "cmd" aliases line.
func decodeRecord(line []byte) (record, error) {
	if r, ok := decodeFast(line); ok {
		return r, nil
	}
	return decodeGeneric(line)
}

type cursor struct {
	b  []byte
	i  int
	ok bool
}

func (c *cursor) lit(s string) {
	if c.ok && len(c.b)-c.i >= len(s) && string(c.b[c.i:c.i+len(s)]) == s {
		c.i += len(s)
		return
	}
	c.ok = false
}

// uint parses a canonical unsigned decimal (no sign, no leading zero).
func (c *cursor) uint() uint64 {
	if !c.ok {
		return 0
	}
	start := c.i
	var v uint64
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		d := uint64(c.b[c.i] - '0')
		if v > (1<<64-1-d)/10 {
			c.ok = false
			return 0
		}
		v = v*10 + d
		c.i++
	}
	n := c.i - start
	if n == 0 || (n > 1 && c.b[start] == '0') {
		c.ok = false
	}
	return v
}

func (c *cursor) int() int64 {
	if c.ok && c.i < len(c.b) && c.b[c.i] == '-' {
		c.i++
		v := c.uint()
		if v == 0 || v > 1<<63 {
			c.ok = false
			return 0
		}
		return -int64(v-1) - 1
	}
	v := c.uint()
	if v > 1<<63-1 {
		c.ok = false
		return 0
	}
	return int64(v)
}

func (c *cursor) end() bool { return c.ok && c.i == len(c.b) }

func decodeFast(line []byte) (record, bool) {
	var r record
	if len(line) < minLineLength || string(line[:crcOffset]) != linePrefix[:crcOffset] ||
		string(line[crcOffset+8:recOffset]) != linePrefix[crcOffset+8:] || line[len(line)-1] != '}' {
		return r, false
	}
	var want uint32
	for _, h := range line[crcOffset : crcOffset+8] {
		switch {
		case h >= '0' && h <= '9':
			want = want<<4 | uint32(h-'0')
		case h >= 'a' && h <= 'f':
			want = want<<4 | uint32(h-'a'+10)
		default:
			return r, false
		}
	}
	rec := line[recOffset : len(line)-1]
	if crc32.Checksum(rec, castagnoli) != want {
		return r, false
	}
	c := cursor{b: rec, ok: true}
	switch {
	case bytes.HasPrefix(rec, []byte(`{"kind":"entry",`)):
		c.lit(`{"kind":"entry","term":`)
		r.kind = kindEntry
		r.entry.Term = c.uint()
		c.lit(`,"index":`)
		r.entry.Index = c.uint()
		c.lit(`,"type":`)
		t := c.uint()
		if t > 255 {
			return r, false
		}
		r.entry.Type = raft.EntryType(t)
		if !c.ok {
			return r, false
		}
		rest := rec[c.i:]
		switch {
		case len(rest) == 1 && rest[0] == '}':
		case bytes.HasPrefix(rest, []byte(`,"cmd":`)) && rest[len(rest)-1] == '}':
			d := rest[len(`,"cmd":`) : len(rest)-1]
			if !isRawJSON(d) {
				return r, false
			}
			// A copy, not a slice of line: an entry that stays in memory
			// (the core's log window) would keep the whole segment file it
			// was read from alive, 55 MB at a million keys, in a restarted
			// node's every byte of RSS.
			r.entry.Data = bytes.Clone(d)
		case bytes.HasPrefix(rest, []byte(`,"data":"`)) && bytes.HasSuffix(rest, []byte(`"}`)) &&
			len(rest) >= len(`,"data":""}`):
			enc := rest[len(`,"data":"`) : len(rest)-2]
			d := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
			n, err := base64.StdEncoding.Strict().Decode(d, enc)
			if err != nil || base64.StdEncoding.EncodedLen(n) != len(enc) {
				return r, false
			}
			r.entry.Data = d[:n:n]
		default:
			return r, false
		}
		return r, true
	case bytes.HasPrefix(rec, []byte(`{"kind":"hardstate",`)):
		c.lit(`{"kind":"hardstate","term":`)
		r.kind = kindHardState
		r.hs.Term = c.uint()
		c.lit(`,"vote":`)
		v := c.int()
		if v != int64(raft.ID(v)) {
			return r, false
		}
		r.hs.Vote = raft.ID(v)
		c.lit(`,"commit":`)
		r.hs.Commit = c.uint()
		c.lit(`}`)
		return r, c.end()
	case bytes.HasPrefix(rec, []byte(`{"kind":"truncate",`)):
		c.lit(`{"kind":"truncate","index":`)
		r.kind = kindTruncate
		r.index = c.uint()
		c.lit(`}`)
		return r, c.end()
	case bytes.HasPrefix(rec, []byte(`{"kind":"snapshot",`)):
		c.lit(`{"kind":"snapshot","index":`)
		r.kind = kindSnapshot
		r.index = c.uint()
		c.lit(`,"term":`)
		r.term = c.uint()
		c.lit(`,"keep_log":`)
		if c.ok && bytes.HasPrefix(rec[c.i:], []byte("true")) {
			r.keep = true
			c.lit("true")
		} else {
			c.lit("false")
		}
		c.lit(`}`)
		return r, c.end()
	}
	return r, false
}

type genericRec struct {
	Kind   string
	Term   *uint64
	Index  *uint64
	Type   *uint8
	Vote   *int64
	Commit *uint64
	Cmd    json.RawMessage
	Data   *string
	Keep   *bool
}

// unmarshalObject decodes a JSON object with exactly-spelled keys (encoding/json
// matches struct fields case-insensitively; a map does not) and nothing after it.
func unmarshalObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not an object")
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, errors.New("data after the JSON value")
	}
	return m, nil
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) != 0 {
		return errors.New("data after the JSON value")
	}
	return nil
}

func parseRec(b []byte) (genericRec, error) {
	var g genericRec
	m, err := unmarshalObject(b)
	if err != nil {
		return g, err
	}
	for k, v := range m {
		var err error
		switch k {
		case "kind":
			err = json.Unmarshal(v, &g.Kind)
		case "term":
			err = json.Unmarshal(v, &g.Term)
		case "index":
			err = json.Unmarshal(v, &g.Index)
		case "type":
			err = json.Unmarshal(v, &g.Type)
		case "vote":
			err = json.Unmarshal(v, &g.Vote)
		case "commit":
			err = json.Unmarshal(v, &g.Commit)
		case "cmd":
			g.Cmd = v
		case "data":
			err = json.Unmarshal(v, &g.Data)
		case "keep_log":
			err = json.Unmarshal(v, &g.Keep)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return g, fmt.Errorf("field %q: %v", k, err)
		}
	}
	return g, nil
}

func decodeGeneric(line []byte) (record, error) {
	var r record
	if !utf8.Valid(line) {
		return r, errors.New("not UTF-8")
	}
	env, err := unmarshalObject(line)
	if err != nil {
		return r, fmt.Errorf("not a record: %v", err)
	}
	crcRaw, rec := env["crc"], env["rec"]
	if len(env) != 2 || crcRaw == nil || rec == nil {
		return r, errors.New(`not a record: want exactly "crc" and "rec"`)
	}
	var crcHex string
	if err := json.Unmarshal(crcRaw, &crcHex); err != nil || !isLowerHex8(crcHex) {
		return r, fmt.Errorf("bad crc %s", crcRaw)
	}
	want, _ := strconv.ParseUint(crcHex, 16, 32)
	if got := crc32.Checksum(rec, castagnoli); got != uint32(want) {
		return r, fmt.Errorf("%w: stored %08x, computed %08x", errBadCRC, want, got)
	}
	g, err := parseRec(rec)
	if err != nil {
		return r, fmt.Errorf("bad rec: %v", err)
	}
	has := func(fields ...bool) bool {
		for _, f := range fields {
			if !f {
				return false
			}
		}
		return true
	}
	switch g.Kind {
	case "entry":
		if !has(g.Term != nil, g.Index != nil, g.Type != nil, g.Vote == nil, g.Commit == nil, g.Keep == nil) ||
			(g.Cmd != nil && g.Data != nil) {
			return r, errors.New("bad entry record: wrong fields")
		}
		r.kind = kindEntry
		r.entry = raft.Entry{Term: *g.Term, Index: *g.Index, Type: raft.EntryType(*g.Type)}
		switch {
		case g.Cmd != nil:
			if !isRawJSON(g.Cmd) {
				return r, errors.New("bad entry record: cmd")
			}
			r.entry.Data = append([]byte(nil), g.Cmd...)
		case g.Data != nil:
			d, err := base64.StdEncoding.Strict().DecodeString(*g.Data)
			if err != nil || base64.StdEncoding.EncodedLen(len(d)) != len(*g.Data) {
				return r, errors.New("bad entry record: data is not base64")
			}
			r.entry.Data = d
		}
	case "hardstate":
		if !has(g.Term != nil, g.Vote != nil, g.Commit != nil, g.Index == nil, g.Type == nil, g.Cmd == nil, g.Data == nil, g.Keep == nil) ||
			*g.Vote != int64(raft.ID(*g.Vote)) {
			return r, errors.New("bad hardstate record: wrong fields")
		}
		r.kind = kindHardState
		r.hs = raft.HardState{Term: *g.Term, Vote: raft.ID(*g.Vote), Commit: *g.Commit}
	case "truncate":
		if !has(g.Index != nil, g.Term == nil, g.Vote == nil, g.Commit == nil, g.Type == nil, g.Cmd == nil, g.Data == nil, g.Keep == nil) {
			return r, errors.New("bad truncate record: wrong fields")
		}
		r.kind = kindTruncate
		r.index = *g.Index
	case "snapshot":
		if !has(g.Index != nil, g.Term != nil, g.Keep != nil, g.Vote == nil, g.Commit == nil, g.Type == nil, g.Cmd == nil, g.Data == nil) {
			return r, errors.New("bad snapshot record: wrong fields")
		}
		r.kind = kindSnapshot
		r.index, r.term, r.keep = *g.Index, *g.Term, *g.Keep
	default:
		return r, fmt.Errorf("unknown record kind %q", g.Kind)
	}
	return r, nil
}

func isLowerHex8(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
