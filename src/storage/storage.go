package storage

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// DefaultSegmentBytes is the size past which a log segment is rotated.
const DefaultSegmentBytes = 64 << 20

var (
	// ErrReadOnly is returned by writes to a Storage opened with ReadOnly.
	ErrReadOnly = errors.New("storage: opened read-only")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("storage: closed")
	// ErrCorrupt is wrapped by every error that reports damage on disk (see CorruptError).
	ErrCorrupt = errors.New("storage: corrupt")
)

// CorruptError reports damage found on disk: the file, the byte offset in it
// (-1 when the damage is not at one place, e.g. a missing file) and what is wrong.
// errors.Is(err, ErrCorrupt) holds for it.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("storage: corrupt %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("storage: corrupt %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Options configure Open.
type Options struct {
	Dir          string      // the node's folder, created if missing (unless ReadOnly)
	SegmentBytes int64       // rotate a log segment past this size (default 64 MiB)
	ReadOnly     bool        // never write, never repair on disk; report what would be repaired
	Logger       *zap.Logger // nil: no logs
}

// Recovered is the state found on disk by Open.
type Recovered struct {
	HardState raft.HardState
	Snapshot  *raft.Snapshot // newest valid snapshot, nil if none
	// Deltas, when not nil, bring Snapshot.Data (the state machine of the
	// chain's base) up to Snapshot.Index: restore with kv.Store.RestoreChain,
	// or Deltas.Materialize it.
	Deltas    *Deltas
	Entries   []raft.Entry // log entries after the snapshot index, in order, contiguous
	TornTail  bool         // a torn last record was cut off (logged); with ReadOnly: would be
	CleanStop bool         // the last run closed the storage cleanly (Close was called)
	// Repairs lists, for people, every repair made on disk (with ReadOnly:
	// that would be made), e.g. a torn tail cut off or a stale temp file removed.
	Repairs []string
	// Identity is the folder's incarnation (see identity.go).
	Identity Identity
}

// Empty reports whether the folder holds no promise of any kind: no
// snapshot, no entry, never a term. Such a folder is a brand-new node, or
// one whose contents were lost.
func (r *Recovered) Empty() bool {
	return r.Snapshot == nil && len(r.Entries) == 0 && r.HardState.Term == 0
}

// Storage is the durable state of one node: the write-ahead log, the hard
// state and the snapshots in one folder. See the package doc for the layout.
//
// Failure contract: Save, SaveSnapshot and Close return only after what they
// were given is on stable storage (fsync returned). If any of them fails on
// I/O (a write error, an fsync error, a full disk), the Storage is poisoned:
// that call and every later call return the same error, and nothing more is
// written. Whether the failed write reached the disk is unknown, so the node
// must stop: it must not acknowledge anything or keep running on state it
// could not save (an fsync that failed once may have dropped dirty pages; a
// retry that then succeeds proves nothing). Restarting runs recovery, which
// cuts off a torn tail. Errors for bad arguments (a gap in indices, a
// snapshot older than the current one, Data that is not JSON) do not poison:
// nothing was written.
//
// A Storage is safe for use by several goroutines, but the node runtime is
// meant to call it from its one loop.
type Storage struct {
	mu       sync.Mutex
	dir      string
	lg       *zap.Logger
	segBytes int64
	readOnly bool
	closed   bool
	err      error // poison: the first I/O error; sticky

	segs []segment // in sequence order; the last one is open for appending
	cur  *os.File  // the last segment, nil when ReadOnly
	size int64     // bytes in the last segment
	// lock holds the flock on LOCK from Open to Close (nil when ReadOnly).
	lock *os.File

	hs        raft.HardState
	snapIndex uint64 // index of the newest snapshot, 0 if none
	snapTerm  uint64
	// The snapshot is a chain (see delta.go): the base at baseIndex
	// (baseBytes of state machine) and deltaBytes of deltas after it,
	// ending at snapIndex. Invariant: baseIndex <= snapIndex.
	baseIndex             uint64
	baseBytes, deltaBytes int64
	// The live log is (snapIndex, lastIndex]. Invariant: snapIndex <= lastIndex.
	lastIndex uint64
	// readFloor: ReadEntries serves (readFloor, lastIndex]. Behind the
	// newest snapshot the segments keep the interval since the one before
	// it, so that a follower lagging by about one snapshot interval (a
	// restart) catches up from the log instead of by a whole snapshot; the
	// node's core decides whether to ask for it. Invariant: readFloor <=
	// snapIndex, and locs covers (readFloor, lastIndex].
	readFloor uint64
	// terms holds the term of each live entry as runs: runs[k].term applies
	// from runs[k].index up to the next run's index. Used to decide, at
	// SaveSnapshot, whether the log after the snapshot is kept (Raft figure 13).
	runs []termRun

	buf []byte // reused encode buffer
	// locs is where the live entries are in the segments (read.go);
	// lineEnds: where each entry's line starts in buf during a Save, and
	// where the last one ends.
	locs     locIndex
	lineEnds []int

	// sync flushes a segment; tests replace it to inject fsync errors.
	sync func(*os.File) error
}

