package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
	"raftkv/src/snapstream"
)

// codecCases has one message of every type, plus the corners of the format.
func codecCases() []struct {
	name string
	msg  raft.Message
} {
	ents := []raft.Entry{
		{Term: 3, Index: 10, Type: raft.EntryNoop},
		{Term: 3, Index: 11, Type: raft.EntryNormal, Data: []byte(`{"op":"put","key":"k","value":"v"}`)},
		{Term: 3, Index: 12, Type: raft.EntryNormal, Data: []byte{}},
	}
	return []struct {
		name string
		msg  raft.Message
	}{
		{"PreVote", raft.Message{Type: raft.MsgPreVote, From: 0, To: 1, Term: 5, Index: 99, LogTerm: 4}},
		{"PreVoteResp grant", raft.Message{Type: raft.MsgPreVoteResp, From: 1, To: 0, Term: 5}},
		{"Vote force", raft.Message{Type: raft.MsgVote, From: 2, To: 1, Term: 6, Index: 99, LogTerm: 4, Force: true}},
		{"VoteResp reject", raft.Message{Type: raft.MsgVoteResp, From: 1, To: 2, Term: 6, Reject: true}},
		{"App", raft.Message{Type: raft.MsgApp, From: 0, To: 2, Term: 3, Index: 9, LogTerm: 2, Commit: 8, Entries: ents}},
		{"App empty entries", raft.Message{Type: raft.MsgApp, From: 0, To: 2, Term: 3, Index: 9, LogTerm: 2, Commit: 8, Entries: []raft.Entry{}}},
		{"AppResp accept", raft.Message{Type: raft.MsgAppResp, From: 2, To: 0, Term: 3, Index: 12}},
		{"AppResp reject", raft.Message{Type: raft.MsgAppResp, From: 2, To: 0, Term: 3, Index: 12, Reject: true, RejectHint: 7, LogTerm: 2}},
		{"Heartbeat", raft.Message{Type: raft.MsgHeartbeat, From: 0, To: 1, Term: 3, Commit: 12, Context: 77}},
		{"HeartbeatResp", raft.Message{Type: raft.MsgHeartbeatResp, From: 1, To: 0, Term: 3, Context: 77}},
		{"Snap", raft.Message{Type: raft.MsgSnap, From: 0, To: 1, Term: 3, Snapshot: &raft.Snapshot{
			Index: 1000, Term: 3, Peers: []raft.ID{0, 1, 2}, Data: bytes.Repeat([]byte("snapshot"), 100)}}},
		{"Snap empty", raft.Message{Type: raft.MsgSnap, From: 0, To: 1, Term: 3, Snapshot: &raft.Snapshot{}}},
		{"Snap empty slices", raft.Message{Type: raft.MsgSnap, From: 0, To: 1, Term: 3, Snapshot: &raft.Snapshot{Peers: []raft.ID{}, Data: []byte{}}}},
		{"TimeoutNow", raft.Message{Type: raft.MsgTimeoutNow, From: 0, To: 2, Term: 9}},
		{"incarnation", raft.Message{Type: raft.MsgAppResp, From: 2, To: 0, Term: 3, Index: 12, Incarnation: 0xfedcba9876543210}},
		{"Snap with membership", raft.Message{Type: raft.MsgSnap, From: 0, To: 1, Term: 3, Incarnation: 7, Snapshot: &raft.Snapshot{
			Index: 1000, Term: 3, Data: []byte("state"), Membership: &raft.Membership{Members: []raft.Member{
				{ID: 0, Incarnation: 7}, {ID: 4, Incarnation: 9, Suffrage: raft.Staging, Meta: []byte(`{"name":"r4"}`)}}}}}},
		// The runtime's snapshot stream (package snapstream): a chunk and
		// its acknowledgements, a gap's Reject included.
		{"snapstream chunk", raft.Message{Type: snapstream.MsgChunk, From: 0, To: 2, Term: 4, Incarnation: 7,
			Index: 1 << 20, Commit: 3<<20 + 5, Snapshot: &raft.Snapshot{Index: 5000, Term: 3, Data: bytes.Repeat([]byte(`{"k":"v"},`), 50)}}},
		{"snapstream ack", raft.Message{Type: snapstream.MsgAck, From: 2, To: 0, Term: 4, Incarnation: 9, Index: 5000, LogTerm: 3, Commit: 2 << 20}},
		{"snapstream ack reject", raft.Message{Type: snapstream.MsgAck, From: 2, To: 0, Term: 4, Index: 5000, LogTerm: 3, Reject: true}},
		{"None and max values", raft.Message{Type: raft.MessageType(255), From: raft.None, To: math.MaxInt,
			Term: math.MaxUint64, LogTerm: math.MaxUint64, Index: math.MaxUint64, Commit: math.MaxUint64,
			RejectHint: math.MaxUint64, Context: math.MaxUint64, Reject: true, Force: true,
			Entries:  []raft.Entry{{Term: math.MaxUint64, Index: math.MaxUint64, Type: raft.EntryType(255)}},
			Snapshot: &raft.Snapshot{Index: math.MaxUint64, Term: math.MaxUint64, Peers: []raft.ID{math.MinInt, -1, math.MaxInt}}}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := AppendMessage(nil, &tc.msg)
			assert.Equal(t, len(b), EncodedSize(&tc.msg), "EncodedSize")
			got, err := DecodeMessage(b)
			require.NoError(t, err)
			assert.Equal(t, tc.msg, got)

			// Appending to a non-empty buffer keeps what was there.
			prefix := []byte("prefix")
			b2 := AppendMessage(append([]byte(nil), prefix...), &tc.msg)
			assert.Equal(t, prefix, b2[:len(prefix)])
			assert.Equal(t, b, b2[len(prefix):])
		})
	}
}

