package node

import (
	"errors"

	"raftkv/src/raft"
)

// walReader is the core's raft.LogStorage: the entries its log window
// evicted, read back from the WAL (storage.ReadEntries) for a follower that
// lags behind. The core only learns that the entries cannot be had; a
// failed read other than a compacted range (damage, an I/O error) is kept
// in readErr and stops the node at the end of the loop turn, as a failed
// write does: the node no longer knows what its disk holds.
type walReader struct{ s *Node }

func (r walReader) Entries(lo, hi, maxBytes uint64) ([]raft.Entry, error) {
	ents, err := r.s.disk.ReadEntries(lo, hi, maxBytes)
	if err != nil && !errors.Is(err, raft.ErrCompacted) && r.s.readErr == nil {
		r.s.readErr = err
	}
	return ents, err
}
