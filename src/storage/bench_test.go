package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// benchData is a 256-byte JSON command, the shape the node stores.
func benchData(i uint64) []byte {
	d := fmt.Appendf(nil, `{"op":"put","key":"key-%08d","value":"`, i)
	d = append(d, strings.Repeat("x", 256-len(d)-2)...)
	return append(d, `"}`...)
}

// BenchmarkFsyncFloor is the physical floor: append 256 bytes and fdatasync.
func BenchmarkFsyncFloor(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := benchData(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend saves batches of 256-byte entries with a hard state, one
// Save (one write, one fdatasync) per batch.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, _, err := Open(Options{Dir: b.TempDir(), Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([]raft.Entry, n)
			for k := range batch {
				batch[k] = raft.Entry{Term: 1, Data: benchData(uint64(k))}
			}
			next := uint64(1)
			start := time.Now()
			b.ResetTimer()
			for b.Loop() {
				for k := range batch {
					batch[k].Index = next + uint64(k)
				}
				next += uint64(n)
				if err := s.Save(raft.HardState{Term: 1, Vote: 0, Commit: next - 1}, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(next-1)/time.Since(start).Seconds(), "entries/s")
			b.SetBytes(int64(256 * n))
		})
	}
}

// BenchmarkRecover1M opens a folder whose log holds 1,500,000 entries of 256
// bytes with a snapshot at 500,000: recovery replays and returns the
// 1,000,000 entries after the snapshot.
func BenchmarkRecover1M(b *testing.B) {
	dir := b.TempDir()
	s, _, err := Open(Options{Dir: dir, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	const total, snapAt, batch = 1_500_000, 500_000, 10_000
	es := make([]raft.Entry, batch)
	for first := uint64(1); first <= total; first += batch {
		for k := range es {
			i := first + uint64(k)
			es[k] = raft.Entry{Term: 1 + i/100_000, Index: i, Data: benchData(i)}
		}
		if err := s.Save(raft.HardState{Term: es[0].Term, Commit: first - 1}, es); err != nil {
			b.Fatal(err)
		}
		if first+batch-1 == snapAt {
			// No compaction yet: the segments still hold the entries after the snapshot.
			if err := s.SaveSnapshot(raft.Snapshot{Index: snapAt, Term: 1 + snapAt/100_000, Peers: []raft.ID{0, 1, 2},
				Data: []byte(`{"Contents":{"k":"v"},"Sessions":{}}`)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		_, rec, err := Open(Options{Dir: dir, ReadOnly: true, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		if len(rec.Entries) != total-snapAt || rec.Snapshot.Index != snapAt {
			b.Fatalf("recovered %d entries after snapshot %d", len(rec.Entries), rec.Snapshot.Index)
		}
	}
}

// BenchmarkAppendVsFloor alternates one bare 256-byte write+fdatasync and one
// Save of a single 256-byte entry, on the same disk at the same moment, and
// reports their ratio: on a shared machine the disk's latency drifts more
// between two benchmarks than the cost of the log's encoding.
func BenchmarkAppendVsFloor(b *testing.B) {
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "floor"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s, _, err := Open(Options{Dir: filepath.Join(dir, "log"), Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := benchData(1)
	e := []raft.Entry{{Term: 1, Data: benchData(1)}}
	var floor, save time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		e[0].Index++
		if err := s.Save(raft.HardState{Term: 1, Commit: e[0].Index}, e); err != nil {
			b.Fatal(err)
		}
		floor += t1.Sub(t0)
		save += time.Since(t1)
	}
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(save.Nanoseconds())/float64(b.N), "save-ns/op")
	b.ReportMetric(float64(save)/float64(floor), "save/floor")
}

// BenchmarkEncodeEntry and BenchmarkDecodeEntry measure the CPU side of a
// 256-byte JSON entry, without the disk.
func BenchmarkEncodeEntry(b *testing.B) {
	e := raft.Entry{Term: 3, Index: 123456, Data: benchData(123456)}
	var buf []byte
	for b.Loop() {
		buf = appendEntry(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkDecodeEntry(b *testing.B) {
	e := raft.Entry{Term: 3, Index: 123456, Data: benchData(123456)}
	line := appendEntry(nil, &e)
	line = line[:len(line)-1]
	for b.Loop() {
		if _, err := decodeRecord(line); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(line)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkValidJSON(b *testing.B) {
	d := benchData(1)
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		if !validJSON(d) {
			b.Fatal("invalid")
		}
	}
}
