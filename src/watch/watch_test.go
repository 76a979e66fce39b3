package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/kv"
)

func put(index uint64, key string) kv.Event {
	return kv.Event{Index: index, Type: "put", Key: key, Value: "v"}
}

func next(t *testing.T, w *Watcher) []kv.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs, err := w.Next(ctx)
	require.NoError(t, err)
	return evs
}

func TestWatcherSeesMatchingEventsInOrderFromSince(t *testing.T) {
	h := NewHub(Options{}, 10)
	h.Publish([]kv.Event{put(11, "a/1")})
	h.Publish([]kv.Event{put(12, "b/1")})
	h.Publish([]kv.Event{put(13, "a/2"), put(13, "a/3")})

	w, err := h.Subscribe("a/", false, 11)
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, []kv.Event{put(13, "a/2"), put(13, "a/3")}, next(t, w))
	assert.Equal(t, uint64(13), w.Done())

	// Later events wake it; other prefixes do not show.
	got := make(chan []kv.Event)
	go func() {
		evs, _ := w.Next(context.Background())
		got <- evs
	}()
	h.Publish([]kv.Event{put(14, "b/2")})
	h.Publish([]kv.Event{put(15, "a/4")})
	select {
	case evs := <-got:
		assert.Equal(t, []kv.Event{put(15, "a/4")}, evs)
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was not woken")
	}

	one, err := h.Subscribe("a/2", true, 0+10)
	require.NoError(t, err)
	assert.Equal(t, []kv.Event{put(13, "a/2")}, next(t, one))
}

func TestCompactedAndFellBehind(t *testing.T) {
	h := NewHub(Options{MaxEvents: 4}, 0)
	slow, err := h.Subscribe("", false, 0)
	require.NoError(t, err)
	for i := uint64(1); i <= 10; i++ {
		h.Publish([]kv.Event{put(i, fmt.Sprint("k", i))}) // never blocks on the slow watcher
	}
	_, err = slow.Next(context.Background())
	assert.ErrorIs(t, err, ErrFellBehind)

	_, err = h.Subscribe("", false, 3)
	var ce *CompactedError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, uint64(6), ce.Oldest, "4 events kept, 7..10: the floor is the last index dropped")
	w, err := h.Subscribe("", false, ce.Oldest)
	require.NoError(t, err)
	evs := next(t, w)
	require.Len(t, evs, 4)
	assert.Equal(t, uint64(7), evs[0].Index)

	// The byte bound.
	hb := NewHub(Options{MaxBytes: 3 * (eventOverhead + 3)}, 0)
	for i := uint64(1); i <= 5; i++ {
		hb.Publish([]kv.Event{{Index: i, Type: "put", Key: "k", Value: "vv"}})
	}
	assert.Equal(t, uint64(2), hb.Floor())
}

func TestResetCancelsWatchers(t *testing.T) {
	h := NewHub(Options{}, 0)
	w, err := h.Subscribe("", false, 0)
	require.NoError(t, err)
	h.Publish([]kv.Event{put(1, "a")})
	h.Reset(50)
	_, err = w.Next(context.Background())
	assert.True(t, errors.Is(err, ErrReset))
	_, err = h.Subscribe("", false, 49)
	assert.Error(t, err)
	_, err = h.Subscribe("", false, 50)
	assert.NoError(t, err)
}

// BenchmarkPublish is the apply path's cost of one put's change, with no
// watcher and with 100 idle ones (watching a prefix the puts never touch).
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			h := NewHub(Options{}, 0)
			for range n {
				w, err := h.Subscribe("idle/", false, 0)
				require.NoError(b, err)
				defer w.Close()
			}
			ev := []kv.Event{{Type: "put", Key: "bench/key0001", Value: "v"}}
			b.ReportAllocs()
			for i := range b.N {
				ev[0].Index = uint64(i + 1)
				h.Publish(ev)
			}
		})
	}
}

// TestHistoryChunks: the ring's keys and values live in chunks that are
// dropped once their last event leaves; events of every size, a chunk of
// their own for large ones, come back as they were published.
func TestHistoryChunks(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	h := NewHub(Options{MaxEvents: 300, MaxBytes: 256 << 10}, 0)
	var published []kv.Event
	for i := uint64(1); i <= 5000; i++ {
		n := rng.Intn(600)
		if rng.Intn(100) == 0 {
			n = chunkSize/4 + rng.Intn(chunkSize)
		}
		e := kv.Event{Index: i, Type: []string{"put", "append", "delete", "expire"}[rng.Intn(4)],
			Key: fmt.Sprintf("k/%d", rng.Intn(50)), Value: strings.Repeat("v", n), Lease: uint64(rng.Intn(3))}
		h.Publish([]kv.Event{e})
		published = append(published, e)
		if i%97 == 0 || i == 5000 {
			h.mu.RLock()
			live := make([]int, len(h.chunks.Items))
			for seq := h.first; seq < h.next; seq++ {
				live[h.ring[seq%uint64(len(h.ring))].chunk]++
			}
			bytes := 0
			for c, b := range h.chunks.Items {
				require.Equal(t, live[c], h.live[c], "chunk %d's count", c)
				if c != h.cur && live[c] == 0 {
					require.Nil(t, b, "chunk %d has no event left and was not dropped", c)
				}
				bytes += cap(b)
			}
			require.LessOrEqual(t, bytes, h.opts.MaxBytes+3*chunkSize+2*chunkSize/4, "chunks kept beyond the history")
			floor := h.floor
			h.mu.RUnlock()
			w, err := h.Subscribe("", false, floor)
			require.NoError(t, err)
			var got []kv.Event
			for len(got) == 0 || got[len(got)-1].Index < i {
				got = append(got, next(t, w)...)
			}
			w.Close()
			require.Equal(t, published[len(published)-len(got):], got)
		}
	}
	h.Reset(5000)
	require.Empty(t, h.chunks.Items)
}
