package kv

import (
	"fmt"
	"strings"

	"raftkv/src/api"
)

// Meta is a key's metadata (declared in api): create_index, mod_index and
// version. An absent key's is all zero.
type Meta = api.KeyMeta

// nextMeta is a key's metadata after a write at index; m is its metadata
// before and existed whether it existed.
func nextMeta(m Meta, existed bool, index uint64) Meta {
	if !existed {
		m = Meta{CreateIndex: index}
	}
	m.ModIndex = index
	m.Version++
	return m
}

// deletePrefix removes every key that starts with prefix and returns how
// many it removed.
func (s *Store) deletePrefix(prefix string, index uint64) int {
	var keys []string
	s.table.ascend(prefix, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		keys = append(keys, k)
		return true
	})
	for _, k := range keys {
		s.removeKey(k, index, api.EventDelete)
	}
	return len(keys)
}

// removeKey removes a present key from the map, the metadata, the index
// and its lease, and reports the change (typ: api.EventDelete or
// EventExpire).
func (s *Store) removeKey(k string, index uint64, typ string) {
	s.table.del(k)
	s.attach(k, 0)
	s.emit(index, typ, k, "")
}

// Entry returns key's value and metadata in the local state, and the
// applied index they reflect. Like Get, it says nothing about
// linearizability.
func (s *Store) Entry(key string) (value string, meta Meta, found bool, applied uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	value, meta, found = s.table.get(key)
	return value, meta, found, s.applied
}

// RangeRequest selects keys for Range: those in [Start, End) (End ""
// means no end), or with Prefix those that start with Start; only keys
// after After when it is set (a continuation), at most Limit (0: no limit).
type RangeRequest struct {
	Start  string
	End    string
	Prefix bool
	After  string
	// HasAfter: After is set (the empty key is never a key, but "after the
	// empty string" would be every key, so an explicit flag is clearer).
	HasAfter bool
	Limit    int
	// KeysOnly leaves the values and metadata out.
	KeysOnly bool
	// Separator, with KeysOnly, lists one level: a key that holds
	// Separator after Start is listed up to and including its first
	// Separator there, once (Consul's ?separator=).
	Separator string
	// MaxBytes bounds the keys and values of the page (0: no bound).
	MaxBytes int
}

// RangeResult is a page of a Range.
type RangeResult struct {
	Entries []api.ValueBody // without KeysOnly
	Keys    []string        // with KeysOnly
	// More: keys after Last remain in the range.
	More bool
	// Last is the last key (or one-level group) of the page: the next
	// page starts after it.
	Last string
	// TooLarge: the page would exceed MaxBytes; Entries and Keys are empty.
	TooLarge bool
	// Applied is the applied index the page reflects.
	Applied uint64
}

// entryOverhead is what Range counts per entry against MaxBytes besides
// the key and value: the JSON field names and numbers.
const entryOverhead = 96

// Range returns the keys of r in key order, from the local state, walking
// the ordered index from the first key of the range: O(log keys + keys
// listed).
func (s *Store) Range(r RangeRequest) RangeResult {
	s.mu.RLock()
	defer s.mu.RUnlock()
	res := RangeResult{Applied: s.applied}
	from := r.Start
	if r.HasAfter && r.After >= from {
		from = r.After + "\x00" // the first key after it
	}
	size, n := 0, 0
	s.table.ascend(from, func(k string) bool {
		if r.Prefix && !strings.HasPrefix(k, r.Start) || !r.Prefix && r.End != "" && k >= r.End {
			return false
		}
		if r.HasAfter && r.Separator != "" && strings.HasSuffix(r.After, r.Separator) && strings.HasPrefix(k, r.After) {
			return true // in a one-level group already listed
		}
		item := k
		if r.KeysOnly && r.Separator != "" {
			if i := strings.Index(k[len(r.Start):], r.Separator); i >= 0 {
				item = k[:len(r.Start)+i+len(r.Separator)]
			}
			if n > 0 && item == res.Last {
				return true // the same group as the previous key
			}
		}
		if r.Limit > 0 && n == r.Limit {
			res.More = true
			return false
		}
		if r.KeysOnly {
			size += len(item) + 8
			res.Keys = append(res.Keys, item)
		} else {
			v, m, _ := s.table.get(k)
			size += len(k) + len(v) + entryOverhead
			res.Entries = append(res.Entries, api.ValueBody{Key: k, Value: v, KeyMeta: m})
		}
		if r.MaxBytes > 0 && size > r.MaxBytes {
			res = RangeResult{TooLarge: true, Applied: s.applied}
			return false
		}
		res.Last = item
		n++
		return true
	})
	return res
}

