package kv

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// enc encodes a command for Apply.
func enc(op Op, key, value string) []byte {
	return EncodeCommand(Command{Op: op, Key: key, Value: value})
}

// encS encodes a command of a client's session.
func encS(client string, seq uint64, op Op, key, value string) []byte {
	return EncodeCommand(Command{Op: op, Key: key, Value: value, ClientID: client, Seq: seq})
}

// step is one entry to apply and what Apply must return; data nil is a no-op entry.
type step struct {
	data []byte
	want Result
}

// run applies steps at indexes 1, 2, ... and checks every result.
func run(t *testing.T, s *Store, steps []step) {
	t.Helper()
	for i, st := range steps {
		index := uint64(i + 1)
		if st.data == nil {
			s.ApplyNoop(index)
			continue
		}
		assert.Equal(t, st.want, s.Apply(index, st.data), "entry %d: %s", index, st.data)
	}
	assert.Equal(t, uint64(len(steps)), s.AppliedIndex())
}

func TestApplyOps(t *testing.T) {
	big := strings.Repeat("x", MaxValueBytes)
	tests := []struct {
		name     string
		steps    []step
		contents map[string]string
	}{
		{
			name: "put then get",
			steps: []step{
				{enc(OpPut, "foo", "bar"), Result{Index: 1}},
				{enc(OpGet, "foo", ""), Result{Index: 2, Value: "bar", Found: true}},
			},
			contents: map[string]string{"foo": "bar"},
		},
		{
			name: "put overwrites and reports the key existed",
			steps: []step{
				{enc(OpPut, "foo", "bar"), Result{Index: 1}},
				{enc(OpPut, "foo", "baz"), Result{Index: 2, Found: true}},
			},
			contents: map[string]string{"foo": "baz"},
		},
		{
			name: "append creates then extends",
			steps: []step{
				{enc(OpAppend, "foo", "bar"), Result{Index: 1}},
				{enc(OpAppend, "foo", "123"), Result{Index: 2, Found: true}},
				{enc(OpAppend, "foo", ""), Result{Index: 3, Found: true}},
			},
			contents: map[string]string{"foo": "bar123"},
		},
		{
			name: "append of empty value creates an empty key",
			steps: []step{
				{enc(OpAppend, "foo", ""), Result{Index: 1}},
				{enc(OpGet, "foo", ""), Result{Index: 2, Found: true}},
			},
			contents: map[string]string{"foo": ""},
		},
		{
			name: "get of an absent key",
			steps: []step{
				{enc(OpGet, "nope", ""), Result{Index: 1}},
			},
			contents: map[string]string{},
		},
		{
			name: "delete present and absent",
			steps: []step{
				{enc(OpPut, "a", "1"), Result{Index: 1}},
				{enc(OpDelete, "a", ""), Result{Index: 2, Found: true}},
				{enc(OpDelete, "a", ""), Result{Index: 3}},
				{enc(OpGet, "a", ""), Result{Index: 4}},
			},
			contents: map[string]string{},
		},
		{
			name: "no-op entries change nothing but the index",
			steps: []step{
				{nil, Result{}},
				{enc(OpPut, "a", "1"), Result{Index: 2}},
				{nil, Result{}},
			},
			contents: map[string]string{"a": "1"},
		},
		{
			name: "put of a 1 MiB value is fine, one byte more is refused",
			steps: []step{
				{enc(OpPut, "a", big), Result{Index: 1}},
				{enc(OpPut, "b", big+"y"), Result{Index: 2, Err: ErrTooLarge}},
				{enc(OpPut, "a", big+"y"), Result{Index: 3, Found: true, Err: ErrTooLarge}},
			},
			contents: map[string]string{"a": big},
		},
		{
			name: "append past 1 MiB is refused and changes nothing",
			steps: []step{
				{enc(OpPut, "a", big[:MaxValueBytes-2]), Result{Index: 1}},
				{enc(OpAppend, "a", "yyy"), Result{Index: 2, Found: true, Err: ErrTooLarge}},
				{enc(OpAppend, "a", "yy"), Result{Index: 3, Found: true}},
				{enc(OpAppend, "a", "y"), Result{Index: 4, Found: true, Err: ErrTooLarge}},
				{enc(OpAppend, "new", big+"y"), Result{Index: 5, Err: ErrTooLarge}},
			},
			contents: map[string]string{"a": big[:MaxValueBytes-2] + "yy"},
		},
		{
			name: "bad keys are refused in apply too",
			steps: []step{
				{enc(OpPut, "", "v"), Result{Index: 1, Err: ErrBadKey}},
				{enc(OpPut, strings.Repeat("k", MaxKeyBytes+1), "v"), Result{Index: 2, Err: ErrBadKey}},
				{enc(OpGet, "", ""), Result{Index: 3, Err: ErrBadKey}},
				{enc(OpPut, strings.Repeat("k", MaxKeyBytes), "v"), Result{Index: 4}},
			},
			contents: map[string]string{strings.Repeat("k", MaxKeyBytes): "v"},
		},
		{
			name: "malformed entries yield ErrBadCommand and change nothing",
			steps: []step{
				{[]byte(`{"op":"put","key":"a"`), Result{Index: 1, Err: ErrBadCommand}},
				{[]byte(`{"op":"incr","key":"a"}`), Result{Index: 2, Err: ErrBadCommand}},
				{[]byte(""), Result{Index: 3, Err: ErrBadCommand}},
				{[]byte("\xff\x00garbage"), Result{Index: 4, Err: ErrBadCommand}},
				{[]byte(`{"op":"put","key":"a","value":"v","client":"c","seq":1,"x":1}`), Result{Index: 5, Err: ErrBadCommand}},
			},
			contents: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			run(t, s, tt.steps)
			assert.Equal(t, tt.contents, snapshotContents(t, s))
			assert.Equal(t, len(tt.contents), s.Len())
			for k, v := range tt.contents {
				got, ok := s.Get(k)
				assert.True(t, ok, k)
				assert.Equal(t, v, got)
			}
			assert.Equal(t, 0, s.Sessions(), "commands without a client open no session")
		})
	}
}

