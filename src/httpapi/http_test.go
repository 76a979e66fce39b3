package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reply is one HTTP answer, read whole.
type reply struct {
	code int
	body string
	ct   string
}

// do sends one request to a node and reads the reply.
func do(t *testing.T, method, url, body string, hdr http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{code: resp.StatusCode, body: string(b), ct: resp.Header.Get("Content-Type")}
}

// errorMessage decodes a JSON error reply; it fails the test for anything
// else.
func errorMessage(t *testing.T, r reply) string {
	t.Helper()
	assert.Equal(t, "application/json", r.ct, "body %q", r.body)
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.body), &e), "body %q", r.body)
	require.NotEmpty(t, e.Error, "body %q", r.body)
	return e.Error
}

// startOne starts a one-node cluster and waits until it leads.
func startOne(t *testing.T, tweak func(*Config)) *testNode {
	t.Helper()
	cfgs := testConfigs(t, 1)
	if tweak != nil {
		tweak(&cfgs[0].Config)
	}
	nodes := startNodes(t, cfgs)
	waitLeader(t, nodes)
	return nodes[0]
}

// TestQueryParamsStrict: on every endpoint, a query parameter that is
// unknown, malformed, repeated, meant for another method or has a bad
// value is refused with a JSON 400 that names it, and nothing changes.
// Before, "?op=app%zzend" and "?op=append;x=1" replaced the value.
func TestQueryParamsStrict(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr
	require.Equal(t, 200, do(t, "PUT", base+"/v1/kv/k", "orig", nil).code)
	// The loop publishes its status after the Ready that answered the put.
	eventually(t, 5*time.Second, "status shows the put", func() bool { return n.rt.Status().Commit >= n.rt.AppliedIndex() })
	commit := n.rt.Status().Commit

	tests := []struct {
		method, target string
		name           string // must appear, quoted, in the error
		also           string // and this, if set
	}{
		// PUT /v1/kv/{key}
		{"PUT", "/v1/kv/k?op=app%zzend", "op", "malformed"},
		{"PUT", "/v1/kv/k?op=append;x=1", "op", `";" is not a separator`},
		{"PUT", "/v1/kv/k?op=put&op=append", "op", "more than once"},
		{"PUT", "/v1/kv/k?op=append&op=append", "op", "more than once"},
		{"PUT", "/v1/kv/k?op=foo", "op", "want put or append"},
		{"PUT", "/v1/kv/k?op=", "op", "want put or append"},
		{"PUT", "/v1/kv/k?op", "op", "want put or append"},
		{"PUT", "/v1/kv/k?consistency=stale", "consistency", "PUT /v1/kv/{key}"},
		{"PUT", "/v1/kv/k?cas=x", "cas", "want the key's mod_index"},
		{"PUT", "/v1/kv/k?cas=1&op=append", "cas", "not append"},
		{"PUT", "/v1/kv/k?ttl=10s", "ttl", "is not supported"},
		{"PUT", "/v1/kv/k?index=3", "index", "it takes op, cas, lease"},
		{"PUT", "/v1/kv/k?lease=x", "lease", "want the id"},
		{"PUT", "/v1/kv/k?lease=0", "lease", "want the id"},
		{"PUT", "/v1/kv/k?lease=3&op=append", "lease", "not append"},
		{"PUT", "/v1/kv/k?flags=1", "flags", "is not supported"},
		{"PUT", "/v1/kv/k?foo=bar", "foo", "it takes op"},
		{"PUT", "/v1/kv/k?op=append&foo", "foo", ""},
		{"PUT", "/v1/kv/k?%zz=1", "%zz", "malformed"},
		{"PUT", "/v1/kv/k?op=append&", "", "stray"},
		// DELETE /v1/kv/{key}
		{"DELETE", "/v1/kv/k?op=put", "op", "it takes cas, prefix"},
		{"DELETE", "/v1/kv/k?cas=-1", "cas", "want the key's mod_index"},
		{"DELETE", "/v1/kv/k?prefix=a", "prefix", "takes no value"},
		{"DELETE", "/v1/kv/k?prefix&cas=3", "prefix", "exclude each other"},
		{"DELETE", "/v1/kv/k?recurse", "recurse", "is not supported"},
		// GET /v1/kv/{key}
		{"GET", "/v1/kv/k?op=append", "op", "it takes consistency"},
		{"GET", "/v1/kv/k?consistency=weird", "consistency", "want linearizable or stale"},
		{"GET", "/v1/kv/k?consistency=st%zz", "consistency", "malformed"},
		{"GET", "/v1/kv/k?consistency=stale&consistency=stale", "consistency", "more than once"},
		{"GET", "/v1/kv/k?consistency=stale;x", "consistency", `";"`},
		{"GET", "/v1/kv/k?recurse", "recurse", "is not supported"},
		{"GET", "/v1/kv/k?keys", "keys", "give ?prefix"},
		{"GET", "/v1/kv/k?limit=3", "limit", "give ?prefix"},
		{"GET", "/v1/kv/k?prefix=a", "prefix", "takes no value"},
		{"GET", "/v1/kv/k?prefix&range_end=z", "prefix", "exclude each other"},
		{"GET", "/v1/kv/k?prefix&separator=/", "separator", `needs "keys"`},
		{"GET", "/v1/kv/k?prefix&limit=0", "limit", "want an integer"},
		{"GET", "/v1/kv/k?prefix&limit=x", "limit", "want an integer"},
		{"GET", "/v1/kv/k?prefix&continue=%25%25", "continue", "not a token"},
		{"GET", "/v1/kv/?recurse", "recurse", "use ?prefix"},
		{"GET", "/v1/kv/", "", "key is empty"},
		{"GET", "/v1/kv/k?index=x&wait=1s", "index", "want the Raft-Index"},
		{"GET", "/v1/kv/k?index=5&wait=soon", "wait", "positive Go duration"},
		{"GET", "/v1/kv/k?wait=1s", "wait", `needs "index"`},
		{"GET", "/v1/kv/k?index=5&index=6", "index", "more than once"},
		// Watches and leases
		{"GET", "/v1/watch/p?since=x", "since", "want a log index"},
		{"GET", "/v1/watch/p?from=3", "from", "it takes since"},
		{"POST", "/v1/lease?ttl=3s", "ttl", "is not supported"},
		{"PUT", "/v1/lease/x/keepalive", "", "want the id"},
		{"PUT", "/v1/lease/7/keepalive?now", "now", "takes none"},
		{"GET", "/v1/kv/k?stale", "stale", "is not supported"},
		// The other endpoints take nothing, or scope.
		{"GET", "/v1/status?verbose=1", "verbose", "GET /v1/status"},
		{"GET", "/v1/cluster?x", "x", "GET /v1/cluster"},
		{"GET", "/healthz?probe=%zz", "probe", "malformed"},
		{"GET", "/metrics?name[]=x", "name[]", "GET /metrics"},
		{"GET", "/v1/metrics-summary?scope=everything", "scope", "want cluster"},
		{"GET", "/v1/metrics-summary?scope=cluster&scope=cluster", "scope", "more than once"},
		{"GET", "/v1/metrics-summary?foo=1", "foo", "it takes scope"},
		{"GET", "/?refresh=1", "refresh", "GET /"},
		{"GET", "/ui/app.js?v=2", "v", "GET /ui/app.js"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			r := do(t, tt.method, base+tt.target, "new", nil)
			assert.Equal(t, http.StatusBadRequest, r.code, r.body)
			msg := errorMessage(t, r)
			if tt.name != "" {
				assert.Contains(t, msg, fmt.Sprintf("%q", tt.name))
			}
			assert.Contains(t, msg, tt.also)
		})
	}
	// Nothing was proposed, nothing changed.
	assert.Equal(t, commit, n.rt.Status().Commit, "a refused request reached the log")
	r := do(t, "GET", base+"/v1/kv/k", "", nil)
	assert.Equal(t, `{"key":"k","value":"orig","create_index":`, r.body[:len(`{"key":"k","value":"orig","create_index":`)])

	// The queries that mean something still work.
	for _, ok := range []struct{ method, target, want string }{
		{"PUT", "/v1/kv/k?op=append", ""},
		{"PUT", "/v1/kv/j?op=put", ""},
		{"GET", "/v1/kv/k?consistency=linearizable", `"value":"orignew"`},
		{"GET", "/v1/kv/k?consistency=stale", `"value":"orignew"`},
		{"GET", "/v1/kv/j", `"value":"new"`},
		{"GET", "/v1/metrics-summary?scope=cluster", `"nodes"`},
		{"GET", "/v1/kv/k?", `"value":"orignew"`}, // an empty query
	} {
		r := do(t, ok.method, base+ok.target, "new", nil)
		assert.Equal(t, 200, r.code, "%s %s: %s", ok.method, ok.target, r.body)
		assert.Contains(t, r.body, ok.want, "%s %s", ok.method, ok.target)
	}
}