// randMessage draws a message over the whole domain of every field, with
// nil and empty slices both present.
func randMessage(r *rand.Rand) raft.Message {
	num := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return uint64(r.IntN(300))
		case 2:
			return r.Uint64() >> r.UintN(64)
		}
		return r.Uint64()
	}
	id := func() raft.ID {
		switch r.IntN(4) {
		case 0:
			return raft.None
		case 1:
			return raft.ID(r.Int64())
		}
		return raft.ID(r.IntN(7))
	}
	data := func() []byte {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	m := raft.Message{
		Type: raft.MessageType(1 + r.IntN(255)), From: id(), To: id(),
		Term: num(), LogTerm: num(), Index: num(), Commit: num(), RejectHint: num(), Context: num(),
		Reject: r.IntN(2) == 0, Force: r.IntN(2) == 0,
	}
	switch r.IntN(3) {
	case 0:
	case 1:
		m.Entries = []raft.Entry{}
	default:
		m.Entries = make([]raft.Entry, 1+r.IntN(20))
		for i := range m.Entries {
			m.Entries[i] = raft.Entry{Term: num(), Index: num(), Type: raft.EntryType(r.UintN(256)), Data: data()}
		}
	}
	if r.IntN(2) == 0 {
		m.Incarnation = raft.Incarnation(num())
	}
	if r.IntN(3) == 0 {
		s := &raft.Snapshot{Index: num(), Term: num(), Data: data()}
		if r.IntN(2) == 0 {
			s.Membership = &raft.Membership{Members: []raft.Member{{ID: raft.ID(r.IntN(7)), Incarnation: raft.Incarnation(num())}}}
		}
		switch r.IntN(3) {
		case 0:
		case 1:
			s.Peers = []raft.ID{}
		default:
			s.Peers = make([]raft.ID, 1+r.IntN(9))
			for i := range s.Peers {
				s.Peers[i] = id()
			}
		}
		m.Snapshot = s
	}
	return m
}

func TestCodecRandomRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	var buf []byte
	for i := range 20000 {
		m := randMessage(r)
		buf = AppendMessage(buf[:0], &m)
		require.Equal(t, len(buf), EncodedSize(&m), "message %d (seed %d)", i, seed)
		got, err := DecodeMessage(buf)
		require.NoError(t, err, "message %d (seed %d)", i, seed)
		require.Equal(t, m, got, "message %d (seed %d)", i, seed)
	}
}

