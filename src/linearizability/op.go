package linearizability

import (
	"fmt"

	"raftkv/src/api"
)

// Op is one operation of a history, as a client saw it.
//
// Invariants for an Op given to Check: at most one of Ok and Unknown is set;
// if Ok, Call <= Return. An Op with neither set failed definitely (never
// applied) and is ignored.
type Op struct {
	ClientID int    // which client issued it; a client issues one op at a time
	Kind     api.Op //
	Key      string //
	Value    string // the argument of Put and Append; ignored otherwise

	// Call is when the request was about to be sent, Return when its answer
	// arrived (or, for an Unknown op, when the client gave up): monotonic
	// nanoseconds from one Recorder's clock. All Ops of a history must come
	// from the same clock.
	Call, Return int64

	// Ok: acknowledged, so it took effect exactly once between Call and
	// Return. For a Get, Output and Found are what it returned.
	Ok bool
	// Unknown: timed out, 504, connection lost after sending: the write may
	// or may not take effect, at any time after Call (even after Return).
	// Check gives it an infinite Return time. A Get with an unknown outcome
	// constrains nothing and is dropped.
	Unknown bool

	Output string // what a Get returned (when Found)
	Found  bool   // false: the Get answered "not found" (404)
}

func (o Op) String() string {
	var out string
	switch {
	case o.Unknown:
		out = " -> ?"
	case !o.Ok:
		out = " -> failed"
	case o.Kind == api.OpGet && o.Found:
		out = fmt.Sprintf(" -> %q", o.Output)
	case o.Kind == api.OpGet:
		out = " -> absent"
	}
	return fmt.Sprintf("c%d [%d,%d] %s%s", o.ClientID, o.Call, o.Return, describeInput(input{o.Kind, o.Key, o.Value}), out)
}
