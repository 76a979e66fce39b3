package linearizability

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// logicalClock returns a clock that ticks by one on every reading. Recorder
// reads it with its lock held, so it needs no lock of its own.
func logicalClock() func() int64 {
	var t int64
	return func() int64 { t++; return t }
}

func TestRecorder(t *testing.T) {
	r := newRecorder(logicalClock())
	p := r.Begin(0, api.OpPut, "x", "a") // call 1
	p.Ok("ignored", true)                // return 2
	g := r.Begin(1, api.OpGet, "x", "v") // call 3; a get has no argument
	f := r.Begin(2, api.OpPut, "x", "b") // call 4
	f.Failed()                           // 5: dropped
	u := r.Begin(2, api.OpAppend, "x", "c")
	u.Unknown()                            // 6, 7
	g.Ok("a", true)                        // 8
	d := r.Begin(0, api.OpDelete, "x", "") // 9
	d.Ok("", false)                        // 10
	r.Begin(3, api.OpAppend, "x", "d")     // 11, in flight
	r.Begin(4, api.OpGet, "x", "")         // 12, in flight

	want := []Op{
		{ClientID: 0, Kind: api.OpPut, Key: "x", Value: "a", Call: 1, Return: 2, Ok: true},
		{ClientID: 1, Kind: api.OpGet, Key: "x", Call: 3, Return: 8, Ok: true, Output: "a", Found: true},
		{ClientID: 2, Kind: api.OpAppend, Key: "x", Value: "c", Call: 6, Return: 7, Unknown: true},
		{ClientID: 0, Kind: api.OpDelete, Key: "x", Call: 9, Return: 10, Ok: true},
		{ClientID: 3, Kind: api.OpAppend, Key: "x", Value: "d", Call: 11, Return: 13, Unknown: true},
		{ClientID: 4, Kind: api.OpGet, Key: "x", Call: 12, Return: 13, Unknown: true},
	}
	got := r.Ops()
	assert.Equal(t, want, got)

	// Ops is a copy: changing it changes nothing recorded.
	got[0].Value = "changed"
	assert.Equal(t, "a", r.Ops()[0].Value)

	res := Check(r.Ops(), checkTimeout)
	assert.True(t, res.Linearizable, res.String())
	assert.Equal(t, 5, res.Ops) // the in-flight get is dropped by Check
}

func TestRecorderResolveTwicePanics(t *testing.T) {
	for _, second := range []string{"Ok", "Unknown", "Failed"} {
		t.Run(second, func(t *testing.T) {
			p := NewRecorder().Begin(0, api.OpPut, "x", "a")
			p.Unknown()
			resolve := map[string]func(){"Ok": func() { p.Ok("", false) }, "Unknown": p.Unknown, "Failed": p.Failed}[second]
			assert.Panics(t, resolve)
		})
	}
	assert.Panics(t, func() { NewRecorder().Begin(0, api.Op("cas"), "x", "") })
}

// TestRecorderConcurrent runs real clients on real goroutines, with the real
// clock, against a store that is linearizable by construction (one mutex,
// the operation takes effect inside Begin..resolve), while another goroutine
// reads the history. Under -race this checks the Recorder's locking; the
// verdict checks that its clock never makes a correct store look wrong.
func TestRecorderConcurrent(t *testing.T) {
	const clients, perClient = 8, 200
	var (
		mu    sync.Mutex
		store = map[string]string{}
	)
	r := NewRecorder()
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // a reporter polling the history while clients run
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
				for _, op := range r.Ops() {
					if op.Return < op.Call {
						t.Errorf("op returns before its call: %v", op)
						return
					}
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for i := range perClient {
				key := fmt.Sprintf("k%d", rng.IntN(3))
				value := fmt.Sprintf("c%d.%d", c, i)
				kind := [...]api.Op{api.OpPut, api.OpAppend, api.OpGet, api.OpDelete}[rng.IntN(4)]
				p := r.Begin(c, kind, key, value)
				mu.Lock()
				old, found := store[key]
				switch kind {
				case api.OpPut:
					store[key] = value
				case api.OpAppend:
					store[key] = old + value
				case api.OpDelete:
					delete(store, key)
				}
				mu.Unlock()
				switch rng.IntN(10) {
				case 0:
					p.Unknown() // took effect, but the client never heard
				default:
					p.Ok(old, found)
				}
				if rng.IntN(10) == 0 {
					r.Begin(c, api.OpPut, key, "never sent").Failed()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-readerDone

	ops := r.Ops()
	perClientOps := map[int][]Op{}
	for _, op := range ops {
		require.True(t, op.Ok != op.Unknown, "every op resolved Ok or Unknown: %v", op)
		require.NotEqual(t, "never sent", op.Value, "failed ops are dropped")
		perClientOps[op.ClientID] = append(perClientOps[op.ClientID], op)
	}
	require.Len(t, perClientOps, clients)
	for c, cops := range perClientOps {
		require.Len(t, cops, perClient, "client %d", c)
		for i := 1; i < len(cops); i++ {
			// One client's ops are sequential: the clock never goes back.
			require.LessOrEqual(t, cops[i-1].Return, cops[i].Call, "client %d op %d", c, i)
		}
	}
	res := Check(ops, checkTimeout)
	require.False(t, res.Unknown, "checker timed out")
	assert.True(t, res.Linearizable, res.String())
}
