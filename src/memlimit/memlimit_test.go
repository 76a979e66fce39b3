package memlimit

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLimit(t *testing.T) {
	const mib = 1 << 20
	assert.Equal(t, uint64(70*mib), Limit(10*mib, 70*mib, 32*mib), "a small heap stays under the floor")
	assert.Equal(t, uint64(70*mib), Limit(38*mib, 70*mib, 32*mib))
	assert.Equal(t, uint64(82*mib), Limit(50*mib, 70*mib, 32*mib), "a larger heap keeps its headroom")
	assert.Equal(t, uint64(600*mib), Limit(400*mib, 70*mib, 32*mib), "a larger one half its size, so a collection's cost per allocated byte does not grow with it")
}

var sink [][]byte

func TestRunFollowsTheLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)

	const floor, headroom = 8 << 20, 16 << 20
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, floor, headroom, time.Millisecond)
		close(done)
	}()

	// Hold 64 MiB live: the limit must move above it.
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.GC()
	require.GreaterOrEqual(t, LiveHeap(), uint64(64<<20))
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 64<<20+headroom {
		require.True(t, time.Now().Before(deadline), "limit %d never followed the live heap", debug.SetMemoryLimit(-1))
		runtime.Gosched()
	}

	sink = nil
	runtime.GC()
	for debug.SetMemoryLimit(-1) > 32<<20 {
		require.True(t, time.Now().Before(deadline), "limit %d never came back down", debug.SetMemoryLimit(-1))
		runtime.Gosched()
	}
	cancel()
	<-done
}
