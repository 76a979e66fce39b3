package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// countedServer is an httptest server (real TCP) that counts the
// connections it accepts.
type countedServer struct {
	*httptest.Server
	endpoint string
	conns    atomic.Int64
}

func newCountedServer(t testing.TB, h http.HandlerFunc) *countedServer {
	s := &countedServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	s.endpoint = strings.TrimPrefix(s.URL, "http://")
	return s
}

// indexHandler answers as a node does to a put.
func indexHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Raft-Leader", "n1")
	w.Write([]byte(`{"index":1}`))
}

func putRequest(path string, seq uint64, body []byte) *request {
	return &request{method: http.MethodPut, path: []byte(path), clientID: "bench-test-0", seq: seq, body: body}
}

func getRequest(path string) *request {
	return &request{method: http.MethodGet, path: []byte(path)}
}

// hang waits, as a handler that never answers, until the client goes
// away or the test ends.
func hang(t testing.TB, r *http.Request) {
	// The server notices a closed connection only once the body is read.
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-t.Context().Done():
	}
}

func soon() time.Time { return time.Now().Add(10 * time.Second) }

func testConn(t testing.TB, ctx context.Context) *httpConn {
	c := newHTTPConn(ctx, Auth{})
	t.Cleanup(c.close)
	return c
}

func TestHTTPConnKeepAlive(t *testing.T) {
	srv := newCountedServer(t, indexHandler)
	c := testConn(t, context.Background())
	for i := range 200 {
		status, leader, err := c.do(srv.endpoint, putRequest("/v1/kv/k", uint64(i+1), []byte("v")), soon())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "n1", leader)
	}
	assert.EqualValues(t, 1, srv.conns.Load(), "200 sequential requests should share one connection")

	// Another endpoint: a new connection, and a new one again coming back.
	other := newCountedServer(t, indexHandler)
	for _, ep := range []string{other.endpoint, other.endpoint, srv.endpoint} {
		status, _, err := c.do(ep, getRequest("/v1/kv/k"), soon())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	assert.EqualValues(t, 1, other.conns.Load())
	assert.EqualValues(t, 2, srv.conns.Load())
}

func TestHTTPConnBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Raft-Leader", "n1")
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			// Flushing before the end forces chunked encoding.
			for i := 0; i < len(big); i += 100_000 {
				w.Write(big[i:min(i+100_000, len(big))])
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/missing":
			http.NotFound(w, r)
		}
	})
	// The test means something only if net/http does chunk that one.
	resp, err := http.Get(srv.URL + "/chunked")
	require.NoError(t, err)
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	require.EqualValues(t, len(big), n)
	http.DefaultClient.CloseIdleConnections()
	before := srv.conns.Load()

	c := testConn(t, context.Background())
	for range 3 {
		for _, tc := range []struct {
			path   string
			status int
		}{{"/length", 200}, {"/chunked", 200}, {"/empty", 204}, {"/missing", 404}} {
			status, leader, err := c.do(srv.endpoint, getRequest(tc.path), soon())
			require.NoError(t, err, tc.path)
			require.Equal(t, tc.status, status, tc.path)
			require.Equal(t, "n1", leader, tc.path)
		}
	}
	assert.EqualValues(t, 1, srv.conns.Load()-before, "bodies must be consumed so that the connection is reused")
}

func TestHTTPConnConnectionClose(t *testing.T) {
	var n atomic.Int64
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			w.Header().Set("Connection", "close")
		}
		indexHandler(w, r)
	})
	c := testConn(t, context.Background())
	for i := range 3 {
		status, _, err := c.do(srv.endpoint, putRequest("/v1/kv/k", uint64(i+1), []byte("v")), soon())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	// Request 1 closed its connection, 2 dialled anew, 3 reused it and
	// closed it.
	assert.EqualValues(t, 2, srv.conns.Load())
	assert.Nil(t, c.conn, "closed after the last Connection: close")
}

func TestHTTPConnTimeout(t *testing.T) {
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) { hang(t, r) })
	c := testConn(t, context.Background())
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, _, err := c.do(srv.endpoint, putRequest("/v1/kv/k", 1, []byte("v")), start.Add(timeout))
	elapsed := time.Since(start)
	require.Error(t, err)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.Equal(t, "timeout", classify(err))
	assert.GreaterOrEqual(t, elapsed, timeout-10*time.Millisecond)
	assert.Less(t, elapsed, timeout+time.Second)
	assert.Nil(t, c.conn, "a failed exchange closes the connection")
}

