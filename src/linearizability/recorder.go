package linearizability

import (
	"fmt"
	"sync"
	"time"

	"raftkv/src/api"
)

// Recorder records a concurrent history. It is safe for concurrent use by
// any number of client goroutines.
//
// Each operation is bracketed: Begin just before the request is sent, then
// exactly one of Ok, Unknown or Failed on its Pending once the answer (or
// the lack of one) is known.
type Recorder struct {
	clock func() int64 // called with mu held; never decreases

	mu  sync.Mutex
	ops []*Pending // in Begin order
}

// Pending is an operation that has begun and not yet been resolved.
type Pending struct {
	r *Recorder
	// The fields below are guarded by r.mu.
	op       Op
	resolved bool
	failed   bool
}

// NewRecorder returns an empty Recorder whose clock counts monotonic
// nanoseconds since this call.
func NewRecorder() *Recorder {
	start := time.Now() // carries a monotonic reading: time.Since never goes back
	return newRecorder(func() int64 { return int64(time.Since(start)) })
}

// NewLogicalRecorder returns an empty Recorder whose clock counts events
// (1, 2, 3, ...): for a history simulated in one goroutine, where every
// Begin and resolve is a distinct instant.
func NewLogicalRecorder() *Recorder {
	var n int64
	return newRecorder(func() int64 { n++; return n })
}

// newRecorder lets tests drive the clock (logical time).
func newRecorder(clock func() int64) *Recorder {
	return &Recorder{clock: clock}
}

// Begin records the invocation of an operation by client and stamps its
// Call time. Call it just before sending the request: a Call stamped early
// only widens the interval, which is always sound; a late one is not.
func (r *Recorder) Begin(client int, kind api.Op, key, value string) *Pending {
	if !kind.Valid() {
		panic(fmt.Sprintf("linearizability: Begin with invalid kind %q", kind))
	}
	if !kind.HasValue() {
		value = "" // only put and append have an argument
	}
	p := &Pending{r: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.op = Op{ClientID: client, Kind: kind, Key: key, Value: value, Call: r.clock()}
	r.ops = append(r.ops, p)
	return p
}

// BeginOp is Begin for any operation, the second wave's included (CAS,
// delete by prefix, KindList, KindTxn): op holds the call (Kind, Key,
// Value, CAS, IsPrefix, Prefix, Txn); ClientID and Call are set here.
func (r *Recorder) BeginOp(client int, op Op) *Pending {
	if !validKind(op.Kind) || (op.Kind == KindTxn) != (op.Txn != nil) {
		panic(fmt.Sprintf("linearizability: BeginOp with invalid operation %v", op))
	}
	p := &Pending{r: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	op.ClientID, op.Call = client, r.clock()
	p.op = op
	r.ops = append(r.ops, p)
	return p
}

// OkWith records that the operation was acknowledged; fill sets what it
// returned (Index, Output, Found, ModIndex, List, TxnOut).
func (p *Pending) OkWith(fill func(*Op)) {
	p.resolve("Ok", func(op *Op) {
		op.Ok = true
		fill(op)
	})
}

// Conflict records a compare-and-swap refused with 409: not applied; found
// and mod are the key's state the answer reported.
func (p *Pending) Conflict(found bool, mod uint64) {
	p.resolve("Conflict", func(op *Op) {
		op.Ok, op.Conflict, op.Found, op.ModIndex = true, true, found, mod
	})
}

// Ok records that the operation was acknowledged. For a Get, output and found
// are what it returned (found=false: not found); writes ignore them.
func (p *Pending) Ok(output string, found bool) {
	p.resolve("Ok", func(op *Op) {
		op.Ok = true
		if op.Kind == api.OpGet {
			op.Output, op.Found = output, found
		}
	})
}

// Unknown records that the outcome is unknown: a timeout, a 504, a connection
// broken after the request was sent. A write may take effect at any later
// time, or never; a read is dropped from the history.
func (p *Pending) Unknown() {
	p.resolve("Unknown", func(op *Op) { op.Unknown = true })
}

// Failed records that the operation certainly did not take effect (400, 413,
// a 503 before proposing, the client's ErrUnavailable). It is dropped.
func (p *Pending) Failed() {
	p.resolve("Failed", func(*Op) { p.failed = true })
}

func (p *Pending) resolve(how string, set func(*Op)) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.resolved {
		panic(fmt.Sprintf("linearizability: %s on an operation already resolved: %v", how, p.op))
	}
	p.resolved = true
	p.op.Return = p.r.clock()
	set(&p.op)
}

// Ops returns a copy of the history so far, in Begin order, without the
// Failed operations. An operation still in flight counts as Unknown (its
// Return is the time of this call): a write in flight may yet take effect.
// Unknown reads are kept in the result (Check drops them).
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	out := make([]Op, 0, len(r.ops))
	for _, p := range r.ops {
		if p.failed {
			continue
		}
		op := p.op
		if !p.resolved {
			op.Unknown, op.Return = true, now
		}
		out = append(out, op)
	}
	return out
}