func TestApplySessions(t *testing.T) {
	tests := []struct {
		name     string
		steps    []step
		contents map[string]string
		sessions int
	}{
		{
			name: "a repeated request returns the first result and is not applied again",
			steps: []step{
				{encS("c0", 1, OpAppend, "k", "x"), Result{Index: 1}},
				{encS("c0", 1, OpAppend, "k", "x"), Result{Index: 1}},
				{nil, Result{}},
				{encS("c0", 1, OpAppend, "k", "x"), Result{Index: 1}},
				{encS("c0", 2, OpAppend, "k", "y"), Result{Index: 5, Found: true}},
				{encS("c0", 2, OpAppend, "k", "y"), Result{Index: 5, Found: true}},
			},
			contents: map[string]string{"k": "xy"},
			sessions: 1,
		},
		{
			name: "a repeated get returns the value first read",
			steps: []step{
				{enc(OpPut, "k", "old"), Result{Index: 1}},
				{encS("c0", 7, OpGet, "k", ""), Result{Index: 2, Value: "old", Found: true}},
				{enc(OpPut, "k", "new"), Result{Index: 3, Found: true}},
				{encS("c0", 7, OpGet, "k", ""), Result{Index: 2, Value: "old", Found: true}},
			},
			contents: map[string]string{"k": "new"},
			sessions: 1,
		},
		{
			name: "a repeated refused request is refused again with the same error",
			steps: []step{
				{encS("c0", 1, OpPut, "", "v"), Result{Index: 1, Err: ErrBadKey}},
				{encS("c0", 1, OpPut, "", "v"), Result{Index: 1, Err: ErrBadKey}},
			},
			contents: map[string]string{},
			sessions: 1,
		},
		{
			name: "a stale request is refused and not applied",
			steps: []step{
				{encS("c0", 5, OpPut, "k", "five"), Result{Index: 1}},
				{encS("c0", 4, OpPut, "k", "four"), Result{Index: 2, Err: ErrStaleRequest}},
				{encS("c0", 1, OpDelete, "k", ""), Result{Index: 3, Err: ErrStaleRequest}},
				{encS("c0", 5, OpPut, "k", "five"), Result{Index: 1}},
			},
			contents: map[string]string{"k": "five"},
			sessions: 1,
		},
		{
			name: "sequence numbers may skip",
			steps: []step{
				{encS("c0", 1, OpAppend, "k", "a"), Result{Index: 1}},
				{encS("c0", 10, OpAppend, "k", "b"), Result{Index: 2, Found: true}},
				{encS("c0", 3, OpAppend, "k", "c"), Result{Index: 3, Err: ErrStaleRequest}},
			},
			contents: map[string]string{"k": "ab"},
			sessions: 1,
		},
		{
			name: "clients are independent",
			steps: []step{
				{encS("c0", 1, OpAppend, "k", "a"), Result{Index: 1}},
				{encS("c1", 1, OpAppend, "k", "b"), Result{Index: 2, Found: true}},
				{encS("c0", 1, OpAppend, "k", "a"), Result{Index: 1}},
				{encS("c1", 1, OpAppend, "k", "b"), Result{Index: 2, Found: true}},
				{enc(OpAppend, "k", "n"), Result{Index: 5, Found: true}},
				{enc(OpAppend, "k", "n"), Result{Index: 6, Found: true}},
			},
			contents: map[string]string{"k": "abnn"},
			sessions: 2,
		},
		{
			name: "a malformed entry does not touch sessions",
			steps: []step{
				{encS("c0", 1, OpPut, "k", "v"), Result{Index: 1}},
				{[]byte(`{"op":"put","client":"c0","seq":2`), Result{Index: 2, Err: ErrBadCommand}},
				{encS("c0", 1, OpPut, "k", "v"), Result{Index: 1}},
			},
			contents: map[string]string{"k": "v"},
			sessions: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			run(t, s, tt.steps)
			assert.Equal(t, tt.contents, snapshotContents(t, s))
			assert.Equal(t, tt.sessions, s.Sessions())
		})
	}
}

