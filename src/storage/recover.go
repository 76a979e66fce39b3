package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// dirListing is what a node's folder holds, by kind.
type dirListing struct {
	segs      []segment // sorted by seq
	snaps     []uint64  // snapshot indexes, ascending
	deltas    []string  // delta snapshot files, by from then to
	tmps      []string
	hardState bool
	cleanStop bool
}

func listDir(dir string) (dirListing, error) {
	var l dirListing
	des, err := os.ReadDir(dir)
	if err != nil {
		return l, fmt.Errorf("storage: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			l.tmps = append(l.tmps, name)
		case name == hardStateFile:
			l.hardState = true
		case name == cleanStopFile:
			l.cleanStop = true
		case strings.HasPrefix(name, "wal-") && strings.HasSuffix(name, ".jsonl"):
			var seq, first uint64
			if _, err := fmt.Sscanf(name, "wal-%d-%d.jsonl", &seq, &first); err != nil || segmentName(seq, first) != name {
				return l, &CorruptError{File: name, Offset: -1, Reason: "not a log segment name"}
			}
			l.segs = append(l.segs, segment{seq: seq, first: first, name: name})
		case strings.HasPrefix(name, "delta-"):
			if _, _, ok := parseDeltaName(name); ok {
				l.deltas = append(l.deltas, name)
			}
		case strings.HasPrefix(name, "snapshot-"):
			if i, ok := parseSnapshotName(name); ok {
				l.snaps = append(l.snaps, i)
			}
		}
	}
	sort.Slice(l.segs, func(a, b int) bool { return l.segs[a].seq < l.segs[b].seq })
	sort.Slice(l.snaps, func(a, b int) bool { return l.snaps[a] < l.snaps[b] })
	slices.Sort(l.deltas) // fixed-width numbers: by from, then to
	return l, nil
}

func parseSnapshotName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "snapshot-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".json")
	if !ok || len(s) != 16 {
		return 0, false
	}
	i, err := strconv.ParseUint(s, 10, 64)
	return i, err == nil && snapshotName(i) == name
}

// replayer rebuilds the log from the records of all segments, in order.
type replayer struct {
	started bool
	first   uint64 // index of ents[0] (or of the next entry when ents is empty)
	ents    []raft.Entry
	hs      raft.HardState
	hasHS   bool
	mark    uint64 // newest snapshot record
	// maxCommit is the highest commit index of any hard-state record read,
	// at maxCommitAt: the log must reach it (checkComplete).
	maxCommit   uint64
	maxCommitAt recordAt
	// locs is where the entries are (read.go).
	locs locIndex
}

// recordAt is where a record is: a segment's file name and a byte offset.
type recordAt struct {
	name string
	off  int64
}

func (r *replayer) last() uint64 { return r.first + uint64(len(r.ents)) - 1 }

