package bench

import (
	"bytes"
	"context"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListWorkload(t *testing.T) {
	_, err := parseFlags([]string{"--endpoints", "127.0.0.1:8000", "--put", "0", "--list", "1", "--key-size", "2", "--keys", "10"}, &bytes.Buffer{})
	require.ErrorContains(t, err, "--list needs --key-size of at least 3")

	m := newMix(Options{List: 1})
	r := rand.New(rand.NewSource(1))
	for range 100 {
		require.Equal(t, opList, m.pick(r))
	}

	// The request a list worker sends: a random key without its last two
	// digits, as a prefix.
	var mu sync.Mutex
	var urls []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		urls = append(urls, r.Method+" "+r.URL.String())
		mu.Unlock()
		w.Header().Set("Raft-Leader", "n1")
		w.Write([]byte(`{"kvs":[],"count":0,"more":false}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	ep := ln.Addr().String()
	finder := &leaderFinder{current: ep, leader: "n1", byName: map[string]string{"n1": ep}}
	opts := Options{List: 1, Keys: 100000, KeySize: 8, Consistency: "stale", Timeout: 10 * time.Second}
	w := &worker{clientID: "bench-test-0", conn: testConn(t, context.Background()), rng: r, all: newHist(), errs: map[string]uint64{}}
	for k := range w.hist {
		w.hist[k] = newHist()
	}
	for range 3 {
		require.True(t, w.one(context.Background(), opts, m, finder), "%v", w.errs)
	}
	assert.EqualValues(t, 3, w.ok[opList])
	require.Len(t, urls, 3)
	for _, u := range urls {
		assert.Regexp(t, `^GET /v1/kv/\d{6}\?prefix&consistency=stale$`, u)
		assert.True(t, strings.HasPrefix(u, "GET /v1/kv/000"), u)
	}
}
