package linearizability

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"raftkv/src/api"
)

// infinity is the Return time of an operation whose outcome is unknown: it is
// later than every real event, so the operation may linearize anywhere after
// its Call (porcupine's encoding of a pending operation).
const infinity = math.MaxInt64

// Result is the verdict of Check.
type Result struct {
	// Linearizable: the checker found a linearization of every key's history.
	Linearizable bool
	// Unknown: the checker gave up at the timeout without finding a
	// violation; Linearizable is then false. Treat it as a failure to check
	// (shorten the history or raise the timeout), not as a pass.
	Unknown bool
	Keys    int // keys (partitions) checked
	Ops     int // operations checked: Ok ops and Unknown writes
	// Info holds the (partial) linearizations found, for
	// porcupine.VisualizePath(Model(), Info, path).
	Info porcupine.LinearizationInfo
}

func (r Result) String() string {
	verdict := "not linearizable"
	switch {
	case r.Linearizable:
		verdict = "linearizable"
	case r.Unknown:
		verdict = "unknown (checker timed out)"
	}
	return fmt.Sprintf("%s (%d ops on %d keys)", verdict, r.Ops, r.Keys)
}

// Check decides whether a history is linearizable against Model, giving up
// after timeout (0: no limit). It drops Failed ops (neither Ok nor Unknown)
// and Unknown reads, and gives Unknown writes an infinite Return time.
//
// It panics on an Op that breaks Op's invariants (both Ok and Unknown, an
// invalid kind, Return before Call): that is a bug in the caller.
func Check(ops []Op, timeout time.Duration) Result {
	model, history, parts := modelFor(ops)
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	return Result{
		Linearizable: res == porcupine.Ok,
		Unknown:      res == porcupine.Unknown,
		Keys:         parts,
		Ops:          len(history),
		Info:         info,
	}
}

// visualizeTimeout bounds the check that Visualize runs to find the partial
// linearizations it draws.
const visualizeTimeout = time.Minute

// Visualize writes porcupine's HTML visualization of the history to path:
// each key's operations on a time line, and the longest linearizations the
// checker found (for a non-linearizable history, where they stop).
func Visualize(ops []Op, path string) error {
	model, history, _ := modelFor(ops)
	_, info := porcupine.CheckOperationsVerbose(model, history, visualizeTimeout)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("linearizability: visualize to %s: %w", path, err)
	}
	return nil
}

// modelFor picks the model for a history: the per-key Model, fast, for
// put / append / get / delete alone; KVModel when any operation is of the
// second wave (CAS, metadata, listings, transactions). It returns the
// history in that model's terms and its number of partitions.
func modelFor(ops []Op) (porcupine.Model, []porcupine.Operation, int) {
	if !slices.ContainsFunc(ops, Op.extended) {
		h := toPorcupine(ops)
		return Model(), h, len(partition(h))
	}
	h := toPorcupineKV(ops)
	return KVModel(), h, len(partitionKV(h))
}

// toPorcupineKV is toPorcupine for KVModel: every operation is its own
// *Op, as input and output.
func toPorcupineKV(ops []Op) []porcupine.Operation {
	history := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if !validKind(op.Kind) {
			panic(fmt.Sprintf("linearizability: op with invalid kind: %v", op))
		}
		if op.Ok && op.Unknown {
			panic(fmt.Sprintf("linearizability: op both Ok and Unknown: %v", op))
		}
		if (op.Kind == KindTxn) != (op.Txn != nil) || (op.Ok && op.Kind == KindTxn && op.TxnOut == nil) {
			panic(fmt.Sprintf("linearizability: transaction without Txn or TxnOut: %v", op))
		}
		o := op
		switch {
		case op.Ok:
			if op.Return < op.Call {
				panic(fmt.Sprintf("linearizability: op returns before its call: %v", op))
			}
			history = append(history, porcupine.Operation{ClientId: op.ClientID, Input: &o, Call: op.Call, Output: &o, Return: op.Return})
		case op.Unknown && op.Kind != api.OpGet && op.Kind != KindList:
			history = append(history, porcupine.Operation{ClientId: op.ClientID, Input: &o, Call: op.Call, Output: &o, Return: infinity,
				Metadata: fmt.Sprintf("outcome unknown; client gave up at %d", op.Return)})
		}
	}
	return history
}

func toPorcupine(ops []Op) []porcupine.Operation {
	history := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if !op.Kind.Valid() {
			panic(fmt.Sprintf("linearizability: op with invalid kind: %v", op))
		}
		if op.Ok && op.Unknown {
			panic(fmt.Sprintf("linearizability: op both Ok and Unknown: %v", op))
		}
		switch {
		case op.Ok:
			if op.Return < op.Call {
				panic(fmt.Sprintf("linearizability: op returns before its call: %v", op))
			}
			out := output{}
			if op.Kind == api.OpGet && op.Found {
				out = output{value: op.Output, found: true}
			}
			history = append(history, porcupine.Operation{
				ClientId: op.ClientID,
				Input:    input{kind: op.Kind, key: op.Key, value: writeValue(op)},
				Call:     op.Call,
				Output:   out,
				Return:   op.Return,
			})
		case op.Unknown && op.Kind != api.OpGet:
			history = append(history, porcupine.Operation{
				ClientId: op.ClientID,
				Input:    input{kind: op.Kind, key: op.Key, value: writeValue(op)},
				Call:     op.Call,
				Output:   output{unknown: true},
				Return:   infinity,
				Metadata: fmt.Sprintf("outcome unknown; client gave up at %d", op.Return),
			})
		}
		// Failed ops, and reads whose answer never came, constrain nothing.
	}
	return history
}

func writeValue(op Op) string {
	if op.Kind.HasValue() {
		return op.Value
	}
	return ""
}
