package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/watch"
)

// TestWatchStreamAndCompaction: a watch from an index streams the changes
// above it under the prefix, in log order, as JSON lines; an index below
// the node's history is 410 with the oldest index it can serve.
func TestWatchStreamAndCompaction(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr
	first := decode[api.WriteBody](t, do(t, "PUT", base+"/v1/kv/w/a", "1", nil)).Index
	do(t, "PUT", base+"/v1/kv/other", "x", nil)
	do(t, "PUT", base+"/v1/kv/w/a?op=append", "2", nil)
	do(t, "DELETE", base+"/v1/kv/w/a", "", nil)

	resp, err := testHTTP.Get(fmt.Sprintf("%s/v1/watch/w/?since=%d", base, first-1))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	var got []api.WatchEvent
	for len(got) < 4 && sc.Scan() {
		var e api.WatchEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
		got = append(got, e)
		if len(got) == 3 {
			do(t, "PUT", base+"/v1/kv/w/b", "live", nil) // a change after the stream started
		}
	}
	require.Len(t, got, 4)
	assert.Equal(t, []string{"put 1", "append 12", "delete ", "put live"}, []string{
		got[0].Type + " " + got[0].Value, got[1].Type + " " + got[1].Value, got[2].Type + " " + got[2].Value, got[3].Type + " " + got[3].Value})
	for i := 1; i < len(got); i++ {
		assert.Greater(t, got[i].Index, got[i-1].Index)
	}

	// A node whose history holds 2 changes.
	cfgs := testConfigs(t, 1)
	cfgs[0].node.Watch = watch.Options{MaxEvents: 2}
	small := startNodes(t, cfgs)
	waitLeader(t, small)
	sbase := "http://" + small[0].addr
	idx := make([]uint64, 4)
	for i := range idx {
		idx[i] = decode[api.WriteBody](t, do(t, "PUT", fmt.Sprintf("%s/v1/kv/k%d", sbase, i), "v", nil)).Index
	}
	r := do(t, "GET", fmt.Sprintf("%s/v1/watch/?since=%d", sbase, idx[0]), "", nil)
	require.Equal(t, http.StatusGone, r.code, r.body)
	assert.Equal(t, idx[1], decode[api.CompactedBody](t, r).OldestIndex, "the oldest since still served")
	resp, err = testHTTP.Get(fmt.Sprintf("%s/v1/watch/?since=%d", sbase, idx[1]))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc = bufio.NewScanner(resp.Body)
	require.True(t, sc.Scan())
	assert.Contains(t, sc.Text(), `"key":"k2"`)
}

// TestBlockingRead: GET ?index=N&wait=D waits for a change past N, and
// returns after D without one.
func TestBlockingRead(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr + "/v1/kv/"
	do(t, "PUT", base+"b", "1", nil)
	resp, err := testHTTP.Get(base + "b")
	require.NoError(t, err)
	resp.Body.Close()
	idx, err := strconv.ParseUint(resp.Header.Get("Raft-Index"), 10, 64)
	require.NoError(t, err)

	start := time.Now()
	r := do(t, "GET", fmt.Sprintf("%sb?index=%d&wait=300ms", base, idx), "", nil)
	assert.Equal(t, 200, r.code)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "returned before the wait without a change")

	done := make(chan reply, 1)
	go func() { done <- do(t, "GET", fmt.Sprintf("%sb?index=%d&wait=30s", base, idx), "", nil) }()
	eventually(t, 5*time.Second, "the blocking read waits", func() bool { return n.rt.Watch().Watchers() == 1 })
	do(t, "PUT", base+"unrelated", "x", nil)
	do(t, "PUT", base+"b", "2", nil)
	select {
	case r := <-done:
		assert.Contains(t, r.body, `"value":"2"`)
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking read did not return on a change")
	}
}

// TestLeaseHTTP: grant, attach, keep alive, list, revoke (which deletes the
// keys), and 404 for a lease that is gone.
func TestLeaseHTTP(t *testing.T) {
	n := startOne(t, nil)
	base := "http://" + n.addr
	r := do(t, "POST", base+"/v1/lease", `{"ttl":"30s"}`, nil)
	require.Equal(t, 200, r.code, r.body)
	l := decode[api.LeaseBody](t, r)
	assert.Equal(t, "30s", l.TTL)
	require.Equal(t, 200, do(t, "PUT", fmt.Sprintf("%s/v1/kv/svc/a?lease=%d", base, l.ID), "addr", nil).code)
	assert.Equal(t, 404, do(t, "PUT", base+"/v1/kv/svc/b?lease=999999", "addr", nil).code)
	k := do(t, "PUT", fmt.Sprintf("%s/v1/lease/%d/keepalive", base, l.ID), "", nil)
	require.Equal(t, 200, k.code, k.body)
	assert.Greater(t, decode[api.LeaseBody](t, k).RenewIndex, l.ID)
	list := decode[api.LeaseListBody](t, do(t, "GET", base+"/v1/lease", "", nil))
	require.Len(t, list.Leases, 1)
	assert.Equal(t, []string{"svc/a"}, list.Leases[0].Keys)
	for _, bad := range []string{`{"ttl":"10ms"}`, `{"ttl":"x"}`, `{"ttl":"3s","x":1}`, `{}`} {
		assert.Equal(t, 400, do(t, "POST", base+"/v1/lease", bad, nil).code, bad)
	}
	rv := do(t, "DELETE", fmt.Sprintf("%s/v1/lease/%d", base, l.ID), "", nil)
	require.Equal(t, 200, rv.code, rv.body)
	assert.Equal(t, 1, decode[api.DeleteBody](t, rv).Deleted)
	assert.Equal(t, 404, do(t, "GET", base+"/v1/kv/svc/a", "", nil).code)
	assert.Equal(t, 404, do(t, "PUT", fmt.Sprintf("%s/v1/lease/%d/keepalive", base, l.ID), "", nil).code)
}
