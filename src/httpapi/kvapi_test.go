package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/kv"
)

func (r *stubRuntime) Entry(key string) (string, kv.Meta, bool, uint64) {
	v, ok := r.kv[key]
	return v, kv.Meta{}, ok, 1
}
func (r *stubRuntime) Range(kv.RangeRequest) kv.RangeResult { return kv.RangeResult{} }

func decode[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.body), &v), "body %q", r.body)
	return v
}

func TestKeyMetadataOnGet(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr + "/v1/kv/"
	p1 := decode[api.WriteBody](t, do(t, "PUT", base+"m", "1", nil))
	p2 := decode[api.WriteBody](t, do(t, "PUT", base+"m?op=append", "2", nil))
	r := do(t, "GET", base+"m", "", nil)
	require.Equal(t, 200, r.code, r.body)
	assert.Equal(t, api.ValueBody{Key: "m", Value: "12", KeyMeta: api.KeyMeta{CreateIndex: p1.Index, ModIndex: p2.Index, Version: 2}}, decode[api.ValueBody](t, r))
	req, _ := http.NewRequest("GET", base+"m?consistency=stale", nil)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	idx, err := strconv.ParseUint(resp.Header.Get("Raft-Index"), 10, 64)
	require.NoError(t, err, "Raft-Index header")
	assert.GreaterOrEqual(t, idx, p2.Index)
}

// TestCompareAndSwapHTTP: ?cas=N writes only when the key's mod_index is
// N (0: absent); a failed compare is a 409 with the key's metadata, and
// changes nothing.
func TestCompareAndSwapHTTP(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr + "/v1/kv/"
	first := do(t, "PUT", base+"lock?cas=0", "me", nil)
	require.Equal(t, 200, first.code, first.body)
	idx := decode[api.WriteBody](t, first).Index

	steps := []struct {
		method, target, body string
		code                 int
		conflict             *api.ConflictBody
	}{
		{"PUT", "lock?cas=0", "you", 409, &api.ConflictBody{Key: "lock", Exists: true, KeyMeta: api.KeyMeta{CreateIndex: idx, ModIndex: idx, Version: 1}}},
		{"PUT", fmt.Sprintf("lock?cas=%d", idx+1), "you", 409, &api.ConflictBody{Key: "lock", Exists: true, KeyMeta: api.KeyMeta{CreateIndex: idx, ModIndex: idx, Version: 1}}},
		{"DELETE", fmt.Sprintf("lock?cas=%d", idx+7), "", 409, &api.ConflictBody{Key: "lock", Exists: true, KeyMeta: api.KeyMeta{CreateIndex: idx, ModIndex: idx, Version: 1}}},
		{"PUT", "absent?cas=4", "x", 409, &api.ConflictBody{Key: "absent"}},
		{"PUT", fmt.Sprintf("lock?cas=%d", idx), "me again", 200, nil},
	}
	for _, st := range steps {
		r := do(t, st.method, base+st.target, st.body, nil)
		require.Equal(t, st.code, r.code, "%s %s: %s", st.method, st.target, r.body)
		if st.conflict != nil {
			got := decode[api.ConflictBody](t, r)
			assert.Contains(t, got.Error, "compare-and-swap failed")
			got.Error = ""
			assert.Equal(t, *st.conflict, got, st.target)
		}
	}
	g := decode[api.ValueBody](t, do(t, "GET", base+"lock", "", nil))
	assert.Equal(t, "me again", g.Value)
	assert.Equal(t, uint64(2), g.Version)
	r := do(t, "DELETE", fmt.Sprintf("%slock?cas=%d", base, g.ModIndex), "", nil)
	require.Equal(t, 200, r.code, r.body)
	assert.Equal(t, 404, do(t, "GET", base+"lock", "", nil).code)

	// Exactly-once: a retried CAS gets its first answer, though the key
	// has changed since (a second application would now fail).
	hdr := http.Header{"Client-Id": {"cas-client"}, "Request-Seq": {"1"}}
	a := do(t, "PUT", base+"once?cas=0", "1", hdr)
	require.Equal(t, 200, a.code, a.body)
	b := do(t, "PUT", base+"once?cas=0", "1", hdr)
	assert.Equal(t, a.body, b.body)
}

func putAll(t *testing.T, base string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		require.Equal(t, 200, do(t, "PUT", base+url.PathEscape(k), "v:"+k, nil).code)
	}
}

