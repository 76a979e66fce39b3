package kv

import (
	"fmt"
	"sync"

	"raftkv/src/api"
)

// Defaults for Options.
const (
	DefaultMaxSessions       = 10000
	DefaultSessionTTLEntries = 1_000_000
	// DefaultMaxSessionBytes bounds the session table's size (see
	// sessionSize): 16 MiB. With ids of at most MaxClientIDBytes, 10,000
	// sessions of writes take about 2.5 MiB, so the count binds first; the
	// byte bound keeps large remembered results (a get's value) from growing
	// every replica's memory and snapshot without limit.
	DefaultMaxSessionBytes = 16 << 20
)

// sessionOverhead approximates a session's memory besides its strings: the
// struct, its map entry and list links. Counting it keeps many sessions of
// tiny ids bounded too.
const sessionOverhead = 128

// Options tune a Store. They shape the replicated state, so every replica of
// a cluster must use the same Options.
type Options struct {
	// MaxSessions bounds the session table; when it is full, a new client
	// evicts the session least recently used by log index. 0 means
	// DefaultMaxSessions.
	MaxSessions int
	// SessionTTLEntries expires a session idle for more than this many log
	// indexes. 0 means DefaultSessionTTLEntries.
	SessionTTLEntries uint64
	// MaxSessionBytes bounds the sum of sessionSize over the session table
	// (client ids, remembered results, a fixed overhead each); past it, the
	// sessions least recently used by log index are evicted, as for
	// MaxSessions. 0 means DefaultMaxSessionBytes.
	MaxSessionBytes int
}

func (o Options) withDefaults() Options {
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.SessionTTLEntries == 0 {
		o.SessionTTLEntries = DefaultSessionTTLEntries
	}
	if o.MaxSessionBytes <= 0 {
		o.MaxSessionBytes = DefaultMaxSessionBytes
	}
	return o
}

// Result is the outcome of one applied command.
type Result struct {
	// Index is the log index at which the command was applied; for a repeated
	// request, the index of its first application.
	Index uint64
	// Value is the value read by a get.
	Value string
	// Found: get and delete: the key existed; put and append: the key
	// existed before.
	Found bool
	// Meta is the key's metadata now, for a failed compare-and-swap
	// (ErrCASFailed); zero otherwise.
	Meta Meta
	// Deleted is the number of keys a delete by prefix removed.
	Deleted int
	// Txn is the outcome of a transaction (OpTxn) that applied.
	Txn *api.TxnBody
	// Lease is the lease a grant or keep-alive made or renewed.
	Lease *LeaseInfo
	// Err is nil or one of the package's sentinel errors (compare with ==
	// or errors.Is).
	Err error
}

// session is one client's exactly-once record. Sessions form a list ordered
// by lastUsed, oldest first, so eviction and expiry take from the front.
type session struct {
	id       string
	seq      uint64 // the client's last applied request
	result   Result // what that request got
	lastUsed uint64 // index of the last entry of this client
	// Invariant: prev.lastUsed < lastUsed < next.lastUsed.
	prev, next *session
}

// sessionSize is what a session counts against Options.MaxSessionBytes.
// It depends on the replicated state only, so every replica evicts alike.
func sessionSize(id string, r Result) int {
	n := len(id) + len(r.Value) + sessionOverhead
	if r.Txn != nil {
		for _, o := range r.Txn.Results {
			n += len(o.Key) + len(o.Value) + 64
		}
	}
	return n
}