type termRun struct{ index, term uint64 }

type segment struct {
	seq    uint64
	first  uint64 // the index expected next when the segment was created (in its name)
	name   string // file name inside dir
	maxIdx uint64 // highest entry index written in it (0: none)
}

func segmentName(seq, first uint64) string {
	return fmt.Sprintf("wal-%016d-%016d.jsonl", seq, first)
}

func snapshotName(index uint64) string {
	return fmt.Sprintf("snapshot-%016d.json", index)
}

const (
	hardStateFile = "hardstate.json"
	cleanStopFile = "clean-stop.json"
	// latestSnapshotLink is a symbolic link to the newest snapshot file.
	latestSnapshotLink = "snapshot.json"
	tmpSuffix          = ".tmp"
)

// Open reads the folder, recovers the state (see the package doc for the
// rules) and returns a Storage ready to append after the recovered log. Damage
// other than a torn last record is refused with a *CorruptError naming the
// file and offset.
//
// A writable Open first locks the folder (flock on LOCK, held until Close);
// if another Storage holds it, in this process or another, Open fails with a
// *LockedError (errors.Is(err, ErrLocked)). ReadOnly takes no lock and
// creates nothing, so it works next to a running node. With ReadOnly, when
// the folder reads whole but records that were synced are missing (the log
// ends below a durable commit index, see the recovery rules), Open returns
// the Recovered state it read along with the *CorruptError, for inspect.
func Open(opts Options) (*Storage, *Recovered, error) {
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.With(zap.String("dir", opts.Dir))
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.ReadOnly {
		if st, err := os.Stat(opts.Dir); err != nil {
			return nil, nil, fmt.Errorf("storage: %w", err)
		} else if !st.IsDir() {
			return nil, nil, fmt.Errorf("storage: %s is not a directory", opts.Dir)
		}
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("storage: %w", err)
	}
	s := &Storage{
		dir:      opts.Dir,
		lg:       lg,
		segBytes: opts.SegmentBytes,
		readOnly: opts.ReadOnly,
		sync:     fdatasync,
	}
	if !s.readOnly {
		// Before recovery reads anything: recovery repairs (cuts a torn
		// tail, removes temp files), which only the one writer may do.
		lock, err := lockDir(s.dir)
		if err != nil {
			return nil, nil, err
		}
		s.lock = lock
	}
	rec, err := s.recover()
	if err != nil {
		s.unlock()
		if s.readOnly && rec != nil {
			return nil, rec, err // what could be read, for inspect
		}
		return nil, nil, err
	}
	id, err := loadIdentity(s.dir, rec.Empty(), s.readOnly)
	if err != nil {
		s.unlock()
		return nil, nil, err
	}
	rec.Identity = id
	if s.readOnly {
		return s, rec, nil
	}
	if err := s.openTail(); err != nil {
		s.closeFile()
		s.unlock()
		return nil, nil, err
	}
	return s, rec, nil
}

// unlock releases the folder's lock (closing the file releases the flock).
func (s *Storage) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// openTail opens the last segment for appending, or creates the first one.
func (s *Storage) openTail() error {
	if len(s.segs) == 0 {
		return s.createSegment(1, s.lastIndex+1)
	}
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(filepath.Join(s.dir, last.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("storage: %w", err)
	}
	s.cur, s.size = f, st.Size()
	return nil
}

// createSegment creates an empty segment, makes its name durable and makes it current.
func (s *Storage) createSegment(seq, first uint64) error {
	name := segmentName(seq, first)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("storage: create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.closeFile()
	s.cur, s.size = f, 0
	s.segs = append(s.segs, segment{seq: seq, first: first, name: name})
	s.lg.Debug("log segment created", zap.String("file", name))
	return nil
}

func (s *Storage) closeFile() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}

func (s *Storage) check() error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return ErrClosed
	case s.readOnly:
		return ErrReadOnly
	}
	return nil
}

