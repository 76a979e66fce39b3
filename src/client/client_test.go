package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/client"
	"raftkv/src/client/clienttest"
)

// newClient returns a client of fake with quick retries.
func newClient(t *testing.T, endpoints, names []string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		Endpoints:      endpoints,
		Names:          names,
		Logger:         zaptest.NewLogger(t),
		RequestTimeout: 500 * time.Millisecond,
		BackoffBase:    time.Millisecond,
		BackoffMax:     10 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr returns an address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]client.Config{
		"no endpoints":    {},
		"no port":         {Endpoints: []string{"localhost"}},
		"duplicate":       {Endpoints: []string{"a:1", "a:1"}},
		"names mismatch":  {Endpoints: []string{"a:1", "b:1"}, Names: []string{"r0"}},
		"duplicate names": {Endpoints: []string{"a:1", "b:1"}, Names: []string{"r0", "r0"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := client.New(cfg)
			assert.Error(t, err)
		})
	}
}

func TestPutGetAppendDelete(t *testing.T) {
	fake := clienttest.New(t, 3)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)

	// Keys may hold '/', spaces, '%', '?' and any UTF-8.
	key := "dir/sub key?%20é"
	res, err := c.Put(ctx, key, "bar")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), res.Index)
	assert.Equal(t, "r0", res.Leader)
	assert.Equal(t, uint64(1), res.Seq)

	res, err = c.Append(ctx, key, " 123")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), res.Index)
	assert.Equal(t, uint64(2), res.Seq)

	v, _, err := c.Get(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, "bar 123", v)
	v, _, err = c.Get(ctx, key, client.WithStale())
	require.NoError(t, err)
	assert.Equal(t, "bar 123", v)

	_, err = c.Delete(ctx, key)
	require.NoError(t, err)
	_, _, err = c.Get(ctx, key)
	assert.ErrorIs(t, err, client.ErrNotFound)

	// Deleting an absent key is fine.
	_, err = c.Delete(ctx, "never-there")
	assert.NoError(t, err)

	for _, w := range fake.Writes() {
		assert.Equal(t, c.ClientID(), w.ClientID)
		assert.Equal(t, key == w.Key || w.Key == "never-there", true)
	}
}

func TestFollowsLeader(t *testing.T) {
	for _, withNames := range []bool{true, false} {
		t.Run(fmt.Sprintf("names=%v", withNames), func(t *testing.T) {
			fake := clienttest.New(t, 3)
			fake.SetLeader(2)
			var names []string
			if withNames {
				names = fake.Names()
			}
			c := newClient(t, fake.Endpoints(), names)
			ctx := ctxTimeout(t, 5*time.Second)

			// The first request goes to r0, which forwards and names r2.
			res, err := c.Put(ctx, "k", "v")
			require.NoError(t, err)
			assert.Equal(t, "r2", res.Leader)

			// Soon every request goes to r2 directly (without names, after
			// the client has learned them from the nodes' status).
			deadline := time.Now().Add(3 * time.Second)
			for {
				_, err := c.Put(ctx, "k", "v")
				require.NoError(t, err)
				w := fake.Writes()
				if w[len(w)-1].Node == "r2" {
					break
				}
				require.True(t, time.Now().Before(deadline), "client never went to the leader: %+v", w)
			}
			name, _ := c.Leader()
			assert.Equal(t, "r2", name)

			// The leader changes: the client follows the new Raft-Leader.
			fake.SetLeader(1)
			_, err = c.Put(ctx, "k", "v") // r2 forwards, names r1
			require.NoError(t, err)
			w := fake.Writes()
			assert.Equal(t, "r2", w[len(w)-1].Node)
			for {
				_, err = c.Put(ctx, "k", "v2")
				require.NoError(t, err)
				w := fake.Writes()
				if w[len(w)-1].Node == "r1" {
					break
				}
				// With names, the very next request goes to r1.
				require.False(t, withNames, "client did not follow Raft-Leader: %+v", w)
				require.True(t, time.Now().Before(deadline), "client never went to the new leader: %+v", w)
			}
		})
	}
}

func TestFailoverOn503(t *testing.T) {
	fake := clienttest.New(t, 3)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	fake.SetMode(0, clienttest.Unavailable)

	res, err := c.Put(ctx, "k", "v")
	require.NoError(t, err)
	assert.Equal(t, 2, res.Attempts)
	w := fake.Writes()
	require.Len(t, w, 1) // the 503 was not a write: the fake refused before
	assert.Equal(t, "r1", w[0].Node)
}

func TestFailoverOnClosedListener(t *testing.T) {
	fake := clienttest.New(t, 3)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	_, err := c.Put(ctx, "k", "a") // opens a keep-alive connection to r0
	require.NoError(t, err)

	fake.Stop(0) // the leader's process dies
	fake.SetLeader(1)
	res, err := c.Append(ctx, "k", "b")
	require.NoError(t, err)
	assert.Equal(t, "r1", res.Leader)
	v, _ := fake.Value("k")
	assert.Equal(t, "ab", v)

	// It comes back: nothing breaks.
	require.NoError(t, fake.Restart(0))
	_, _, err = c.Get(ctx, "k")
	require.NoError(t, err)
}