// Store is the replicated key-value state machine. See the package comment.
type Store struct {
	opts Options

	mu      sync.RWMutex
	applied uint64 // index of the last applied entry; Invariant: only grows, except by Restore
	// table holds the keys in order with their values and metadata.
	// Invariant: every key's 1 <= CreateIndex <= ModIndex <= applied,
	// Version >= 1.
	table    *table
	sessions map[string]*session
	// sessionBytes is the sum of sessionSize over sessions.
	// Invariant: sessionBytes <= opts.MaxSessionBytes after every Apply.
	sessionBytes int
	// oldest and newest are the ends of the session list.
	oldest, newest *session
	// changed holds the keys put or deleted since changesFrom (see
	// delta.go), nil when no delta can be taken; changedLeases the leases
	// granted, renewed, ended or whose keys changed since.
	changed       map[string]struct{}
	changedLeases map[uint64]struct{}
	changesFrom   uint64
	// leases are the live leases by ID; keyLease each leased key's lease.
	// Invariant: k is in leases[id].keys iff keyLease[k] == id, and then k
	// is in contents.
	leases   map[uint64]*lease
	keyLease map[string]uint64
	hooks    Hooks // see SetHooks; not replicated state
}

// New returns an empty Store.
func New(opts Options) *Store {
	return &Store{
		opts:          opts.withDefaults(),
		table:         newTable(),
		sessions:      make(map[string]*session),
		changed:       make(map[string]struct{}),
		changedLeases: make(map[uint64]struct{}),
		leases:        make(map[uint64]*lease),
		keyLease:      make(map[string]uint64),
	}
}

// AppliedIndex returns the index of the last applied entry, 0 if none.
func (s *Store) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Get returns key's value in the local state. It says nothing about
// linearizability: the caller decides when a local read is allowed.
func (s *Store) Get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, _, ok := s.table.get(key)
	return v, ok
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.table.len()
}

// Sessions returns the number of client sessions.
func (s *Store) Sessions() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// SessionBytes returns the session table's size as Options.MaxSessionBytes
// counts it.
func (s *Store) SessionBytes() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessionBytes
}

// ApplyNoop records that the no-op entry at index was applied (a new
// leader's first entry). It panics if index is not above AppliedIndex.
func (s *Store) ApplyNoop(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(index)
}

// Apply applies the committed log entry at index, whose data is an encoded
// Command, and returns its result. Entries must come in log order: it panics
// if index is not above AppliedIndex, as that is a bug in the caller. A
// malformed entry yields ErrBadCommand and changes nothing but the applied
// index.
func (s *Store) Apply(index uint64, data []byte) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(index)
	cmd, err := DecodeCommand(data)
	if err != nil {
		return Result{Index: index, Err: ErrBadCommand}
	}
	if !validClientID(cmd.ClientID) {
		// No session: "" asks for none, and an id the API would refuse (from
		// a log written by an old version, or a forged entry) must not grow
		// the table, which every replica and snapshot holds. The decision
		// depends on the entry's bytes only, so replicas agree.
		return s.exec(index, cmd)
	}
	sess := s.sessions[cmd.ClientID]
	if sess != nil {
		switch {
		case cmd.Seq == sess.seq:
			s.touch(sess, index)
			return sess.result
		case cmd.Seq < sess.seq:
			s.touch(sess, index)
			return Result{Index: index, Err: ErrStaleRequest}
		}
	} else {
		for len(s.sessions) >= s.opts.MaxSessions && s.oldest != nil {
			s.remove(s.oldest)
		}
		sess = &session{id: cmd.ClientID}
		s.sessions[cmd.ClientID] = sess
		s.sessionBytes += sessionSize(sess.id, Result{})
	}
	res := s.exec(index, cmd)
	s.sessionBytes += sessionSize("", res) - sessionSize("", sess.result)
	sess.seq, sess.result = cmd.Seq, res
	s.touch(sess, index)
	// Evict by bytes the same way as by count: least recently used first.
	// sess is the newest and is never evicted by its own request; with the
	// default bound it alone always fits (its size is at most
	// MaxClientIDBytes + MaxValueBytes + sessionOverhead).
	for s.sessionBytes > s.opts.MaxSessionBytes && s.oldest != sess {
		s.remove(s.oldest)
	}
	return res
}

// advance moves the applied index to index and expires idle sessions. Expiry
// runs at every index, so it depends on the sequence of indexes only.
func (s *Store) advance(index uint64) {
	if index <= s.applied {
		panic(fmt.Sprintf("kv: apply of index %d after applied index %d: entries must come in increasing order", index, s.applied))
	}
	s.applied = index
	for s.oldest != nil && index-s.oldest.lastUsed > s.opts.SessionTTLEntries {
		s.remove(s.oldest)
	}
}

