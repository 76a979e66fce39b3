package linearizability

// The model of the second-wave key-value API: compare-and-swap on
// mod_index, prefix listings, deletes by prefix and transactions, over
// several keys at once.

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"raftkv/src/api"
)

// The kinds of Op beyond api.Op's: a listing of a prefix and a
// transaction. (A delete by prefix is an api.OpDelete with IsPrefix.)
const (
	KindList api.Op = "list"
	KindTxn  api.Op = "txn"
)

// validKind reports whether k is an Op kind Check knows.
func validKind(k api.Op) bool { return k.Valid() || k == KindList || k == KindTxn }

// extended reports whether op needs the multi-key model.
func (o Op) extended() bool {
	return o.Kind == KindList || o.Kind == KindTxn || o.CAS != nil || o.IsPrefix || o.Conflict || o.Index != 0 || o.ModIndex != 0
}

// keys are the keys op touches; prefix operations name only their prefix
// here (partitionKV adds the keys under it).
func (o *Op) keys() []string {
	switch {
	case o.Kind == KindTxn:
		var ks []string
		for _, c := range o.Txn.Compare {
			ks = append(ks, c.Key)
		}
		for _, l := range [][]api.TxnOp{o.Txn.Then, o.Txn.Else} {
			for _, t := range l {
				ks = append(ks, t.Key)
			}
		}
		return ks
	case o.Kind == KindList:
		ks := make([]string, 0, len(o.List))
		for _, e := range o.List {
			ks = append(ks, e.Key)
		}
		return ks
	case o.IsPrefix:
		return nil
	}
	return []string{o.Key}
}

// kstate is one present key in the model: its value and mod_index, 0 when
// the index is not known (a write of unknown outcome, or one whose index
// was not recorded, set it).
type kstate struct {
	value string
	mod   uint64
}

// kvState is the model's state of a partition: the present keys. A step
// never changes a kvState in place; it copies.
type kvState map[string]kstate

// KVModel returns the sequential specification of the key-value API over
// many keys, for porcupine: puts, appends, deletes (plain, by prefix, or
// compare-and-swap on mod_index), gets and listings that report values
// and mod_index, and transactions with compares on value, existence and
// mod_index. A history is partitioned into groups of keys that operations
// tie together (a transaction's keys, the keys under a listed prefix).
//
// The model knows a key's mod_index from the index an acknowledged write
// reported; after a write of unknown outcome it does not, and the next
// read that reports one tells it. A compare it cannot decide (on an
// unknown mod_index, or on version and create_index, which it does not
// track) allows both outcomes.
func KVModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionKV,
		Init:      func() []any { return []any{kvState{}} },
		Step: func(s, in, out any) []any {
			next := kvStep(s.(kvState), in.(*Op))
			r := make([]any, len(next))
			for i, n := range next {
				r[i] = n
			}
			return r
		},
		Equal: func(a, b any) bool { return maps.Equal(a.(kvState), b.(kvState)) },
		Hash: func(s any) uint64 {
			st := s.(kvState)
			h := fnv.New64a()
			for _, k := range slices.Sorted(maps.Keys(st)) {
				fmt.Fprintf(h, "%q=%q@%d;", k, st[k].value, st[k].mod)
			}
			return h.Sum64()
		},
		DescribeOperation: func(in, _ any) string { return in.(*Op).String() },
		DescribeState: func(s any) string {
			st := s.(kvState)
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(st)) {
				parts = append(parts, fmt.Sprintf("%q=%q@%d", k, st[k].value, st[k].mod))
			}
			return "{" + strings.Join(parts, " ") + "}"
		},
	}
	return nm.ToModel()
}

// kvStep returns every state op may leave s in, none if op's answer is
// impossible in s.
func kvStep(s kvState, op *Op) []kvState {
	switch {
	case op.Kind == KindTxn:
		return txnStep(s, op)
	case op.Kind == KindList:
		learned := s
		prefixKeys := keysWithPrefix(s, op.Prefix)
		if len(prefixKeys) != len(op.List) {
			return nil
		}
		for i, e := range op.List {
			if prefixKeys[i] != e.Key {
				return nil
			}
			var ok bool
			if learned, ok = observe(learned, e.Key, true, e.Value, e.ModIndex); !ok {
				return nil
			}
		}
		return []kvState{learned}
	case op.Kind == api.OpGet:
		if op.Unknown {
			return []kvState{s}
		}
		if n, ok := observe(s, op.Key, op.Found, op.Output, op.ModIndex); ok {
			return []kvState{n}
		}
		return nil
	case op.IsPrefix:
		n := maps.Clone(s)
		for _, k := range keysWithPrefix(s, op.Key) {
			delete(n, k)
		}
		return []kvState{n}
	}
	cur, exists := s[op.Key]
	if op.CAS != nil {
		holds, known := true, true
		switch {
		case !exists:
			holds = *op.CAS == 0
		case *op.CAS == 0:
			holds = false
		case cur.mod == 0:
			known = false
		default:
			holds = cur.mod == *op.CAS
		}
		switch {
		case op.Conflict:
			if known && holds {
				return nil
			}
			if n, ok := observeMeta(s, op.Key, op.Found, op.ModIndex); ok {
				return []kvState{n}
			}
			return nil
		case op.Ok:
			if known && !holds {
				return nil
			}
			return []kvState{write(s, op.Kind, op.Key, op.Value, op.Index)}
		default: // unknown outcome
			if known && !holds {
				return []kvState{s}
			}
			if known {
				return []kvState{write(s, op.Kind, op.Key, op.Value, 0)}
			}
			return []kvState{s, write(s, op.Kind, op.Key, op.Value, 0)}
		}
	}
	index := op.Index
	if !op.Ok {
		index = 0
	}
	return []kvState{write(s, op.Kind, op.Key, op.Value, index)}
}

