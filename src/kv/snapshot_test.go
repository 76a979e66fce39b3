package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshotContents returns the Contents of s's snapshot, read with encoding/json.
func snapshotContents(t *testing.T, s *Store) map[string]string {
	t.Helper()
	b, err := s.Snapshot()
	require.NoError(t, err)
	var snap struct{ Contents map[string]string }
	require.NoError(t, json.Unmarshal(b, &snap))
	return snap.Contents
}

// sessionIDs returns the clients with a session in s.
func sessionIDs(s *Store) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id := range s.sessions {
		ids = append(ids, id)
	}
	return ids
}

func TestSnapshotFormat(t *testing.T) {
	tests := []struct {
		name    string
		entries [][]byte
		want    string
	}{
		{
			name: "empty",
			want: `{"Contents":{},"Meta":{},"Sessions":{},"AppliedIndex":0}`,
		},
		{
			name: "keys sorted, sessions with their results",
			entries: [][]byte{
				enc(OpPut, "b", "2"),
				enc(OpPut, "a", "1\n"),
				encS("c1", 4, OpGet, "a", ""),
				encS("c0", 9, OpPut, "", "x"),
				encS("c2", 1, OpPut, "z", "26"),
			},
			want: `{"Contents":{"a":"1\n","b":"2","z":"26"},"Meta":{"a":[2,2,1],"b":[1,1,1],"z":[5,5,1]},"Sessions":{` +
				`"c0":{"Seq":9,"LastUsed":4,"Index":4,"Err":"bad_key"},` +
				`"c1":{"Seq":4,"LastUsed":3,"Index":3,"Found":true,"Value":"1\n"},` +
				`"c2":{"Seq":1,"LastUsed":5,"Index":5}},"AppliedIndex":5}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			for i, e := range tt.entries {
				s.Apply(uint64(i+1), e)
			}
			b, err := s.Snapshot()
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(b))
			assert.True(t, json.Valid(b))
		})
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	s := New(Options{MaxSessions: 3})
	entries := [][]byte{
		enc(OpPut, "k", "v"),
		enc(OpPut, "ключ", "значение \u2028 \x01"),
		encS("c0", 1, OpAppend, "log", "a"),
		encS("c1", 1, OpPut, "", "x"),
		encS("c2", 1, OpGet, "k", ""),
		encS("c0", 2, OpAppend, "log", "b"),
	}
	for i, e := range entries {
		s.Apply(uint64(i+1), e)
	}
	s.ApplyNoop(7)
	snap, err := s.Snapshot()
	require.NoError(t, err)

	r := New(Options{MaxSessions: 3})
	r.ApplyNoop(100) // restore replaces everything, the index too
	require.NoError(t, r.Restore(snap))
	again, err := r.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, string(snap), string(again))
	assert.Equal(t, uint64(7), r.AppliedIndex())
	assert.Equal(t, s.Len(), r.Len())

	// The restored sessions behave as the originals: duplicates, stale
	// requests, and the same eviction order (c1 is the oldest).
	for _, st := range []struct {
		data []byte
		want Result
	}{
		{encS("c0", 2, OpAppend, "log", "b"), Result{Index: 6, Found: true}},
		{encS("c0", 1, OpAppend, "log", "a"), Result{Index: 9, Err: ErrStaleRequest}},
		{encS("c2", 1, OpGet, "k", ""), Result{Index: 3 + 2, Value: "v", Found: true}},
		{encS("c1", 1, OpPut, "", "x"), Result{Index: 4, Err: ErrBadKey}},
		{encS("c3", 1, OpPut, "n", "1"), Result{Index: 12}}, // evicts c0, now the oldest
		{encS("c0", 2, OpAppend, "log", "b"), Result{Index: 13, Found: true}},
	} {
		i := s.AppliedIndex() + 1
		assert.Equal(t, st.want, s.Apply(i, st.data), "original, entry %d", i)
		assert.Equal(t, st.want, r.Apply(i, st.data), "restored, entry %d", i)
	}
	a, err := s.Snapshot()
	require.NoError(t, err)
	b, err := r.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, string(a), string(b))
	v, _ := r.Get("log")
	assert.Equal(t, "abb", v)
}

func TestRestoreErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		msg  string
	}{
		{"not json", `nope`, "invalid character"},
		{"truncated", `{"Contents":{"a":"b"}`, "unexpected EOF"},
		{"unknown field", `{"Contents":{},"Extra":1}`, "unknown field"},
		{"trailing data", `{"Contents":{}} {}`, "data after"},
		{"empty key", `{"Contents":{"":"v"}}`, "key is empty"},
		{"unknown error code", `{"Sessions":{"c":{"Seq":1,"LastUsed":1,"Index":1,"Err":"boom"}},"AppliedIndex":1}`, `unknown error code "boom"`},
		{"session used after the applied index", `{"Sessions":{"c":{"Seq":1,"LastUsed":5,"Index":5}},"AppliedIndex":1}`, "do not fit"},
		{"session never used", `{"Sessions":{"c":{"Seq":1,"LastUsed":0,"Index":0}},"AppliedIndex":1}`, "do not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			s.Apply(1, enc(OpPut, "keep", "me"))
			before, err := s.Snapshot()
			require.NoError(t, err)

			err = s.Restore([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.msg)

			after, err := s.Snapshot()
			require.NoError(t, err)
			assert.Equal(t, string(before), string(after), "a failed restore changes nothing")
		})
	}
}

func TestRestoreAcceptsMissingParts(t *testing.T) {
	s := New(Options{})
	require.NoError(t, s.Restore([]byte(`{"AppliedIndex":3}`)))
	assert.Equal(t, uint64(3), s.AppliedIndex())
	assert.Equal(t, Result{Index: 4}, s.Apply(4, enc(OpPut, "k", "v")))
}

func TestFreezeIsConsistentAfterLaterApplies(t *testing.T) {
	s := New(Options{})
	s.Apply(1, EncodeCommand(Command{Op: OpPut, Key: "a", Value: "1", ClientID: "c", Seq: 1}))
	s.Apply(2, EncodeCommand(Command{Op: OpPut, Key: "b", Value: "2"}))
	want, err := s.Snapshot()
	require.NoError(t, err)
	f := s.Freeze()
	// The store moves on; the frozen copy does not.
	s.Apply(3, EncodeCommand(Command{Op: OpAppend, Key: "a", Value: "x", ClientID: "c", Seq: 2}))
	s.Apply(4, EncodeCommand(Command{Op: OpDelete, Key: "b"}))
	assert.Equal(t, uint64(2), f.AppliedIndex())
	assert.Equal(t, string(want), string(f.Encode()))
	now, err := s.Snapshot()
	require.NoError(t, err)
	assert.NotEqual(t, string(want), string(now))
}

// failingWriter accepts n bytes, then fails.
type failingWriter struct{ n int }

var errWriterFull = errors.New("writer full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errWriterFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodeToStreamsInChunks(t *testing.T) {
	s := New(Options{})
	value := strings.Repeat("v\"\u2028", 100)
	for i := range 2000 { // well over one encodeChunk
		s.Apply(uint64(i+1), enc(OpPut, fmt.Sprintf("key-%05d", i), value))
	}
	var counting chunkCounter
	require.NoError(t, s.Freeze().EncodeTo(&counting))
	whole := s.Freeze().Encode()
	assert.Equal(t, whole, counting.buf.Bytes(), "streamed bytes equal the whole encoding")
	assert.Greater(t, counting.writes, 1, "written in more than one piece")
	assert.LessOrEqual(t, counting.largest, encodeChunk+4096, "no write much larger than a chunk")
	assert.True(t, json.Valid(whole))

	err := s.Freeze().EncodeTo(&failingWriter{n: 1000})
	assert.ErrorIs(t, err, errWriterFull, "a failing writer stops the encoding")
}

type chunkCounter struct {
	buf             bytes.Buffer
	writes, largest int
}

func (c *chunkCounter) Write(p []byte) (int, error) {
	c.writes++
	c.largest = max(c.largest, len(p))
	return c.buf.Write(p)
}