func TestHTTPConnCancel(t *testing.T) {
	entered := make(chan struct{}, 1)
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		hang(t, r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := testConn(t, ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := c.do(srv.endpoint, getRequest("/hang"), time.Now().Add(time.Minute))
		done <- err
	}()
	<-entered
	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("request still in flight 5 s after the cancellation")
	}
	assert.Less(t, time.Since(start), time.Second)
	assert.ErrorIs(t, err, context.Canceled)
	_, _, err = c.do(srv.endpoint, getRequest("/hang"), time.Now().Add(time.Minute))
	assert.ErrorIs(t, err, context.Canceled, "no request after the cancellation")
}

func TestHTTPConnRequestBytes(t *testing.T) {
	type seen struct {
		method, uri, host, clientID, seq string
		length                           int64
		body                             string
	}
	var mu sync.Mutex
	var got []seen
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Client-Id"), r.Header.Get("Request-Seq"), r.ContentLength, string(body)})
		mu.Unlock()
	})
	c := testConn(t, context.Background())
	for _, r := range []*request{
		putRequest("/v1/kv/00000042", 7, []byte("hello, world")),
		putRequest("/v1/kv/00000043?op=append", 8, []byte("more")),
		putRequest("/v1/kv/00000044", 9, nil),
		getRequest("/v1/kv/00000042?consistency=stale"),
	} {
		_, _, err := c.do(srv.endpoint, r, soon())
		require.NoError(t, err)
	}
	ep := srv.endpoint
	assert.Equal(t, []seen{
		{"PUT", "/v1/kv/00000042", ep, "bench-test-0", "7", 12, "hello, world"},
		{"PUT", "/v1/kv/00000043?op=append", ep, "bench-test-0", "8", 4, "more"},
		{"PUT", "/v1/kv/00000044", ep, "bench-test-0", "9", 0, ""},
		{"GET", "/v1/kv/00000042?consistency=stale", ep, "", "", 0, ""},
	}, got)
	assert.EqualValues(t, 1, srv.conns.Load())
}

// rawServer is a hand-written HTTP/1.1 server on loopback: it reads each
// request's head and Content-Length body, then calls reply, which writes
// what it likes. It allocates nothing per request (unlike net/http), so
// that allocation counts measure the client alone, and it can send what
// net/http never would.
type rawServer struct {
	endpoint string
	conns    atomic.Int64 // connections accepted
	requests atomic.Int64
}

// reply answers request n (counted from 0 over all connections) on c;
// keep false closes the connection.
type reply func(n int64, c net.Conn) (keep bool)

// respond replies resp to every request.
func respond(resp string) reply {
	b := []byte(resp)
	return func(_ int64, c net.Conn) bool {
		_, err := c.Write(b)
		return err == nil
	}
}

const okResponse = "HTTP/1.1 200 OK\r\nRaft-Leader: n1\r\nContent-Length: 11\r\n\r\n{\"index\":1}"

func startRawServer(t testing.TB, r reply) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{endpoint: ln.Addr().String()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				s.serve(c, r)
			})
		}
	})
	return s
}

func (s *rawServer) serve(c net.Conn, r reply) {
	br := bufio.NewReader(c)
	for {
		length := int64(0)
		for first := true; ; first = false {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if line = bytes.TrimRight(line, "\r\n"); len(line) == 0 {
				break
			}
			if first {
				continue // the request line
			}
			if name, value, err := splitHeader(line); err == nil && is(name, "content-length") {
				length, _ = parseLength(value)
			}
		}
		if _, err := br.Discard(int(length)); err != nil {
			return
		}
		if !r(s.requests.Add(1)-1, c) {
			return
		}
	}
}

