package kv

// Leases (issue 16): a lease is granted with a TTL, kept alive, revoked or
// expired; keys put with ?lease=ID are deleted when it ends. Everything
// here is replicated state and deterministic: the state machine never
// reads a clock. The leader's runtime (src/node, lessor.go) decides when a
// lease expired and proposes OpLeaseExpire; Apply carries that out only if
// nothing renewed the lease since the leader looked (Command.Renew), the
// same compare-at-apply idea as ?cas=.

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"raftkv/src/api"
)

// The lease operations; they exist in log entries only.
const (
	OpLeaseGrant     Op = "lease_grant"     // grant a lease of Command.TTLMillis; its ID is the entry's index
	OpLeaseKeepAlive Op = "lease_keepalive" // renew Command.Lease
	OpLeaseRevoke    Op = "lease_revoke"    // end Command.Lease now, deleting its keys
	// OpLeaseExpire ends Command.Lease, deleting its keys, if its renew
	// index is still Command.Renew (the leader's runtime proposes it).
	OpLeaseExpire Op = "lease_expire"
)

// Bounds of a lease's TTL.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = 24 * time.Hour
)

// Lease errors (sentinels, like the others of this package).
var (
	// ErrLeaseNotFound: the lease does not exist (never granted, revoked or
	// expired) (HTTP 404).
	ErrLeaseNotFound = errors.New("kv: lease not found (never granted, revoked or expired)")
	// ErrBadTTL: a lease's TTL is outside [MinLeaseTTL, MaxLeaseTTL] (HTTP 400).
	ErrBadTTL = errors.New("kv: lease TTL must be from 1s to 24h")
)

func isLeaseOp(op Op) bool {
	switch op {
	case OpLeaseGrant, OpLeaseKeepAlive, OpLeaseRevoke, OpLeaseExpire:
		return true
	}
	return false
}

// LeaseInfo is a lease as the state machine holds it.
type LeaseInfo struct {
	ID        uint64 // the index of its grant
	TTLMillis int64
	// Renew is the index of its grant or last keep-alive. Invariant:
	// ID <= Renew <= applied index.
	Renew uint64
}

// TTL is the lease's time to live.
func (l LeaseInfo) TTL() time.Duration { return time.Duration(l.TTLMillis) * time.Millisecond }

// lease is a live lease and the keys attached to it.
type lease struct {
	LeaseInfo
	keys map[string]struct{}
}

// Event is one change of a key, in the order Apply made it: the watch
// streams' material. Type is one of api.EventPut, EventAppend, EventDelete,
// EventExpire.
type Event struct {
	Index uint64
	Type  string
	Key   string
	Value string // the new value of a put or append
	Lease uint64 // the key's lease after a put or append (0: none)
}

// Hooks let the runtime follow the state machine's changes. They run inside
// Apply and Restore, with the Store locked: they must be quick, must not
// block and must not call the Store.
type Hooks struct {
	// Change is called for every change of a key.
	Change func(Event)
	// LeaseRenewed is called when a lease is granted or kept alive.
	LeaseRenewed func(LeaseInfo)
	// LeaseEnded is called when a lease is revoked or expired.
	LeaseEnded func(id uint64)
}

// SetHooks installs h; call it before the Store is shared.
func (s *Store) SetHooks(h Hooks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = h
}

// Leases returns every live lease, by ID.
func (s *Store) Leases() []LeaseInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]LeaseInfo, 0, len(s.leases))
	for _, l := range s.leases {
		out = append(out, l.LeaseInfo)
	}
	slices.SortFunc(out, func(a, b LeaseInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// LeaseKeys returns the keys attached to lease id, sorted, and whether it exists.
func (s *Store) LeaseKeys(id uint64) ([]string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.leases[id]
	if l == nil {
		return nil, false
	}
	return sortedKeys(l.keys), true
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// execLease runs a lease operation.
func (s *Store) execLease(index uint64, cmd Command) Result {
	res := Result{Index: index}
	if cmd.Key != "" || cmd.Value != "" || cmd.CAS != nil || cmd.Prefix || cmd.Txn != nil {
		res.Err = ErrBadCommand
		return res
	}
	if cmd.Op == OpLeaseGrant {
		if cmd.Lease != 0 || cmd.Renew != 0 {
			res.Err = ErrBadCommand
			return res
		}
		ttl := time.Duration(cmd.TTLMillis) * time.Millisecond
		if cmd.TTLMillis <= 0 || ttl < MinLeaseTTL || ttl > MaxLeaseTTL {
			res.Err = ErrBadTTL
			return res
		}
		l := &lease{LeaseInfo: LeaseInfo{ID: index, TTLMillis: cmd.TTLMillis, Renew: index}, keys: map[string]struct{}{}}
		s.leases[index] = l
		s.markLeaseChanged(index)
		info := l.LeaseInfo
		res.Lease = &info
		if s.hooks.LeaseRenewed != nil {
			s.hooks.LeaseRenewed(info)
		}
		return res
	}
	if cmd.TTLMillis != 0 || (cmd.Op != OpLeaseExpire && cmd.Renew != 0) {
		res.Err = ErrBadCommand
		return res
	}
	l := s.leases[cmd.Lease]
	if l == nil {
		res.Err = ErrLeaseNotFound
		return res
	}
	switch cmd.Op {
	case OpLeaseKeepAlive:
		l.Renew = index
		s.markLeaseChanged(l.ID)
		info := l.LeaseInfo
		res.Lease = &info
		if s.hooks.LeaseRenewed != nil {
			s.hooks.LeaseRenewed(info)
		}
	case OpLeaseRevoke:
		res.Deleted = s.endLease(l, index, api.EventDelete)
		res.Found = true
	case OpLeaseExpire:
		if l.Renew != cmd.Renew {
			// Renewed after the leader decided: the keep-alive wins (it
			// may have been acknowledged to its client already).
			return res
		}
		res.Deleted = s.endLease(l, index, api.EventExpire)
		res.Found = true
	}
	return res
}

// endLease deletes l's keys, in key order, and l itself.
func (s *Store) endLease(l *lease, index uint64, typ string) int {
	keys := sortedKeys(l.keys)
	for _, k := range keys {
		s.removeKey(k, index, typ)
	}
	delete(s.leases, l.ID)
	s.markLeaseChanged(l.ID)
	if s.hooks.LeaseEnded != nil {
		s.hooks.LeaseEnded(l.ID)
	}
	return len(keys)
}

// attach makes k's lease id (0: none), detaching it from its previous one.
func (s *Store) attach(k string, id uint64) {
	if old := s.keyLease[k]; old != 0 {
		if old == id {
			return
		}
		if l := s.leases[old]; l != nil {
			delete(l.keys, k)
			s.markLeaseChanged(old)
		}
		delete(s.keyLease, k)
	}
	if id != 0 {
		s.leases[id].keys[k] = struct{}{}
		s.keyLease[k] = id
		s.markLeaseChanged(id)
	}
}

// emit records a change of key: for the next delta snapshot (every change
// of a key comes through here) and for the Change hook.
func (s *Store) emit(index uint64, typ, key, value string) {
	s.markChanged(key)
	if s.hooks.Change != nil {
		s.hooks.Change(Event{Index: index, Type: typ, Key: key, Value: value, Lease: s.keyLease[key]})
	}
}
