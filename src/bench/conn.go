package bench

// The workers' HTTP/1.1 client. The load generator shares the machine with
// the nodes it measures, so every microsecond of CPU it spends per request
// is taken from them. net/http's Client and Transport cost ~40 µs of CPU
// and ~70 allocations per put (the request, header maps, the connection
// pool, a reader and a writer goroutine per connection); this costs ~10 µs,
// both ends of the loopback included, and none (BenchmarkHTTPConnPut/raw
// and BenchmarkNetHTTPClientPut/raw). A worker has one request in flight,
// so all it needs is one keep-alive connection, one Write per request and
// a bufio.Reader for the response, every buffer reused.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

const (
	maxHeaderBytes = 64 << 10 // status line and headers (or trailers) of a response
	maxBodyBytes   = 64 << 20 // values are at most 1 MiB, but JSON may escape them
	readBufSize    = 8 << 10
)

// errMalformed is wrapped by the errors for responses this client cannot
// parse (classify puts them under "other error").
var errMalformed = errors.New("malformed HTTP response")

// request is one request of a worker, which reuses it.
type request struct {
	method   string // "GET" or "PUT"
	path     []byte // with the query: "/v1/kv/00000042?op=append"
	clientID string // when set, sent as Client-Id with Request-Seq: seq
	seq      uint64
	body     []byte // sent with a Content-Length unless the method is GET
}

// httpConn is a worker's keep-alive HTTP/1.1 connection. It is not safe
// for concurrent use: one worker owns it. After any error it closes the
// connection, so a partial exchange never leaves bytes for the next one.
type httpConn struct {
	ctx      context.Context // the run: when it ends, in-flight requests fail at once
	endpoint string          // what conn is connected to
	conn     net.Conn        // nil: dial at the next request
	stop     func() bool     // unregisters conn's cancellation hook
	br       *bufio.Reader
	wbuf     []byte      // the request, written with one Write
	long     []byte      // a response line longer than br's buffer (rare)
	leader   string      // last Raft-Leader: returned again without allocating
	tls      *tls.Config // HTTPS when set
	extra    string      // header lines every request carries (Auth.header)
}

func newHTTPConn(ctx context.Context, auth Auth) *httpConn {
	return &httpConn{ctx: ctx, tls: auth.TLS, extra: auth.header()}
}

// do sends r to endpoint (host:port) and reads the whole response; it
// returns the status code and the Raft-Leader header ("" when absent). The
// exchange must end before deadline. It dials when there is no connection
// or the endpoint changed. Errors wrap the underlying net, syscall or io
// error; an expired deadline is a net.Error whose Timeout() is true.
func (c *httpConn) do(endpoint string, r *request, deadline time.Time) (status int, leader string, err error) {
	if err := c.ctx.Err(); err != nil {
		return 0, "", err
	}
	if c.conn != nil && endpoint != c.endpoint {
		c.close()
	}
	if c.conn == nil {
		if err := c.dial(endpoint, deadline); err != nil {
			return 0, "", err
		}
	}
	status, leader, keep, err := c.exchange(r, deadline)
	if err != nil {
		c.close()
		if ctxErr := c.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			// The run ended: say so rather than only "i/o timeout".
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return 0, "", err
	}
	if !keep {
		c.close()
	}
	return status, leader, nil
}

func (c *httpConn) dial(endpoint string, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(c.ctx, "tcp", endpoint)
	if err != nil {
		return err // a *net.OpError: "dial tcp ...: connect: connection refused"
	}
	if c.tls != nil {
		if conn, err = dialTLS(c.ctx, conn, c.tls, endpoint, deadline); err != nil {
			return fmt.Errorf("TLS with %s: %w", endpoint, err)
		}
	}
	c.conn, c.endpoint = conn, endpoint
	// Once per connection rather than per request: a deadline in the past
	// wakes the read or write in flight when the run is cancelled.
	c.stop = context.AfterFunc(c.ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, readBufSize)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// close closes the connection, if any; the next request dials.
func (c *httpConn) close() {
	if c.conn == nil {
		return
	}
	c.stop()
	c.conn.Close()
	c.conn, c.stop = nil, nil
}

// exchange writes r and reads the response; keep is false when the
// connection cannot carry another request.
func (c *httpConn) exchange(r *request, deadline time.Time) (status int, leader string, keep bool, err error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		return 0, "", false, err
	}
	// The cancellation hook may have run just before SetDeadline replaced
	// its past deadline: check after, not before.
	if err := c.ctx.Err(); err != nil {
		return 0, "", false, err
	}
	c.wbuf = appendRequest(c.wbuf[:0], c.endpoint, c.extra, r)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		return 0, "", false, fmt.Errorf("write request to %s: %w", c.endpoint, err)
	}
	status, leader, keep, err = c.readResponse()
	if err != nil {
		return 0, "", false, fmt.Errorf("read response from %s: %w", c.endpoint, err)
	}
	return status, leader, keep, nil
}