// exec runs cmd on the map. Limits are checked here as well as at the API,
// so that every replica refuses the same commands.
func (s *Store) exec(index uint64, cmd Command) Result {
	res := Result{Index: index}
	switch {
	case cmd.Op == OpTxn:
		return s.execTxn(index, cmd)
	case isLeaseOp(cmd.Op):
		return s.execLease(index, cmd)
	case cmd.TTLMillis != 0 || cmd.Renew != 0 || (cmd.Lease != 0 && cmd.Op != OpPut):
		// The API never proposes these shapes either.
		res.Err = ErrBadCommand
		return res
	case cmd.Txn != nil || (cmd.Prefix && (cmd.Op != OpDelete || cmd.CAS != nil)) ||
		(cmd.CAS != nil && cmd.Op != OpPut && cmd.Op != OpDelete):
		// The API never proposes these shapes.
		res.Err = ErrBadCommand
		return res
	}
	if len(cmd.Key) == 0 || len(cmd.Key) > MaxKeyBytes {
		// DecodeCommand yields valid UTF-8 only, so length is all to check.
		res.Err = ErrBadKey
		return res
	}
	if cmd.Prefix {
		res.Deleted = s.deletePrefix(cmd.Key, index)
		res.Found = res.Deleted > 0
		return res
	}
	m, found := s.table.meta(cmd.Key)
	res.Found = found
	if cmd.CAS != nil {
		// Compared here, at apply time, on the replicated state: never on a
		// node's local copy before proposing, which may be stale.
		if m.ModIndex != *cmd.CAS {
			res.Meta, res.Err = m, ErrCASFailed
			return res
		}
	}
	switch cmd.Op {
	case OpPut:
		if len(cmd.Value) > MaxValueBytes {
			res.Err = ErrTooLarge
			return res
		}
		if cmd.Lease != 0 && s.leases[cmd.Lease] == nil {
			res.Err = ErrLeaseNotFound
			return res
		}
		s.table.set(cmd.Key, cmd.Value, nextMeta(m, found, index))
		s.attach(cmd.Key, cmd.Lease)
		s.emit(index, api.EventPut, cmd.Key, cmd.Value)
	case OpAppend:
		old, _, _ := s.table.get(cmd.Key)
		if len(old)+len(cmd.Value) > MaxValueBytes {
			res.Err = ErrTooLarge
			return res
		}
		v := old + cmd.Value
		s.table.set(cmd.Key, v, nextMeta(m, found, index))
		s.emit(index, api.EventAppend, cmd.Key, v)
	case OpGet:
		res.Value, _, _ = s.table.get(cmd.Key)
	case OpDelete:
		if found {
			s.removeKey(cmd.Key, index, api.EventDelete)
		}
	default:
		// DecodeCommand refuses unknown ops.
		panic(fmt.Sprintf("kv: exec of unknown op %q", cmd.Op))
	}
	return res
}

// touch marks sess as used at index, moving it to the newest end.
func (s *Store) touch(sess *session, index uint64) {
	sess.lastUsed = index
	if s.newest == sess {
		return
	}
	s.unlink(sess)
	sess.prev = s.newest
	if s.newest != nil {
		s.newest.next = sess
	}
	s.newest = sess
	if s.oldest == nil {
		s.oldest = sess
	}
}

// unlink takes sess out of the list (a no-op for a session not in it).
func (s *Store) unlink(sess *session) {
	if sess.prev != nil {
		sess.prev.next = sess.next
	} else if s.oldest == sess {
		s.oldest = sess.next
	}
	if sess.next != nil {
		sess.next.prev = sess.prev
	} else if s.newest == sess {
		s.newest = sess.prev
	}
	sess.prev, sess.next = nil, nil
}

func (s *Store) remove(sess *session) {
	s.unlink(sess)
	delete(s.sessions, sess.id)
	s.sessionBytes -= sessionSize(sess.id, sess.result)
}
