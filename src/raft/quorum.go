package raft

import "slices"

// quorumIndex returns the largest value v such that at least quorum of
// values are >= v: the commit index a leader may consider (Raft 5.3, figure
// 2: "a majority of matchIndex[i] >= N"), or the newest read round a
// majority has acknowledged (Raft thesis 6.4). It needs 1 <= quorum <=
// len(values).
//
// It sorts values in place and does not allocate: it runs on every
// acknowledgement, so callers pass a reused scratch slice. The caller
// still decides whether the index may be committed (see maybeCommit: only
// an entry of the current term, Raft 5.4.2).
func quorumIndex(values []uint64, quorum int) uint64 {
	if quorum < 1 || quorum > len(values) {
		panic("raft: quorum out of range")
	}
	slices.Sort(values)
	return values[len(values)-quorum]
}
