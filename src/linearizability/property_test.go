package linearizability

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "replay one seed of the randomized tests, logging its history (0: run -seeds seeds)")
	seedsFlag = flag.Int("seeds", 200, "number of seeds the randomized tests run")
)

// seeds returns the seeds to run: 1..-seeds, or only -seed.
func seeds() []uint64 {
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	s := make([]uint64, *seedsFlag)
	for i := range s {
		s[i] = uint64(i + 1)
	}
	return s
}

// simulation is an in-memory store that is linearizable by construction,
// driven by concurrent clients under a seeded random scheduler. Each
// operation takes effect atomically at one step (its linearization point)
// strictly between its Call and its Return, which the Recorder stamps from
// a logical clock. Some writes end Unknown: applied but unacknowledged, or
// not yet applied and perhaps applied much later (a retried proposal that
// commits after the client gave up), or never. Some fail and are never
// applied.
type simulation struct {
	rng    *rand.Rand
	rec    *Recorder
	store  map[string]state
	states map[string][]state // every state each key went through, the first absent
	limbo  []simOp            // unknown writes that may still take effect
	// sawIndex maps an acknowledged get's Call to the index in states of
	// the state it saw.
	sawIndex map[int64]int
	stats    simStats
}

type simStats struct{ ops, unknown, late, failed, overlaps int }

type simOp struct {
	kind       api.Op
	key, value string
}

type simClient struct {
	id, issued int
	p          *Pending // nil: idle
	op         simOp
	applied    bool
	saw        state // what a Get saw at its linearization point
	sawIndex   int   // its index in states[key]
}

const (
	simClients   = 5
	simOpsPerCli = 40
	simKeys      = 3
)

func simulate(seed uint64) *simulation {
	s := &simulation{
		rng:      rand.New(rand.NewPCG(seed, 0x5eed)),
		rec:      newRecorder(logicalClock()),
		store:    map[string]state{},
		states:   map[string][]state{},
		sawIndex: map[int64]int{},
	}
	clients := make([]*simClient, simClients)
	for i := range clients {
		clients[i] = &simClient{id: i}
	}
	busy := 0 // clients with ops left or in flight
	for _, c := range clients {
		if c.issued < simOpsPerCli {
			busy++
		}
	}
	for busy > 0 {
		if len(s.limbo) > 0 && s.rng.IntN(10) == 0 {
			i := s.rng.IntN(len(s.limbo))
			s.apply(s.limbo[i])
			s.limbo = append(s.limbo[:i], s.limbo[i+1:]...)
			s.stats.late++
		}
		c := clients[s.rng.IntN(len(clients))]
		switch {
		case c.p == nil && c.issued == simOpsPerCli:
			continue
		case c.p == nil:
			c.op = s.randomOp(c.id, c.issued)
			c.p = s.rec.Begin(c.id, c.op.kind, c.op.key, c.op.value)
			c.issued++
			s.stats.ops++
			for _, o := range clients {
				if o != c && o.p != nil {
					s.stats.overlaps++
				}
			}
			continue
		case !c.applied:
			switch r := s.rng.IntN(20); {
			case r == 0 && c.op.kind != api.OpGet:
				c.p.Failed() // refused before it was proposed
				s.stats.failed++
			case r == 1:
				c.p.Unknown() // the client gave up before it took effect
				s.stats.unknown++
				if c.op.kind != api.OpGet {
					s.limbo = append(s.limbo, c.op)
				}
			default:
				c.saw = s.apply(c.op) // the linearization point
				c.sawIndex = len(s.states[c.op.key]) - 1
				c.applied = true
				continue
			}
		default:
			if s.rng.IntN(20) == 0 {
				c.p.Unknown() // took effect, but the answer was lost
				s.stats.unknown++
			} else {
				c.p.Ok(c.saw.value, c.saw.exists)
				if c.op.kind == api.OpGet {
					s.sawIndex[callOf(c.p)] = c.sawIndex
				}
			}
		}
		c.p, c.applied = nil, false
		if c.issued == simOpsPerCli {
			busy--
		}
	}
	return s // what is left in limbo never takes effect
}

func (s *simulation) randomOp(client, n int) simOp {
	op := simOp{key: fmt.Sprintf("k%d", s.rng.IntN(simKeys)), value: fmt.Sprintf("c%d.%d;", client, n)}
	switch r := s.rng.IntN(10); {
	case r < 4:
		op.kind = api.OpGet
	case r < 6:
		op.kind = api.OpPut
	case r < 9:
		op.kind = api.OpAppend
	default:
		op.kind = api.OpDelete
	}
	return op
}

func callOf(p *Pending) int64 {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	return p.op.Call
}

// apply performs op atomically and returns the state it saw.
func (s *simulation) apply(op simOp) state {
	old := s.store[op.key]
	if len(s.states[op.key]) == 0 {
		s.states[op.key] = []state{{}} // the initial absent state
	}
	var next state
	switch op.kind {
	case api.OpGet:
		return old
	case api.OpPut:
		next = state{value: op.value, exists: true}
	case api.OpAppend:
		next = state{value: old.value + op.value, exists: true}
	case api.OpDelete:
		next = state{}
	}
	s.store[op.key] = next
	s.states[op.key] = append(s.states[op.key], next)
	return old
}

