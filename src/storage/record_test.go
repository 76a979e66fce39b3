package storage

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

func TestEntryDataRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		field string // "cmd", "data" or "" (absent)
	}{
		{"nil", nil, ""},
		{"empty", []byte{}, "data"},
		{"json object", []byte(`{"op":"put","key":"a","value":"b"}`), "cmd"},
		{"json with inner spaces", []byte(`{ "a" : [1, 2] }`), "cmd"},
		{"json string", []byte(`"hello"`), "cmd"},
		{"json null", []byte(`null`), "cmd"},
		{"json number", []byte(`12.5e3`), "cmd"},
		{"unicode json", []byte(`{"k":"héllo ☃"}`), "cmd"},
		{"leading space", []byte(` {"a":1}`), "data"},
		{"trailing newline", []byte("{\"a\":1}\n"), "data"},
		{"newline inside", []byte("{\"a\":\n1}"), "data"},
		{"carriage return inside", []byte("[1,\r2]"), "data"},
		{"invalid utf8 in string", []byte("\"\xff\""), "data"},
		{"not json", []byte(`put a b`), "data"},
		{"binary", []byte{0, 1, 2, 0xff, '\n'}, "data"},
		{"truncated json", []byte(`{"a":`), "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := raft.Entry{Term: 3, Index: 42, Type: raft.EntryNormal, Data: tt.data}
			line := appendEntry(nil, &e)
			require.True(t, bytes.HasSuffix(line, []byte("\n")))
			require.Equal(t, 1, bytes.Count(line, []byte("\n")), "one line per record")
			line = line[:len(line)-1]

			// The line is JSON, and the data is where a person with jq looks.
			var m struct {
				CRC string                     `json:"crc"`
				Rec map[string]json.RawMessage `json:"rec"`
			}
			require.NoError(t, json.Unmarshal(line, &m))
			for _, f := range []string{"cmd", "data"} {
				_, ok := m.Rec[f]
				assert.Equal(t, f == tt.field, ok, "field %s", f)
			}

			for name, dec := range map[string]func([]byte) (record, error){"decodeRecord": decodeRecord, "decodeGeneric": decodeGeneric} {
				r, err := dec(line)
				require.NoError(t, err, name)
				assert.Equal(t, kindEntry, r.kind)
				assert.Equal(t, e, r.entry, name)
				assert.Equal(t, tt.data == nil, r.entry.Data == nil, "%s: nil stays nil, empty stays empty", name)
			}
			_, fast := decodeFast(line)
			assert.True(t, fast, "the lines we write take the fast path")
		})
	}
}

func TestRecordKindsRoundTrip(t *testing.T) {
	lines := map[string][]byte{
		"hardstate": appendHardState(nil, raft.HardState{Term: 7, Vote: raft.None, Commit: 99}),
		"vote 2":    appendHardState(nil, raft.HardState{Term: 1<<64 - 1, Vote: 2, Commit: 0}),
		"truncate":  appendTruncate(nil, 12),
		"snapshot":  appendSnapshotMark(nil, 1000, 4, true),
		"noop":      appendEntry(nil, &raft.Entry{Term: 2, Index: 9, Type: raft.EntryNoop}),
	}
	want := map[string]record{
		"hardstate": {kind: kindHardState, hs: raft.HardState{Term: 7, Vote: raft.None, Commit: 99}},
		"vote 2":    {kind: kindHardState, hs: raft.HardState{Term: 1<<64 - 1, Vote: 2}},
		"truncate":  {kind: kindTruncate, index: 12},
		"snapshot":  {kind: kindSnapshot, index: 1000, term: 4, keep: true},
		"noop":      {kind: kindEntry, entry: raft.Entry{Term: 2, Index: 9, Type: raft.EntryNoop}},
	}
	for name, line := range lines {
		line = bytes.TrimSuffix(line, []byte("\n"))
		r, ok := decodeFast(line)
		require.True(t, ok, name)
		assert.Equal(t, want[name], r, name)
		g, err := decodeGeneric(line)
		require.NoError(t, err, name)
		assert.Equal(t, want[name], g, name)
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	good := bytes.TrimSuffix(appendEntry(nil, &raft.Entry{Term: 1, Index: 5, Data: []byte(`{"a":1}`)}), []byte("\n"))
	tests := map[string][]byte{
		"empty":            {},
		"not json":         []byte("hello"),
		"flipped data":     bytes.Replace(good, []byte(`"a"`), []byte(`"b"`), 1),
		"uppercase crc":    bytes.ToUpper(good[:recOffset]),
		"key case":         append([]byte(`{"CRC"`), good[len(`{"crc"`):]...),
		"extra field":      append(append([]byte{}, good[:len(good)-1]...), `,"x":1}`...),
		"truncated":        good[:len(good)-3],
		"no rec":           []byte(`{"crc":"00000000"}`),
		"array":            []byte(`[1,2]`),
		"null":             []byte(`null`),
		"trailing garbage": append(append([]byte{}, good...), 'x'),
	}
	for name, line := range tests {
		_, err := decodeRecord(line)
		assert.Error(t, err, name)
	}
	// A line rewritten by a tool (spaces, other key order) still decodes: the
	// CRC covers only the bytes of "rec".
	rec := good[recOffset : len(good)-1]
	var crc string
	var env map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(good, &env))
	require.NoError(t, json.Unmarshal(env["crc"], &crc))
	rewritten := []byte(`{ "rec" : ` + string(rec) + ` , "crc" : "` + crc + `" }`)
	r, err := decodeRecord(rewritten)
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"a":1}`), r.entry.Data)
}
