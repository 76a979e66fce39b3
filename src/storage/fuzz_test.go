package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// seedLines are valid lines of every kind; the committed corpus under
// testdata/fuzz/FuzzDecodeRecord holds them and damaged variants.
func seedLines() [][]byte {
	var lines [][]byte
	add := func(b []byte) { lines = append(lines, bytes.TrimSuffix(b, []byte("\n"))) }
	for _, i := range []uint64{1, 2, 3, 5, 1 << 40} {
		e := testEntry(i)
		add(appendEntry(nil, &e))
	}
	add(appendEntry(nil, &raft.Entry{Term: 1, Index: 7, Data: []byte{}}))
	add(appendEntry(nil, &raft.Entry{Term: 1, Index: 8, Data: []byte(`null`)}))
	add(appendHardState(nil, raft.HardState{Term: 3, Vote: raft.None, Commit: 2}))
	add(appendTruncate(nil, 9))
	add(appendSnapshotMark(nil, 10, 2, false))
	return lines
}

// FuzzDecodeRecord: arbitrary bytes never panic the decoder; whatever the
// fast path accepts, the reference (encoding/json) path accepts with the
// same result; a decoded record encodes to a line that decodes to it again.
func FuzzDecodeRecord(f *testing.F) {
	for _, l := range seedLines() {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := decodeRecord(line)
		if fast, ok := decodeFast(line); ok {
			g, gerr := decodeGeneric(line)
			if gerr != nil {
				t.Fatalf("fast path accepts what the reference refuses (%v): %q", gerr, line)
			}
			if !recordsEqual(fast, g) {
				t.Fatalf("fast and reference disagree on %q:\n%+v\n%+v", line, fast, g)
			}
		}
		if err != nil {
			return
		}
		var enc []byte
		switch r.kind {
		case kindEntry:
			enc = appendEntry(nil, &r.entry)
		case kindHardState:
			enc = appendHardState(nil, r.hs)
		case kindTruncate:
			enc = appendTruncate(nil, r.index)
		case kindSnapshot:
			enc = appendSnapshotMark(nil, r.index, r.term, r.keep)
		default:
			t.Fatalf("decoded an unknown kind %v", r.kind)
		}
		if bytes.Count(enc, []byte("\n")) != 1 {
			t.Fatalf("encoding of %+v is not one line: %q", r, enc)
		}
		r2, ok := decodeFast(enc[:len(enc)-1])
		if !ok || !recordsEqual(r, r2) {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v (%v)", line, r, enc, r2, ok)
		}
	})
}

func recordsEqual(a, b record) bool {
	return a.kind == b.kind && a.hs == b.hs && a.index == b.index && a.term == b.term && a.keep == b.keep &&
		a.entry.Term == b.entry.Term && a.entry.Index == b.entry.Index && a.entry.Type == b.entry.Type &&
		bytes.Equal(a.entry.Data, b.entry.Data) && (a.entry.Data == nil) == (b.entry.Data == nil)
}

// TestWriteSeedCorpus regenerates testdata/fuzz/FuzzDecodeRecord when run
// with STORAGE_WRITE_CORPUS=1.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("STORAGE_WRITE_CORPUS") == "" {
		t.Skip("set STORAGE_WRITE_CORPUS=1 to regenerate the committed fuzz corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRecord")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	var inputs [][]byte
	for _, l := range seedLines() {
		inputs = append(inputs, l)
		inputs = append(inputs, l[:len(l)/2]) // torn
		inputs = append(inputs, bytes.Replace(l, []byte(`"rec"`), []byte(`"Rec"`), 1))
		flipped := bytes.Clone(l)
		flipped[len(flipped)-5] ^= 0x20
		inputs = append(inputs, flipped)
	}
	inputs = append(inputs,
		[]byte(`{ "rec" : {"kind":"truncate","index":9} , "crc" : "8e3a8e5c" }`),
		[]byte(`{"crc":"00000000","rec":{"kind":"entry","term":1,"index":1,"type":0,"cmd":[[[[[[[[[[`),
		[]byte(`{"crc":"00000000","rec":{"kind":"hardstate","term":1,"vote":-9223372036854775808,"commit":1}}`),
		[]byte{0, 0, 0, 0},
		[]byte{},
	)
	for k, in := range inputs {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", k))
		require.NoError(t, os.WriteFile(name, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", in), 0o644))
	}
}

// FuzzValidJSON: the fast validator agrees with encoding/json (plus UTF-8).
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,true,null,"x\u00e9\n"]}`, `-0`, `01`, `"\ud800"`, "\"\xed\xa0\x80\"",
		`[1,]`, `{"a" 1}`, ` 1 `, `1.`, `1e`, `"\x"`, "\"\x7f\"", `[[[[]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b) && utf8.Valid(b)
		if got := validJSON(b); got != want {
			t.Fatalf("validJSON(%q) = %v, want %v", b, got, want)
		}
	})
}

func TestValidJSONNestingLimit(t *testing.T) {
	for _, depth := range []int{maxNestingDepth, maxNestingDepth + 1} {
		b := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		require.Equal(t, json.Valid(b), validJSON(b), "depth %d", depth)
	}
}

// TestAttention checks the 8-byte SWAR test against the byte table for every
// byte value at every position, next to plain and to non-plain neighbours.
func TestAttention(t *testing.T) {
	for _, fill := range []byte{'a', 0x1f, '"', 0xff, 0x7f, ' '} {
		for c := 0; c < 256; c++ {
			for p := 0; p < 8; p++ {
				w := bytes.Repeat([]byte{fill}, 8)
				w[p] = byte(c)
				want := false
				for _, x := range w {
					want = want || !plain[x]
				}
				if got := attention(binary.LittleEndian.Uint64(w)); got != want {
					t.Fatalf("attention(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
}
