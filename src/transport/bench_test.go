package transport

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

func msgApp64x256() raft.Message {
	m := raft.Message{Type: raft.MsgApp, From: 0, To: 1, Term: 7, Index: 123456, LogTerm: 7, Commit: 123400}
	for i := range 64 {
		d := make([]byte, 256)
		for j := range d {
			d[j] = byte(i + j)
		}
		m.Entries = append(m.Entries, raft.Entry{Term: 7, Index: uint64(123457 + i), Data: d})
	}
	return m
}

// BenchmarkCodecMsgApp encodes and decodes a MsgApp of 64 entries of 256 bytes.
func BenchmarkCodecMsgApp(b *testing.B) {
	m := msgApp64x256()
	buf := AppendMessage(nil, &m)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
		got, err := DecodeMessage(buf)
		if err != nil || len(got.Entries) != 64 {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecHeartbeat(b *testing.B) {
	m := raft.Message{Type: raft.MsgHeartbeat, From: 0, To: 1, Term: 7, Commit: 123400, Context: 99}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
		if _, err := DecodeMessage(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopback sends messages from one transport to another over
// 127.0.0.1 and reports delivered messages per second. The sender keeps at
// most half a queue outstanding, so nothing is dropped.
func BenchmarkLoopback(b *testing.B) { loopbackCases(b, nil) }

// BenchmarkLoopbackTLS is BenchmarkLoopback over peer mutual TLS.
func BenchmarkLoopbackTLS(b *testing.B) { loopbackCases(b, newPKI(b)) }

func loopbackCases(b *testing.B, p *pki) {
	for _, bc := range []struct {
		name string
		msg  raft.Message
	}{
		{"Heartbeat", raft.Message{Type: raft.MsgHeartbeat, From: 0, To: 1, Term: 7, Commit: 100}},
		{"App1x128B", raft.Message{Type: raft.MsgApp, From: 0, To: 1, Term: 7, Index: 100, Commit: 99,
			Entries: []raft.Entry{{Term: 7, Index: 101, Data: make([]byte, 128)}}}},
		{"App64x256B", msgApp64x256()},
	} {
		b.Run(bc.name, func(b *testing.B) { benchLoopback(b, bc.msg, p) })
	}
}

func benchLoopback(b *testing.B, msg raft.Message, p *pki) {
	const queue, window, batch = 1 << 14, 1 << 13, 64
	var recv atomic.Int64
	target := int64(b.N)
	done := make(chan struct{})
	progress := make(chan struct{}, 1)
	addrs := make([]string, 2)
	mk := func(id raft.ID, deliver func(raft.Message)) *Transport {
		peer := 1 - id
		tr, err := New(Config{Self: id, SelfName: name(id), ClusterID: testCluster, ListenAddr: "127.0.0.1:0",
			QueueSize: queue, Logger: zap.NewNop(),
			Peers: map[raft.ID]Peer{peer: {Name: name(peer), Addr: func() string { return addrs[peer] }}}, TLS: p.config(name(id))}, deliver)
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.Start(); err != nil {
			b.Fatal(err)
		}
		addrs[id] = tr.Addr().String()
		b.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	mk(1, func(raft.Message) {
		n := recv.Add(1)
		if n == target {
			close(done)
		} else if n%256 == 0 {
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})
	tx := mk(0, func(raft.Message) {})
	// Wait for the stream so that no message meets a failed dial.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	for !tx.Stats()[1].Connected {
		if time.Now().After(deadline) {
			b.Fatal("no connection")
		}
		<-tick.C
	}
	tick.Stop()

	msgs := make([]raft.Message, batch)
	for i := range msgs {
		msgs[i] = msg
	}
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(batch, b.N-sent)
		for int64(sent)-recv.Load() > window {
			select {
			case <-progress:
			case <-done:
			}
		}
		tx.Send(msgs[:n])
		sent += n
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	st := tx.Stats()[1]
	if st.Dropped != 0 {
		b.Fatalf("%d dropped", st.Dropped)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(st.BytesSent)/float64(b.N), "wire-B/msg")
}
