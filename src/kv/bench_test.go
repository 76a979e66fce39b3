package kv

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

var benchValue = strings.Repeat("v", 256)

func BenchmarkApplyPut256(b *testing.B) {
	tests := []struct {
		name    string
		session bool
	}{
		{"no session", false},
		{"session", true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			// Entries encoded ahead: 1000 keys, as a leader would send them.
			entries := make([][]byte, 1000)
			for i := range entries {
				c := Command{Op: OpPut, Key: "key-" + strconv.Itoa(i), Value: benchValue}
				if tt.session {
					c.ClientID, c.Seq = "client-"+strconv.Itoa(i%100), uint64(i+1)
				}
				entries[i] = EncodeCommand(c)
			}
			s := New(Options{})
			b.SetBytes(int64(len(entries[0])))
			b.ReportAllocs()
			index := uint64(0)
			for b.Loop() {
				index++
				if r := s.Apply(index, entries[index%uint64(len(entries))]); r.Err != nil && r.Err != ErrStaleRequest {
					b.Fatal(r.Err)
				}
			}
		})
	}
}

func BenchmarkEncodeCommand(b *testing.B) {
	tests := []struct {
		name  string
		value string
	}{
		{"256B", benchValue},
		{"256B escaped", strings.Repeat("v\"\n", 85)},
		{"64KiB", strings.Repeat("v", 64<<10)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			c := Command{Op: OpPut, Key: "some-key", Value: tt.value, ClientID: "client-7", Seq: 123456}
			b.SetBytes(int64(len(tt.value)))
			b.ReportAllocs()
			for b.Loop() {
				_ = EncodeCommand(c)
			}
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	tests := []struct {
		name  string
		value string
	}{
		{"256B", benchValue},
		{"256B escaped (encoding/json path)", strings.Repeat("v\"\n", 85)},
		{"64KiB", strings.Repeat("v", 64<<10)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			data := EncodeCommand(Command{Op: OpPut, Key: "some-key", Value: tt.value, ClientID: "client-7", Seq: 123456})
			b.SetBytes(int64(len(tt.value)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCommand(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// snapshotBenchStore holds the benchmark's state (make bench): 100,000
// keys with 256-byte values, 1,000 client sessions.
func snapshotBenchStore() *Store {
	s := New(Options{})
	for i := range 100000 {
		s.Apply(uint64(i+1), EncodeCommand(Command{Op: OpPut, Key: fmt.Sprintf("%08d", i), Value: benchValue,
			ClientID: "c" + strconv.Itoa(i%1000), Seq: uint64(i + 1)}))
	}
	return s
}

// BenchmarkFreeze is the part of a snapshot the node's loop waits for.
func BenchmarkFreeze(b *testing.B) {
	s := snapshotBenchStore()
	b.ReportAllocs()
	for b.Loop() {
		s.Freeze()
	}
}

// BenchmarkEncodeTo is the part of a snapshot done in the background
// (less the file's write and fsync).
func BenchmarkEncodeTo(b *testing.B) {
	s := snapshotBenchStore()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		f := s.Freeze()
		b.StartTimer()
		if err := f.EncodeTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// The encoding/json baselines that EncodeCommand and DecodeCommand replace.
func BenchmarkCommandEncodingJSONBaseline(b *testing.B) {
	w := jsonCommand{Op: "put", Key: "some-key", Value: benchValue, ClientID: "client-7", Seq: 123456}
	data := EncodeCommand(Command{Op: OpPut, Key: w.Key, Value: w.Value, ClientID: w.ClientID, Seq: w.Seq})
	b.Run("json.Marshal 256B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal 256B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out wireCommand
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRange100 lists 100 keys by prefix out of 100,000: the cost of
// a listing is a scan of every key (the map has no order) plus a sort of
// the matches.
func BenchmarkRange100(b *testing.B) {
	s := New(Options{})
	for i := range 100000 {
		s.Apply(uint64(i+1), EncodeCommand(Command{Op: OpPut, Key: fmt.Sprintf("%08d", i), Value: "v"}))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := s.Range(RangeRequest{Start: fmt.Sprintf("%06d", i%1000), Prefix: true})
		if len(r.Entries) != 100 {
			b.Fatalf("%d entries", len(r.Entries))
		}
	}
}
