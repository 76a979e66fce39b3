package snapstream

import (
	"errors"
	"fmt"
	"os"

	"raftkv/src/raft"
)

// Receiver stages the chunks of one snapshot at a time into a file, in
// order, and says when it is whole. It is driven by one goroutine (the
// runtime's loop).
//
// Invariant: the staging file holds exactly bytes [0, received) of the
// snapshot (from, index, term), as the sender sent them.
type Receiver struct {
	// path is the staging file; whole is where a complete one goes, so
	// that the next transfer cannot overwrite it before it is installed.
	path, whole string
	f           *os.File
	// The transfer being staged: which snapshot, from which leader (two
	// leaders' files of one snapshot may differ byte for byte), its size
	// and how much of it is staged.
	from        raft.ID
	index, term uint64
	size        int64
	received    int64
	// last is the transfer completed last: its late or repeated chunks
	// are answered as complete, not staged again.
	last Complete
	// Planted is NoPlantedBug except in TestPlantedAcceptWrongOffsetIsCaught.
	Planted PlantedBug
}

// PlantedBug is a bug planted on purpose into the Receiver, to show that
// the tests catch it.
type PlantedBug uint8

const (
	// NoPlantedBug is the correct receiver.
	NoPlantedBug PlantedBug = iota
	// PlantAcceptWrongOffset appends a chunk whatever its offset: a lost
	// or reordered chunk leaves a hole and shifts everything after it.
	PlantAcceptWrongOffset
)

// NewReceiver stages into path and moves a complete snapshot to whole
// (files the runtime's recovery removes if the process dies meanwhile).
func NewReceiver(path, whole string) *Receiver { return &Receiver{path: path, whole: whole} }

// Complete is a snapshot staged whole and synced: the runtime verifies and
// installs the file at Path, then tells the core (a MsgSnap from From in
// LeaderTerm).
type Complete struct {
	Path        string
	From        raft.ID
	LeaderTerm  uint64
	Index, Term uint64
	Size        int64
}

// ErrBadChunk is wrapped by the errors of chunks no correct sender sends.
var ErrBadChunk = errors.New("snapstream: malformed chunk")

// OnChunk stages chunk m if it is the one expected, and returns the ack to
// send and, once the file is whole, the Complete transfer (after which the
// receiver forgets it: the file is the runtime's). An error is a malformed
// chunk (dropped, nothing staged, no ack) or a failed write of the staging
// file (the transfer restarts from 0 at the next chunk).
func (r *Receiver) OnChunk(m raft.Message) (ack raft.Message, done *Complete, err error) {
	s := m.Snapshot
	switch {
	case m.Type != MsgChunk || s == nil:
		return ack, nil, fmt.Errorf("%w: %s", ErrBadChunk, m.Type)
	case m.Commit == 0 || m.Commit > 1<<50 || m.Index >= m.Commit || uint64(len(s.Data)) > m.Commit-m.Index || len(s.Data) == 0:
		return ack, nil, fmt.Errorf("%w: %d bytes at offset %d of %d", ErrBadChunk, len(s.Data), m.Index, m.Commit)
	}
	ack = raft.Message{Type: MsgAck, From: m.To, To: m.From, Term: m.Term, Index: s.Index, LogTerm: s.Term}
	off, size := int64(m.Index), int64(m.Commit)
	if l := r.last; l.From == m.From && l.Index == s.Index && l.Term == s.Term && l.Size == size {
		ack.Commit = uint64(size)
		return ack, nil, nil
	}
	same := r.f != nil && r.from == m.From && r.index == s.Index && r.term == s.Term && r.size == size
	if !same {
		if off != 0 && r.Planted != PlantAcceptWrongOffset {
			// Another transfer's chunk, or one whose start we lost: ask
			// for the start.
			ack.Reject = true
			return ack, nil, nil
		}
		if err := r.begin(m.From, s.Index, s.Term, size); err != nil {
			return ack, nil, err
		}
	}
	switch {
	case off == r.received || r.Planted == PlantAcceptWrongOffset:
		if _, err := r.f.WriteAt(s.Data, r.received); err != nil {
			r.abort()
			return ack, nil, fmt.Errorf("snapstream: stage snapshot %d: %w", s.Index, err)
		}
		r.received += int64(len(s.Data))
	case off > r.received:
		// A gap: a chunk was lost or overtaken. Never written out of
		// place; the sender goes back.
		ack.Reject = true
	}
	// off < received: a duplicate; the ack says where we are.
	ack.Commit = uint64(r.received)
	if r.received < r.size {
		return ack, nil, nil
	}
	if err := r.f.Sync(); err != nil {
		r.abort()
		return ack, nil, fmt.Errorf("snapstream: sync staged snapshot %d: %w", s.Index, err)
	}
	if err := r.f.Close(); err != nil {
		r.f = nil
		r.abort()
		return ack, nil, fmt.Errorf("snapstream: close staged snapshot %d: %w", s.Index, err)
	}
	if err := os.Rename(r.path, r.whole); err != nil {
		r.f = nil
		r.abort()
		return ack, nil, fmt.Errorf("snapstream: move staged snapshot %d: %w", s.Index, err)
	}
	done = &Complete{Path: r.whole, From: r.from, LeaderTerm: m.Term, Index: r.index, Term: r.term, Size: r.size}
	r.f, r.received, r.last = nil, 0, *done
	return ack, done, nil
}

// begin starts staging a new transfer, replacing any other.
func (r *Receiver) begin(from raft.ID, index, term uint64, size int64) error {
	r.abort()
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("snapstream: stage snapshot %d: %w", index, err)
	}
	r.f, r.from, r.index, r.term, r.size, r.received = f, from, index, term, size, 0
	return nil
}

// abort drops the transfer being staged.
func (r *Receiver) abort() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	r.received = 0
}

// Forget forgets the transfer completed last (its file was refused): its
// chunks are staged again if they come.
func (r *Receiver) Forget() { r.last = Complete{} }

// Close drops the transfer being staged and removes the staging file.
func (r *Receiver) Close() error {
	r.abort()
	for _, p := range []string{r.path, r.whole} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Staged reports the transfer being staged and how much of it is in.
func (r *Receiver) Staged() (index, term uint64, received, size int64) {
	if r.f == nil {
		return 0, 0, 0, 0
	}
	return r.index, r.term, r.received, r.size
}