func TestFailoverOnHang(t *testing.T) {
	fake := clienttest.New(t, 2)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	fake.SetMode(0, clienttest.Hang)
	v, res, err := c.Get(ctx, "absent")
	assert.ErrorIs(t, err, client.ErrNotFound)
	assert.Empty(t, v)
	assert.Equal(t, 2, res.Attempts)
	assert.Equal(t, 1, fake.Reads("r1"))
}

func TestSameSeqAfter504(t *testing.T) {
	fake := clienttest.New(t, 3)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	fake.LoseReplies(2) // the append is committed, its replies are lost twice

	res, err := c.Append(ctx, "log", "x")
	require.NoError(t, err)
	assert.Equal(t, 3, res.Attempts)
	w := fake.Writes()
	require.Len(t, w, 3)
	for _, wr := range w {
		assert.Equal(t, res.Seq, wr.Seq, "every retry carries the command's seq")
	}
	assert.True(t, w[0].Applied)
	assert.False(t, w[1].Applied)
	assert.False(t, w[2].Applied)
	assert.Equal(t, uint64(1), res.Index, "the retry returns the first result")
	v, _ := fake.Value("log")
	assert.Equal(t, "x", v, "applied once")

	// The next command gets the next seq.
	res2, err := c.Append(ctx, "log", "y")
	require.NoError(t, err)
	assert.Equal(t, res.Seq+1, res2.Seq)
	v, _ = fake.Value("log")
	assert.Equal(t, "xy", v)
}

func TestSameSeqAfterTimeout(t *testing.T) {
	// The first node takes the append and never answers; the retry to the
	// next node carries the same seq.
	fake := clienttest.New(t, 2)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	fake.SetMode(0, clienttest.Hang)
	res, err := c.Append(ctx, "log", "x")
	require.NoError(t, err)
	w := fake.Writes()
	require.Len(t, w, 1)
	assert.Equal(t, res.Seq, w[0].Seq)
	assert.Equal(t, "r1", w[0].Node)
}

func TestUnknownOutcome(t *testing.T) {
	fake := clienttest.New(t, 2)
	c := newClient(t, fake.Endpoints(), fake.Names())
	fake.LoseReplies(1 << 30) // every reply is lost

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := c.Append(ctx, "log", "x")
	require.Error(t, err)
	assert.ErrorIs(t, err, client.ErrUnknownOutcome)
	assert.NotErrorIs(t, err, client.ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var se *client.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusGatewayTimeout, se.Status)
	assert.Greater(t, res.Attempts, 1)
	for _, w := range fake.Writes() {
		assert.Equal(t, res.Seq, w.Seq)
	}
	v, _ := fake.Value("log")
	assert.Equal(t, "x", v, "applied once however often retried")
}

func TestUnavailable(t *testing.T) {
	t.Run("no leader", func(t *testing.T) {
		fake := clienttest.New(t, 3)
		fake.SetLeader(-1)
		// Backoff sleeps of 50-100ms: the client starts an attempt only
		// with at least 50ms left, so the deadline ends a sleep, not an
		// attempt (which would make the outcome unknown).
		c, err := client.New(client.Config{
			Endpoints: fake.Endpoints(), Logger: zaptest.NewLogger(t),
			BackoffBase: 100 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		})
		require.NoError(t, err)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err = c.Put(ctx, "k", "v")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, client.ErrUnavailable)
		assert.NotErrorIs(t, err, client.ErrUnknownOutcome)
		var se *client.StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusServiceUnavailable, se.Status)
	})
	t.Run("nothing listens", func(t *testing.T) {
		c := newClient(t, []string{deadAddr(t), deadAddr(t)}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Put(ctx, "k", "v")
		assert.ErrorIs(t, err, client.ErrUnavailable, "a refused connection never applied anything")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 2*time.Second, "bounded by the context")
		_, _, err = c.Get(ctx, "k")
		assert.ErrorIs(t, err, client.ErrUnavailable)
	})
}

func TestBackoffBoundedByContext(t *testing.T) {
	// A long backoff must not outlive the context.
	c, err := client.New(client.Config{
		Endpoints:   []string{deadAddr(t)},
		Logger:      zaptest.NewLogger(t),
		BackoffBase: time.Hour,
		BackoffMax:  time.Hour,
	})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Put(ctx, "k", "v")
	assert.ErrorIs(t, err, client.ErrUnavailable)
	assert.Less(t, time.Since(start), 5*time.Second)

	// A cancelled context stops it too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Put(ctx2, "k", "v"); done <- err }()
	cancel2()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Put did not return after cancel")
	}
}

func TestBackoffGrows(t *testing.T) {
	// Count attempts against a node that always answers 503: with a 10ms
	// base doubling to 40ms, 300ms allows only a handful.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c, err := client.New(client.Config{
		Endpoints:   []string{strings.TrimPrefix(srv.URL, "http://")},
		Logger:      zaptest.NewLogger(t),
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  40 * time.Millisecond,
	})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Put(ctx, "k", "v")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// At least 20ms per retry after the first few: at most ~16 attempts.
	assert.LessOrEqual(t, n.Load(), int32(20))
	assert.GreaterOrEqual(t, n.Load(), int32(3))
}