// apply applies one record; a non-empty result says why it cannot follow the
// records before it.
func (r *replayer) apply(rc *record) string {
	switch rc.kind {
	case kindEntry:
		i := rc.entry.Index
		switch {
		case i == 0:
			return "entry at index 0"
		case !r.started:
			r.started, r.first = true, i
		case i != r.first+uint64(len(r.ents)):
			return fmt.Sprintf("entry index %d out of order: want %d", i, r.first+uint64(len(r.ents)))
		}
		r.ents = append(r.ents, rc.entry)
	case kindTruncate:
		i := rc.index
		switch {
		case i == 0:
			return "truncate at index 0"
		case !r.started:
			r.started, r.first, r.ents = true, i, r.ents[:0]
		case i > r.last()+1:
			return fmt.Sprintf("truncate at %d beyond the last entry %d", i, r.last())
		case i >= r.first:
			r.ents = r.ents[:i-r.first]
		default:
			// The prefix before i is in deleted segments (covered by a snapshot).
			r.first, r.ents = i, r.ents[:0]
		}
	case kindSnapshot:
		i := rc.index
		if i == 0 || i <= r.mark {
			return fmt.Sprintf("snapshot record at %d does not follow the one at %d", i, r.mark)
		}
		r.mark = i
		switch {
		case !rc.keep:
			// The log was discarded: it goes on at i+1.
		case !r.started:
			// The entries around i were in segments deleted after a newer
			// snapshot; where the log starts is checked at the end.
			return ""
		case i+1 < r.first:
			// An older snapshot's record; the segments before it were
			// deleted after a newer snapshot (checked at the end).
			return ""
		case i > r.last():
			return fmt.Sprintf("snapshot record at %d keeps the log, but the log ends at %d", i, r.last())
		case i >= r.first && r.ents[i-r.first].Term != rc.term:
			return fmt.Sprintf("snapshot record at %d/t%d keeps the log, but the log has term %d there", i, rc.term, r.ents[i-r.first].Term)
		case i >= r.first:
			r.ents = r.ents[i-r.first+1:]
			r.first = i + 1
			return ""
		default: // i+1 == r.first
			return ""
		}
		r.started, r.first, r.ents = true, i+1, r.ents[:0]
	case kindHardState:
		r.hs, r.hasHS = rc.hs, true
	}
	return ""
}

func (s *Storage) corrupt(file string, off int64, reason string) error {
	return &CorruptError{File: filepath.Join(s.dir, file), Offset: off, Reason: reason}
}

// lostAdvice ends every report of records that were synced and are missing:
// such a node must not rejoin as if it had them (it could vote for a
// candidate that lacks committed entries, or count itself in a quorum for
// entries it no longer holds; Alagappan et al., FAST'18, "Protocol-Aware
// Recovery"), so it refuses, and the operator decides (README).
const lostAdvice = "records that were synced are missing; refusing to start (restore this node from a peer: see README)"

// tornTail is damage at the end of the last segment that may be a torn last
// write. It is cut only after the whole folder was read and nothing durable
// is lost with it: what cannot be proved torn is never repaired.
type tornTail struct {
	seg       *segment
	off, size int64
	why       error
}

// cleanStopMarker is clean-stop.json: the log's last index when Close ran.
type cleanStopMarker struct {
	LastIndex     *uint64 `json:"last_index"`
	SnapshotIndex *uint64 `json:"snapshot_index"`
}

// commitBound is the highest index the folder says was durable and where it says so.
type commitBound struct {
	index uint64
	what  string // "the commit index recorded in hardstate.json is 5678"
}

