package linearizability

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"

	"raftkv/src/api"
)

// input is a porcupine Operation's Input.
type input struct {
	kind       api.Op
	key, value string
}

// output is a porcupine Operation's Output.
type output struct {
	value   string // a Get's value, when found
	found   bool
	unknown bool // outcome unknown: accepts any state (only writes reach the model)
}

// state is the model's state for one key (the history is partitioned by key).
//
// Invariant: !exists implies value == "", so that == is the right equality.
type state struct {
	value  string
	exists bool
}

// Model returns the sequential specification of one raftkv key, for
// porcupine: partitioned by key, each partition's state is (value, exists).
// Put sets the value, Append concatenates (creating the key), Delete removes
// the key, and a Get must return what is there (found=false when absent).
// A write accepts any output; an unknown-outcome write is given an infinite
// Return by Check, so it may linearize anywhere after its call.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvent,
		Init:           func() any { return state{} },
		Step:           step,
		Equal:          func(a, b any) bool { return a.(state) == b.(state) },
		Hash: func(s any) uint64 {
			st := s.(state)
			h := fnv.New64a()
			h.Write([]byte(st.value))
			if st.exists {
				h.Write([]byte{1})
			}
			return h.Sum64()
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(input), out.(output)
			switch {
			case o.unknown:
				return describeInput(i) + " -> ? (outcome unknown)"
			case i.kind != api.OpGet:
				return describeInput(i)
			case o.found:
				return fmt.Sprintf("%s -> %q", describeInput(i), o.value)
			default:
				return describeInput(i) + " -> absent"
			}
		},
		DescribeState: func(s any) string {
			st := s.(state)
			if !st.exists {
				return "absent"
			}
			return fmt.Sprintf("%q", st.value)
		},
	}
}

func describeInput(i input) string {
	if i.kind.HasValue() {
		return fmt.Sprintf("%s(%q, %q)", i.kind, i.key, i.value)
	}
	return fmt.Sprintf("%s(%q)", i.kind, i.key)
}

func step(s, in, out any) (bool, any) {
	st, i, o := s.(state), in.(input), out.(output)
	switch i.kind {
	case api.OpPut:
		return true, state{value: i.value, exists: true}
	case api.OpAppend:
		return true, state{value: st.value + i.value, exists: true}
	case api.OpDelete:
		return true, state{}
	case api.OpGet:
		if o.unknown {
			return true, st
		}
		if o.found != st.exists || o.value != st.value {
			return false, st
		}
		return true, st
	default:
		panic(fmt.Sprintf("linearizability: model step with invalid kind %q", i.kind))
	}
}

// partition splits a history by key, in key order so that the result (and a
// visualization) is deterministic.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(input).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// partitionEvent is partition for the event representation: a return event
// carries no input, so it goes where its call went (matched by Id).
func partitionEvent(history []porcupine.Event) [][]porcupine.Event {
	byKey := make(map[string][]porcupine.Event)
	keyOf := make(map[int]string)
	var keys []string
	for _, ev := range history {
		var k string
		if ev.Kind == porcupine.CallEvent {
			k = ev.Value.(input).key
			keyOf[ev.Id] = k
		} else {
			var ok bool
			if k, ok = keyOf[ev.Id]; !ok {
				panic(fmt.Sprintf("linearizability: return event %d before its call", ev.Id))
			}
		}
		if _, seen := byKey[k]; !seen {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], ev)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Event, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}