// okGets returns the indexes of the acknowledged gets.
func okGets(ops []Op) []int {
	var idx []int
	for i, op := range ops {
		if op.Kind == api.OpGet && op.Ok {
			idx = append(idx, i)
		}
	}
	return idx
}

// corruptNeverWritten makes one get return a value no one ever wrote: never
// linearizable.
func corruptNeverWritten(ops []Op, rng *rand.Rand) []Op {
	out := append([]Op(nil), ops...)
	gets := okGets(out)
	i := gets[rng.IntN(len(gets))]
	out[i].Output, out[i].Found = "never written", true
	return out
}

// corruptStale makes one get return a stale state: one its key went through
// before the state the get saw. Usually not linearizable, but not always: the
// write that overwrote the stale state may have overlapped the get.
func corruptStale(ops []Op, s *simulation, rng *rand.Rand) ([]Op, bool) {
	out := append([]Op(nil), ops...)
	gets := okGets(out)
	rng.Shuffle(len(gets), func(a, b int) { gets[a], gets[b] = gets[b], gets[a] })
	for _, i := range gets {
		seen := state{value: out[i].Output, exists: out[i].Found}
		var older []state
		for _, st := range s.states[out[i].Key][:s.sawIndex[out[i].Call]] {
			if st != seen {
				older = append(older, st)
			}
		}
		if len(older) > 0 {
			st := older[rng.IntN(len(older))]
			out[i].Output, out[i].Found = st.value, st.exists
			return out, true
		}
	}
	return out, false
}

// TestSimulatedStoreIsLinearizable: every history of the correct store passes
// and, with one get's output replaced by a value never written, fails.
func TestSimulatedStoreIsLinearizable(t *testing.T) {
	var total simStats
	for _, seed := range seeds() {
		s := simulate(seed)
		ops := s.rec.Ops()
		if *seedFlag != 0 {
			t.Logf("seed %d stats %+v history:\n%s", seed, s.stats, formatOps(ops))
		}
		res := Check(ops, checkTimeout)
		require.False(t, res.Unknown, "seed %d: checker timed out", seed)
		require.True(t, res.Linearizable, "seed %d: the correct store failed the check (replay with -seed=%d -v)", seed, seed)

		bad := corruptNeverWritten(ops, rand.New(rand.NewPCG(seed, 1)))
		res = Check(bad, checkTimeout)
		require.False(t, res.Unknown, "seed %d: checker timed out", seed)
		require.False(t, res.Linearizable, "seed %d: a get of a value never written passed the check", seed)

		total.ops += s.stats.ops
		total.unknown += s.stats.unknown
		total.late += s.stats.late
		total.failed += s.stats.failed
		total.overlaps += s.stats.overlaps
	}
	t.Logf("%d seeds: %+v", len(seeds()), total)
	if *seedFlag == 0 {
		// The scheduler really exercises what it claims to.
		assert.Positive(t, total.unknown)
		assert.Positive(t, total.late, "unknown writes applied after the client gave up")
		assert.Positive(t, total.failed)
		assert.Greater(t, total.overlaps, total.ops, "ops overlap (more than one other in flight on average)")
	}
}

// staleSeed is a seed whose history, with one get made stale by
// corruptStale, was verified to fail the check.
const staleSeed = 7

// TestSimulatedStaleReadDetected: a stale read planted in a correct history is
// caught most of the time (not always: see corruptStale), and for staleSeed.
func TestSimulatedStaleReadDetected(t *testing.T) {
	detected, corrupted := 0, 0
	var missed []uint64
	for _, seed := range seeds() {
		s := simulate(seed)
		bad, ok := corruptStale(s.rec.Ops(), s, rand.New(rand.NewPCG(seed, 2)))
		if !ok {
			continue
		}
		corrupted++
		res := Check(bad, checkTimeout)
		require.False(t, res.Unknown, "seed %d: checker timed out", seed)
		if res.Linearizable {
			missed = append(missed, seed)
		} else {
			detected++
		}
		if seed == staleSeed {
			assert.False(t, res.Linearizable, "seed %d: the corrupted history passed", seed)
		}
	}
	t.Logf("corrupted %d histories, %d detected; still linearizable: seeds %v", corrupted, detected, missed)
	if *seedFlag == 0 {
		assert.Greater(t, detected*10, corrupted*7, "at least 70%% of corruptions are detected")
	}
}

// TestSimulationIsDeterministic: a seed replays exactly.
func TestSimulationIsDeterministic(t *testing.T) {
	a, b := simulate(42), simulate(42)
	assert.Equal(t, a.rec.Ops(), b.rec.Ops())
	assert.NotEqual(t, a.rec.Ops(), simulate(43).rec.Ops())
}