// recover reads the folder and fills s; see the package doc for the rules.
// When records that were synced are missing from a folder that otherwise
// reads whole, it returns the state it read along with the error (Open hands
// it to a read-only caller only).
func (s *Storage) recover() (*Recovered, error) {
	rec := &Recovered{}
	l, err := listDir(s.dir)
	if err != nil {
		return nil, err
	}
	rec.CleanStop = l.cleanStop
	for k := 1; k < len(l.segs); k++ {
		if l.segs[k].seq != l.segs[k-1].seq+1 {
			return nil, s.corrupt(l.segs[k].name, -1, fmt.Sprintf("log segment %d missing before it: %s", l.segs[k-1].seq+1, lostAdvice))
		}
	}

	// The newest snapshot (the newest base and the deltas after it) must
	// parse. An older one is never used instead: the log before the newest
	// was deleted, so falling back would lose data.
	c, err := s.findChain(l)
	if err != nil {
		return nil, err
	}
	if c.base > 0 {
		snap, deltas, baseBytes, deltaBytes, err := s.loadChain(c)
		if err != nil {
			return nil, err
		}
		rec.Snapshot, rec.Deltas = snap, deltas
		s.baseIndex, s.baseBytes, s.deltaBytes = c.base, baseBytes, deltaBytes
	}
	var sI, sT uint64
	if rec.Snapshot != nil {
		sI, sT = rec.Snapshot.Index, rec.Snapshot.Term
	}
	var fileHS raft.HardState
	if l.hardState {
		b, err := os.ReadFile(filepath.Join(s.dir, hardStateFile))
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		if err := strictUnmarshal(b, &fileHS); err != nil {
			return nil, s.corrupt(hardStateFile, -1, err.Error())
		}
	}
	var stop cleanStopMarker
	if l.cleanStop {
		b, err := os.ReadFile(filepath.Join(s.dir, cleanStopFile))
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		if err := strictUnmarshal(b, &stop); err != nil || stop.LastIndex == nil {
			why := "no last_index"
			if err != nil {
				why = err.Error()
			}
			return nil, s.corrupt(cleanStopFile, -1, why)
		}
	}

	var r replayer
	var torn *tornTail
	var prevSize int64
	for k := range l.segs {
		var prev *segment
		if k > 0 {
			prev = &l.segs[k-1]
		}
		size, t, err := s.replaySegment(&r, &l.segs[k], prev, prevSize, k == len(l.segs)-1, sI)
		if err != nil {
			return nil, err
		}
		prevSize, torn = size, t
	}

	if r.mark > sI {
		return nil, s.corrupt(snapshotName(r.mark), -1, fmt.Sprintf("the log records a snapshot at %d but the newest snapshot file is at %d", r.mark, sI))
	}
	if r.started && r.first > sI+1 {
		name := "log"
		if len(l.segs) > 0 {
			name = l.segs[0].name
		}
		return nil, s.corrupt(name, -1, fmt.Sprintf("the log starts at index %d but the snapshot is at %d: entries %d..%d are missing", r.first, sI, sI+1, r.first-1))
	}
	var ents []raft.Entry
	switch {
	case !r.started || r.last() <= sI:
		ents = nil
	case sI >= r.first && r.ents[sI-r.first].Term != sT:
		// A crash between writing an installed snapshot and its log record:
		// the log after it conflicts with the snapshot and is discarded, as
		// SaveSnapshot would have done (Raft figure 13, step 7).
		s.lg.Warn("log entries after the snapshot conflict with it and are discarded",
			zap.Uint64("snapshot_index", sI), zap.Uint64("snapshot_term", sT),
			zap.Uint64("log_term", r.ents[sI-r.first].Term), zap.Uint64("last_index", r.last()))
		rec.Repairs = append(rec.Repairs, fmt.Sprintf("discard log entries %d..%d: they conflict with snapshot %d/t%d", sI+1, r.last(), sI, sT))
		ents = nil
	default:
		ents = r.ents[sI+1-r.first:]
	}
	if len(ents) == 0 {
		ents = nil
	}
	rec.Entries = ents
	if r.hasHS {
		rec.HardState = r.hs
	} else {
		rec.HardState = fileHS
	}
	// hardstate.json is fsynced, the last commit-only record of the log may
	// not be (SaveHardStateNoSync): the higher of the two was durable.
	rec.HardState.Commit = max(rec.HardState.Commit, fileHS.Commit)
	last := sI
	if len(ents) > 0 {
		last = ents[len(ents)-1].Index
	}
	if err := s.checkComplete(l, &r, fileHS, stop, torn, last); err != nil {
		return rec, err // no repair listed: none would be made
	}
	if torn != nil {
		rec.TornTail = true
		rec.Repairs = append(rec.Repairs, fmt.Sprintf("cut torn tail of %s at offset %d (%d bytes: %v)", torn.seg.name, torn.off, torn.size-torn.off, torn.why))
	}

	s.segs = l.segs
	s.hs = rec.HardState
	s.snapIndex, s.snapTerm, s.lastIndex, s.readFloor = sI, sT, last, sI
	s.locs = r.locs
	s.locs.compact(sI)
	s.locs.truncate(last + 1)
	for k := range ents {
		if len(s.runs) == 0 || s.runs[len(s.runs)-1].term != ents[k].Term {
			s.runs = append(s.runs, termRun{index: ents[k].Index, term: ents[k].Term})
		}
	}

	needMark := sI > 0 && r.mark < sI
	if needMark {
		rec.Repairs = append(rec.Repairs, fmt.Sprintf("record snapshot %d in the log (a snapshot was interrupted)", sI))
	}
	for _, t := range l.tmps {
		rec.Repairs = append(rec.Repairs, "remove unfinished temp file "+t)
	}
	if l.cleanStop {
		rec.Repairs = append(rec.Repairs, "remove the clean-stop marker")
	}
	if torn != nil {
		s.lg.Warn("torn last record cut off", zap.String("file", filepath.Join(s.dir, torn.seg.name)), zap.Int64("offset", torn.off),
			zap.Int64("bytes", torn.size-torn.off), zap.Bool("read_only", s.readOnly), zap.String("reason", torn.why.Error()))
	}
	if s.readOnly {
		return rec, nil
	}
	if torn != nil {
		if err := s.cutTornTail(torn); err != nil {
			return nil, err
		}
	}
	if l.cleanStop {
		if err := os.Remove(filepath.Join(s.dir, cleanStopFile)); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	for _, t := range l.tmps {
		if err := os.Remove(filepath.Join(s.dir, t)); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if needMark {
		if err := s.openTail(); err != nil {
			return nil, err
		}
		keep := r.started && r.first <= sI+1 && sI <= r.last() && (sI < r.first || r.ents[sI-r.first].Term == sT)
		buf := appendSnapshotMark(nil, sI, sT, keep)
		if err := s.write(buf); err != nil {
			return nil, err
		}
		s.closeFile()
	}
	return rec, nil
}

// checkComplete refuses a recovered log that lacks records the folder says
// were synced: the log must reach every commit index recorded on disk (in
// hardstate.json, in any hard-state record of the log) and the last index
// clean-stop.json recorded, and the log's newest hard state must not be
// older than hardstate.json's. None of these can legitimately be ahead of
// the log: Save writes a commit index only with or after the fdatasync of
// the entries it covers, SaveHardStateNoSync only for entries already
// synced, and hardstate.json and clean-stop.json are written from that same
// state (see writeHardStateFile). So a shortfall is lost data, never a torn
// write, and a torn tail that would cut below one is refused, not cut.
//
// A loss that no durable record reaches (the end of the log of a killed node,
// above every commit index it recorded) cannot be told from a torn write by
// what is left in the folder; it is repaired as one. That is the limit of
// what one folder can prove.
func (s *Storage) checkComplete(l dirListing, r *replayer, fileHS raft.HardState, stop cleanStopMarker, torn *tornTail, last uint64) error {
	if len(l.segs) == 0 && (len(l.snaps) > 0 || l.hardState || l.cleanStop) {
		// Open creates the first segment before anything else is written,
		// and compaction never deletes the last one: the log was deleted,
		// and with it the term and vote this node may have given.
		var present []string
		if len(l.snaps) > 0 {
			present = append(present, snapshotName(l.snaps[len(l.snaps)-1]))
		}
		if l.hardState {
			present = append(present, hardStateFile)
		}
		if l.cleanStop {
			present = append(present, cleanStopFile)
		}
		return &CorruptError{File: filepath.Join(s.dir, "wal-*.jsonl"), Offset: -1, Reason: fmt.Sprintf(
			"no log segment, but %s exist: the log was deleted (its entries after the snapshot, the term and vote this node gave); %s",
			strings.Join(present, " and "), lostAdvice)}
	}
	if len(l.segs) == 0 {
		return nil // a new folder
	}
	lastSeg := l.segs[len(l.segs)-1].name
	off := int64(-1)
	detail := ""
	if torn != nil {
		off = torn.off
		detail = fmt.Sprintf(" (the %d bytes from offset %d on are damaged: %v; they are not cut)", torn.size-torn.off, torn.off, torn.why)
	}

	var b commitBound
	if fileHS.Commit > b.index {
		b = commitBound{fileHS.Commit, fmt.Sprintf("the commit index recorded in %s is %d", hardStateFile, fileHS.Commit)}
	}
	if stop.LastIndex != nil && *stop.LastIndex > b.index {
		b = commitBound{*stop.LastIndex, fmt.Sprintf("%s says the log ended at index %d when the node stopped cleanly", cleanStopFile, *stop.LastIndex)}
	}
	if r.maxCommit > b.index {
		b = commitBound{r.maxCommit, fmt.Sprintf("the commit index recorded in %s at offset %d is %d", r.maxCommitAt.name, r.maxCommitAt.off, r.maxCommit)}
	}
	if last < b.index {
		return s.corrupt(lastSeg, off, fmt.Sprintf("log ends at index %d%s but %s: %s", last, detail, b.what, lostAdvice))
	}
	if l.hardState && (fileHS.Term > r.hs.Term || fileHS.Term == r.hs.Term && fileHS.Vote != r.hs.Vote && r.hasHS && fileHS.Vote != raft.None) {
		// Every segment starts with the hard state and hardstate.json is
		// written from the last one the log holds: the log's newest
		// hard-state record can only be as new or newer.
		return s.corrupt(lastSeg, off, fmt.Sprintf("the log's newest hard state is term %d vote %d, but hardstate.json has term %d vote %d%s: %s",
			r.hs.Term, r.hs.Vote, fileHS.Term, fileHS.Vote, detail, lostAdvice))
	}

	return nil
}

// replaySegment feeds one segment's records to r and returns the segment's
// size. In the last segment, a damaged region that runs to the end of the
// file with no valid record in it may be a torn tail: it is returned, to be
// cut (unless read-only) once recovery proved nothing durable is in it.
// prev is the segment before (nil for the first) and prevSize its size.
func (s *Storage) replaySegment(r *replayer, seg, prev *segment, prevSize int64, isLast bool, snapIndex uint64) (int64, *tornTail, error) {
	path := filepath.Join(s.dir, seg.name)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("storage: %w", err)
	}
	// A segment's name holds the index it was created to take next (Save
	// and SaveSnapshot create it just before the batch that goes on there),
	// so the log before it must reach that far: if it does not, the segment
	// before it ends early, its last records lost. Unless the new segment
	// starts by discarding the log for a snapshot (SaveSnapshot writes its
	// hard state, then a snapshot record that keeps no log), or the newest
	// snapshot covers the gap (a crash before that record was written).
	gap := prev != nil && r.started && seg.first > r.last()+1
	prevLast := r.last()
	gapErr := func() error {
		return s.corrupt(prev.name, prevSize, fmt.Sprintf("the log ends at index %d here, but the next segment %s was created to go on at index %d: entries %d..%d are missing; %s",
			prevLast, seg.name, seg.first, prevLast+1, seg.first-1, lostAdvice))
	}
	// One growth per segment instead of repeated doubling of a large slice.
	r.ents = slices.Grow(r.ents, bytes.Count(data, []byte{'\n'}))
	off := 0
	var torn *tornTail
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		var line []byte
		if nl >= 0 {
			line = data[off : off+nl]
		} else {
			line = data[off:]
		}
		rc, derr := decodeRecord(line)
		if derr == nil && nl < 0 {
			derr = errors.New("incomplete last line")
		}
		if derr != nil {
			if !isLast {
				return 0, nil, s.corrupt(seg.name, int64(off), derr.Error())
			}
			if voff, ok := findValidRecord(data, off); ok {
				return 0, nil, s.corrupt(seg.name, int64(off), fmt.Sprintf("%v (a valid record follows at offset %d)", derr, voff))
			}
			torn = &tornTail{seg: seg, off: int64(off), size: int64(len(data)), why: derr}
			break
		}
		if gap && rc.kind != kindHardState {
			if rc.kind != kindSnapshot || rc.keep || rc.index+1 != seg.first {
				return 0, nil, gapErr()
			}
			gap = false
		}
		if why := r.apply(&rc); why != "" {
			return 0, nil, s.corrupt(seg.name, int64(off), why)
		}
		switch rc.kind {
		case kindEntry:
			seg.maxIdx = max(seg.maxIdx, rc.entry.Index)
			r.locs.note(rc.entry.Index, seg.seq, int64(off), int64(off+nl+1))
		case kindTruncate:
			r.locs.truncate(rc.index)
		case kindSnapshot:
			if !rc.keep {
				r.locs = locIndex{}
			}
		case kindHardState:
			if rc.hs.Commit > r.maxCommit {
				r.maxCommit, r.maxCommitAt = rc.hs.Commit, recordAt{seg.name, int64(off)}
			}
		}
		off += nl + 1
	}
	if gap && seg.first-1 > snapIndex {
		return 0, nil, gapErr()
	}
	return int64(len(data)), torn, nil
}

