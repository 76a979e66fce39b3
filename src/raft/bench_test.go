package raft

import "testing"

// BenchmarkCommit3Nodes measures committed entries per second through a
// 3-node in-memory cluster (no I/O), 100-byte commands proposed in batches.
func BenchmarkCommit3Nodes(b *testing.B) {
	for _, batch := range []int{1, 64, 1024} {
		b.Run("batch="+itoa(batch), func(b *testing.B) {
			nw := newNetwork(b, 3, nil)
			nw.elect(0)
			nw.tick(1)
			nw.discard = true
			l := nw.nodes[0]
			cmd := make([]byte, 100)
			start := l.log.committed
			b.ResetTimer()
			for i := 0; i < b.N; {
				for j := 0; j < batch && i < b.N; j++ {
					if _, _, err := l.Propose(cmd); err != nil {
						b.Fatal(err)
					}
					i++
				}
				nw.stabilize()
				// Keep memory flat, as the runtime's snapshots would.
				for _, id := range nw.ids() {
					n := nw.nodes[id]
					if n.log.applied-n.log.offset > 100000 {
						n.Compact(n.log.applied)
					}
				}
			}
			b.StopTimer()
			if got := l.log.committed - start; got < uint64(b.N) {
				b.Fatalf("committed %d of %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for ; n > 0; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
	}
	return string(buf[i:])
}

// BenchmarkMaybeCommit measures the leader's commit check, which runs on
// every acknowledgement, in a 5-node cluster.
func BenchmarkMaybeCommit(b *testing.B) {
	nw := newNetwork(b, 5, nil)
	nw.elect(0)
	nw.tick(1)
	l := nw.nodes[0]
	b.ReportAllocs()
	for b.Loop() {
		l.maybeCommit()
	}
}

// BenchmarkReleaseReads measures the leader's check of which pending reads a
// quorum has confirmed, which runs on every heartbeat answer, in a 5-node
// cluster.
func BenchmarkReleaseReads(b *testing.B) {
	nw := newNetwork(b, 5, nil)
	nw.elect(0)
	nw.tick(1)
	l := nw.nodes[0]
	l.readRound = 1
	for _, p := range l.peers {
		l.prs[p].ReadAck = 1
	}
	buf := make([]pendingRead, 1)
	states := make([]ReadState, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		buf[0] = pendingRead{id: 1, index: l.log.committed, round: 1}
		l.reads = buf
		l.readStates = states
		l.releaseReads()
	}
	if len(l.readStates) != 1 {
		b.Fatalf("read not released: %v", l.readStates)
	}
}