// poison records the first I/O error; every later call returns it.
func (s *Storage) poison(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("storage: failed, the node must stop: %w", err)
		s.lg.Error("storage failed; refusing all further writes", zap.Error(err))
		s.closeFile()
	}
	return s.err
}

// Save appends entries and the hard state in ONE write and ONE fsync (group
// commit). If entries[0].Index <= the last stored index, the stored suffix
// from that index on is replaced (a follower overwriting a conflicting tail).
// Returns only after fsync returned. hs may be empty (unchanged), entries may
// be empty. Entries must be contiguous and start at most one past the last
// stored index and after the snapshot index; an overwrite must not reach a
// committed entry (index <= the stored commit).
func (s *Storage) Save(hs raft.HardState, entries []raft.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first <= s.snapIndex || first > s.lastIndex+1 {
			return fmt.Errorf("storage: entries start at %d, want %d..%d", first, s.snapIndex+1, s.lastIndex+1)
		}
		if first <= s.lastIndex && first <= s.hs.Commit {
			// Raft never overwrites a committed entry (Log Matching, Raft §5.3).
			return fmt.Errorf("storage: entries at %d would overwrite committed entries (commit %d)", first, s.hs.Commit)
		}
		for k := range entries {
			if entries[k].Index != first+uint64(k) {
				return fmt.Errorf("storage: entries not contiguous at %d: index %d", first+uint64(k), entries[k].Index)
			}
		}
	}
	if hs.IsEmpty() && len(entries) == 0 {
		return nil
	}
	if !hs.IsEmpty() {
		// The commit index on disk must never pass the durable end of the
		// log: recovery refuses a log that ends below any recorded commit
		// index as one that lost synced records, so this order must be the
		// only one possible. hs goes after the entries in the same write and
		// fdatasync, so it may cover them; it may not cover more.
		end := s.lastIndex
		if len(entries) > 0 {
			end = entries[len(entries)-1].Index
		}
		if hs.Commit > end {
			return fmt.Errorf("storage: commit %d beyond the last index %d after this batch", hs.Commit, end)
		}
	}
	next := s.lastIndex + 1
	if len(entries) > 0 {
		next = entries[0].Index
	}
	buf := s.buf[:0]
	rotate := s.size >= s.segBytes
	if rotate && !s.hs.IsEmpty() {
		// Every segment starts with the hard state, so neither deleting older
		// segments nor losing the last line of one loses it.
		buf = appendHardState(buf, s.hs)
	}
	if len(entries) > 0 && next <= s.lastIndex {
		buf = appendTruncate(buf, next)
	}
	s.lineEnds = s.lineEnds[:0]
	for k := range entries {
		s.lineEnds = append(s.lineEnds, len(buf))
		buf = appendEntry(buf, &entries[k])
	}
	s.lineEnds = append(s.lineEnds, len(buf))
	if !hs.IsEmpty() {
		buf = appendHardState(buf, hs)
	}
	s.buf = buf
	if rotate {
		if err := s.createSegment(s.segs[len(s.segs)-1].seq+1, next); err != nil {
			return s.poison(err)
		}
	}
	if err := s.write(buf); err != nil {
		return err
	}
	if len(entries) > 0 {
		if next <= s.lastIndex {
			s.locs.truncate(next)
		}
		base := s.size - int64(len(buf))
		seq := s.segs[len(s.segs)-1].seq
		for k := range entries {
			s.locs.note(entries[k].Index, seq, base+int64(s.lineEnds[k]), base+int64(s.lineEnds[k+1]))
		}
		s.noteEntries(entries)
	}
	if !hs.IsEmpty() {
		s.hs = hs
	}
	return nil
}

