package kv

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateClientID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"one byte", "c", true},
		{"128 bytes", strings.Repeat("c", MaxClientIDBytes), true},
		{"multi-byte runes up to 128 bytes", strings.Repeat("é", MaxClientIDBytes/2), true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("c", MaxClientIDBytes+1), false},
		{"invalid UTF-8", "c\xff", false},
		{"truncated rune", "\xc3", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateClientID(tt.id)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrBadClientID)
			}
		})
	}
}

// TestApplyInvalidClientIDStoresNoSession: a command whose client id the
// API would refuse (oversized, or invalid UTF-8 in a forged or old entry)
// runs without a session: it is applied every time, never answered from
// another client's session, and leaves no trace in the table or snapshot.
func TestApplyInvalidClientIDStoresNoSession(t *testing.T) {
	big := strings.Repeat("c", MaxClientIDBytes+1)
	tests := []struct {
		name string
		a, b []byte // two entries, same Seq; with a session the second would be a repeat
	}{
		{"oversized id, twice", encS(big, 1, OpAppend, "k", "x"), encS(big, 1, OpAppend, "k", "x")},
		{"900 kB id", encS(strings.Repeat("c", 900<<10), 1, OpAppend, "k", "x"), encS(strings.Repeat("c", 900<<10), 1, OpAppend, "k", "x")},
		// EncodeCommand drops an id that is not UTF-8 rather than write it
		// as U+FFFD, which would merge these two clients into one session.
		{"two invalid UTF-8 ids", encS("\xff", 1, OpAppend, "k", "x"), encS("\xfe", 1, OpAppend, "k", "x")},
		// Raw invalid UTF-8 in the entry (a forged peer): encoding/json
		// would decode both to U+FFFD.
		{"raw invalid UTF-8 in the entry",
			[]byte("{\"op\":\"append\",\"key\":\"k\",\"value\":\"x\",\"client\":\"\xff\",\"seq\":1}"),
			[]byte("{\"op\":\"append\",\"key\":\"k\",\"value\":\"x\",\"client\":\"\xfe\",\"seq\":1}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			assert.Equal(t, Result{Index: 1}, s.Apply(1, tt.a))
			assert.Equal(t, Result{Index: 2, Found: true}, s.Apply(2, tt.b), "the second command was answered from a session")
			v, _ := s.Get("k")
			assert.Equal(t, "xx", v, "both commands were applied")
			assert.Zero(t, s.Sessions())
			assert.Zero(t, s.SessionBytes())
			snap, err := s.Snapshot()
			require.NoError(t, err)
			assert.Contains(t, string(snap), `"Sessions":{}`)
			assert.Less(t, len(snap), 200)
		})
	}
}

func TestEncodeCommandNeverWritesALossyClientID(t *testing.T) {
	c, err := DecodeCommand(EncodeCommand(Command{Op: OpPut, Key: "k", ClientID: "a\xffb", Seq: 3}))
	require.NoError(t, err)
	assert.Equal(t, "", c.ClientID)
}

// TestSessionBytesBounded: many distinct clients, with the largest ids
// and with large remembered results, never take the table past
// MaxSessionBytes; eviction by bytes is least recently used first and the
// same on every replica.
func TestSessionBytesBounded(t *testing.T) {
	const bound = 256 << 10
	opts := Options{MaxSessions: 1 << 20, MaxSessionBytes: bound}
	bigValue := strings.Repeat("v", 60<<10)
	var entries [][]byte
	entries = append(entries, enc(OpPut, "big", bigValue))
	for i := range 5000 {
		id := longID(i)
		if i%50 == 0 {
			// A get through the log remembers its value in the session.
			entries = append(entries, encS(id, 1, OpGet, "big", ""))
		} else {
			entries = append(entries, encS(id, 1, OpPut, "k"+strconv.Itoa(i%10), "v"))
		}
	}
	a, b := New(opts), New(opts)
	for i, e := range entries {
		ra, rb := a.Apply(uint64(i+1), e), b.Apply(uint64(i+1), e)
		require.Equal(t, ra, rb)
		require.LessOrEqual(t, a.SessionBytes(), bound, "after entry %d", i+1)
	}
	assert.Greater(t, a.Sessions(), 100, "the bound is not that tight")
	assert.Less(t, a.Sessions(), 5000, "some sessions were evicted by bytes")

	sa, err := a.Snapshot()
	require.NoError(t, err)
	sb, err := b.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, string(sa), string(sb), "replicas evict alike")

	// The newest client survived, the oldest did not.
	ids := sessionIDs(a)
	assert.Contains(t, ids, longID(4999))
	assert.NotContains(t, ids, longID(0))

	// A restored replica counts the same bytes.
	r := New(opts)
	require.NoError(t, r.Restore(sa))
	assert.Equal(t, a.SessionBytes(), r.SessionBytes())
	assert.Equal(t, a.Sessions(), r.Sessions())
}

// TestRestoreDropsSessionsOverTheLimits: a snapshot of an old version may
// hold sessions the API now refuses (a 900 kB or invalid id) or more than
// the bounds allow; Restore drops them deterministically instead of
// failing to start the node.
func TestRestoreDropsSessionsOverTheLimits(t *testing.T) {
	huge := strings.Repeat("h", 900<<10)
	snap := `{"Contents":{"k":"v"},"Sessions":{` +
		`"` + huge + `":{"Seq":1,"LastUsed":3,"Index":3},` +
		`"a":{"Seq":1,"LastUsed":1,"Index":1},` +
		`"b":{"Seq":1,"LastUsed":2,"Index":2},` +
		`"c":{"Seq":2,"LastUsed":4,"Index":4}` +
		`},"AppliedIndex":4}`
	s := New(Options{MaxSessions: 2})
	require.NoError(t, s.Restore([]byte(snap)))
	assert.ElementsMatch(t, []string{"b", "c"}, sessionIDs(s), "the huge id dropped, then the oldest over the count")
	assert.Equal(t, 2*(1+sessionOverhead), s.SessionBytes())
	v, _ := s.Get("k")
	assert.Equal(t, "v", v)
}

// longID is client i's id of MaxClientIDBytes bytes.
func longID(i int) string {
	return (strconv.Itoa(i) + strings.Repeat("-", MaxClientIDBytes))[:MaxClientIDBytes]
}