// findValidRecord reports the offset of the first complete valid line after
// the line at off.
func findValidRecord(data []byte, off int) (int, bool) {
	nl := bytes.IndexByte(data[off:], '\n')
	if nl < 0 {
		return 0, false
	}
	off += nl + 1
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return 0, false
		}
		if _, err := decodeRecord(data[off : off+nl]); err == nil {
			return off, true
		}
		off += nl + 1
	}
	return 0, false
}

// cutTornTail truncates the last segment at the torn tail and makes that durable.
func (s *Storage) cutTornTail(t *tornTail) error {
	path := filepath.Join(s.dir, t.seg.name)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	err = f.Truncate(t.off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: cut torn tail of %s: %w", path, err)
	}
	return nil
}

type snapshotFile struct {
	Index              *uint64          `json:"Index"`
	Term               *uint64          `json:"Term"`
	Peers              []raft.ID        `json:"Peers"`
	Membership         *raft.Membership `json:"Membership"`
	StateMachineCRC32C *string          `json:"StateMachineCRC32C"`
	StateMachine       json.RawMessage  `json:"StateMachine"`
}

func (s *Storage) loadSnapshot(name string) (*raft.Snapshot, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	want, _ := parseSnapshotName(name)
	return s.parseSnapshot(b, name, want)
}