// SaveHardStateNoSync records a hard state whose term and vote are already
// durable (only the commit index moved) with a write but no fsync: a killed
// process keeps it in the page cache, a power loss may not, and either is
// harmless because the commit index is only a hint for replay after a
// restart (Raft learns it again from the leader). Callers must use Save for
// any change of term or vote. The commit index may only cover entries that
// are already durable (s.lastIndex moves only after their fdatasync), so a
// record that does reach the disk never claims more than the log holds; the
// next fdatasync of the segment makes it durable along with what follows.
func (s *Storage) SaveHardStateNoSync(hs raft.HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if hs.Term != s.hs.Term || hs.Vote != s.hs.Vote {
		return fmt.Errorf("storage: term or vote changed (%d/%d -> %d/%d): use Save", s.hs.Term, s.hs.Vote, hs.Term, hs.Vote)
	}
	if hs.Commit > s.lastIndex {
		return fmt.Errorf("storage: commit %d beyond the last stored index %d", hs.Commit, s.lastIndex)
	}
	buf := appendHardState(s.buf[:0], hs)
	s.buf = buf
	n, err := s.cur.Write(buf)
	s.size += int64(n)
	if err != nil {
		return s.poison(fmt.Errorf("write %s: %w", s.segs[len(s.segs)-1].name, err))
	}
	s.hs = hs
	return nil
}

// write appends buf to the current segment and fsyncs it.
func (s *Storage) write(buf []byte) error {
	n, err := s.cur.Write(buf)
	s.size += int64(n)
	if err != nil {
		return s.poison(fmt.Errorf("write %s: %w", s.segs[len(s.segs)-1].name, err))
	}
	if err := s.sync(s.cur); err != nil {
		return s.poison(err)
	}
	return nil
}

// noteEntries updates the in-memory index after entries were made durable.
func (s *Storage) noteEntries(entries []raft.Entry) {
	first := entries[0].Index
	s.truncateRuns(first)
	for k := range entries {
		e := &entries[k]
		if len(s.runs) == 0 || s.runs[len(s.runs)-1].term != e.Term {
			s.runs = append(s.runs, termRun{index: e.Index, term: e.Term})
		}
	}
	s.lastIndex = entries[len(entries)-1].Index
	seg := &s.segs[len(s.segs)-1]
	seg.maxIdx = max(seg.maxIdx, s.lastIndex)
}

// truncateRuns forgets the terms of entries at index >= i.
func (s *Storage) truncateRuns(i uint64) {
	k := sort.Search(len(s.runs), func(k int) bool { return s.runs[k].index >= i })
	s.runs = s.runs[:k]
}

// term returns the term of live entry i, or false.
func (s *Storage) term(i uint64) (uint64, bool) {
	if i <= s.snapIndex || i > s.lastIndex {
		return 0, false
	}
	k := sort.Search(len(s.runs), func(k int) bool { return s.runs[k].index > i })
	if k == 0 {
		return 0, false
	}
	return s.runs[k-1].term, true
}

// SaveSnapshot writes the snapshot atomically (temp file, fsync, rename, fsync
// dir), then deletes log segments wholly at or below snap.Index and all but
// the newest two snapshots. If the log holds the entry at snap.Index with
// snap.Term, the entries after it are kept; otherwise the whole log is
// discarded (Raft figure 13, InstallSnapshot steps 6 and 7) and the next Save
// must start at snap.Index+1. snap.Data must be a JSON value (the state
// machine); it is stored verbatim as "StateMachine", less surrounding white
// space.
// checkSnapshot validates a snapshot to save against the stored state; done
// means it is already durable.
func (s *Storage) checkSnapshot(snap raft.Snapshot) (done bool, err error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if snap.Index == 0 {
		return false, errors.New("storage: snapshot at index 0")
	}
	if snap.Index == s.snapIndex && snap.Term == s.snapTerm {
		return true, nil // this snapshot is already durable
	}
	if snap.Index <= s.snapIndex {
		return false, fmt.Errorf("storage: snapshot at %d/t%d is not newer than the current one at %d/t%d",
			snap.Index, snap.Term, s.snapIndex, s.snapTerm)
	}
	return false, nil
}