// write returns s after a put, append or delete of key at index (0:
// unknown).
func write(s kvState, kind api.Op, key, value string, index uint64) kvState {
	n := maps.Clone(s)
	switch kind {
	case api.OpPut:
		n[key] = kstate{value: value, mod: index}
	case api.OpAppend:
		n[key] = kstate{value: s[key].value + value, mod: index}
	case api.OpDelete:
		delete(n, key)
	default:
		panic(fmt.Sprintf("linearizability: write of kind %q", kind))
	}
	return n
}

// observe checks a read of key (found, value, mod_index; mod 0: not
// reported) against s, and returns s with the mod_index learned.
func observe(s kvState, key string, found bool, value string, mod uint64) (kvState, bool) {
	cur, exists := s[key]
	if exists != found || (found && cur.value != value) {
		return nil, false
	}
	return observeMeta(s, key, found, mod)
}

func observeMeta(s kvState, key string, found bool, mod uint64) (kvState, bool) {
	cur, exists := s[key]
	if exists != found {
		return nil, false
	}
	if !found || mod == 0 || cur.mod == mod {
		return s, true
	}
	if cur.mod != 0 {
		return nil, false
	}
	n := maps.Clone(s)
	n[key] = kstate{value: cur.value, mod: mod}
	return n, true
}

func keysWithPrefix(s kvState, prefix string) []string {
	var ks []string
	for k := range s {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// compareKnown evaluates a transaction's compare on s; known is false when
// s does not decide it.
func compareKnown(s kvState, c api.TxnCompare) (holds, known bool) {
	cur, exists := s[c.Key]
	var cmp int
	switch c.Target {
	case api.TargetValue:
		if !exists {
			return false, true
		}
		cmp = strings.Compare(cur.value, c.Value)
	case api.TargetExists:
		if exists != c.Exists {
			cmp = 1
		}
	case api.TargetModIndex:
		if exists && cur.mod == 0 {
			return false, false
		}
		switch m := cur.mod; {
		case m < c.Number:
			cmp = -1
		case m > c.Number:
			cmp = 1
		}
	default:
		return false, false // version, create_index: not tracked
	}
	switch c.Op {
	case "!=":
		return cmp != 0, true
	case "<":
		return cmp < 0, true
	case ">":
		return cmp > 0, true
	}
	return cmp == 0, true
}

// txnStep runs a transaction: its compares decide the branch (both
// branches when s does not decide them); an acknowledged one must have
// run the branch it reported, and its gets must read what the branch's
// earlier operations left.
func txnStep(s kvState, op *Op) []kvState {
	all, known := true, true
	for _, c := range op.Txn.Compare {
		h, k := compareKnown(s, c)
		if k && !h {
			all, known = false, true
			break
		}
		if !k {
			known = false
		}
	}
	var branches []bool
	switch {
	case op.Ok:
		if known && all != op.TxnOut.Succeeded {
			return nil
		}
		branches = []bool{op.TxnOut.Succeeded}
	case known:
		branches = []bool{all}
	default:
		branches = []bool{true, false}
	}
	var out []kvState
	for _, then := range branches {
		ops := op.Txn.Else
		if then {
			ops = op.Txn.Then
		}
		if op.Ok && len(op.TxnOut.Results) != len(ops) {
			return nil
		}
		n, index, ok := s, uint64(0), true
		if op.Ok {
			index = op.TxnOut.Index
		}
		for i, t := range ops {
			if t.Op == api.OpGet {
				if op.Ok {
					r := op.TxnOut.Results[i]
					var mod uint64
					if r.KeyMeta != nil {
						mod = r.ModIndex
					}
					if n, ok = observe(n, t.Key, r.Found, r.Value, mod); !ok {
						break
					}
				}
				continue
			}
			n = write(n, t.Op, t.Key, t.Value, index)
		}
		if ok {
			out = append(out, n)
		}
	}
	return out
}

// partitionKV groups the history's operations by the keys they tie
// together (union-find over keys; a prefix operation ties every key of
// the history under its prefix), in a deterministic order.
func partitionKV(history []porcupine.Operation) [][]porcupine.Operation {
	parent := map[string]string{}
	var find func(string) string
	find = func(k string) string {
		p, ok := parent[k]
		if !ok {
			parent[k] = k
			return k
		}
		if p == k {
			return k
		}
		r := find(p)
		parent[k] = r
		return r
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	for _, h := range history {
		for _, k := range h.Input.(*Op).keys() {
			find(k)
		}
	}
	universe := slices.Sorted(maps.Keys(parent))
	// anchor is the key an operation's group is found by: its first key,
	// or for a prefix operation the prefix's own pseudo key.
	anchor := make([]string, len(history))
	for i, h := range history {
		op := h.Input.(*Op)
		ks := op.keys()
		if op.Kind == KindList || op.IsPrefix {
			p := op.Key
			if op.Kind == KindList {
				p = op.Prefix
			}
			pseudo := "\x00prefix\x00" + p
			find(pseudo)
			for _, k := range universe {
				if strings.HasPrefix(k, p) {
					ks = append(ks, k)
				}
			}
			ks = append(ks, pseudo)
		}
		for _, k := range ks[1:] {
			union(ks[0], k)
		}
		anchor[i] = ks[0]
	}
	groups := map[string][]porcupine.Operation{}
	for i, h := range history {
		r := find(anchor[i])
		groups[r] = append(groups[r], h)
	}
	out := make([][]porcupine.Operation, 0, len(groups))
	for _, r := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, groups[r])
	}
	return out
}
