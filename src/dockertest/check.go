package dockertest

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"raftkv/src/api"
)

// Op is one command a client sent, with what it was told.
type Op struct {
	Client  string
	Line    int // data-file line (0 for the harness's own probes)
	Kind    api.Op
	Key     string
	Value   string
	Outcome api.Outcome
	// For a get: Found and Read as the client recorded them.
	Found *bool
	Read  *string
	// Start and End as recorded (RFC 3339); empty for an in-flight command.
	Start, End string
	// InFlight: sent when the client was stopped, never recorded.
	InFlight bool
	// Prefix: a delete of every key that starts with Key (CheckHistories
	// checks it as a delete of each such key it knows).
	Prefix bool
}

func (o Op) isWrite() bool { return o.Kind.IsWrite() }

func (o Op) String() string {
	where := fmt.Sprintf("%s line %d", o.Client, o.Line)
	if o.Line == 0 {
		where = o.Client
	}
	if o.Kind.HasValue() {
		return fmt.Sprintf("%s: %s %s %q (%s)", where, o.Kind, o.Key, o.Value, o.Outcome)
	}
	return fmt.Sprintf("%s: %s %s (%s)", where, o.Kind, o.Key, o.Outcome)
}

// ClientHistory is one client's commands in the order it sent them (a client
// sends one command at a time).
type ClientHistory struct {
	Client string
	Ops    []Op
}

// CheckResult is what CheckHistories found.
type CheckResult struct {
	Lines    []string // what was compared, for people
	Failures []string // empty when every check passed
}

// Err returns nil when every check passed, else an error listing failures.
func (r CheckResult) Err() error {
	if len(r.Failures) == 0 {
		return nil
	}
	return fmt.Errorf("%d check(s) failed:\n  %s", len(r.Failures), strings.Join(r.Failures, "\n  "))
}

// Print writes the result's lines and failures.
func (r CheckResult) Print(w io.Writer) {
	for _, l := range r.Lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAIL: %s\n", f)
	}
}