func (s *Storage) SaveSnapshot(snap raft.Snapshot) error {
	data := trimSpace(snap.Data)
	if !validJSON(data) {
		return fmt.Errorf("storage: snapshot at %d: Data is not valid JSON", snap.Index)
	}
	return s.SaveSnapshotFrom(snap, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SaveSnapshotFrom is SaveSnapshot for a state machine that writes itself:
// encode must write exactly one JSON value to w. The state is streamed to
// the file, so a node never holds an encoded copy of its whole state in
// memory (it would double the heap the garbage collector paces itself on).
// An error from encode aborts the save and leaves the stored state as it was.
// meta gives the snapshot's Index, Term and configuration (Membership, or
// Peers for a cluster that predates configurations in the log); its Data
// is ignored.
func (s *Storage) SaveSnapshotFrom(meta raft.Snapshot, encode func(w io.Writer) error) error {
	index := meta.Index
	snap := raft.Snapshot{Index: index, Term: meta.Term, Peers: meta.Peers, Membership: meta.Membership}
	s.mu.Lock()
	done, err := s.checkSnapshot(snap)
	// A base at the end of the chain replaces its deltas (the node's clean
	// stop, so that snapshot.json holds the whole state).
	rebase := done && err == nil && s.baseIndex < index
	s.mu.Unlock()
	if (done && !rebase) || err != nil {
		return err
	}
	// The file, the bulk of the work, is written without the lock, so the
	// log can take appends meanwhile. Its log record follows under the lock;
	// a crash between the two leaves a snapshot file that recovery handles
	// as before.
	name := snapshotName(index)
	var size int64
	werr := writeAtomicFunc(s.dir, name, func(w io.Writer) error {
		return writeSnapshotFile(w, snap, func(w io.Writer) error {
			cw := &CountingWriter{W: w}
			err := encode(cw)
			size = cw.N
			return err
		})
	})
	if rebase {
		return s.finishRebase(snap, name, werr, size)
	}
	return s.finishSnapshot(snap, name, werr, func() {
		s.baseIndex, s.baseBytes, s.deltaBytes = index, size, 0
	})
}

// finishRebase completes the save of a base at the end of the chain: the
// log already records the snapshot, so only the bookkeeping, the link and
// the deletion of the deltas (which recovery ignores from now on) remain.
func (s *Storage) finishRebase(snap raft.Snapshot, name string, werr error, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if werr != nil {
		var encErr encodeError
		if errors.As(werr, &encErr) {
			return fmt.Errorf("storage: snapshot at %d: %w", snap.Index, encErr.err)
		}
		return s.poison(werr)
	}
	if err := s.check(); err != nil {
		return err
	}
	if snap.Index != s.snapIndex || s.baseIndex >= snap.Index {
		return nil // another snapshot came in between; the file is an older base, deleted in time
	}
	s.baseIndex, s.baseBytes, s.deltaBytes = snap.Index, size, 0
	if err := s.linkLatest(name); err != nil {
		return s.poison(err)
	}
	if err := s.compact(true); err != nil {
		return s.poison(err)
	}
	s.lg.Info("snapshot deltas merged into a base", zap.String("file", name), zap.Uint64("index", snap.Index))
	return nil
}

// finishSnapshot completes the save of a snapshot file (a base or a delta)
// whose write ended with werr: the snapshot record in the log, the hard
// state file, the link for people (a base), the deletion of what it
// replaced. chained updates the snapshot chain's bookkeeping.
func (s *Storage) finishSnapshot(snap raft.Snapshot, name string, werr error, chained func()) error {
	index := snap.Index
	s.mu.Lock()
	defer s.mu.Unlock()
	if werr != nil {
		var encErr encodeError
		if errors.As(werr, &encErr) {
			return fmt.Errorf("storage: snapshot at %d: %w", index, encErr.err)
		}
		return s.poison(werr)
	}
	return s.recordSnapshot(snap, name, chained)
}

// recordSnapshot makes the snapshot file name (a base or a delta), durable
// in the folder, the newest snapshot: its record in the log, the log after
// it kept or discarded, the older segments, snapshots and deltas deleted.
// chained updates the snapshot chain's bookkeeping. s.mu is held.
func (s *Storage) recordSnapshot(snap raft.Snapshot, name string, chained func()) error {
	if done, err := s.checkSnapshot(snap); done || err != nil {
		return err
	}

	t, ok := s.term(snap.Index)
	keep := ok && t == snap.Term
	buf := s.buf[:0]
	if !keep || s.size >= s.segBytes {
		// Start a fresh segment for the log after the snapshot; when the log
		// is discarded every older segment becomes garbage.
		if !s.hs.IsEmpty() {
			buf = appendHardState(buf, s.hs)
		}
		buf = appendSnapshotMark(buf, snap.Index, snap.Term, keep)
		next := s.lastIndex + 1
		if !keep {
			next = snap.Index + 1
		}
		if err := s.createSegment(s.segs[len(s.segs)-1].seq+1, next); err != nil {
			return s.poison(err)
		}
	} else {
		buf = appendSnapshotMark(buf, snap.Index, snap.Term, keep)
	}
	s.buf = buf
	if err := s.write(buf); err != nil {
		return err
	}
	if !keep {
		s.lg.Info("log discarded: it does not hold the snapshot's last entry",
			zap.Uint64("index", snap.Index), zap.Uint64("term", snap.Term), zap.Uint64("last_index", s.lastIndex))
		s.lastIndex = snap.Index
		s.runs = s.runs[:0]
		s.locs = locIndex{}
		s.readFloor = snap.Index
	} else {
		// The interval since the previous snapshot stays readable.
		s.readFloor = s.snapIndex
		s.locs.compact(s.readFloor)
		// Keep the run that covers snap.Index+1.
		k := sort.Search(len(s.runs), func(k int) bool { return s.runs[k].index > snap.Index })
		if k > 0 {
			k--
		}
		s.runs = append(s.runs[:0], s.runs[k:]...)
	}
	s.snapIndex, s.snapTerm = snap.Index, snap.Term
	chained()
	if err := s.writeHardStateFile(); err != nil {
		return s.poison(err)
	}
	if s.baseIndex == snap.Index {
		if err := s.linkLatest(name); err != nil {
			return s.poison(err)
		}
	}
	if err := s.compact(keep); err != nil { // fsyncs the folder
		return s.poison(err)
	}
	s.lg.Info("snapshot saved", zap.String("file", name), zap.Uint64("index", snap.Index), zap.Uint64("term", snap.Term))
	return nil
}

// compact deletes the oldest segments that hold no entry above readFloor
// (all but the current one when the log was discarded), oldest first so that
// a crash in between leaves a contiguous run, the deltas the newest base
// replaced, and all but the newest two bases.
func (s *Storage) compact(keep bool) error {
	n := 0
	for n < len(s.segs)-1 && (!keep || s.segs[n].maxIdx <= s.readFloor) {
		n++
	}
	for _, seg := range s.segs[:n] {
		if err := os.Remove(filepath.Join(s.dir, seg.name)); err != nil {
			return err
		}
		s.lg.Debug("log segment deleted", zap.String("file", seg.name))
	}
	s.segs = append(s.segs[:0], s.segs[n:]...)
	l, err := listDir(s.dir)
	if err != nil {
		return err
	}
	if err := s.removeStaleDeltas(l); err != nil {
		return err
	}
	snaps := l.snaps
	for len(snaps) > 2 {
		if err := os.Remove(filepath.Join(s.dir, snapshotName(snaps[0]))); err != nil {
			return err
		}
		s.lg.Debug("snapshot deleted", zap.String("file", snapshotName(snaps[0])))
		snaps = snaps[1:]
	}
	return syncDir(s.dir)
}

// linkLatest points the symbolic link snapshot.json at the newest snapshot,
// atomically, so that people and scripts have one stable name for it
// (jq .StateMachine.Contents persistence/r0/snapshot.json). Recovery ignores it.
func (s *Storage) linkLatest(name string) error {
	tmp := filepath.Join(s.dir, latestSnapshotLink+tmpSuffix)
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, latestSnapshotLink))
}

