package transport

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"raftkv/src/certs"
	"raftkv/src/raft"
)

// FuzzInboundTLS feeds fuzzed frames to a real TLS node the way a member
// would send them: each input is one connection that completes the TLS
// 1.3 handshake with r1's certificate of the cluster CA and r1's hello
// (both accepted), then writes the input as the frame stream. Whatever the
// bytes, the node must not crash or hang, must deliver to the core only
// messages from the member the handshake proved (From r1, To r0), and
// must accept the next connection (the next input's handshake and hello).
func FuzzInboundTLS(f *testing.F) {
	frame := func(m raft.Message) []byte {
		b := AppendMessage([]byte{0, 0, 0, 0}, &m)
		binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
		return b
	}
	for _, tc := range codecCases() {
		m := tc.msg
		m.From, m.To = 1, 0
		f.Add(frame(m))
	}
	forged := raft.Message{Type: raft.MsgApp, From: 2, To: 0, Term: 9, Entries: []raft.Entry{{Term: 9, Index: 1, Data: []byte("x")}}}
	f.Add(frame(forged))                        // claims to be r2 on r1's stream
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}) // a frame longer than allowed
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	p := newPKI(f)
	var (
		mu  sync.Mutex
		got []raft.Message
	)
	tr, err := New(Config{
		Self: 0, SelfName: "r0", ClusterID: testCluster, ListenAddr: "127.0.0.1:0",
		// r1 is never listening: the node's dials to it fail and back off.
		Peers:  map[raft.ID]Peer{1: {Name: "r1", Addr: func() string { return "127.0.0.1:1" }}},
		Logger: zap.NewNop(), TLS: p.config("r0"),
	}, func(m raft.Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	addr := tr.Addr().String()
	client := &tls.Config{Certificates: []tls.Certificate{p.pair("r1", certs.Options{})}, RootCAs: p.pool(),
		ServerName: "r0", MinVersion: tls.VersionTLS13}

	f.Fuzz(func(t *testing.T, frames []byte) {
		conn, err := tls.Dial("tcp", addr, client)
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(appendHello(nil, hello{ClusterID: testCluster, From: 1, FromName: "r1", To: 0})); err != nil {
			t.Fatal(err)
		}
		var status [1]byte
		if _, err := io.ReadFull(conn, status[:]); err != nil || status[0] != 0 {
			t.Fatalf("r1's hello refused (status %v, %v): the node stopped accepting members", status, err)
		}
		conn.Write(frames) // the node may close first: a refused stream
		conn.CloseWrite()
		// The node answers nothing on an inbound stream: it reads until
		// our end closes or the stream is bad, then closes its own.
		if _, err := io.Copy(io.Discard, conn); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("the node neither finished the stream nor closed it")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			if m.From != 1 || m.To != 0 {
				t.Fatalf("delivered a message the handshake did not prove: %+v", m)
			}
		}
		got = got[:0]
	})
}