// CheckHistories checks the clients' histories against a final state
// machine: for every key, the final value must be the result of applying
// each client's writes to that key in the client's order, every
// acknowledged ("ok") write exactly once, no failed ("error") write, and
// each "unknown" write at most once, interleaved between clients in some
// order. Appends to shared keys make this strict: a lost, duplicated or
// reordered acknowledged append shows in the value. Every key of the final
// state must have been written by someone. Reads a client made of a key only
// it writes are checked against that client's own writes before them (when
// none of those is "unknown").
func CheckHistories(final map[string]string, histories []ClientHistory) CheckResult {
	var res CheckResult
	histories = expandPrefixDeletes(final, histories)
	// Per key, per client, the writes in client order.
	perKey := map[string]map[string][]Op{}
	var clients []string
	stats := map[string]*[4]int{} // client -> ok, unknown, error, in-flight writes
	for _, h := range histories {
		clients = append(clients, h.Client)
		stats[h.Client] = &[4]int{}
		for _, op := range h.Ops {
			if !op.isWrite() {
				continue
			}
			if perKey[op.Key] == nil {
				perKey[op.Key] = map[string][]Op{}
			}
			perKey[op.Key][h.Client] = append(perKey[op.Key][h.Client], op)
			switch op.Outcome {
			case api.OutcomeOK:
				stats[h.Client][0]++
			case api.OutcomeUnknown:
				stats[h.Client][1]++
				if op.InFlight {
					stats[h.Client][3]++
				}
			default:
				stats[h.Client][2]++
			}
		}
	}
	for _, c := range clients {
		s := stats[c]
		inflight := ""
		if s[3] > 0 {
			inflight = fmt.Sprintf(" (%d possibly in flight when the client stopped)", s[3])
		}
		res.Lines = append(res.Lines, fmt.Sprintf("%s: %d writes acknowledged (must each be applied once, in order), %d outcome unknown%s (at most once), %d failed (must be absent)",
			c, s[0], s[1], inflight, s[2]))
	}

	keys := map[string]bool{}
	for k := range final {
		keys[k] = true
	}
	for k := range perKey {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)

	checked, shared := 0, 0
	appliedUnknown, droppedUnknown := 0, 0
	for _, key := range sorted {
		writers := perKey[key]
		fv, exists := final[key]
		if len(writers) == 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("key %q = %q is in the final state but no client wrote it", key, fv))
			continue
		}
		var names []string
		var seqs [][]Op
		for c, ops := range writers {
			names = append(names, c)
			seqs = append(seqs, ops)
		}
		sortTogether(names, seqs)
		w, ok, explored := explain(seqs, fv, exists)
		checked++
		if len(seqs) > 1 {
			shared++
		}
		if !ok {
			msg := fmt.Sprintf("key %q: final value %s cannot be produced by the clients' writes (every acknowledged write once, in client order, no failed write)", key, showValue(fv, exists))
			if explored >= maxExplored {
				msg += fmt.Sprintf(" [search stopped after %d states]", explored)
			}
			for _, hint := range appendHints(seqs, fv) {
				msg += "\n      " + hint
			}
			for i, c := range names {
				msg += fmt.Sprintf("\n      %s wrote: %s", c, describeOps(seqs[i]))
			}
			res.Failures = append(res.Failures, msg)
			continue
		}
		appliedUnknown += w.appliedUnknown
		droppedUnknown += w.droppedUnknown
		if len(seqs) > 1 {
			res.Lines = append(res.Lines, fmt.Sprintf("shared key %q (%s): final %s is an interleaving of %s",
				key, strings.Join(names, "+"), shorten(fv, 90), describeCounts(names, seqs)))
		}
	}
	if len(res.Failures) == 0 {
		res.Lines = append(res.Lines, fmt.Sprintf("keys checked: %d (%d written by more than one client); every final value explained; unknown-outcome writes: %d applied, %d not",
			checked, shared, appliedUnknown, droppedUnknown))
	} else {
		res.Lines = append(res.Lines, fmt.Sprintf("keys checked: %d (%d written by more than one client); %d not explained",
			checked, shared, len(res.Failures)))
	}

	// Reads of a key the reader alone writes.
	readsChecked, readsSkipped := 0, 0
	for _, h := range histories {
		model := map[string]*string{} // key -> value (nil = absent)
		uncertain := map[string]bool{}
		for _, op := range h.Ops {
			if len(perKey[op.Key]) > 1 || (len(perKey[op.Key]) == 1 && perKey[op.Key][h.Client] == nil) {
				if op.Kind == api.OpGet && op.Outcome == api.OutcomeOK {
					readsSkipped++
				}
				continue
			}
			switch {
			case op.isWrite() && op.Outcome == api.OutcomeUnknown:
				uncertain[op.Key] = true
			case op.isWrite() && op.Outcome == api.OutcomeOK:
				model[op.Key] = applyOp(model[op.Key], op)
			case op.Kind == api.OpGet && op.Outcome == api.OutcomeOK:
				if uncertain[op.Key] {
					readsSkipped++
					continue
				}
				readsChecked++
				want := model[op.Key]
				got := op.Read
				if op.Found != nil && !*op.Found {
					got = nil
				}
				if (want == nil) != (got == nil) || (want != nil && *want != *got) {
					res.Failures = append(res.Failures, fmt.Sprintf("%s line %d: get %s read %s, but the client's own earlier acknowledged writes give %s",
						h.Client, op.Line, op.Key, ptrValue(got), ptrValue(want)))
				}
			}
		}
	}
	res.Lines = append(res.Lines, fmt.Sprintf("reads checked against the reader's own writes: %d (%d reads of shared or uncertain keys not checked)", readsChecked, readsSkipped))
	return res
}

func applyOp(v *string, op Op) *string {
	switch op.Kind {
	case api.OpPut:
		s := op.Value
		return &s
	case api.OpAppend:
		s := op.Value
		if v != nil {
			s = *v + op.Value
		}
		return &s
	default: // delete
		return nil
	}
}

func ptrValue(p *string) string {
	if p == nil {
		return "(absent)"
	}
	return fmt.Sprintf("%q", *p)
}

func sortTogether(names []string, seqs [][]Op) {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	n2 := make([]string, len(names))
	s2 := make([][]Op, len(seqs))
	for i, j := range idx {
		n2[i], s2[i] = names[j], seqs[j]
	}
	copy(names, n2)
	copy(seqs, s2)
}

func describeOps(ops []Op) string {
	var parts []string
	for _, o := range ops {
		v := ""
		if o.Kind.HasValue() {
			v = fmt.Sprintf(" %q", o.Value)
		}
		parts = append(parts, fmt.Sprintf("%s%s[%s]", o.Kind, v, o.Outcome))
	}
	return strings.Join(parts, ", ")
}

func describeCounts(names []string, seqs [][]Op) string {
	var parts []string
	for i, c := range names {
		ok := 0
		for _, o := range seqs[i] {
			if o.Outcome == api.OutcomeOK {
				ok++
			}
		}
		parts = append(parts, fmt.Sprintf("%s's %d writes (%d acknowledged)", c, len(seqs[i]), ok))
	}
	return strings.Join(parts, " and ")
}

func shorten(s string, n int) string {
	q := fmt.Sprintf("%q", s)
	if len(q) <= n {
		return q
	}
	return q[:n/2] + "..." + q[len(q)-n/2:]
}

// maxExplored bounds the search of one key.
const maxExplored = 2_000_000

type witness struct{ appliedUnknown, droppedUnknown int }