// writeHardStateFile writes s.hs, whose commit index never passes the
// durable end of the log (Save and SaveHardStateNoSync check it before s.hs
// takes it, a snapshot that discards the log is only installed above the
// commit index, Raft figure 13), so recovery may hold the log to it.
func (s *Storage) writeHardStateFile() error {
	b, err := json.Marshal(s.hs)
	if err != nil {
		return err
	}
	return writeAtomic(s.dir, hardStateFile, append(b, '\n'))
}

// Close marks a clean stop: it writes hardstate.json and the clean-stop
// marker (both atomically) and closes the log. The log itself is already
// durable. Calls after Close return ErrClosed. On a poisoned Storage it
// returns the poison error and marks nothing.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The folder is released however Close ends: a poisoned Storage writes
	// nothing more either, and a node restarted in the same process (tests)
	// must be able to take it.
	defer s.unlock()
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if s.readOnly {
		return nil
	}
	if err := s.writeHardStateFile(); err != nil {
		return s.poison(err)
	}
	marker := fmt.Sprintf(`{"last_index":%d,"snapshot_index":%d}`+"\n", s.lastIndex, s.snapIndex)
	if err := writeAtomic(s.dir, cleanStopFile, []byte(marker)); err != nil {
		return s.poison(err)
	}
	if err := s.cur.Close(); err != nil {
		return s.poison(err)
	}
	s.cur = nil
	return nil
}

