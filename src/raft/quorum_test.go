package raft

import (
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveQuorumIndex is quorumIndex by definition: the largest v among the
// values (or 0) such that at least quorum values are >= v.
func naiveQuorumIndex(values []uint64, quorum int) uint64 {
	var best uint64
	for _, v := range values {
		n := 0
		for _, w := range values {
			if w >= v {
				n++
			}
		}
		if n >= quorum && v > best {
			best = v
		}
	}
	return best
}

// quorumCase is a random vector of 1 to 9 values (few distinct ones, so
// that ties are common) and a quorum in [1, len].
type quorumCase struct {
	Values []uint64
	Quorum int
}

func (quorumCase) Generate(r *rand.Rand, _ int) reflect.Value {
	c := quorumCase{Values: make([]uint64, 1+r.Intn(9))}
	for i := range c.Values {
		if r.Intn(4) == 0 {
			c.Values[i] = r.Uint64() // large values too
		} else {
			c.Values[i] = uint64(r.Intn(6))
		}
	}
	c.Quorum = 1 + r.Intn(len(c.Values))
	return reflect.ValueOf(c)
}

func TestQuorumIndexMatchesNaive(t *testing.T) {
	f := func(c quorumCase) bool {
		want := naiveQuorumIndex(c.Values, c.Quorum)
		got := quorumIndex(slices.Clone(c.Values), c.Quorum)
		if got != want {
			t.Logf("quorumIndex(%v, %d) = %d, want %d", c.Values, c.Quorum, got, want)
		}
		return got == want
	}
	cfg := &quick.Config{MaxCount: 20000, Rand: rand.New(rand.NewSource(1))}
	require.NoError(t, quick.Check(f, cfg))
}

func TestQuorumIndexExamples(t *testing.T) {
	for _, tc := range []struct {
		values []uint64
		quorum int
		want   uint64
	}{
		{[]uint64{5}, 1, 5},
		{[]uint64{1, 2, 3}, 2, 2},
		{[]uint64{3, 3, 0}, 2, 3},
		{[]uint64{0, 0, 7, 7, 7}, 3, 7},
		{[]uint64{0, 0, 7, 7, 9}, 3, 7},
		{[]uint64{9, 0, 0, 0, 9}, 3, 0},
	} {
		assert.Equal(t, tc.want, quorumIndex(slices.Clone(tc.values), tc.quorum), "%v quorum %d", tc.values, tc.quorum)
	}
	assert.Panics(t, func() { quorumIndex([]uint64{1}, 2) })
	assert.Panics(t, func() { quorumIndex(nil, 0) })
}

// The commit and read checks run on every acknowledgement: they must not
// allocate.
func TestQuorumChecksDoNotAllocate(t *testing.T) {
	nw := newNetwork(t, 5, nil)
	nw.elect(0)
	nw.tick(1)
	l := nw.nodes[0]
	assert.Zero(t, testing.AllocsPerRun(100, func() { l.maybeCommit() }), "maybeCommit allocates")
	l.readRound = 1
	for _, p := range l.peers {
		l.prs[p].ReadAck = 1
	}
	buf, states := make([]pendingRead, 1), make([]ReadState, 0, 1)
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		buf[0] = pendingRead{id: 1, round: 1}
		l.reads, l.readStates = buf, states
		l.releaseReads()
	}), "releaseReads allocates")
	assert.Len(t, l.readStates, 1)
}