func appendRequest(b []byte, host, extra string, r *request) []byte {
	b = append(b, r.method...)
	b = append(b, ' ')
	b = append(b, r.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	b = append(b, extra...)
	if r.clientID != "" {
		b = append(b, "Client-Id: "...)
		b = append(b, r.clientID...)
		b = append(b, "\r\nRequest-Seq: "...)
		b = strconv.AppendUint(b, r.seq, 10)
		b = append(b, "\r\n"...)
	}
	if r.method != "GET" || len(r.body) > 0 {
		// Also for an empty put, as net/http does.
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(r.body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, r.body...)
}

// readResponse reads a response and discards its body (RFC 9112).
func (c *httpConn) readResponse() (status int, leader string, keep bool, err error) {
	budget := maxHeaderBytes
	var (
		length  int64 = -1 // Content-Length, -1 when absent
		chunked bool
	)
	for {
		line, err := c.readLine(&budget)
		if err != nil {
			return 0, "", false, err // io.EOF here: closed before answering
		}
		var http11 bool
		status, http11, err = parseStatusLine(line)
		if err != nil {
			return 0, "", false, err
		}
		// HTTP/1.0 connections close unless negotiated otherwise: do not
		// bother negotiating.
		keep, leader, length, chunked = http11, "", -1, false
		leaderSeen := false
		for {
			line, err := c.readLine(&budget)
			if err != nil {
				return 0, "", false, noEOF(err)
			}
			if len(line) == 0 {
				break
			}
			name, value, err := splitHeader(line)
			if err != nil {
				return 0, "", false, err
			}
			switch {
			case is(name, "content-length"):
				n, err := parseLength(value)
				if err != nil || (length >= 0 && n != length) {
					return 0, "", false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
				}
				length = n
			case is(name, "transfer-encoding"):
				if !is(value, "chunked") {
					return 0, "", false, fmt.Errorf("%w: unsupported Transfer-Encoding %q", errMalformed, value)
				}
				chunked = true
			case is(name, "connection"):
				if hasToken(value, "close") {
					keep = false
				}
			case is(name, "raft-leader") && !leaderSeen: // the first, as Header.Get
				leaderSeen = true
				if string(value) != c.leader { // compared without allocating
					c.leader = string(value)
				}
				leader = c.leader
			}
		}
		if status == 101 {
			return 0, "", false, fmt.Errorf("%w: unexpected 101 Switching Protocols", errMalformed)
		}
		if status >= 200 {
			break
		}
		// 1xx informational: the real response follows.
	}
	switch {
	case status == 204 || status == 304: // no body whatever the headers say
	case chunked: // takes precedence over a Content-Length
		err = c.discardChunked()
	case length > maxBodyBytes:
		err = fmt.Errorf("%w: body of %d bytes, more than %d", errMalformed, length, maxBodyBytes)
	case length >= 0:
		_, err = c.br.Discard(int(length))
		err = noEOF(err)
	default: // the body ends when the server closes
		keep = false
		var n int64
		n, err = io.Copy(io.Discard, io.LimitReader(c.br, maxBodyBytes+1))
		if err == nil && n > maxBodyBytes {
			err = fmt.Errorf("%w: body over %d bytes", errMalformed, maxBodyBytes)
		}
	}
	if err != nil {
		return 0, "", false, err
	}
	return status, leader, keep, nil
}

// discardChunked reads a chunked body and its trailers.
func (c *httpConn) discardChunked() error {
	var total int64
	for {
		budget := maxHeaderBytes
		line, err := c.readLine(&budget)
		if err != nil {
			return noEOF(err)
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			break
		}
		if total += size; total > maxBodyBytes {
			return fmt.Errorf("%w: chunked body over %d bytes", errMalformed, maxBodyBytes)
		}
		if _, err := c.br.Discard(int(size)); err != nil {
			return noEOF(err)
		}
		if line, err = c.readLine(&budget); err != nil {
			return noEOF(err)
		}
		if len(line) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errMalformed)
		}
	}
	budget := maxHeaderBytes
	for { // trailers, up to the empty line
		line, err := c.readLine(&budget)
		if err != nil {
			return noEOF(err)
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// readLine returns the next line without its line end (CRLF, or a bare
// LF as net/textproto accepts). It is valid until the next read. budget is
// what the line may use of a section's maximum size.
func (c *httpConn) readLine(budget *int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Longer than the buffer: Go servers never send such lines, but
		// they are legal.
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull && len(c.long) <= *budget {
			line, err = c.br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if *budget -= len(line); *budget < 0 {
		return nil, fmt.Errorf("%w: header section over %d bytes", errMalformed, maxHeaderBytes)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// noEOF turns the end of the stream in the middle of a response into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseStatusLine parses "HTTP/1.1 200 OK" (the reason is optional).
func parseStatusLine(line []byte) (status int, http11 bool, err error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) ||
		(line[7] != '0' && line[7] != '1') || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		status = status*10 + int(d-'0')
	}
	if status < 100 {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	return status, line[7] == '1', nil
}

// splitHeader splits "Name: value" and trims the value's blanks.
func splitHeader(line []byte) (name, value []byte, err error) {
	i := bytes.IndexByte(line, ':')
	// No blank in a name; a line starting with one is an obsolete
	// continuation, which Go servers never send.
	if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
		return nil, nil, fmt.Errorf("%w: header line %q", errMalformed, line)
	}
	return line[:i], bytes.Trim(line[i+1:], " \t"), nil
}

// is reports whether b is lower, ignoring ASCII case.
func is(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		item := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if is(bytes.Trim(item, " \t"), token) {
			return true
		}
	}
	return false
}

// parseLength parses a Content-Length: decimal digits only.
func parseLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, errMalformed
	}
	var n int64
	for _, d := range v {
		if d < '0' || d > '9' {
			return 0, errMalformed
		}
		n = n*10 + int64(d-'0')
	}
	return n, nil
}

// parseChunkSize parses a chunk-size line: hex digits, then optional
// blanks and ";extensions", which are ignored.
func parseChunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, fmt.Errorf("%w: chunk size %q", errMalformed, line)
	}
	var n int64
	for _, d := range line {
		var v byte
		switch {
		case '0' <= d && d <= '9':
			v = d - '0'
		case 'a' <= d && d <= 'f':
			v = d - 'a' + 10
		case 'A' <= d && d <= 'F':
			v = d - 'A' + 10
		default:
			return 0, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		n = n<<4 | int64(v)
	}
	return n, nil
}
