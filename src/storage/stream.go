package storage

import (
	"fmt"
	"os"
	"path/filepath"

	"raftkv/src/raft"
)

// The two ends of a snapshot sent to a follower in chunks (package
// snapstream): the leader opens its newest snapshot as one self-contained
// stream of bytes, the follower stages the bytes in a file, verifies it
// and installs it. The wire form is the snapshot file itself.

// SnapshotFile is an open snapshot file, read for sending. It stays
// readable after a newer snapshot deletes it (the open file keeps it).
type SnapshotFile struct {
	f           *os.File
	size        int64
	index, term uint64
}

// ReadAt reads the file's bytes at off.
func (f *SnapshotFile) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

// Close closes the file.
func (f *SnapshotFile) Close() error { return f.f.Close() }

// Size is the file's size in bytes.
func (f *SnapshotFile) Size() int64 { return f.size }

// Index and Term are the snapshot's.
func (f *SnapshotFile) Index() uint64 { return f.index }
func (f *SnapshotFile) Term() uint64  { return f.term }

// OpenSnapshot opens the newest saved snapshot for sending; nil when there
// is none. When the newest snapshot is a delta, base and deltas are first
// written as one snapshot file (the form a follower installs) to a
// temporary file, which is unlinked at once: the open file keeps it until
// Close, and a crash leaves only a *.tmp that recovery deletes.
func (s *Storage) OpenSnapshot() (*SnapshotFile, error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return nil, s.err
	}
	if s.snapIndex == 0 {
		s.mu.Unlock()
		return nil, nil
	}
	if s.baseIndex == s.snapIndex {
		defer s.mu.Unlock() // the snapshot cannot be deleted before it is open
		f, err := os.Open(filepath.Join(s.dir, snapshotName(s.snapIndex)))
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		return openedSnapshot(f, s.snapIndex, s.snapTerm)
	}
	s.mu.Unlock()
	f, err := os.CreateTemp(s.dir, "send-*"+tmpSuffix)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	os.Remove(f.Name())
	index, term, err := s.WriteSnapshotTo(f)
	if err != nil || index == 0 {
		f.Close()
		return nil, err
	}
	return openedSnapshot(f, index, term)
}

func openedSnapshot(f *os.File, index, term uint64) (*SnapshotFile, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &SnapshotFile{f: f, size: st.Size(), index: index, term: term}, nil
}

// VerifySnapshotFile checks a received snapshot file at path (in any
// folder) as recovery checks a snapshot: it must parse, hold the snapshot
// at index and term, and its state must match its checksum. It returns the
// snapshot's metadata (Data nil). Damage is a *CorruptError with the path
// and offset. It returns the snapshot with its state in Data, so that the
// state machine is restored without reading the file again.
func (s *Storage) VerifySnapshotFile(path string, index, term uint64) (*raft.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	// Errors name the file as corrupt does: relative to the folder.
	name, err := filepath.Rel(s.dir, path)
	if err != nil {
		name = path
	}
	snap, err := s.parseSnapshot(b, name, index)
	if err != nil {
		return nil, err
	}
	if snap.Term != term {
		return nil, s.corrupt(name, -1, fmt.Sprintf("snapshot term %d, want %d", snap.Term, term))
	}
	return snap, nil
}

// InstallSnapshotFile makes a received snapshot file, verified with
// VerifySnapshotFile and synced, this node's newest snapshot: it is moved
// into the folder under its name and recorded as SaveSnapshot records one
// (the log after it kept if it holds the snapshot's last entry, else
// discarded). path must be in the node's folder (a rename).
func (s *Storage) InstallSnapshotFile(path string, snap raft.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, err := s.checkSnapshot(snap); done || err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	name := snapshotName(snap.Index)
	if err := os.Rename(path, filepath.Join(s.dir, name)); err != nil {
		return s.poison(err)
	}
	if err := syncDir(s.dir); err != nil {
		return s.poison(err)
	}
	// A received snapshot is whole: a new base, under whatever deltas
	// the node had (compact deletes them).
	return s.recordSnapshot(snap, name, func() {
		s.baseIndex, s.baseBytes, s.deltaBytes = snap.Index, st.Size(), 0
	})
}