// parseSnapshot decodes and checks a snapshot file's content b, read from
// file name, which must hold the snapshot at index want.
func (s *Storage) parseSnapshot(b []byte, name string, want uint64) (*raft.Snapshot, error) {
	f, fast := fastSnapshot(b)
	if !fast {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			off := dec.InputOffset()
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			return nil, s.corrupt(name, off, "snapshot does not parse: "+err.Error())
		}
		if rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
			return nil, s.corrupt(name, dec.InputOffset(), "data after the snapshot")
		}
	}
	switch {
	case f.Index == nil || f.Term == nil || f.StateMachine == nil || f.StateMachineCRC32C == nil:
		return nil, s.corrupt(name, -1, "snapshot lacks Index, Term, StateMachine or StateMachineCRC32C")
	case *f.Index != want:
		return nil, s.corrupt(name, -1, fmt.Sprintf("snapshot Index %d does not match its name", *f.Index))
	case fmt.Sprintf("%08x", crc32.Checksum(f.StateMachine, castagnoli)) != *f.StateMachineCRC32C:
		return nil, s.corrupt(name, -1, "StateMachine does not match StateMachineCRC32C")
	}
	if f.Membership != nil {
		if err := f.Membership.Validate(); err != nil {
			return nil, s.corrupt(name, -1, "snapshot Membership: "+err.Error())
		}
	}
	return &raft.Snapshot{Index: *f.Index, Term: *f.Term, Peers: f.Peers, Membership: f.Membership, Data: f.StateMachine}, nil
}