func TestListHTTP(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr + "/v1/kv/"
	putAll(t, base, "app/a", "app/b", "app/c/1", "app/c/2", "apple", "b")

	keysOf := func(target string) ([]string, api.ListBody) {
		r := do(t, "GET", base+target, "", nil)
		require.Equal(t, 200, r.code, "%s: %s", target, r.body)
		l := decode[api.ListBody](t, r)
		if l.Keys != nil {
			return l.Keys, l
		}
		var out []string
		for _, e := range l.KVs {
			out = append(out, e.Key)
			if !strings.HasPrefix(e.Key, "big/") {
				assert.Equal(t, "v:"+e.Key, e.Value)
			}
			assert.NotZero(t, e.ModIndex)
			assert.Equal(t, uint64(1), e.Version)
		}
		assert.Equal(t, len(out), l.Count)
		return out, l
	}
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"app/?prefix", []string{"app/a", "app/b", "app/c/1", "app/c/2"}},
		{"app?prefix", []string{"app/a", "app/b", "app/c/1", "app/c/2", "apple"}},
		{"?prefix", []string{"app/a", "app/b", "app/c/1", "app/c/2", "apple", "b"}},
		{"?prefix&consistency=stale", []string{"app/a", "app/b", "app/c/1", "app/c/2", "apple", "b"}},
		{"app/?prefix&keys", []string{"app/a", "app/b", "app/c/1", "app/c/2"}},
		{"app/?prefix&keys&separator=/", []string{"app/a", "app/b", "app/c/"}},
		{"app/b?range_end=apple", []string{"app/b", "app/c/1", "app/c/2"}},
		{"?range_end=app/b", []string{"app/a"}},
		{"zzz?prefix", nil},
	} {
		got, l := keysOf(tc.target)
		assert.Equal(t, tc.want, got, tc.target)
		assert.False(t, l.More, tc.target)
	}

	// Paging: ?limit= and the continuation token visit every key once.
	var all []string
	target := "?prefix&limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		got, l := keysOf(target)
		all = append(all, got...)
		if !l.More {
			assert.Empty(t, l.Continue)
			break
		}
		require.NotEmpty(t, l.Continue)
		target = "?prefix&limit=2&continue=" + url.QueryEscape(l.Continue)
	}
	assert.Equal(t, []string{"app/a", "app/b", "app/c/1", "app/c/2", "apple", "b"}, all)

	// A listing larger than the bound is a 413 that says how to page.
	big := strings.Repeat("x", api.MaxValueBytes)
	for i := range 5 {
		require.Equal(t, 200, do(t, "PUT", base+"big/"+strconv.Itoa(i), big, nil).code)
	}
	r := do(t, "GET", base+"big/?prefix", "", nil)
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.code)
	assert.Contains(t, errorMessage(t, r), "?limit=")
	got, l := keysOf("big/?prefix&limit=3")
	assert.Equal(t, []string{"big/0", "big/1", "big/2"}, got)
	assert.True(t, l.More)
	got, _ = keysOf("big/?prefix&keys") // keys alone are small
	assert.Len(t, got, 5)
}

func TestDeletePrefixHTTP(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr + "/v1/kv/"
	putAll(t, base, "d/1", "d/2", "d/x/3", "dd")
	r := do(t, "DELETE", base+"d/?prefix", "", nil)
	require.Equal(t, 200, r.code, r.body)
	assert.Equal(t, 3, decode[api.DeleteBody](t, r).Deleted)
	l := decode[api.ListBody](t, do(t, "GET", base+"?prefix&keys", "", nil))
	assert.Equal(t, []string{"dd"}, l.Keys)
	r = do(t, "DELETE", base+"?prefix", "", nil)
	assert.Equal(t, 400, r.code, "deleting every key is refused")
}

