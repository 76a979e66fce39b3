package httpapi

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"raftkv/src/kv"
	"raftkv/src/metrics"
)

// DefaultMaxClientConns bounds the client HTTP connections a node serves at
// once (Config.MaxClientConns). Each costs a file descriptor, a goroutine
// and its buffers; 1024 is four times the most clients the benchmarks use,
// and leaves descriptors for the log, snapshots and peers under the usual
// hard limit (Go raises the soft limit to it at start). On a host with a
// lower file limit, set --max-client-conns below it.
const DefaultMaxClientConns = 1024

// limitListener accepts at most cap(sem) connections at once: beyond that,
// Accept waits until one closes, and new clients wait in the kernel's
// accept backlog (as golang.org/x/net/netutil.LimitListener does; that
// module is not a dependency). Without it, a few thousand idle or slow
// clients took every file descriptor, and the node could no longer open
// its log, its snapshots or its peers' connections. Raft traffic has its
// own listener (src/transport), which this one never limits.
type limitListener struct {
	net.Listener
	sem       chan struct{} // one token per open connection
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
	met       *metrics.Metrics
	// open and peak count connections accepted and not yet closed (peak:
	// the most at once), for tests; met has the same as a gauge.
	open, peak atomic.Int64
}

func newLimitListener(l net.Listener, max int, met *metrics.Metrics) *limitListener {
	met.SetHTTPConnLimit(max)
	return &limitListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{}), met: met}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.met.HTTPConnLimited()
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	l.met.HTTPConnOpened()
	return &clientConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// clientConn is one accepted client connection; closing it frees its slot
// once, however often net/http closes it.
type clientConn struct {
	net.Conn
	l         *limitListener
	closeOnce sync.Once
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.open.Add(-1)
		c.l.met.HTTPConnClosed()
		<-c.l.sem
	})
	return err
}

// Write turns net/http's own plain-text error replies into JSON ones, so
// that every error of the API is JSON. net/http answers a request it
// cannot parse (a bad %-escape in the path such as /v1/kv/%zz, a space in
// the request line, a missing Host header) before any handler runs, by one
// write of exactly "HTTP/1.1 <code> <text>" + plainErrorHeaders + body to
// the connection. No reply of a handler can look like that: every one
// carries Raft-Node and Raft-Leader headers, and no handler sets
// "Connection: close" after a text/plain Content-Type; JSON bodies hold no
// raw CR LF. The check costs a byte comparison on other writes.
func (c *clientConn) Write(p []byte) (int, error) {
	// A 2xx or 3xx reply, a body chunk: one or two comparisons.
	if len(p) < len(httpErrorPrefix)+3 || len(p) > 1024 || (p[9] != '4' && p[9] != '5') || !bytes.HasPrefix(p, httpErrorPrefix) {
		return c.Conn.Write(p)
	}
	i := bytes.IndexByte(p, '\r')
	if i < 0 || !bytes.HasPrefix(p[i:], plainErrorHeaders) {
		return c.Conn.Write(p)
	}
	status, body := p[:i], string(p[i+len(plainErrorHeaders):])
	if body == "400 Bad Request" {
		body += ": the request line or headers could not be parsed (for example an invalid %-escape in the path, such as %zz; escape a literal % as %25)"
	}
	msg := append([]byte(`{"error":`), kv.AppendJSONString(nil, body)...)
	msg = append(msg, "}\n"...)
	out := append([]byte(nil), status...)
	out = append(out, "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n\r\n"...)
	out = append(out, msg...)
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

var (
	// httpErrorPrefix starts net/http's own replies to requests it could
	// not parse: 400, 431 and 501 (see Write).
	httpErrorPrefix = []byte("HTTP/1.1 ")
	// plainErrorHeaders are the headers net/http writes with them
	// (errorHeaders in net/http's server.go).
	plainErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
)
