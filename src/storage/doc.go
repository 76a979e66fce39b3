// Package storage keeps the durable state of one Raft node as JSON in one
// folder, persistence/<name>/: the write-ahead log, the hard state and the
// snapshots. People read every file with jq; the node trusts none of them
// blindly (CRCs, index checks) and never acknowledges what is not on disk.
//
// # Usage
//
//	s, rec, err := storage.Open(storage.Options{Dir: "persistence/r0", Logger: lg})
//	if err != nil { ... } // damage: the error names file and offset; do not start
//	// restore rec.Snapshot into the state machine, rec.HardState and rec.Entries into the core
//	for rd := range readies {
//		if err := s.Save(rd.HardState, rd.Entries); err != nil {
//			// the Storage is poisoned: stop the node, acknowledge nothing more
//		}
//		// now send rd.Messages, apply rd.CommittedEntries, Advance()
//	}
//	s.SaveSnapshot(raft.Snapshot{Index: i, Term: t, Peers: peers, Data: kvJSON})
//	s.Close() // a clean stop
//
// `raftkv inspect` opens a folder with ReadOnly: nothing is written or
// repaired; Recovered.TornTail and Recovered.Repairs say what a writable open
// would repair.
//
// # Layout on disk
//
//	wal-<seq>-<first>.jsonl        log segments, JSON Lines; seq orders them (1, 2, 3, ... with no gap),
//	                               first is the index expected next when the segment was created
//	snapshot-<index>.json          {"Index":..,"Term":..,"Peers":[..],"StateMachine":<Data>,"StateMachineCRC32C":".."}
//	delta-<from>-<to>.jsonl        a delta snapshot: the state machine's changes from index from to to,
//	                               on top of the newest snapshot-<index>.json (see delta.go)
//	snapshot.json                  a symbolic link to the newest snapshot-<index>.json (a stable name for jq;
//	                               the deltas after it are not in it: `raftkv inspect` shows the whole state)
//	hardstate.json                 {"term":..,"vote":..,"commit":..}, for people (the log is the truth)
//	clean-stop.json                present only between Close and the next writable Open
//	LOCK                           flock(2)ed by the one writer from Open to Close; holds its PID (for messages)
//	*.tmp                          an atomic replacement that did not finish; removed on Open
//
// Numbers in names have 16 digits. Each log line is
//
//	{"crc":"<CRC-32C of the exact bytes of rec, 8 lowercase hex digits>","rec":<rec>}
//
// where rec is one of
//
//	{"kind":"entry","term":T,"index":I,"type":0|1,"cmd":<Data verbatim>}   Data is a JSON value on one line
//	{"kind":"entry","term":T,"index":I,"type":0|1,"data":"<base64>"}       any other Data (`""`: empty)
//	{"kind":"entry","term":T,"index":I,"type":0|1}                         nil Data
//	{"kind":"hardstate","term":T,"vote":V,"commit":C}                      vote -1: none
//	{"kind":"truncate","index":I}                                          entries >= I are replaced by what follows
//	{"kind":"snapshot","index":I,"term":T,"keep_log":true|false}           snapshot I/T is durable; the log after I
//	                                                                       was kept, or discarded (Raft figure 13)
//
// type is raft.EntryType: 0 normal, 1 no-op. So, for example,
//
//	jq -c 'select(.rec.kind=="entry") | [.rec.index, .rec.cmd]' persistence/r0/wal-*.jsonl
//	jq -S .StateMachine.Contents persistence/r0/snapshot.json
//
// The writer emits one canonical spelling and decodes it with a hand-written
// parser; a line in any other spelling (re-indented, keys reordered) is
// decoded by encoding/json, and is valid as long as the bytes of rec still
// match the CRC. The snapshot's StateMachine is snap.Data verbatim, less
// surrounding white space; SaveSnapshot refuses Data that is not valid JSON.
// SaveSnapshotFrom streams a state machine that encodes itself (the node's
// own snapshots) to the file; its checksum follows it.
//
// # Durability contract
//
//   - Save writes the batch (a truncate record if it overwrites a suffix, the
//     entries, the hard state) with one write and one fdatasync, and returns
//     only after fdatasync returned: what it acknowledged survives a crash or
//     a power loss. The runtime sends the messages of a Ready only after Save.
//   - Save refuses, without writing, entries that leave a gap, start inside
//     the snapshot, are not contiguous, or would overwrite a committed entry
//     (Raft never does; such a call is a bug in the caller).
//   - A segment is rotated, when it is past Options.SegmentBytes, before the
//     batch that would go on growing it: the new file is created and the folder
//     fsynced before the batch is written into it. Every segment starts with the
//     current hard state, so deleting old segments never loses it.
//   - SaveSnapshotDelta: the same with a delta file; a base at the end of
//     the chain (a merge) writes no log record, only deletes the deltas.
//   - SaveSnapshot: snapshot file via temp file, fsync, rename, fsync folder;
//     then a snapshot record in the log (fsynced); then hardstate.json
//     (atomically); then deletion of the oldest segments that hold no entry
//     above the snapshot before it (oldest first: the interval between the
//     two stays readable by ReadEntries, a catch-up margin for a follower),
//     and of all but the newest two snapshots.
//     A crash between any two steps is recovered from.
//   - Close writes hardstate.json and clean-stop.json atomically.
//   - An I/O error poisons the Storage (see Storage): the node must stop.
//
// # Recovery rules
//
// A writable Open first takes the folder's lock (LOCK, see lock.go): a
// second writer, in this process or another, gets a *LockedError
// (errors.Is(err, ErrLocked)) naming the holder's PID. The kernel drops the
// lock when its holder dies, so a LOCK file left by a killed node blocks
// nobody. ReadOnly takes no lock and creates no file. Open then lists the
// folder and:
//
//  1. Refuses a gap in segment sequence numbers (a missing segment).
//  2. Loads the newest snapshot file and the deltas that follow it (deltas
//     that end at or below it were merged into it and are ignored). If one
//     does not parse, or a CRC, an Index or the chain does not match (a
//     delta missing in between, a delta without a base), Open fails naming
//     it: it does not fall back to an older snapshot, because the log before
//     the newest snapshot may already be deleted and falling back would
//     silently lose entries. A delta is written atomically, so no damage in
//     it is a torn write. The base's state machine is returned as it is,
//     with the deltas' net effect beside it (Recovered.Deltas), which the
//     node applies to the decoded state (kv.Store.RestoreChain).
//  3. Replays every segment in order. Each line must decode and its CRC must
//     match; entries must follow one another (index = previous + 1), except
//     after a truncate or a snapshot record, which say where the log goes on.
//  4. Damage at the end of the last segment that reaches the end of the file
//     with no valid record in it (an incomplete line, or a line failing to
//     parse or its CRC with nothing valid after it) is a torn last write,
//     unless rule 6 refuses the result: it is cut off, after every other
//     check passed (file truncated and fsynced; with ReadOnly only reported),
//     logged with file and offset, and reported in Recovered.TornTail and
//     Repairs. Such a write was never acknowledged: Save returns only after
//     the whole batch is durable.
//  5. Any other damage — a bad line with a valid one after it, a bad line in
//     any segment but the last, an index out of order, a snapshot record with
//     no snapshot file, a log that starts after the snapshot, a commit index
//     beyond the last entry — fails Open with a *CorruptError naming the file
//     and byte offset (errors.Is(err, ErrCorrupt)). Nothing is invented,
//     dropped or reordered silently.
//  6. Refuses a log that lacks records that were synced, with a
//     *CorruptError naming the last segment, where the log ends, and the
//     index it should reach: a segment that ends before the index the next
//     one was created to take (its name says which), no segment at all
//     beside a snapshot or hardstate.json, a log ending below the highest
//     commit index recorded anywhere (hardstate.json, any hard-state record)
//     or below the last index clean-stop.json recorded, or a newest
//     hard-state record older than hardstate.json's. None of these can come
//     from a crash: a commit index is written only with or after the entries
//     it covers are synced (Save checks it), and the files are written from
//     that state. So a damaged tail that would cut below one is not torn, and
//     is not cut. A loss above every recorded commit index of a killed node
//     cannot be told from a torn write; it is cut as one. With ReadOnly, Open
//     returns what it read along with the error (inspect prints both).
//  7. Returns the entries after the snapshot. If the log holds the snapshot's
//     index with another term (a crash after an installed snapshot's file was
//     written but before its log record), the log after it is discarded as
//     SaveSnapshot would have done, with a warning; a writable Open then
//     writes the missing snapshot record.
//
// A writable Open also removes clean-stop.json (Recovered.CleanStop says it
// was there) and leftover temp files, then appends to the last segment.
package storage