func TestTxnHTTP(t *testing.T) {
	n := startOne(t, nil)
	url := "http://" + n.addr + "/v1/txn"
	base := "http://" + n.addr + "/v1/kv/"
	putAll(t, base, "acct/a")
	a := decode[api.ValueBody](t, do(t, "GET", base+"acct/a", "", nil))

	body := fmt.Sprintf(`{"compare":[{"key":"acct/a","target":"mod_index","number":%d},{"key":"acct/b","target":"exists","exists":false}],
		"then":[{"op":"put","key":"acct/b","value":"10"},{"op":"append","key":"acct/a","value":"!"},{"op":"get","key":"acct/a"}],
		"else":[{"op":"get","key":"acct/b"}]}`, a.ModIndex)
	r := do(t, "POST", url, body, http.Header{"Client-Id": {"tx"}, "Request-Seq": {"1"}})
	require.Equal(t, 200, r.code, r.body)
	tb := decode[api.TxnBody](t, r)
	require.True(t, tb.Succeeded)
	require.Len(t, tb.Results, 3)
	assert.Equal(t, "v:acct/a!", tb.Results[2].Value)
	assert.Equal(t, tb.Index, tb.Results[2].ModIndex, "every write of a transaction is at its index")
	b := decode[api.ValueBody](t, do(t, "GET", base+"acct/b", "", nil))
	assert.Equal(t, tb.Index, b.ModIndex)

	// The retry gets the first answer; applied again, the compares would
	// fail and the else branch would run.
	again := do(t, "POST", url, body, http.Header{"Client-Id": {"tx"}, "Request-Seq": {"1"}})
	assert.Equal(t, r.body, again.body)
	r = do(t, "POST", url, body, nil)
	require.Equal(t, 200, r.code, r.body)
	eb := decode[api.TxnBody](t, r)
	assert.False(t, eb.Succeeded)
	require.Len(t, eb.Results, 1)
	assert.Equal(t, api.TxnOpResult{Op: "get", Key: "acct/b", Found: true, Value: "10", KeyMeta: &b.KeyMeta}, eb.Results[0])
	assert.Equal(t, "v:acct/a!", decode[api.ValueBody](t, do(t, "GET", base+"acct/a", "", nil)).Value)

	// A large transaction (two values of 900 KiB, under the 2 MiB bound)
	// goes through the log like any write.
	v := strings.Repeat("y", 900<<10)
	r = do(t, "POST", url, `{"then":[{"op":"put","key":"big1","value":"`+v+`"},{"op":"put","key":"big2","value":"`+v+`"}]}`, nil)
	require.Equal(t, 200, r.code, "%.200s", r.body)
	assert.Len(t, decode[api.ValueBody](t, do(t, "GET", base+"big2", "", nil)).Value, 900<<10)

	tooMany := `{"then":[` + strings.Repeat(`{"op":"get","key":"k"},`, api.MaxTxnOps) + `{"op":"get","key":"k"}]}`
	for _, tc := range []struct {
		method, target, body string
		code                 int
		msg                  string
	}{
		{"GET", url, "", 405, "not allowed"},
		{"POST", url + "?x=1", `{}`, 400, `"x"`},
		{"POST", url, `{"then":[{"op":"put","key":"k","value":"v"}]`, 400, "transaction body"},
		{"POST", url, `{"then":[],"extra":1}`, 400, "unknown field"},
		{"POST", url, `{} {}`, 400, "data after"},
		{"POST", url, `{"compare":[{"key":"k","target":"lease"}]}`, 400, "target"},
		{"POST", url, `{"then":[{"op":"cas","key":"k"}]}`, 400, "want put, append, delete or get"},
		{"POST", url, `{"then":[{"op":"put","key":"","value":"v"}]}`, 400, "key"},
		{"POST", url, tooMany, 400, "more than 128"},
		{"POST", url, `{"then":[{"op":"put","key":"k","value":"` + strings.Repeat("x", api.MaxTxnBytes) + `"}]}`, 413, "exceeds"},
	} {
		r := do(t, tc.method, tc.target, tc.body, nil)
		assert.Equal(t, tc.code, r.code, "%.80s: %.200s", tc.body, r.body)
		assert.Contains(t, errorMessage(t, r), tc.msg)
	}
}

// TestKVAPIThroughFollower: a follower forwards CAS, transactions and
// linearizable listings to the leader; its stale listing is its own,
// with its own applied index in Raft-Index.
func TestKVAPIThroughFollower(t *testing.T) {
	nodes := startNodes(t, testConfigs(t, 3))
	l := waitLeader(t, nodes)
	f := nodes[(l+1)%3]
	base := "http://" + f.addr + "/v1/kv/"
	r := do(t, "PUT", base+"f/1?cas=0", "one", nil)
	require.Equal(t, 200, r.code, r.body)
	assert.Equal(t, 409, do(t, "PUT", base+"f/1?cas=0", "two", nil).code)
	r = do(t, "POST", "http://"+f.addr+"/v1/txn", `{"then":[{"op":"put","key":"f/2","value":"two"}]}`, nil)
	require.Equal(t, 200, r.code, r.body)
	lst := decode[api.ListBody](t, do(t, "GET", base+"f/?prefix&keys", "", nil))
	assert.Equal(t, []string{"f/1", "f/2"}, lst.Keys)
	fwd, err := testHTTP.Get(base + "f/1")
	require.NoError(t, err)
	fwd.Body.Close()
	assert.NotEmpty(t, fwd.Header.Get("Raft-Index"), "a forwarded read passes the leader's Raft-Index on")
	idx := decode[api.TxnBody](t, r).Index
	eventually(t, 5*time.Second, "the follower applies", func() bool { return f.rt.AppliedIndex() >= idx })
	req, _ := http.NewRequest("GET", base+"f/?prefix&consistency=stale", nil)
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, f.srv.cfg.name(), resp.Header.Get("Raft-Node"))
	applied, err := strconv.ParseUint(resp.Header.Get("Raft-Index"), 10, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, applied, idx)
}
