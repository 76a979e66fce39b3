package kv

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"raftkv/src/api"
)

// errCodes names the sentinel errors in snapshots.
var errCodes = []struct {
	code string
	err  error
}{
	{"bad_key", ErrBadKey},
	{"bad_value", ErrBadValue},
	{"too_large", ErrTooLarge},
	{"stale_request", ErrStaleRequest},
	{"bad_command", ErrBadCommand},
	{"cas_failed", ErrCASFailed},
	{"bad_txn", ErrBadTxn},
	{"lease_not_found", ErrLeaseNotFound},
	{"bad_ttl", ErrBadTTL},
}

func errCode(err error) string {
	for _, c := range errCodes {
		if c.err == err {
			return c.code
		}
	}
	// Results hold sentinel errors only.
	panic(fmt.Sprintf("kv: result error %v is not a sentinel error", err))
}

func codeErr(code string) (error, bool) {
	for _, c := range errCodes {
		if c.code == code {
			return c.err, true
		}
	}
	return nil, false
}

// snapshotJSON is the snapshot's shape, for Restore. Snapshot writes the
// same shape by hand, with sorted keys.
type snapshotJSON struct {
	Contents map[string]string
	// Meta is each key's [create_index, mod_index, version]. A snapshot
	// written before metadata existed has none: see Restore.
	Meta     map[string][3]uint64
	Sessions map[string]sessionJSON
	// Leases are the live leases by ID, each with its attached keys; a
	// snapshot without leases (or of a version before them) has none.
	Leases       map[string]leaseJSON
	AppliedIndex uint64
	// decoded is Contents with Meta, in key order: from decodeSnapshotFast,
	// or from gatherKeys after encoding/json (Contents and Meta are then
	// nil). Deltas patch it; then it becomes table, the Store's.
	decoded *decodedKeys
	table   *table
	// metaless: the snapshot has keys but no Meta (written before keys had
	// metadata), so a delta cannot be taken on top of it.
	metaless bool
}

type leaseJSON struct {
	TTL   int64 // milliseconds
	Renew uint64
	Keys  []string
}

type sessionJSON struct {
	Seq      uint64 // the client's last applied request
	LastUsed uint64 // index of the client's last entry
	// The result of request Seq.
	Index uint64
	Found bool   `json:",omitempty"`
	Value string `json:",omitempty"`
	Err   string `json:",omitempty"` // an error code of errCodes, or ""
	// The rest of the result, for a failed compare-and-swap, a delete by
	// prefix and a transaction.
	Meta    *[3]uint64   `json:",omitempty"`
	Deleted int          `json:",omitempty"`
	Txn     *api.TxnBody `json:",omitempty"`
	// Lease is a grant's or keep-alive's [id, ttl_ms, renew].
	Lease *[3]uint64 `json:",omitempty"`
}

// Snapshot returns the whole state as a JSON object:
//
//	{"Contents":{"key":"value",...},
//	 "Meta":{"key":[create_index,mod_index,version],...},
//	 "Sessions":{"client":{"Seq":3,"LastUsed":12,"Index":12,"Found":true,"Value":"v","Err":"too_large"},...},
//	 "AppliedIndex":12}
//
// (on one line). Keys are sorted, so equal states give equal bytes.
func (s *Store) Snapshot() ([]byte, error) {
	return s.Freeze().Encode(), nil
}

// Frozen is a consistent copy of a Store's state at one applied index. It
// is cheap to take (keys and values are shared, not copied) and is encoded
// later, so a node can write a snapshot without stopping to apply entries.
type Frozen struct {
	applied  uint64
	table    frozenTable // in key order
	sessions []frozenSession
	leases   []frozenLease
}

type frozenLease struct {
	LeaseInfo
	keys []string
}

type frozenSession struct {
	id            string
	seq, lastUsed uint64
	result        Result
}