func TestSessionEvictionAndExpiry(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		steps []step
		// alive lists the clients whose session must remain, dead those evicted or expired.
		alive, dead []string
	}{
		{
			name: "the least recently used session by log index is evicted",
			opts: Options{MaxSessions: 2, SessionTTLEntries: 100},
			steps: []step{
				{encS("a", 1, OpPut, "k", "1"), Result{Index: 1}},
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 2, Found: true}},
				{encS("a", 1, OpPut, "k", "1"), Result{Index: 1}},              // a is used again: b is now the oldest
				{encS("c", 1, OpPut, "k", "3"), Result{Index: 4, Found: true}}, // evicts b
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 5, Found: true}}, // b is new again: applied again, evicts a
				{encS("c", 1, OpPut, "k", "3"), Result{Index: 4, Found: true}}, // c survives
			},
			alive: []string{"b", "c"},
			dead:  []string{"a"},
		},
		{
			name: "a stale request counts as use",
			opts: Options{MaxSessions: 2, SessionTTLEntries: 100},
			steps: []step{
				{encS("a", 2, OpPut, "k", "1"), Result{Index: 1}},
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 2, Found: true}},
				{encS("a", 1, OpPut, "k", "0"), Result{Index: 3, Err: ErrStaleRequest}},
				{encS("c", 1, OpPut, "k", "3"), Result{Index: 4, Found: true}},
			},
			alive: []string{"a", "c"},
			dead:  []string{"b"},
		},
		{
			name: "a session idle for more than the TTL expires",
			opts: Options{MaxSessions: 10, SessionTTLEntries: 3},
			steps: []step{
				{encS("a", 1, OpPut, "k", "1"), Result{Index: 1}},
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 2, Found: true}},
				{nil, Result{}},
				{nil, Result{}}, // index 4: a idle for 3, kept
				// index 5: a idle for 4, expired; b idle for 3, kept and used
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 2, Found: true}},
				{encS("a", 1, OpPut, "k", "1"), Result{Index: 6, Found: true}}, // applied again
			},
			alive: []string{"a", "b"},
		},
		{
			name: "expiry happens on apply and no-op alike",
			opts: Options{MaxSessions: 10, SessionTTLEntries: 1},
			steps: []step{
				{encS("a", 1, OpPut, "k", "1"), Result{Index: 1}},
				{encS("b", 1, OpPut, "k", "2"), Result{Index: 2, Found: true}},
				{enc(OpGet, "k", ""), Result{Index: 3, Value: "2", Found: true}},
				{nil, Result{}},
			},
			dead: []string{"a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			run(t, s, tt.steps)
			ids := sessionIDs(s)
			for _, id := range tt.alive {
				assert.Contains(t, ids, id)
			}
			for _, id := range tt.dead {
				assert.NotContains(t, ids, id)
			}
			assert.LessOrEqual(t, s.Sessions(), tt.opts.MaxSessions)
		})
	}
}

func TestEvictionIsDeterministic(t *testing.T) {
	// Many clients through a small table, in an order that touches old
	// sessions again: replicas must agree on which sessions remain.
	opts := Options{MaxSessions: 5, SessionTTLEntries: 40}
	var entries [][]byte
	for i := range 300 {
		client := string(rune('a' + (i*7)%13))
		entries = append(entries, encS(client, uint64(i/13+1), OpAppend, "k"+client, "x"))
	}
	a, b := New(opts), New(opts)
	for i, e := range entries {
		ra := a.Apply(uint64(i+1), e)
		rb := b.Apply(uint64(i+1), e)
		require.Equal(t, ra, rb)
	}
	sa, err := a.Snapshot()
	require.NoError(t, err)
	sb, err := b.Snapshot()
	require.NoError(t, err)
	assert.Equal(t, string(sa), string(sb))
	assert.Equal(t, 5, a.Sessions())
}

func TestApplyOutOfOrderPanics(t *testing.T) {
	tests := []struct {
		name  string
		first uint64
		next  uint64
	}{
		{"index zero", 0, 0},
		{"same index twice", 3, 3},
		{"going back", 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			if tt.first > 0 {
				s.ApplyNoop(tt.first)
			}
			assert.Panics(t, func() { s.Apply(tt.next, enc(OpPut, "k", "v")) })
			assert.Panics(t, func() { s.ApplyNoop(tt.next) })
		})
	}
}

func TestApplyAllowsGaps(t *testing.T) {
	// After a restore, or when the caller skips entries of other kinds, the
	// next index may be more than one ahead.
	s := New(Options{})
	assert.Equal(t, Result{Index: 10}, s.Apply(10, enc(OpPut, "k", "v")))
	assert.Equal(t, uint64(10), s.AppliedIndex())
}