// explain searches for an interleaving of the clients' write sequences, each
// "ok" write applied, each "error" write skipped, each "unknown" one either,
// that turns an absent key into (final, exists). It returns a witness's
// counts, whether one exists, and how many states it explored.
//
// The search is a depth-first walk over (position in each sequence, value)
// with memoized dead ends. It prunes with the one fact that keeps it small
// for appends: when nothing left to apply can overwrite or delete the key,
// the value so far must be a prefix of the final value.
func explain(seqs [][]Op, final string, exists bool) (witness, bool, int) {
	n := len(seqs)
	// resetAfter[c][i]: some op in seqs[c][i:] is a put or delete.
	resetAfter := make([][]bool, n)
	for c, ops := range seqs {
		resetAfter[c] = make([]bool, len(ops)+1)
		for i := len(ops) - 1; i >= 0; i-- {
			resetAfter[c][i] = resetAfter[c][i+1] || ops[i].Kind != api.OpAppend
		}
	}
	pos := make([]int, n)
	dead := map[string]bool{}
	explored := 0
	var w witness

	var walk func(val string, has bool) bool
	walk = func(val string, has bool) bool {
		explored++
		if explored > maxExplored {
			return false
		}
		done, reset := true, false
		for c := range seqs {
			if pos[c] < len(seqs[c]) {
				done = false
			}
			if resetAfter[c][pos[c]] {
				reset = true
			}
		}
		if done {
			return has == exists && (!has || val == final)
		}
		if !reset && has && (!exists || !strings.HasPrefix(final, val)) {
			return false
		}
		key := fmt.Sprint(pos, has, val)
		if dead[key] {
			return false
		}
		for c := range seqs {
			if pos[c] == len(seqs[c]) {
				continue
			}
			op := seqs[c][pos[c]]
			pos[c]++
			if op.Outcome != api.OutcomeError { // apply it
				nv := applyOp(strPtr(val, has), op)
				if walk(deref(nv)) {
					pos[c]--
					if op.Outcome == api.OutcomeUnknown {
						w.appliedUnknown++
					}
					return true
				}
			}
			if op.Outcome != api.OutcomeOK { // skip it
				if walk(val, has) {
					pos[c]--
					if op.Outcome == api.OutcomeUnknown {
						w.droppedUnknown++
					}
					return true
				}
			}
			pos[c]--
		}
		dead[key] = true
		return false
	}
	ok := walk("", false)
	return w, ok, explored
}

func strPtr(s string, ok bool) *string {
	if !ok {
		return nil
	}
	return &s
}

func deref(p *string) (string, bool) {
	if p == nil {
		return "", false
	}
	return *p, true
}

// appendHints points at the likely culprit when a key's value cannot be
// explained: an acknowledged append whose value (if distinctive, 3 bytes or
// more) does not occur in the final value, or occurs more often than it was
// written.
func appendHints(seqs [][]Op, final string) []string {
	written := map[string]int{}
	var order []Op
	for _, ops := range seqs {
		for _, o := range ops {
			if o.Kind == api.OpAppend && len(o.Value) >= 3 {
				if written[o.Value] == 0 {
					order = append(order, o)
				}
				written[o.Value]++
			}
		}
	}
	var hints []string
	for _, o := range order {
		n := strings.Count(final, o.Value)
		switch {
		case n == 0 && o.Outcome == api.OutcomeOK:
			hints = append(hints, fmt.Sprintf("LOST: %s is acknowledged but not in the final value", o))
		case n > written[o.Value]:
			hints = append(hints, fmt.Sprintf("DUPLICATED: %s appears %d times, written %d", o, n, written[o.Value]))
		case n > 0 && o.Outcome == api.OutcomeError:
			hints = append(hints, fmt.Sprintf("FAILED BUT APPLIED: %s is in the final value", o))
		}
	}
	return hints
}

// expandPrefixDeletes replaces every delete by prefix with a delete of
// each key under the prefix that a client wrote or the final state holds:
// per key, that is what it did (a delete of an absent key changes
// nothing), so the per-key check applies.
func expandPrefixDeletes(final map[string]string, histories []ClientHistory) []ClientHistory {
	keys := map[string]bool{}
	for k := range final {
		keys[k] = true
	}
	for _, h := range histories {
		for _, op := range h.Ops {
			if op.isWrite() && !op.Prefix {
				keys[op.Key] = true
			}
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	out := make([]ClientHistory, len(histories))
	for i, h := range histories {
		out[i] = ClientHistory{Client: h.Client}
		for _, op := range h.Ops {
			if !op.Prefix {
				out[i].Ops = append(out[i].Ops, op)
				continue
			}
			for _, k := range sorted {
				if strings.HasPrefix(k, op.Key) {
					d := op
					d.Key, d.Prefix = k, false
					out[i].Ops = append(out[i].Ops, d)
				}
			}
		}
	}
	return out
}