// Every strict prefix of a valid encoding, and every single-byte change,
// must decode to an error or a message, never a panic; prefixes must fail.
func TestCodecTruncatedAndMutated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range codecCases() {
		b := AppendMessage(nil, &tc.msg)
		for n := range len(b) {
			_, err := DecodeMessage(b[:n])
			require.ErrorIs(t, err, ErrDecode, "%s: prefix of %d/%d bytes", tc.name, n, len(b))
		}
		for range 200 {
			c := bytes.Clone(b)
			c[r.IntN(len(c))] = byte(r.Uint32())
			_, _ = DecodeMessage(c)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := AppendMessage(nil, &raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3})
	header := func(typ, flags byte) []byte {
		b := []byte{typ, flags}
		b = binary.AppendVarint(b, 1)
		b = binary.AppendVarint(b, 2)
		for range 6 {
			b = append(b, 0)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"zero type", append([]byte{0}, valid[1:]...)},
		{"unknown flags", append([]byte{valid[0], 0x80}, valid[2:]...)},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"varint overflow", append(header(1, 0)[:4], bytes.Repeat([]byte{0xff}, 11)...)},
		{"huge entry count", binary.AppendUvarint(header(5, 0), math.MaxUint64)},
		{"entry count past remaining", append(binary.AppendUvarint(header(5, 0), 1+3), make([]byte, 8)...)},
		{"huge data length", append(binary.AppendUvarint(append(binary.AppendUvarint(header(5, 0), 2), 1, 1, 0), 1<<40), 'x')},
		{"huge peer count", binary.AppendUvarint(append(append(header(9, flagSnapshot), 0), 1, 1), math.MaxUint64)},
		{"snapshot flag, no snapshot", append(header(9, flagSnapshot), 0)},
		{"incarnation flagged but zero", append(append(header(7, flagIncarnation), 0), 0)},
		{"membership without a snapshot", append(header(7, flagMembership), 0)},
		{"membership invalid", append(append(append(header(9, flagSnapshot|flagMembership), 0), 1, 1, 0, 0), 3, '{', '}')},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMessage(tc.b)
			assert.ErrorIs(t, err, ErrDecode)
		})
	}
}

// A hostile count must be refused before anything is allocated for it: a
// count of 2^24 entries in a 20-byte message would otherwise cost 800 MB.
func TestDecodeHostileLengthDoesNotAllocate(t *testing.T) {
	for _, count := range []uint64{1 << 24, math.MaxUint64 >> 1} {
		b := binary.AppendUvarint(append([]byte{5, 0, 2, 4}, make([]byte, 6)...), count+1)
		b = append(b, make([]byte, 8)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := DecodeMessage(b)
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, ErrDecode)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "count %d", count)
	}
}

// Decoded byte slices alias the input but are capped: appending to one must
// not overwrite the rest of the frame.
func TestDecodeDataIsCapped(t *testing.T) {
	m := raft.Message{Type: raft.MsgApp, Entries: []raft.Entry{{Data: []byte("a")}, {Data: []byte("b")}}}
	got, err := DecodeMessage(AppendMessage(nil, &m))
	require.NoError(t, err)
	_ = append(got.Entries[0].Data, 'X')
	assert.Equal(t, []byte("b"), got.Entries[1].Data)
}

func FuzzDecodeMessage(f *testing.F) {
	for _, tc := range codecCases() {
		f.Add(AppendMessage(nil, &tc.msg))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			require.ErrorIs(t, err, ErrDecode)
			return
		}
		enc := AppendMessage(nil, &m)
		require.Equal(t, len(enc), EncodedSize(&m))
		// Our encoding is minimal; anything accepted is at least as long.
		require.LessOrEqual(t, len(enc), len(b))
		again, err := DecodeMessage(enc)
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecodeMessage when
// RAFTKV_WRITE_CORPUS=1; otherwise it is skipped.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("RAFTKV_WRITE_CORPUS") != "1" {
		t.Skip("set RAFTKV_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeMessage")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	write := func(name string, b []byte) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	for i, tc := range codecCases() {
		write(fmt.Sprintf("seed-%02d", i), AppendMessage(nil, &tc.msg))
	}
	write("seed-garbage", []byte("GET / HTTP/1.1\r\n\r\n"))
	write("seed-huge-count", binary.AppendUvarint([]byte{5, 0, 2, 4, 0, 0, 0, 0, 0, 0}, math.MaxUint64))
}