// rawRequest writes req on a new connection and reads one reply.
func rawRequest(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestUnparsableRequestsGetJSON: net/http refuses a request line it cannot
// parse (a bad %-escape in the path) before any handler runs; the reply
// is still a JSON error. Before, it was "400 Bad Request" in plain text.
func TestUnparsableRequestsGetJSON(t *testing.T) {
	n := startOne(t, nil)
	for _, path := range []string{"/v1/kv/%zz", "/v1/kv/a%2", "/v1/status%"} {
		t.Run(path, func(t *testing.T) {
			resp, body := rawRequest(t, n.addr, "PUT "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv")
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			msg := errorMessage(t, reply{code: resp.StatusCode, body: body, ct: resp.Header.Get("Content-Type")})
			assert.Contains(t, msg, "%-escape")
		})
	}
	// A request without Host, another of net/http's own refusals.
	resp, body := rawRequest(t, n.addr, "GET /v1/status HTTP/1.1\r\n\r\n")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, errorMessage(t, reply{body: body, ct: resp.Header.Get("Content-Type")}), "Host")
	// The node still serves, and a well-formed escaped key works.
	assert.Equal(t, 200, do(t, "PUT", "http://"+n.addr+"/v1/kv/a%25b", "v", nil).code)
	assert.Contains(t, do(t, "GET", "http://"+n.addr+"/v1/kv/a%25b", "", nil).body, `"key":"a%b"`)
}

// TestClientIDHeader: Client-Id is 1 to 128 bytes of valid UTF-8, and
// Request-Seq an integer from 1, both or neither; anything else is a JSON
// 400 naming the header, and no session is created. Before, an id that is
// not UTF-8 was stored as U+FFFD, so two clients shared a session and one
// got the other's {"index":N} for a write never applied.
func TestClientIDHeader(t *testing.T) {
	n := startOne(t, nil)
	url := "http://" + n.addr + "/v1/kv/k"
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = append(out[kv[i]], kv[i+1])
		}
		return out
	}
	id128 := strings.Repeat("i", 128)
	tests := []struct {
		name   string
		method string
		hdr    http.Header
		header string // named in the error
		also   string
	}{
		{"invalid UTF-8", "PUT", h("Client-Id", "\xff\xfe", "Request-Seq", "1"), "Client-Id", "UTF-8"},
		{"another invalid UTF-8", "PUT", h("Client-Id", "\xfe", "Request-Seq", "1"), "Client-Id", "UTF-8"},
		{"129 bytes", "PUT", h("Client-Id", id128+"x", "Request-Seq", "1"), "Client-Id", "129 bytes"},
		{"900 kB", "PUT", h("Client-Id", strings.Repeat("x", 900<<10), "Request-Seq", "1"), "Client-Id", "921600 bytes"},
		{"empty", "PUT", h("Client-Id", "", "Request-Seq", "1"), "Client-Id", "empty"},
		{"twice", "PUT", h("Client-Id", "a", "Client-Id", "b", "Request-Seq", "1"), "Client-Id", "more than once"},
		{"without Request-Seq", "PUT", h("Client-Id", "a"), "Client-Id", "needs a Request-Seq"},
		{"Request-Seq without Client-Id", "DELETE", h("Request-Seq", "1"), "Request-Seq", "needs a Client-Id"},
		{"Request-Seq zero", "PUT", h("Client-Id", "a", "Request-Seq", "0"), "Request-Seq", "not an integer from 1"},
		{"Request-Seq negative", "PUT", h("Client-Id", "a", "Request-Seq", "-1"), "Request-Seq", "not an integer"},
		{"Request-Seq signed", "PUT", h("Client-Id", "a", "Request-Seq", "+1"), "Request-Seq", "not an integer"},
		{"Request-Seq not a number", "PUT", h("Client-Id", "a", "Request-Seq", "one"), "Request-Seq", "not an integer"},
		{"Request-Seq overflow", "PUT", h("Client-Id", "a", "Request-Seq", "18446744073709551616"), "Request-Seq", "not an integer"},
		{"Request-Seq twice", "PUT", h("Client-Id", "a", "Request-Seq", "1", "Request-Seq", "2"), "Request-Seq", "more than once"},
		{"on a read too", "GET", h("Client-Id", "\xff", "Request-Seq", "1"), "Client-Id", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, url, "bad", tt.hdr)
			assert.Equal(t, http.StatusBadRequest, r.code, r.body)
			msg := errorMessage(t, r)
			assert.Contains(t, msg, "header "+tt.header)
			assert.Contains(t, msg, tt.also)
			assert.Less(t, len(msg), 300, "the error does not repeat a huge id")
		})
	}
	assert.Zero(t, n.rt.Sessions(), "a refused request made a session")
	_, found := n.rt.Get("k")
	assert.False(t, found, "a refused write was applied")

	// 128 bytes (and 128 bytes of two-byte runes) work, with exactly-once.
	for _, id := range []string{id128, strings.Repeat("é", 64)} {
		first := do(t, "PUT", url+"?op=append", "x", h("Client-Id", id, "Request-Seq", "1"))
		require.Equal(t, 200, first.code, first.body)
		again := do(t, "PUT", url+"?op=append", "x", h("Client-Id", id, "Request-Seq", "1"))
		assert.Equal(t, first.body, again.body, "a retry gets the first result")
	}
	assert.Contains(t, do(t, "GET", url, "", nil).body, `"value":"xx"`, "each client's write applied once")
	assert.Equal(t, 2, n.rt.Sessions())
	// Neither header: no session, allowed.
	assert.Equal(t, 200, do(t, "PUT", url, "plain", nil).code)
	assert.Equal(t, 2, n.rt.Sessions())
}
