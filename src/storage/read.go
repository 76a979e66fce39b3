package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"raftkv/src/raft"
)

// Reading entries back. The Raft core keeps only a window of recent entries
// in memory (raft.Config.LogStorage); a leader reads older ones back from the
// segments to send them to a follower that lags behind. The Storage keeps a
// sparse index of where entries are: a run of consecutive entries written
// one after the other into one segment is one entryLoc, cut every
// locMaxEntries entries or locMaxBytes of file so that a read scans at most
// that much before the entry it wants.

const (
	locMaxEntries = 1024
	locMaxBytes   = 1 << 20
)

// entryLoc says that entries first..last are the first entry records at or
// after offset off of segment seq, one after the other (hard-state records
// may come between them). Invariant: the locs of a Storage are sorted and
// disjoint, and cover (readFloor, lastIndex] after every call that returns.
type entryLoc struct {
	first, last uint64
	seq         uint64
	off         int64
	// end is the file offset just past entry last; closed: a truncation
	// cut this run, so the records after it in the file are stale and the
	// next entries start a new run.
	end    int64
	closed bool
}

// locIndex is the sparse index of the live log's entries in the segments.
type locIndex struct{ locs []entryLoc }

// note records that entry index was written in segment seq at [off, end).
func (x *locIndex) note(index, seq uint64, off, end int64) {
	if k := len(x.locs); k > 0 {
		l := &x.locs[k-1]
		if !l.closed && l.seq == seq && l.last+1 == index && index-l.first < locMaxEntries && end-l.off <= locMaxBytes {
			l.last, l.end = index, end
			return
		}
	}
	x.locs = append(x.locs, entryLoc{first: index, last: index, seq: seq, off: off, end: end})
}

// truncate forgets every entry at index >= i (they are being replaced).
func (x *locIndex) truncate(i uint64) {
	k := sort.Search(len(x.locs), func(k int) bool { return x.locs[k].last >= i })
	if k < len(x.locs) && x.locs[k].first < i {
		x.locs[k].last = i - 1
		k++
	}
	x.locs = x.locs[:k]
	if k > 0 {
		x.locs[k-1].closed = true
	}
}

// compact forgets every entry at index <= i (a snapshot covers them).
func (x *locIndex) compact(i uint64) {
	k := sort.Search(len(x.locs), func(k int) bool { return x.locs[k].last > i })
	x.locs = append(x.locs[:0], x.locs[k:]...)
}

// ReadEntries reads entries [lo, hi) back from the log, or a prefix of them
// of at most maxBytes of Data, but always at least one entry. Entries at or
// below readFloor (the snapshot before the newest, see Storage) give
// raft.ErrCompacted. A record that no longer
// reads as it was written is refused as *CorruptError with file and offset.
// It is meant for the node's loop (the one writer); a snapshot saved
// meanwhile by another goroutine may delete a segment it needs, which also
// gives raft.ErrCompacted.
func (s *Storage) ReadEntries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	s.mu.Lock()
	if err := s.checkRead(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if lo <= s.readFloor {
		s.mu.Unlock()
		return nil, raft.ErrCompacted
	}
	if lo >= hi || hi > s.lastIndex+1 {
		last := s.lastIndex
		s.mu.Unlock()
		return nil, fmt.Errorf("storage: read [%d, %d) outside the log (%d, %d]", lo, hi, s.readFloor, last)
	}
	locs := s.locs.locs
	k := sort.Search(len(locs), func(k int) bool { return locs[k].last >= lo })
	var want []entryLoc
	for ; k < len(locs) && locs[k].first < hi; k++ {
		want = append(want, locs[k])
	}
	names := make([]string, len(want))
	for i, l := range want {
		names[i] = s.segmentNameLocked(l.seq)
	}
	s.mu.Unlock()
	if len(want) == 0 || want[0].first > lo {
		return nil, fmt.Errorf("storage: no record of where entry %d is (a bug)", lo)
	}

	var out []raft.Entry
	var size uint64
	next := lo
	for i, l := range want {
		if names[i] == "" {
			return nil, raft.ErrCompacted
		}
		upto := min(hi-1, l.last)
		done, err := s.readLoc(names[i], l, next, upto, maxBytes, &out, &size)
		if err != nil {
			return nil, err
		}
		next = upto + 1
		if done || next >= hi {
			break
		}
	}
	return out, nil
}

// readLoc appends entries next..upto of run l, in file name, to out until
// their Data passes maxBytes (it takes at least one entry overall); done
// means it stopped for maxBytes.
func (s *Storage) readLoc(name string, l entryLoc, next, upto, maxBytes uint64, out *[]raft.Entry, size *uint64) (done bool, err error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, raft.ErrCompacted // deleted after a newer snapshot
	}
	if err != nil {
		return false, fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, l.off, l.end-l.off), 64<<10)
	off := l.off
	want := l.first
	for want <= upto {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A record longer than the buffer (a large command).
			big := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				big = append(big, line...)
			}
			line = big
		}
		if err != nil {
			return false, s.corrupt(name, off, fmt.Sprintf("entry %d expected here: %v", want, err))
		}
		rc, derr := decodeRecord(line[:len(line)-1])
		if derr != nil {
			return false, s.corrupt(name, off, derr.Error())
		}
		off += int64(len(line))
		if rc.kind != kindEntry {
			continue
		}
		if rc.entry.Index != want {
			return false, s.corrupt(name, off-int64(len(line)), fmt.Sprintf("entry %d where entry %d was written", rc.entry.Index, want))
		}
		want++
		if rc.entry.Index < next {
			continue
		}
		// The decoded data may alias the reader's buffer.
		rc.entry.Data = bytes.Clone(rc.entry.Data)
		*size += uint64(len(rc.entry.Data))
		if len(*out) > 0 && *size > maxBytes {
			return true, nil
		}
		*out = append(*out, rc.entry)
	}
	return false, nil
}

// segmentNameLocked returns the file name of segment seq, "" if it is gone.
func (s *Storage) segmentNameLocked(seq uint64) string {
	k := sort.Search(len(s.segs), func(k int) bool { return s.segs[k].seq >= seq })
	if k < len(s.segs) && s.segs[k].seq == seq {
		return s.segs[k].name
	}
	return ""
}

// checkRead is check for readers: a closed or poisoned Storage reads
// nothing, a read-only one may.
func (s *Storage) checkRead() error {
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return ErrClosed
	}
	return nil
}
