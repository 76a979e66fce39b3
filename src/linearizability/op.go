package linearizability

import (
	"fmt"
	"strings"

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

	// The second-wave operations (KVModel). A history with any of these is
	// checked with KVModel, one without with Model.

	// CAS makes a put or delete conditional (?cas=*CAS).
	CAS *uint64
	// Conflict (with Ok): a CAS answered 409, nothing was applied; Found
	// and ModIndex are the key's state the answer reported.
	Conflict bool
	// Index is an Ok write's log index, the key's mod_index after it (0:
	// not recorded).
	Index uint64
	// ModIndex is the mod_index an Ok Get (Found) or a Conflict reported
	// (0: not recorded).
	ModIndex uint64
	// IsPrefix makes a delete remove every key starting with Key.
	IsPrefix bool
	// Prefix and List: a KindList of Prefix, and the entries it returned
	// (key order).
	Prefix string
	List   []api.ValueBody
	// Txn and TxnOut: a KindTxn, and its answer when Ok.
	Txn    *api.TxnRequest
	TxnOut *api.TxnBody
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
	case o.Conflict:
		out = fmt.Sprintf(" -> conflict (found %v, mod %d)", o.Found, o.ModIndex)
	case o.Kind == KindList:
		var ks []string
		for _, e := range o.List {
			ks = append(ks, fmt.Sprintf("%q=%q@%d", e.Key, e.Value, e.ModIndex))
		}
		out = " -> [" + strings.Join(ks, " ") + "]"
	case o.Kind == KindTxn && o.TxnOut != nil:
		out = fmt.Sprintf(" -> succeeded %v at %d", o.TxnOut.Succeeded, o.TxnOut.Index)
	case o.Index != 0:
		out = fmt.Sprintf(" -> @%d", o.Index)
	}
	in := describeInput(input{o.Kind, o.Key, o.Value})
	switch {
	case o.Kind == KindList:
		in = fmt.Sprintf("list(%q)", o.Prefix)
	case o.Kind == KindTxn:
		in = fmt.Sprintf("txn(%+v)", *o.Txn)
	case o.IsPrefix:
		in = fmt.Sprintf("delete-prefix(%q)", o.Key)
	case o.CAS != nil:
		in += fmt.Sprintf(" cas=%d", *o.CAS)
	}
	return fmt.Sprintf("c%d [%d,%d] %s%s", o.ClientID, o.Call, o.Return, in, out)
}