// ValidateTxn returns an error wrapping ErrBadTxn (or ErrBadKey,
// ErrBadValue, ErrTooLarge for a bad key or value) unless t is a
// transaction Apply can run: at most api.MaxTxnOps compares and
// operations, valid keys and values, known targets, operators and
// operations.
func ValidateTxn(t *api.TxnRequest) error {
	if t == nil {
		return fmt.Errorf("%w: no transaction", ErrBadTxn)
	}
	if n := len(t.Compare) + len(t.Then) + len(t.Else); n > api.MaxTxnOps {
		return fmt.Errorf("%w: %d compares and operations, more than %d", ErrBadTxn, n, api.MaxTxnOps)
	}
	for i, c := range t.Compare {
		if err := ValidateKey(c.Key); err != nil {
			return fmt.Errorf("compare[%d]: %w", i, err)
		}
		if err := validateCompare(c); err != nil {
			return fmt.Errorf("%w: compare[%d] on %.64q: %v", ErrBadTxn, i, c.Key, err)
		}
	}
	for _, list := range []struct {
		name string
		ops  []api.TxnOp
	}{{"then", t.Then}, {"else", t.Else}} {
		for i, o := range list.ops {
			if err := ValidateKey(o.Key); err != nil {
				return fmt.Errorf("%s[%d]: %w", list.name, i, err)
			}
			switch o.Op {
			case api.OpPut, api.OpAppend:
				if err := ValidateValue(o.Value); err != nil {
					return fmt.Errorf("%s[%d]: %w", list.name, i, err)
				}
			case api.OpGet, api.OpDelete:
				if o.Value != "" {
					return fmt.Errorf("%w: %s[%d]: %s takes no value", ErrBadTxn, list.name, i, o.Op)
				}
			default:
				return fmt.Errorf("%w: %s[%d]: op %q: want put, append, delete or get", ErrBadTxn, list.name, i, o.Op)
			}
		}
	}
	return nil
}

func validateCompare(c api.TxnCompare) error {
	switch c.Op {
	case "", "==", "!=", "<", ">":
	default:
		return fmt.Errorf("op %q: want ==, !=, < or >", c.Op)
	}
	switch c.Target {
	case api.TargetValue:
		if c.Number != 0 || c.Exists {
			return fmt.Errorf("target value takes \"value\" only")
		}
		return ValidateValue(c.Value)
	case api.TargetModIndex, api.TargetCreateIndex, api.TargetVersion:
		if c.Value != "" || c.Exists {
			return fmt.Errorf("target %s takes \"number\" only", c.Target)
		}
	case api.TargetExists:
		if c.Value != "" || c.Number != 0 {
			return fmt.Errorf("target exists takes \"exists\" only")
		}
		if c.Op == "<" || c.Op == ">" {
			return fmt.Errorf("target exists takes op == or != only")
		}
	default:
		return fmt.Errorf("target %q: want value, mod_index, create_index, version or exists", c.Target)
	}
	return nil
}

// staged is a key's state inside a transaction before it commits.
type staged struct {
	value  string
	meta   Meta
	exists bool
	op     api.Op // the last write of the transaction to it
}

