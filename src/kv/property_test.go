package kv

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is a naive Store: it scans every session to expire and to find the
// least recently used one. The property test checks Store against it.
type model struct {
	max      int
	ttl      uint64
	applied  uint64
	contents map[string]string
	sessions map[string]*modelSession
}

type modelSession struct {
	seq      uint64
	result   Result
	lastUsed uint64
}

func newModel(opts Options) *model {
	opts = opts.withDefaults()
	return &model{max: opts.MaxSessions, ttl: opts.SessionTTLEntries,
		contents: map[string]string{}, sessions: map[string]*modelSession{}}
}

func (m *model) advance(index uint64) {
	m.applied = index
	for id, s := range m.sessions {
		if index-s.lastUsed > m.ttl {
			delete(m.sessions, id)
		}
	}
}

func (m *model) apply(index uint64, data []byte) Result {
	m.advance(index)
	c, err := DecodeCommand(data)
	if err != nil {
		return Result{Index: index, Err: ErrBadCommand}
	}
	if c.ClientID == "" {
		return m.exec(index, c)
	}
	if s, ok := m.sessions[c.ClientID]; ok {
		s.lastUsed = index
		if c.Seq == s.seq {
			return s.result
		}
		if c.Seq < s.seq {
			return Result{Index: index, Err: ErrStaleRequest}
		}
	} else if len(m.sessions) >= m.max {
		oldest := ""
		for id, s := range m.sessions {
			if oldest == "" || s.lastUsed < m.sessions[oldest].lastUsed {
				oldest = id
			}
		}
		delete(m.sessions, oldest)
	}
	res := m.exec(index, c)
	m.sessions[c.ClientID] = &modelSession{seq: c.Seq, result: res, lastUsed: index}
	return res
}

func (m *model) exec(index uint64, c Command) Result {
	if ValidateKey(c.Key) != nil {
		return Result{Index: index, Err: ErrBadKey}
	}
	old, found := m.contents[c.Key]
	res := Result{Index: index, Found: found}
	switch c.Op {
	case OpPut:
		if len(c.Value) > MaxValueBytes {
			res.Err = ErrTooLarge
		} else {
			m.contents[c.Key] = c.Value
		}
	case OpAppend:
		if len(old)+len(c.Value) > MaxValueBytes {
			res.Err = ErrTooLarge
		} else {
			m.contents[c.Key] = old + c.Value
		}
	case OpGet:
		res.Value = old
	case OpDelete:
		delete(m.contents, c.Key)
	}
	return res
}

// entry is one log entry; data nil is a no-op.
type entry struct {
	index uint64
	data  []byte
}

// randomStream returns n entries drawn from seed: all ops on a few keys,
// requests of a few clients that go forward, repeat and go back, requests
// without a client, no-ops, gaps in the index, malformed entries, and values
// near the size limit.
func randomStream(seed uint64, n int) []entry {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	near := strings.Repeat("n", MaxValueBytes-3)
	keys := []string{"a", "b", "c", "ключ", "", "d"}
	ops := []Op{OpPut, OpAppend, OpGet, OpDelete}
	seqs := map[string]uint64{}
	var out []entry
	index := uint64(0)
	for range n {
		index++
		if rng.IntN(20) == 0 {
			index += uint64(rng.IntN(3)) // gaps, as after a restore
		}
		switch r := rng.IntN(100); {
		case r < 5:
			out = append(out, entry{index: index})
			continue
		case r < 7:
			bad := [][]byte{[]byte(`{"op":"put"`), []byte(`{"op":"cas","key":"a"}`), {0xff}, nil}
			b := bad[rng.IntN(len(bad))]
			if b == nil {
				b = []byte{}
			}
			out = append(out, entry{index: index, data: b})
			continue
		}
		c := Command{Op: ops[rng.IntN(len(ops))], Key: keys[rng.IntN(len(keys))]}
		switch r := rng.IntN(1000); { // values near the limit are rare: they are slow under -race
		case r < 2:
			c.Value = near
		case r < 70:
			c.Value = ""
		default:
			c.Value = fmt.Sprintf("v%d", rng.IntN(1000))
		}
		if rng.IntN(5) > 0 {
			c.ClientID = fmt.Sprintf("c%d", rng.IntN(9))
			last := seqs[c.ClientID]
			switch r := rng.IntN(10); {
			case r < 6 || last == 0:
				last += uint64(1 + rng.IntN(2))
				seqs[c.ClientID] = last
				c.Seq = last
			case r < 9:
				c.Seq = last // a retry
			default:
				c.Seq = last - 1 // stale
			}
		}
		out = append(out, entry{index: index, data: EncodeCommand(c)})
	}
	return out
}

func applyEntry(s *Store, e entry) Result {
	if e.data == nil {
		s.ApplyNoop(e.index)
		return Result{}
	}
	return s.Apply(e.index, e.data)
}

func mustSnapshot(t *testing.T, s *Store) string {
	t.Helper()
	b, err := s.Snapshot()
	require.NoError(t, err)
	return string(b)
}

func TestPropertyReplicasAgree(t *testing.T) {
	opts := Options{MaxSessions: 4, SessionTTLEntries: 30}
	const seeds, steps = 25, 1500
	seen := map[error]int{} // results seen over all seeds: the stream must reach every case
	for seed := uint64(1); seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			stream := randomStream(seed, steps)
			a, b, m := New(opts), New(opts), newModel(opts)
			cut := int(seed*7919) % len(stream) // where c starts from a's snapshot
			var c *Store
			for i, e := range stream {
				ra, rb := applyEntry(a, e), applyEntry(b, e)
				var rm Result
				if e.data == nil {
					m.advance(e.index)
				} else {
					rm = m.apply(e.index, e.data)
				}
				require.Equal(t, rm, ra, "entry %d (index %d) %s: store differs from the model", i, e.index, e.data)
				require.Equal(t, ra, rb, "entry %d: replicas differ", i)
				seen[ra.Err]++
				if c != nil {
					require.Equal(t, ra, applyEntry(c, e), "entry %d: restored replica differs", i)
				}
				if i == cut {
					c = New(opts)
					require.NoError(t, c.Restore([]byte(mustSnapshot(t, a))))
				}
				require.Len(t, m.sessions, a.Sessions(), "entry %d", i)
			}
			sa := mustSnapshot(t, a)
			assert.Equal(t, sa, mustSnapshot(t, b), "replicas end with different snapshots")
			assert.Equal(t, sa, mustSnapshot(t, c), "restore then continue differs from never snapshotting")
			assert.Equal(t, m.contents, snapshotContents(t, a))
			ids := sessionIDs(a)
			assert.Len(t, ids, len(m.sessions))
			for _, id := range ids {
				assert.Contains(t, m.sessions, id)
			}
		})
	}
	for _, err := range []error{nil, ErrBadKey, ErrTooLarge, ErrStaleRequest, ErrBadCommand} {
		assert.Positive(t, seen[err], "no result with error %v in any stream", err)
	}
	t.Logf("results by error: %v", seen)
}