// TestHTTPConnResponses feeds the client responses, valid or not, followed
// by a valid one on whatever connection is left.
func TestHTTPConnResponses(t *testing.T) {
	longLine := "X-Long: " + strings.Repeat("a", 20<<10) + "\r\n"
	for _, tc := range []struct {
		name   string
		resp   string
		close  bool   // the server closes after resp
		status int    // 0: an error is expected
		leader string // expected Raft-Leader
		conns  int64  // connections for resp and the valid response after it
	}{
		{name: "content length", resp: okResponse, status: 200, leader: "n1", conns: 1},
		{name: "lower case names", resp: "HTTP/1.1 200 OK\r\nraft-leader:  n3 \r\ncontent-length: 3\r\n\r\nabc", status: 200, leader: "n3", conns: 1},
		{name: "first leader", resp: "HTTP/1.1 200 OK\r\nRaft-Leader: n2\r\nRaft-Leader: n3\r\nContent-Length: 0\r\n\r\n", status: 200, leader: "n2", conns: 1},
		{name: "empty leader", resp: "HTTP/1.1 503 Service Unavailable\r\nRaft-Leader: \r\nContent-Length: 0\r\n\r\n", status: 503, conns: 1},
		{name: "no reason", resp: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", status: 200, conns: 1},
		{name: "bare LF", resp: "HTTP/1.1 200 OK\nRaft-Leader: n1\nContent-Length: 2\n\nok", status: 200, leader: "n1", conns: 1},
		{name: "chunked with extensions and trailers", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRaft-Leader: n2\r\n\r\n5;ext=1\r\nhello\r\nA \r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", status: 200, leader: "n2", conns: 1},
		{name: "chunked wins over length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", status: 200, conns: 1},
		{name: "informational first", resp: "HTTP/1.1 103 Early Hints\r\nRaft-Leader: old\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, conns: 1},
		{name: "no content on 204", resp: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", status: 204, conns: 1},
		{name: "header line longer than the buffer", resp: "HTTP/1.1 200 OK\r\n" + longLine + "Raft-Leader: n1\r\nContent-Length: 0\r\n\r\n", status: 200, leader: "n1", conns: 1},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", close: true, status: 200, conns: 2},
		{name: "HTTP/1.0 closes", resp: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", close: true, status: 200, conns: 2},
		{name: "body until close", resp: "HTTP/1.1 200 OK\r\n\r\nuntil the end", close: true, status: 200, conns: 2},

		{name: "malformed status line", resp: "HTPT/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "short status", resp: "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "status not a number", resp: "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "HTTP/2 status line", resp: "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "switching protocols", resp: "HTTP/1.1 101 Switching Protocols\r\n\r\n", conns: 2},
		{name: "header without colon", resp: "HTTP/1.1 200 OK\r\nRaft-Leader n1\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "obsolete line folding", resp: "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", conns: 2},
		{name: "bad length", resp: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", conns: 2},
		{name: "conflicting lengths", resp: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", conns: 2},
		{name: "body too large", resp: "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", conns: 2},
		{name: "unknown transfer encoding", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", conns: 2},
		{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", conns: 2},
		{name: "no CRLF after chunk", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", conns: 2},
		{name: "header section too large", resp: "HTTP/1.1 200 OK\r\n" + strings.Repeat(longLine, 4) + "Content-Length: 0\r\n\r\n", conns: 2},
		{name: "truncated body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close: true, conns: 2},
		{name: "truncated head", resp: "HTTP/1.1 200 OK\r\nContent-Le", close: true, conns: 2},
		{name: "no response", resp: "", close: true, conns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, ok := []byte(tc.resp), []byte(okResponse)
			srv := startRawServer(t, func(n int64, c net.Conn) bool {
				if n > 0 {
					_, err := c.Write(ok)
					return err == nil
				}
				c.Write(first)
				return !tc.close
			})
			c := testConn(t, context.Background())
			status, leader, err := c.do(srv.endpoint, putRequest("/v1/kv/k", 1, []byte("v")), soon())
			if tc.status == 0 {
				require.Error(t, err)
				assert.Nil(t, c.conn, "an error closes the connection")
				if !tc.close {
					assert.ErrorIs(t, err, errMalformed)
				} else {
					assert.Equal(t, "connection closed (EOF)", classify(err))
				}
			} else {
				require.NoError(t, err)
				assert.Equal(t, tc.status, status)
				assert.Equal(t, tc.leader, leader)
			}
			status, leader, err = c.do(srv.endpoint, putRequest("/v1/kv/k", 2, []byte("v")), soon())
			require.NoError(t, err, "the request after")
			assert.Equal(t, 200, status)
			assert.Equal(t, "n1", leader)
			assert.Equal(t, tc.conns, srv.conns.Load(), "connections")
		})
	}
}

func TestHTTPConnErrorKinds(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	c := testConn(t, context.Background())
	_, _, err := c.do("127.0.0.1:1", getRequest("/"), soon())
	assert.Equal(t, "connection refused", classify(err), "%v", err)

	// Linger 0: the close sends a RST.
	reset := startRawServer(t, func(_ int64, c net.Conn) bool {
		c.(*net.TCPConn).SetLinger(0)
		return false
	})
	_, _, err = c.do(reset.endpoint, getRequest("/"), soon())
	assert.ErrorIs(t, err, syscall.ECONNRESET)
	assert.Equal(t, "connection reset", classify(err), "%v", err)

	closed := startRawServer(t, func(int64, net.Conn) bool { return false })
	_, _, err = c.do(closed.endpoint, getRequest("/"), soon())
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, "connection closed (EOF)", classify(err), "%v", err)
}

// allocBound is the most allocations per request the steady state may
// make; measured: 0 (also with -race).
const allocBound = 0

func TestHTTPConnAllocs(t *testing.T) {
	srv := startRawServer(t, respond(okResponse))
	c := testConn(t, context.Background())
	r := putRequest("/v1/kv/00000042", 0, bytes.Repeat([]byte("v"), 256))
	put := func() {
		r.seq++
		status, leader, err := c.do(srv.endpoint, r, soon())
		if err != nil || status != 200 || leader != "n1" {
			t.Fatalf("put: %d %q %v", status, leader, err)
		}
	}
	put() // dials and sizes the buffers
	allocs := testing.AllocsPerRun(1000, put)
	t.Logf("%.2f allocations per put", allocs)
	assert.LessOrEqual(t, allocs, float64(allocBound))
	assert.EqualValues(t, 1, srv.conns.Load())
}

func TestWorkerOneAllocs(t *testing.T) {
	srv := startRawServer(t, respond(okResponse))
	ctx := context.Background()
	opts := Options{Put: 1, Append: 1, Get: 1, Keys: 1000, KeySize: 8, ValSize: 256, Consistency: "stale", Timeout: 10 * time.Second}
	finder := &leaderFinder{current: srv.endpoint, leader: "n1", byName: map[string]string{"n1": srv.endpoint}}
	rng := rand.New(rand.NewSource(1))
	w := &worker{clientID: "bench-test-0", conn: testConn(t, ctx), rng: rng, value: randomValue(rng, opts.ValSize), all: newHist(), errs: map[string]uint64{}}
	for k := range w.hist {
		w.hist[k] = newHist()
	}
	m := newMix(opts)
	one := func() {
		if !w.one(ctx, opts, m, finder) {
			t.Fatalf("request failed: %v", w.errs)
		}
	}
	one()
	allocs := testing.AllocsPerRun(1000, one) // and once more to warm up
	t.Logf("%.2f allocations per request", allocs)
	assert.LessOrEqual(t, allocs, float64(allocBound))
	assert.EqualValues(t, 1002, w.ok[opPut]+w.ok[opAppend]+w.ok[opGet])
}

// TestRun runs the engine against a fake node: every client has its own
// connection, and the report no longer speaks of pools.
func TestRun(t *testing.T) {
	var puts, appends, gets atomic.Int64
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Raft-Leader", "n1")
		switch {
		case r.URL.Path == "/v1/status":
			json.NewEncoder(w).Encode(api.Status{Name: "n1", Leader: "n1"})
		case r.Method == http.MethodPut && r.URL.RawQuery == "op=append":
			appends.Add(1)
		case r.Method == http.MethodPut:
			puts.Add(1)
		case r.Method == http.MethodGet && r.URL.RawQuery == "consistency=stale":
			gets.Add(1)
			w.Write([]byte("value"))
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.RequestURI, http.StatusBadRequest)
		}
	})
	opts := Options{
		Endpoints: []string{srv.endpoint}, Clients: 4, Put: 1, Append: 1, Get: 1,
		KeySize: 8, ValSize: 64, Keys: 100, Total: 600, Consistency: "stale", Timeout: 10 * time.Second, Seed: 1,
	}
	rep, err := Run(context.Background(), opts, nil)
	require.NoError(t, err)
	assert.EqualValues(t, 600, rep.OK, "errors: %v", rep.ErrorsByKind)
	assert.Zero(t, rep.Errors)
	assert.EqualValues(t, 600, puts.Load()+appends.Load()+gets.Load())
	assert.Positive(t, appends.Load())
	assert.Positive(t, gets.Load())
	// One connection per client, and one for the leader finder.
	assert.EqualValues(t, opts.Clients+1, srv.conns.Load())

	var text bytes.Buffer
	rep.WriteText(&text)
	assert.Contains(t, text.String(), "Workload: 4 clients, one connection per client, mix put 1 / append 1 / get 1")
	js, err := json.Marshal(rep)
	require.NoError(t, err)
	assert.NotContains(t, string(js), "conns")
}

func TestRunCancel(t *testing.T) {
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			json.NewEncoder(w).Encode(api.Status{Name: "n1", Leader: "n1"})
			return
		}
		hang(t, r) // every request
	})
	opts := Options{
		Endpoints: []string{srv.endpoint}, Clients: 3, Put: 1, KeySize: 8, ValSize: 8, Keys: 10,
		Duration: time.Hour, Consistency: "linearizable", Timeout: time.Hour,
	}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Run(ctx, opts, nil)
		done <- result{rep, err}
	}()
	// Wait until all clients have a request in flight.
	require.Eventually(t, func() bool { return srv.conns.Load() >= int64(opts.Clients)+1 }, 10*time.Second, 5*time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case res := <-done:
		require.NoError(t, res.err)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Zero(t, res.rep.Errors, "interrupted requests are not errors: %v", res.rep.ErrorsByKind)
		assert.Zero(t, res.rep.OK)
	case <-time.After(10 * time.Second):
		t.Fatal("Run still going 10 s after the cancellation")
	}
}

func TestAppendKey(t *testing.T) {
	for _, tc := range []struct {
		n, size int
		want    string
	}{{42, 8, "00000042"}, {0, 1, "0"}, {12345, 3, "12345"}, {7, 0, "7"}} {
		assert.Equal(t, tc.want, string(appendKey([]byte("/"), tc.n, tc.size))[1:])
		assert.Equal(t, tc.want, keyName(tc.n, tc.size))
		assert.Equal(t, fmt.Sprintf("%0*d", tc.size, tc.n), keyName(tc.n, tc.size))
	}
}

// cpuTime is the CPU time this process has used (user and system), at
// microsecond resolution.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPuts runs b.N sequential puts with put and reports, besides the
// wall time, the process's CPU time per put (client and server: the
// server is in this process).
func benchPuts(b *testing.B, put func(seq uint64) error) {
	b.ReportAllocs()
	if err := put(0); err != nil { // warm up: dial
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := range b.N {
		if err := put(uint64(i + 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// benchServers are the servers benchmarks put to: a net/http one, as the
// nodes are, and rawServer, whose cost is close to nothing, so that the
// numbers are mostly the client's.
func benchServers(b *testing.B, run func(b *testing.B, endpoint string)) {
	b.Run("httptest", func(b *testing.B) {
		run(b, newCountedServer(b, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Write([]byte(`{"index":1}`))
		}).endpoint)
	})
	b.Run("raw", func(b *testing.B) { run(b, startRawServer(b, respond(okResponse)).endpoint) })
}

func BenchmarkHTTPConnPut(b *testing.B) {
	benchServers(b, func(b *testing.B, endpoint string) {
		c := testConn(b, context.Background())
		r := putRequest("/v1/kv/00000042", 0, bytes.Repeat([]byte("v"), 256))
		benchPuts(b, func(seq uint64) error {
			r.seq = seq
			status, _, err := c.do(endpoint, r, time.Now().Add(10*time.Second))
			if err == nil && status != 200 {
				err = fmt.Errorf("HTTP %d", status)
			}
			return err
		})
	})
}

// BenchmarkNetHTTPClientPut is the same with net/http's Client, as the
// workers did before httpConn.
func BenchmarkNetHTTPClientPut(b *testing.B) {
	benchServers(b, func(b *testing.B, endpoint string) {
		client := &http.Client{Transport: newTransport(1), Timeout: 10 * time.Second}
		b.Cleanup(client.CloseIdleConnections)
		value := bytes.Repeat([]byte("v"), 256)
		ctx := context.Background()
		benchPuts(b, func(seq uint64) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+endpoint+"/v1/kv/00000042", bytes.NewReader(value))
			req.Header.Set("Client-Id", "bench-test-0")
			req.Header.Set("Request-Seq", strconv.FormatUint(seq, 10))
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = errors.New(resp.Status)
			}
			return err
		})
	})
}

// TestRunEndIsNotAnError: requests still in flight when a timed run ends
// count as neither successes nor errors, even though the connection's
// deadline (the run's end) may fire before the context's timer.
func TestRunEndIsNotAnError(t *testing.T) {
	srv := newCountedServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" {
			json.NewEncoder(w).Encode(api.Status{Name: "n1", Leader: "n1"})
			return
		}
		hang(t, r) // every request is in flight when the run ends
	})
	for range 5 {
		opts := Options{
			Endpoints: []string{srv.endpoint}, Clients: 8, Put: 1, KeySize: 8, ValSize: 8, Keys: 10,
			Duration: 50 * time.Millisecond, Consistency: "linearizable", Timeout: time.Hour,
		}
		rep, err := Run(context.Background(), opts, nil)
		require.NoError(t, err)
		assert.Zero(t, rep.Errors, "%v", rep.ErrorsByKind)
		assert.Zero(t, rep.OK)
	}
}