// compareHolds evaluates c against a key's state.
func compareHolds(c api.TxnCompare, st staged) bool {
	var cmp int
	switch c.Target {
	case api.TargetValue:
		if !st.exists {
			return false
		}
		cmp = strings.Compare(st.value, c.Value)
	case api.TargetExists:
		cmp = boolCompare(st.exists, c.Exists)
	default:
		var have uint64
		switch c.Target {
		case api.TargetModIndex:
			have = st.meta.ModIndex
		case api.TargetCreateIndex:
			have = st.meta.CreateIndex
		case api.TargetVersion:
			have = st.meta.Version
		}
		switch {
		case have < c.Number:
			cmp = -1
		case have > c.Number:
			cmp = 1
		}
	}
	switch c.Op {
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case ">":
		return cmp > 0
	}
	return cmp == 0
}

func boolCompare(a, b bool) int {
	if a == b {
		return 0
	}
	return 1
}

// testHookTxnCommit, when set (tests only), is called with the keys a
// transaction is about to commit and returns how many to commit: a planted
// bug that applies a transaction half (see planted_test.go).
var testHookTxnCommit func(keys []string) int

// execTxn runs a transaction: the compares on the state at this index,
// then one branch's operations on a staged copy of the keys they touch,
// then commits every staged key at once. A failing operation (a value over
// MaxValueBytes) fails the whole transaction and changes nothing.
func (s *Store) execTxn(index uint64, cmd Command) Result {
	res := Result{Index: index}
	t := cmd.Txn
	if cmd.Key != "" || cmd.Value != "" || cmd.CAS != nil || cmd.Prefix || ValidateTxn(t) != nil {
		res.Err = ErrBadTxn
		return res
	}
	cur := func(k string) staged {
		v, m, ok := s.table.get(k)
		return staged{value: v, meta: m, exists: ok}
	}
	ok := true
	for _, c := range t.Compare {
		if !compareHolds(c, cur(c.Key)) {
			ok = false
			break
		}
	}
	ops := t.Then
	if !ok {
		ops = t.Else
	}
	overlay := make(map[string]staged)
	var order []string // keys in the order first written: commits are deterministic
	look := func(k string) staged {
		if st, ok := overlay[k]; ok {
			return st
		}
		return cur(k)
	}
	results := make([]api.TxnOpResult, len(ops))
	for i, o := range ops {
		st := look(o.Key)
		r := api.TxnOpResult{Op: o.Op, Key: o.Key, Found: st.exists}
		var next staged
		switch o.Op {
		case api.OpGet:
			if st.exists {
				m := st.meta
				r.Value, r.KeyMeta = st.value, &m
			}
			results[i] = r
			continue
		case api.OpPut, api.OpAppend:
			v := o.Value
			if o.Op == api.OpAppend {
				v = st.value + o.Value
			}
			if len(v) > MaxValueBytes {
				return Result{Index: index, Err: ErrTooLarge}
			}
			next = staged{value: v, meta: nextMeta(st.meta, st.exists, index), exists: true, op: o.Op}
		case api.OpDelete:
			next = staged{}
		}
		if _, seen := overlay[o.Key]; !seen {
			order = append(order, o.Key)
		}
		overlay[o.Key] = next
		results[i] = r
	}
	commit := len(order)
	if testHookTxnCommit != nil {
		commit = testHookTxnCommit(order)
	}
	for _, k := range order[:commit] {
		existed := s.table.has(k)
		switch st := overlay[k]; {
		case st.exists:
			s.table.set(k, st.value, st.meta)
			typ := api.EventAppend
			if st.op == api.OpPut {
				// A put without a lease detaches the key, as outside a
				// transaction.
				s.attach(k, 0)
				typ = api.EventPut
			}
			s.emit(index, typ, k, st.value)
		case existed:
			s.removeKey(k, index, api.EventDelete)
		}
	}
	res.Txn = &api.TxnBody{Succeeded: ok, Index: index, Results: results}
	return res
}