func TestFinalErrors(t *testing.T) {
	fake := clienttest.New(t, 2)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)

	_, err := c.Put(ctx, "k", strings.Repeat("x", 1<<20+1))
	var bre *client.BadRequestError
	require.ErrorAs(t, err, &bre)
	assert.Equal(t, http.StatusRequestEntityTooLarge, bre.Status)
	assert.Contains(t, bre.Error(), "1 MiB")

	_, err = c.Put(ctx, "", "v")
	require.ErrorAs(t, err, &bre)
	assert.Equal(t, 0, bre.Status)

	_, _, err = c.Get(ctx, "nope")
	assert.ErrorIs(t, err, client.ErrNotFound)

	// None of these was retried.
	assert.Len(t, fake.Writes(), 0, "the 413 was answered before the fake recorded a write")
	assert.Equal(t, 1, fake.Reads("r0"))
	assert.Equal(t, 0, fake.Reads("r1"))
}

func TestStatusAndCluster(t *testing.T) {
	fake := clienttest.New(t, 3)
	fake.SetLag(2, 1)
	c := newClient(t, fake.Endpoints(), nil)
	ctx := ctxTimeout(t, 5*time.Second)
	_, err := c.Put(ctx, "k", "v")
	require.NoError(t, err)

	st, err := c.Status(ctx, fake.Endpoints()[0])
	require.NoError(t, err)
	assert.Equal(t, "r0", st.Name)
	assert.Equal(t, "leader", st.Role)
	assert.True(t, st.Reachable)
	assert.Equal(t, uint64(1), st.CommitIndex)
	assert.Contains(t, string(st.Raw), `"snapshot_index"`)

	fake.Stop(1)
	all := c.Statuses(ctx)
	require.Len(t, all, 3)
	assert.True(t, all[0].Reachable)
	assert.False(t, all[1].Reachable)
	assert.NotEmpty(t, all[1].Error)
	assert.Equal(t, uint64(0), all[2].AppliedIndex)

	nodes, err := c.Cluster(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 3)
	assert.True(t, nodes[0].Reachable)
	assert.False(t, nodes[1].Reachable)
	assert.Equal(t, "r1", nodes[1].Name)
	assert.Equal(t, "follower", nodes[2].Role)
}

func TestConcurrentUse(t *testing.T) {
	fake := clienttest.New(t, 3)
	fake.SetLeader(1)
	c := newClient(t, fake.Endpoints(), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	fake.LoseReplies(5) // some retries in the mix

	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := c.Append(ctx, "shared", "x"); err != nil {
					errs <- err
				}
				if _, err := c.Put(ctx, fmt.Sprintf("w%d", w), fmt.Sprint(i)); err != nil {
					errs <- err
				}
				if _, _, err := c.Get(ctx, "shared"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	v, _ := fake.Value("shared")
	assert.Len(t, v, workers*each, "every append applied exactly once")
	for w := range workers {
		v, _ := fake.Value(fmt.Sprintf("w%d", w))
		assert.Equal(t, fmt.Sprint(each-1), v)
	}
	// Sequence numbers reached the server in order, each applied once.
	var last uint64
	applied := 0
	for _, w := range fake.Writes() {
		assert.GreaterOrEqual(t, w.Seq, last)
		last = w.Seq
		if w.Applied {
			applied++
		}
	}
	assert.Equal(t, 2*workers*each, applied)
}

func TestWaitingWriterHonoursContext(t *testing.T) {
	fake := clienttest.New(t, 1)
	fake.SetMode(0, clienttest.Hang)
	c, err := client.New(client.Config{Endpoints: fake.Endpoints(), Logger: zaptest.NewLogger(t), RequestTimeout: time.Hour})
	require.NoError(t, err)
	defer c.Close()

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Put(ctx1, "k", "1"); first <- err }()

	// A second write waits for the first; its own deadline frees it.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = c.Put(ctx2, "k", "2")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	cancel1()
	err = <-first
	assert.True(t, errors.Is(err, client.ErrUnknownOutcome) || errors.Is(err, client.ErrUnavailable), "%v", err)
}

func TestSkipsDeadLeaderNamedByFollower(t *testing.T) {
	// r0 led and died; r1 still names it (as a follower does until its
	// election timeout) and refuses; r2 can serve. The client must not
	// bounce between r0 and r1.
	fake := clienttest.New(t, 3)
	c := newClient(t, fake.Endpoints(), fake.Names())
	ctx := ctxTimeout(t, 5*time.Second)
	fake.Stop(0)
	fake.SetMode(1, clienttest.Unavailable)
	res, err := c.Put(ctx, "k", "v")
	require.NoError(t, err)
	assert.Equal(t, 3, res.Attempts)
	w := fake.Writes()
	require.Len(t, w, 1)
	assert.Equal(t, "r2", w[0].Node)
}
