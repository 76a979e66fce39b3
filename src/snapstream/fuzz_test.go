package snapstream

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"raftkv/src/raft"
)

// FuzzReceiver feeds a receiver chunks of one snapshot at arbitrary
// offsets and lengths (two bytes of input per chunk), from two leaders and
// two snapshots (a third byte), and checks after each one that what is
// staged is exactly a prefix of the snapshot it belongs to, and that a
// completed file is that snapshot whole.
func FuzzReceiver(f *testing.F) {
	f.Add([]byte{0, 10, 0, 10, 10, 0, 20, 10, 0, 30, 20, 0})
	f.Add([]byte{5, 10, 0, 0, 10, 1, 0, 64, 0, 10, 10, 1})
	f.Add([]byte{0, 64, 0, 64, 64, 0, 128, 72, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		r := NewReceiver(filepath.Join(dir, "in.tmp"), filepath.Join(dir, "whole.tmp"))
		srcs := [2][]byte{bytes.Repeat([]byte("abcdefghij"), 20), bytes.Repeat([]byte("0123456789ABCDEF"), 9)}
		for len(in) >= 3 {
			off, n, which := int(in[0]), int(in[1]), int(in[2])%4
			in = in[3:]
			src := srcs[which%2]
			from := raft.ID(which / 2)
			if off >= len(src) || n == 0 {
				continue
			}
			n = min(n, len(src)-off)
			m := raft.Message{Type: MsgChunk, From: from, To: 9, Term: 1, Index: uint64(off), Commit: uint64(len(src)),
				Snapshot: &raft.Snapshot{Index: uint64(100 + which%2), Term: 1, Data: src[off : off+n]}}
			ack, done, err := r.OnChunk(m)
			if err != nil {
				t.Fatal(err)
			}
			if done != nil {
				got, err := os.ReadFile(done.Path)
				if err != nil || !bytes.Equal(got, src) {
					t.Fatalf("completed file differs from snapshot %d", done.Index)
				}
				continue
			}
			index, _, received, _ := r.Staged()
			if index == 0 {
				continue
			}
			staged, err := os.ReadFile(filepath.Join(dir, "in.tmp"))
			if err != nil {
				t.Fatal(err)
			}
			want := srcs[index-100][:received]
			if !bytes.Equal(staged[:min(len(staged), int(received))], want) || int64(len(staged)) < received {
				t.Fatalf("staged %d bytes are not the snapshot's prefix", received)
			}
			if ack.Commit != uint64(received) && !ack.Reject && ack.Commit != uint64(len(src)) {
				t.Fatalf("ack of %d with %d staged", ack.Commit, received)
			}
		}
	})
}