// Freeze copies the current state.
func (s *Store) Freeze() *Frozen {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := &Frozen{applied: s.applied, table: s.table.freeze()}
	f.sessions = s.frozenSessions()
	for _, l := range s.leases {
		f.leases = append(f.leases, frozenLease{LeaseInfo: l.LeaseInfo, keys: sortedKeys(l.keys)})
	}
	return f
}

// frozenSessions copies the session table. Callers hold s.mu.
func (s *Store) frozenSessions() []frozenSession {
	list := make([]frozenSession, 0, len(s.sessions))
	for id, sess := range s.sessions {
		list = append(list, frozenSession{id: id, seq: sess.seq, lastUsed: sess.lastUsed, result: sess.result})
	}
	return list
}

// AppliedIndex is the index the frozen state reflects.
func (f *Frozen) AppliedIndex() uint64 { return f.applied }

// Encode returns the snapshot JSON of the frozen state; equal states give
// equal bytes.
func (f *Frozen) Encode() []byte {
	var b bytes.Buffer
	if err := f.EncodeTo(&b); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// encodeChunk is how much EncodeTo encodes before it writes: large enough
// to make writes cheap, small enough not to matter to the heap.
const encodeChunk = 64 << 10

// EncodeTo writes what Encode returns to w, a chunk at a time, so the
// encoded state is never held whole in memory.
func (f *Frozen) EncodeTo(w io.Writer) error {
	slices.SortFunc(f.leases, func(a, b frozenLease) int { return cmp.Compare(a.ID, b.ID) })

	b := make([]byte, 0, encodeChunk+512)
	flush := func(force bool) error {
		if len(b) < encodeChunk && !force {
			return nil
		}
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	b = append(b, `{"Contents":{`...)
	for i := range f.table.refs {
		if i > 0 {
			b = append(b, ',')
		}
		k, v, _ := f.table.at(i)
		b = appendBytesString(b, k)
		b = append(b, ':')
		b = appendBytesString(b, v)
		if len(b) >= encodeChunk {
			if err := flush(true); err != nil {
				return err
			}
			// Encoding a large state takes a while; let the node's other
			// goroutines (its Raft loop, its requests) run between chunks
			// rather than only when the scheduler preempts this one.
			runtime.Gosched()
		}
	}
	b = append(b, `},"Meta":{`...)
	for i := range f.table.refs {
		if i > 0 {
			b = append(b, ',')
		}
		k, _, m := f.table.at(i)
		b = appendBytesString(b, k)
		b = appendMeta(append(b, ':'), m)
		if err := flush(false); err != nil {
			return err
		}
	}
	b = append(b, `},"Sessions":`...)
	b, err := appendSessions(b, f.sessions, func(b []byte) ([]byte, error) {
		if len(b) < encodeChunk {
			return b, nil
		}
		_, err := w.Write(b)
		return b[:0], err
	})
	if err != nil {
		return err
	}
	// Written only when there are leases, so that a state without them
	// encodes exactly as before leases existed.
	if len(f.leases) > 0 {
		b = append(b, `,"Leases":{`...)
		for i, l := range f.leases {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLeaseID(b, l.ID)
			b = appendLease(append(b, ':'), l)
			if err := flush(false); err != nil {
				return err
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"AppliedIndex":`...)
	b = strconv.AppendUint(b, f.applied, 10)
	b = append(b, '}')
	return flush(true)
}

// Restore replaces the whole state with a snapshot's. On error the state is
// unchanged.
func (s *Store) Restore(data []byte) error { return s.RestoreChain(data, nil) }

// RestoreChain is Restore of a snapshot's state data with deltas applied
// (a chain of delta files, see storage.Deltas; nil: none): the state is
// checked once, whole, after they are applied.
func (s *Store) RestoreChain(data []byte, deltas Deltas) error {
	snap, fast := decodeSnapshotFast(data)
	var errs []error
	if !fast {
		var err error
		if snap, err = decodeSnapshotJSON(data); err != nil {
			return err
		}
		errs = snap.gatherKeys()
	}
	if deltas != nil {
		if err := snap.apply(deltas); err != nil {
			return fmt.Errorf("kv: restore: delta: %w", err)
		}
	}
	snap.table, snap.decoded = snap.decoded.table(), nil
	// At most maxRestoreErrors problems are reported, in sorted order.
	const maxRestoreErrors = 10
	errs = append(errs, snap.checkTable()...)
	leases, keyLease, lerrs := restoreLeases(snap)
	errs = append(errs, lerrs...)
	sessions := make(map[string]*session, len(snap.Sessions))
	list := make([]*session, 0, len(snap.Sessions))
	for id, js := range snap.Sessions {
		err, ok := codeErr(js.Err)
		if js.Err != "" && !ok {
			errs = append(errs, fmt.Errorf("session %q: unknown error code %q", id, js.Err))
		}
		if id != "" && !validClientID(id) {
			// Written by a version that took any Client-Id: Apply would not
			// have stored it, so neither does Restore (see Store.Apply).
			continue
		}
		if id == "" || js.LastUsed == 0 || js.LastUsed > snap.AppliedIndex || js.Index > js.LastUsed {
			errs = append(errs, fmt.Errorf("session %q: indexes Index %d, LastUsed %d do not fit AppliedIndex %d",
				id, js.Index, js.LastUsed, snap.AppliedIndex))
		}
		sess := &session{
			id:       id,
			seq:      js.Seq,
			result:   Result{Index: js.Index, Value: js.Value, Found: js.Found, Err: err, Deleted: js.Deleted, Txn: js.Txn},
			lastUsed: js.LastUsed,
		}
		if js.Meta != nil {
			sess.result.Meta = Meta{CreateIndex: js.Meta[0], ModIndex: js.Meta[1], Version: js.Meta[2]}
		}
		if js.Lease != nil {
			sess.result.Lease = &LeaseInfo{ID: js.Lease[0], TTLMillis: int64(js.Lease[1]), Renew: js.Lease[2]}
		}
		sessions[id] = sess
		list = append(list, sess)
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		if len(errs) > maxRestoreErrors {
			errs = append(errs[:maxRestoreErrors], fmt.Errorf("and %d more problems", len(errs)-maxRestoreErrors))
		}
		return fmt.Errorf("kv: restore: %w", errors.Join(errs...))
	}
	// Rebuild the list, oldest first. LastUsed values are distinct in any
	// real snapshot (one entry touches one session); the id breaks ties
	// deterministically in any other.
	slices.SortFunc(list, func(a, b *session) int {
		if c := cmp.Compare(a.lastUsed, b.lastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var oldest, newest *session
	size := 0
	for _, sess := range list {
		sess.prev = newest
		if newest != nil {
			newest.next = sess
		} else {
			oldest = sess
		}
		newest = sess
		size += sessionSize(sess.id, sess.result)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = snap.AppliedIndex
	s.table = snap.table
	s.sessions = sessions
	s.sessionBytes = size
	s.oldest, s.newest = oldest, newest
	s.leases, s.keyLease = leases, keyLease
	s.changed = nil // no delta on top of a snapshot that lacks Meta: it would patch a field that is not there
	if !snap.metaless {
		s.resetChanges()
	}
	// A snapshot of an old version may hold more than the bounds allow:
	// evict as Apply would, oldest first, so replicas that restored it
	// agree with each other.
	for s.oldest != nil && (len(s.sessions) > s.opts.MaxSessions || s.sessionBytes > s.opts.MaxSessionBytes) {
		s.remove(s.oldest)
	}
	return nil
}

// decodeSnapshotJSON decodes a snapshot with encoding/json, strictly.
func decodeSnapshotJSON(data []byte) (snapshotJSON, error) {
	var snap snapshotJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return snap, fmt.Errorf("kv: restore: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return snap, errors.New("kv: restore: data after the snapshot object")
	}
	return snap, nil
}

// Len is the number of keys in the frozen state.
func (f *Frozen) Len() int { return len(f.table.refs) }

// appendMeta appends m as [create_index,mod_index,version].
func appendMeta(b []byte, m Meta) []byte {
	b = append(b, '[')
	b = strconv.AppendUint(b, m.CreateIndex, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, m.ModIndex, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, m.Version, 10)
	return append(b, ']')
}

// gatherKeys moves the Contents and Meta that encoding/json decoded into
// decoded, and returns what is wrong with the metadata's keys. A snapshot
// without "Meta" (written before keys had metadata) gives every key
// create_index = mod_index = the snapshot's applied index (at least 1) and
// version 1: true bounds ("written at or before"), and a ?cas= with that
// mod_index works. One with "Meta" must give every key, and no other, its
// metadata (checkTable checks the indexes).
func (snap *snapshotJSON) gatherKeys() []error {
	var errs []error
	meta := func(k string) Meta {
		at := max(snap.AppliedIndex, 1)
		return Meta{CreateIndex: at, ModIndex: at, Version: 1}
	}
	if snap.Meta != nil {
		for k := range snap.Meta {
			if _, ok := snap.Contents[k]; !ok {
				errs = append(errs, fmt.Errorf("meta of key %.64q: the key is not in Contents", k))
			}
		}
		meta = func(k string) Meta {
			m, ok := snap.Meta[k]
			if !ok {
				errs = append(errs, fmt.Errorf("key %.64q has no meta", k))
			}
			return Meta{CreateIndex: m[0], ModIndex: m[1], Version: m[2]}
		}
	}
	snap.metaless = snap.Meta == nil && len(snap.Contents) > 0
	keys := slices.Sorted(maps.Keys(snap.Contents))
	snap.decoded = &decodedKeys{}
	for _, k := range keys {
		snap.decoded.add(k, []byte(snap.Contents[k]), meta(k))
	}
	snap.Contents, snap.Meta = nil, nil
	return errs
}

// checkTable returns what is wrong with the snapshot's keys, values and
// metadata: every key and value must be one Apply could have stored, and
// 1 <= create_index <= mod_index <= applied index, version >= 1; anything
// else is damage and is refused.
func (snap *snapshotJSON) checkTable() []error {
	var errs []error
	t := snap.table
	for slot, r := range t.refs {
		if r == noRecord {
			continue
		}
		kb, m, v := t.record(uint32(slot))
		k := string(kb)
		if err := ValidateKey(k); err != nil {
			errs = append(errs, fmt.Errorf("key %.64q: %w", k, err))
		}
		if len(v) > MaxValueBytes {
			errs = append(errs, fmt.Errorf("value of key %.64q: %w: value is %d bytes", k, ErrTooLarge, len(v)))
		} else if !utf8.Valid(v) {
			errs = append(errs, fmt.Errorf("value of key %.64q: %w: value is not valid UTF-8", k, ErrBadValue))
		}
		if m.CreateIndex < 1 || m.CreateIndex > m.ModIndex || m.ModIndex > snap.AppliedIndex || m.Version < 1 {
			errs = append(errs, fmt.Errorf("meta of key %.64q: [create_index %d, mod_index %d, version %d] does not fit AppliedIndex %d",
				k, m.CreateIndex, m.ModIndex, m.Version, snap.AppliedIndex))
		}
	}
	return errs
}

// appendSessions appends the session table as a JSON object, sorted by id;
// flush is called between sessions (it may write b out and return it empty).
func appendSessions(b []byte, sessions []frozenSession, flush func([]byte) ([]byte, error)) ([]byte, error) {
	slices.SortFunc(sessions, func(a, b frozenSession) int { return strings.Compare(a.id, b.id) })
	b = append(b, '{')
	for i, sess := range sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, sess.id)
		b = append(b, `:{"Seq":`...)
		b = strconv.AppendUint(b, sess.seq, 10)
		b = append(b, `,"LastUsed":`...)
		b = strconv.AppendUint(b, sess.lastUsed, 10)
		b = append(b, `,"Index":`...)
		b = strconv.AppendUint(b, sess.result.Index, 10)
		if sess.result.Found {
			b = append(b, `,"Found":true`...)
		}
		if sess.result.Value != "" {
			b = append(b, `,"Value":`...)
			b = appendString(b, sess.result.Value)
		}
		if sess.result.Err != nil {
			b = append(b, `,"Err":`...)
			b = appendString(b, errCode(sess.result.Err))
		}
		if sess.result.Meta != (Meta{}) {
			b = appendMeta(append(b, `,"Meta":`...), sess.result.Meta)
		}
		if sess.result.Deleted != 0 {
			b = append(b, `,"Deleted":`...)
			b = strconv.AppendInt(b, int64(sess.result.Deleted), 10)
		}
		if sess.result.Txn != nil {
			t, err := json.Marshal(sess.result.Txn)
			if err != nil {
				return b, fmt.Errorf("kv: encode a session's transaction result: %w", err)
			}
			b = append(append(b, `,"Txn":`...), t...)
		}
		if l := sess.result.Lease; l != nil {
			b = append(b, `,"Lease":[`...)
			b = strconv.AppendUint(b, l.ID, 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, l.TTLMillis, 10)
			b = append(b, ',')
			b = strconv.AppendUint(b, l.Renew, 10)
			b = append(b, ']')
		}
		b = append(b, '}')
		var err error
		if b, err = flush(b); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendLeaseID appends a lease's member name in the Leases object: its
// ID as a JSON string.
func appendLeaseID(b []byte, id uint64) []byte {
	b = append(b, '"')
	b = strconv.AppendUint(b, id, 10)
	return append(b, '"')
}

// appendLease appends a lease's value in the Leases object.
func appendLease(b []byte, l frozenLease) []byte {
	b = append(b, `{"TTL":`...)
	b = strconv.AppendInt(b, l.TTLMillis, 10)
	b = append(b, `,"Renew":`...)
	b = strconv.AppendUint(b, l.Renew, 10)
	b = append(b, `,"Keys":[`...)
	for j, k := range l.keys {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
	}
	return append(b, "]}"...)
}

// restoreLeases rebuilds the leases of a snapshot, and says what is wrong
// with them: a lease must have 1 <= ID <= Renew <= the applied index and a
// TTL in bounds; its keys must be in Contents, each in one lease only.
func restoreLeases(snap snapshotJSON) (map[uint64]*lease, map[string]uint64, []error) {
	leases := make(map[uint64]*lease, len(snap.Leases))
	keyLease := make(map[string]uint64)
	var errs []error
	for name, lj := range snap.Leases {
		id, err := strconv.ParseUint(name, 10, 64)
		ttl := time.Duration(lj.TTL) * time.Millisecond
		switch {
		case err != nil || id == 0 || strconv.FormatUint(id, 10) != name:
			errs = append(errs, fmt.Errorf("lease %.32q: the id is not a log index", name))
			continue
		case lj.Renew < id || lj.Renew > snap.AppliedIndex:
			errs = append(errs, fmt.Errorf("lease %d: renew index %d does not fit [id, AppliedIndex %d]", id, lj.Renew, snap.AppliedIndex))
		case lj.TTL <= 0 || ttl < MinLeaseTTL || ttl > MaxLeaseTTL:
			errs = append(errs, fmt.Errorf("lease %d: TTL %d ms is out of bounds", id, lj.TTL))
		}
		l := &lease{LeaseInfo: LeaseInfo{ID: id, TTLMillis: lj.TTL, Renew: lj.Renew}, keys: make(map[string]struct{}, len(lj.Keys))}
		for _, k := range lj.Keys {
			if !snap.table.has(k) {
				errs = append(errs, fmt.Errorf("lease %d: key %.64q is not in Contents", id, k))
			}
			if other, ok := keyLease[k]; ok {
				errs = append(errs, fmt.Errorf("key %.64q is in leases %d and %d", k, min(id, other), max(id, other)))
			}
			keyLease[k] = id
			l.keys[k] = struct{}{}
		}
		leases[id] = l
	}
	return leases, keyLease, errs
}
