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
//	data, err := st.Snapshot() // {"Contents": {...}, "Sessions": {...}, "AppliedIndex": N}
//	err = st.Restore(data)
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
// it can be remembered in a session and sent to the client: ErrBadKey and
// ErrBadValue map to HTTP 400, ErrTooLarge to 413. A log entry that does not
// decode is answered with ErrBadCommand on every replica; it never panics.
// Limits hold inside Apply too: an append that would make a value exceed
// MaxValueBytes is refused with ErrTooLarge and changes nothing.
//
// # Concurrency
//
// A Store is safe for concurrent use: the node's loop calls Apply, Snapshot
// and Restore, while HTTP handlers may call Get for stale reads.
package kv