// LastIndex returns the index of the last stored entry (the snapshot index if the log after it is empty).
func (s *Storage) LastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex
}

// LoadSnapshot reads the newest saved snapshot back from its file (the
// node sends it to a follower that needs compacted entries; nothing keeps
// the data in memory meanwhile). It returns nil when there is none.
func (s *Storage) LoadSnapshot() (*raft.Snapshot, error) {
	s.mu.Lock()
	idx := s.snapIndex
	s.mu.Unlock()
	if idx == 0 {
		return nil, nil
	}
	l, err := listDir(s.dir)
	if err != nil {
		return nil, err
	}
	c, err := s.findChain(l)
	if err != nil {
		return nil, err
	}
	snap, deltas, _, _, err := s.loadChain(c)
	if err != nil || deltas == nil {
		return snap, err
	}
	if snap.Data, err = deltas.Materialize(snap.Data); err != nil {
		return nil, s.corrupt(snapshotName(c.base), -1, "StateMachine cannot take the deltas: "+err.Error())
	}
	return snap, nil
}

// SnapshotIndex returns the index of the newest snapshot, 0 if none.
func (s *Storage) SnapshotIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapIndex
}

// Err returns the poison error, or nil.
func (s *Storage) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func encodeSnapshot(index, term uint64, peers []raft.ID, data []byte) []byte {
	var b bytes.Buffer
	if err := writeSnapshotFile(&b, raft.Snapshot{Index: index, Term: term, Peers: peers}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.Bytes()
}

// encodeError marks a failure of the state machine's encoder, as opposed to
// the file system's: it does not poison the Storage.
type encodeError struct{ err error }

func (e encodeError) Error() string { return e.err.Error() }

// writeSnapshotFile writes a snapshot file's content: the state machine
// between a head and a tail, with the checksum of the state machine's
// bytes after it, so the state can be streamed without being held whole.
func writeSnapshotFile(w io.Writer, meta raft.Snapshot, encode func(io.Writer) error) error {
	b := make([]byte, 0, 128)
	b = append(b, `{"Index":`...)
	b = strconv.AppendUint(b, meta.Index, 10)
	b = append(b, `,"Term":`...)
	b = strconv.AppendUint(b, meta.Term, 10)
	b = append(b, `,"Peers":[`...)
	for k, p := range meta.Peers {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	b = append(b, ']')
	if meta.Membership != nil {
		b = append(b, `,"Membership":`...)
		b = append(b, raft.EncodeMembership(*meta.Membership)...)
	}
	b = append(b, `,"StateMachine":`...)
	if _, err := w.Write(b); err != nil {
		return err
	}
	crc := crc32.New(castagnoli)
	if err := encode(io.MultiWriter(w, crc)); err != nil {
		var werr writeError
		if errors.As(err, &werr) {
			return err
		}
		return encodeError{err}
	}
	_, err := fmt.Fprintf(w, `,"StateMachineCRC32C":"%08x"}`+"\n", crc.Sum32())
	return err
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// WriteFileAtomic replaces path with the concatenation of parts: a temp
// file, fsync, rename, fsync of the folder, so a reader sees the old file or
// the whole new one, after a crash too. The node and the client use it for
// their JSON files.
func WriteFileAtomic(path string, parts ...[]byte) error {
	return writeAtomic(filepath.Dir(path), filepath.Base(path), parts...)
}

// writeAtomic replaces dir/name with content: temp file, fsync, rename, fsync dir.
func writeAtomic(dir, name string, parts ...[]byte) error {
	return writeAtomicFunc(dir, name, func(w io.Writer) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeError marks a failed write to the file, so that writeSnapshotFile
// can tell it from its encoder's own failure.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

type fileWriter struct{ w *bufio.Writer }

func (f fileWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

// writeAtomicFunc replaces dir/name with what write writes, through a
// buffer: temp file, fsync, rename, fsync dir.
func writeAtomicFunc(dir, name string, write func(w io.Writer) error) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	err = write(fileWriter{bw})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		var encErr encodeError
		if errors.As(err, &encErr) {
			return err
		}
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync folder %s: %w", dir, err)
	}
	return nil
}
