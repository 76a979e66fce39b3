package kv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Incremental snapshots: the Store remembers which keys changed since its
// last snapshot, so that the next one can be written as a delta of those
// keys only (the storage package's delta files) instead of the whole map.

// DeltaSink receives a delta snapshot (storage.DeltaWriter implements it):
// Set and Delete patch one member of an object field of the snapshot JSON
// (see Snapshot), Replace replaces a whole field. Keys are JSON strings
// with their quotes, values one-line JSON.
type DeltaSink interface {
	Set(field string, key, value []byte) error
	Delete(field string, key []byte) error
	Replace(field string, value []byte) error
}

// FrozenDelta is the change of a Store's state between two snapshot
// indexes, From and AppliedIndex: the current value and metadata of every
// key put since From, the keys deleted since, every lease granted, renewed
// or given or relieved of a key since From, the leases ended since, and
// the whole session table (it is bounded, see Options). Every field of the
// snapshot JSON that is not Contents, Meta or Leases must be written whole
// by EncodeTo: a field a delta leaves out would keep its value of From.
type FrozenDelta struct {
	from, applied uint64
	set           []keyValueMeta
	deleted       []string
	leases        []frozenLease
	endedLeases   []uint64
	sessions      []frozenSession
}

type keyValueMeta struct {
	key, value string
	meta       Meta
}

// markChanged records that key k changed (put, appended or deleted) at the
// current index. Callers hold s.mu.
func (s *Store) markChanged(k string) {
	if testHookMarkChanged != nil && !testHookMarkChanged(s, k) {
		return // a planted bug (tests only)
	}
	if s.changed != nil {
		s.changed[k] = struct{}{}
	}
}

// markLeaseChanged records that lease id was granted, renewed, ended, or
// gained or lost a key at the current index. Callers hold s.mu.
func (s *Store) markLeaseChanged(id uint64) {
	if testHookMarkLeaseChanged != nil && !testHookMarkLeaseChanged(s, id) {
		return // a planted bug (tests only)
	}
	if s.changed != nil {
		s.changedLeases[id] = struct{}{}
	}
}

// testHookMarkLeaseChanged is testHookMarkChanged for leases.
var testHookMarkLeaseChanged func(s *Store, id uint64) bool

// testHookMarkChanged, when set (tests only), can keep a change out of the
// next delta: the planted bug of TestDeltaSnapshotsMatchState.
var testHookMarkChanged func(s *Store, k string) bool

// resetChanges starts a new delta at the applied index. Callers hold s.mu.
func (s *Store) resetChanges() {
	s.changed = make(map[string]struct{}, len(s.changed))
	s.changedLeases = make(map[uint64]struct{}, len(s.changedLeases))
	s.changesFrom = s.applied
}

// FreezeDelta copies what changed since the last FreezeDelta or
// FreezeBase (or Restore), and starts the next delta here. ok is false when
// no delta can be taken (the Store was restored from a snapshot without
// key metadata, which a delta could not patch): take a base instead.
func (s *Store) FreezeDelta() (d *FrozenDelta, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		return nil, false
	}
	d = &FrozenDelta{from: s.changesFrom, applied: s.applied, sessions: s.frozenSessions()}
	for k := range s.changed {
		if v, m, found := s.table.get(k); found {
			d.set = append(d.set, keyValueMeta{k, v, m})
		} else {
			d.deleted = append(d.deleted, k)
		}
	}
	for id := range s.changedLeases {
		if l := s.leases[id]; l != nil {
			d.leases = append(d.leases, frozenLease{LeaseInfo: l.LeaseInfo, keys: sortedKeys(l.keys)})
		} else {
			d.endedLeases = append(d.endedLeases, id)
		}
	}
	s.resetChanges()
	return d, true
}

// FreezeBase is Freeze for a full snapshot: the next delta starts at its index.
func (s *Store) FreezeBase() *Frozen {
	f := s.Freeze()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Nothing was applied in between: the loop that applies also freezes.
	s.resetChanges()
	s.changesFrom = f.applied
	return f
}

// From is the index the delta starts from; AppliedIndex the one it reaches.
func (d *FrozenDelta) From() uint64 { return d.from }

// AppliedIndex is the index the delta brings the state to.
func (d *FrozenDelta) AppliedIndex() uint64 { return d.applied }

// Len is the number of keys and leases put or deleted.
func (d *FrozenDelta) Len() int {
	return len(d.set) + len(d.deleted) + len(d.leases) + len(d.endedLeases)
}

// EncodeTo writes the delta to sink.
func (d *FrozenDelta) EncodeTo(sink DeltaSink) error {
	var k, v []byte
	for _, p := range d.set {
		k = appendString(k[:0], p.key)
		v = appendString(v[:0], p.value)
		if err := sink.Set("Contents", k, v); err != nil {
			return err
		}
		if err := sink.Set("Meta", k, appendMeta(v[:0], p.meta)); err != nil {
			return err
		}
	}
	for _, key := range d.deleted {
		k = appendString(k[:0], key)
		if err := sink.Delete("Contents", k); err != nil {
			return err
		}
		if err := sink.Delete("Meta", k); err != nil {
			return err
		}
	}
	for _, l := range d.leases {
		k = appendLeaseID(k[:0], l.ID)
		if err := sink.Set("Leases", k, appendLease(v[:0], l)); err != nil {
			return err
		}
	}
	for _, id := range d.endedLeases {
		if err := sink.Delete("Leases", appendLeaseID(k[:0], id)); err != nil {
			return err
		}
	}
	sess, err := appendSessions(nil, d.sessions, func(b []byte) ([]byte, error) { return b, nil })
	if err != nil {
		return err
	}
	if err := sink.Replace("Sessions", sess); err != nil {
		return err
	}
	return sink.Replace("AppliedIndex", strconv.AppendUint(nil, d.applied, 10))
}

