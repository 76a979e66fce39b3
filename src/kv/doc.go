// Package kv is raftkv's replicated state machine: a map of UTF-8 keys to
// UTF-8 values, a table of client sessions for exactly-once semantics, and
// snapshot and restore.
//
// Everything that affects a result or a snapshot is deterministic: no clock,
// no randomness, no dependence on map iteration order. Every replica that
// applies the same committed entries, in the same order, with the same
// Options, ends in the same state and produces byte-identical snapshots.
//
// # Usage
//
// The leader encodes a client request into a log entry:
//
//	if err := kv.ValidateKey(key); err != nil { ... 400 ... }
//	if err := kv.ValidateValue(value); err != nil { ... 400 or 413 ... }
//	data := kv.EncodeCommand(kv.Command{Op: kv.OpPut, Key: key, Value: value, ClientID: id, Seq: seq})
//	node.Propose(data)
//
// Every replica applies committed entries in log order:
//
//	st := kv.New(kv.Options{}) // the same Options on every replica
//	for _, e := range ready.CommittedEntries {
//		switch e.Type {
//		case raft.EntryNoop:
//			st.ApplyNoop(e.Index)
//		default:
//			res := st.Apply(e.Index, e.Data) // res.Err is nil or a sentinel error
//			// answer the waiting request, if this node has one, with res
//		}
//	}
//
// and snapshots and restores the whole state:
//
//	data, err := st.Snapshot() // {"Contents": {...}, "Meta": {...}, "Sessions": {...}, "AppliedIndex": N}
//	err = st.Restore(data)
//
// # Key metadata, compare-and-swap, ranges, transactions
//
// Every key has a Meta: create_index (the entry that created it since it
// was last absent), mod_index (its last write) and version (writes since
// creation); an absent key's is zero. In memory a key, its value and its
// metadata are one record of a table laid out for millions of keys (see
// table); in a snapshot they stay plain JSON objects: "Contents", which
// people diff with jq, and "Meta" beside it.
//
// Conditions are evaluated in Apply, on the replicated state at the
// entry's index, never by the proposer on its local copy (which may lag):
// a Command with CAS writes only if the key's mod_index is *CAS, else
// ErrCASFailed with the current Meta; an OpTxn evaluates its compares,
// then stages one branch's operations and commits them together, or
// nothing if one fails. Both run in the client's session like any write, so
// a retry gets the first result even though the state has changed since.
// Range lists keys in order from the local state (the caller makes it
// linearizable first, as for Get).
//
// # Exactly-once sessions (Raft thesis 6.3)
//
// A command with a ClientID runs in that client's session. The session
// remembers the client's last Seq and the Result it got. A command repeating
// the last Seq is not applied again: Apply returns the remembered Result,
// with the index at which it was first applied. A command with a lower Seq
// gets ErrStaleRequest and changes nothing. The session table is part of the
// replicated state, so it is in the snapshot.
//
// The table is bounded by log index, never by time, so that every replica
// agrees: a session idle for more than Options.SessionTTLEntries indexes
// expires, and when Options.MaxSessions sessions exist, a new client evicts
// the session least recently used (by log index). Its size is bounded too:
// past Options.MaxSessionBytes (client ids, remembered results and a fixed
// overhead per session), the least recently used sessions are evicted the
// same way. A client whose session was evicted or expired is a new client
// again: a very late retry of its last request would be applied a second
// time. The defaults keep a client's session for a million entries, or until
// 10,000 other clients (16 MiB of sessions) came after it.
//
// A client id is 1 to MaxClientIDBytes (128) bytes of valid UTF-8
// (ValidateClientID); the API refuses others. A command that carries
// another id anyway (a log of an old version, a forged entry) runs without
// a session and is never remembered, and Restore drops such sessions, so
// the table never holds an id the API would refuse, and no two ids share a
// session (an id that is not UTF-8 is never written as U+FFFD).
//
// # Errors
//
// Result.Err is nil or one of the sentinel errors of this package, so that
// it can be remembered in a session and sent to the client: ErrBadKey,
// ErrBadValue and ErrBadTxn map to HTTP 400, ErrTooLarge to 413,
// ErrCASFailed to 409. A log entry that does not
// decode is answered with ErrBadCommand on every replica; it never panics.
// Limits hold inside Apply too: an append that would make a value exceed
// MaxValueBytes is refused with ErrTooLarge and changes nothing.
//
// # Concurrency
//
// A Store is safe for concurrent use: the node's loop calls Apply, Snapshot
// and Restore, while HTTP handlers may call Get for stale reads.
package kv
