package node

import (
	"testing"

	"raftkv/src/raft"
)

func TestPickTransferee(t *testing.T) {
	st := func(prs map[raft.ID]raft.Progress) raft.Status {
		return raft.Status{ID: 0, Progress: prs}
	}
	all := map[raft.ID]bool{0: true, 1: true, 2: true, 3: true}
	for _, tc := range []struct {
		name string
		st   raft.Status
		up   map[raft.ID]bool
		want raft.ID
	}{
		{"most caught up", st(map[raft.ID]raft.Progress{0: {Match: 9, RecentActive: true}, 1: {Match: 5, RecentActive: true}, 2: {Match: 8, RecentActive: true}}), all, 2},
		{"tie: lowest ID", st(map[raft.ID]raft.Progress{0: {Match: 9, RecentActive: true}, 1: {Match: 8, RecentActive: true}, 2: {Match: 8, RecentActive: true}}), all, 1},
		{"not recently active", st(map[raft.ID]raft.Progress{0: {Match: 9, RecentActive: true}, 1: {Match: 5, RecentActive: true}, 2: {Match: 9}}), all, 1},
		{"not connected", st(map[raft.ID]raft.Progress{0: {Match: 9, RecentActive: true}, 1: {Match: 5, RecentActive: true}, 2: {Match: 9, RecentActive: true}}), map[raft.ID]bool{1: true}, 1},
		{"nobody", st(map[raft.ID]raft.Progress{0: {Match: 9, RecentActive: true}, 1: {Match: 5}}), all, raft.None},
	} {
		if got := pickTransferee(tc.st, tc.up); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
}