// Deltas are delta files read back, as their net effect on a base state
// (storage.Deltas implements it): each top-level field of the snapshot JSON
// replaced whole (member false) or members of an object field set to a
// JSON value or removed (value nil).
type Deltas interface {
	Each(fn func(field string, member bool, key string, value []byte) error) error
}

// apply patches a decoded snapshot with deltas, as the snapshot JSON with
// the deltas written into it would decode.
func (snap *snapshotJSON) apply(deltas Deltas) error {
	// A key's value and its metadata are separate members: gather both
	// (nil: removed), then write each changed key's record once.
	type patch struct {
		value      *string
		meta       *Meta
		setV, setM bool // the member is patched
	}
	patches := make(map[string]*patch)
	get := func(k string) *patch {
		p := patches[k]
		if p == nil {
			p = &patch{}
			patches[k] = p
		}
		return p
	}
	err := deltas.Each(func(field string, member bool, key string, value []byte) error {
		if !member {
			switch field {
			case "Sessions":
				snap.Sessions = nil
				return strictJSON(value, &snap.Sessions)
			case "AppliedIndex":
				return strictJSON(value, &snap.AppliedIndex)
			}
			return fmt.Errorf("field %q cannot be replaced", field)
		}
		switch field {
		case "Contents":
			if value == nil && testHookApplyDelete != nil && !testHookApplyDelete(field, key) {
				return nil // a planted bug (tests only)
			}
			p := get(key)
			p.value, p.setV = nil, true
			if value != nil {
				v, err := jsonString(value)
				if err != nil {
					return fmt.Errorf("value of key %.64q: %w", key, err)
				}
				p.value = &v
			}
		case "Meta":
			p := get(key)
			p.meta, p.setM = nil, true
			if value != nil {
				m, err := jsonMeta(value)
				if err != nil {
					return fmt.Errorf("metadata of key %.64q: %w", key, err)
				}
				p.meta = &Meta{CreateIndex: m[0], ModIndex: m[1], Version: m[2]}
			}
		case "Leases":
			if value == nil {
				delete(snap.Leases, key)
				return nil
			}
			var l leaseJSON
			if err := strictJSON(value, &l); err != nil {
				return fmt.Errorf("lease %.32q: %w", key, err)
			}
			if snap.Leases == nil {
				snap.Leases = make(map[string]leaseJSON)
			}
			snap.Leases[key] = l
		default:
			return fmt.Errorf("field %q has no members to patch", field)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// One merge of the patched keys, in order, into the decoded keys: each
	// key is copied once, whatever the number of patches.
	old := snap.decoded
	merged := &decodedKeys{
		keys:   make([]string, 0, len(old.keys)+len(patches)),
		values: make([][]byte, 0, len(old.keys)+len(patches)),
		metas:  make([]Meta, 0, len(old.keys)+len(patches)),
	}
	i := 0
	for _, k := range slices.Sorted(maps.Keys(patches)) {
		for ; i < len(old.keys) && old.keys[i] < k; i++ {
			merged.add(old.keys[i], old.values[i], old.metas[i])
		}
		var value []byte
		var meta Meta
		hasValue, hasMeta := false, false
		if i < len(old.keys) && old.keys[i] == k {
			value, meta, hasValue, hasMeta = old.values[i], old.metas[i], true, true
			i++
		}
		p := patches[k]
		if p.setV {
			hasValue = p.value != nil
			if hasValue {
				value = []byte(*p.value)
			}
		}
		if p.setM {
			hasMeta = p.meta != nil
			if hasMeta {
				meta = *p.meta
			}
		}
		switch {
		case !hasValue && !hasMeta:
			// removed, or never there
		case !hasValue:
			return fmt.Errorf("meta of key %.64q: the key is not in Contents", k)
		case !hasMeta:
			return fmt.Errorf("key %.64q has no meta", k)
		default:
			merged.add(k, value, meta)
		}
	}
	for ; i < len(old.keys); i++ {
		merged.add(old.keys[i], old.values[i], old.metas[i])
	}
	snap.decoded = merged
	return nil
}

// testHookApplyDelete, when set (tests only), can make apply skip a
// member's removal: the planted bug of TestDeltaSnapshotsMatchState.
var testHookApplyDelete func(field, key string) bool

// jsonString decodes a JSON string value: with the snapshot decoder's
// parser when it can (a delta holds many), else with encoding/json.
func jsonString(b []byte) (string, error) {
	p := fastParser{b: b}
	if v, ok := p.str(); ok && p.i == len(b) {
		return v, nil
	}
	var v string
	return v, strictJSON(b, &v)
}

// jsonMeta decodes a key's metadata, [create_index,mod_index,version].
func jsonMeta(b []byte) ([3]uint64, error) {
	var m [3]uint64
	p := fastParser{b: b}
	ok := p.lit("[")
	for j := range m {
		if ok && j > 0 {
			ok = p.lit(",")
		}
		if ok {
			m[j], ok = p.uint()
		}
	}
	if ok && p.lit("]") && p.i == len(b) {
		return m, nil
	}
	return m, strictJSON(b, &m)
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the value")
	}
	return nil
}
