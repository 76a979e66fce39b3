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
	assert.Equal(t, uint64(450*mib), Limit(400*mib, 400*mib, 0, 70*mib, 32*mib, 450*mib), "at most a container's ceiling")
	assert.Equal(t, uint64(442*mib), Limit(400*mib, 400*mib, 10*mib, 70*mib, 32*mib, 410*mib), "unless the live heap, the headroom and the overhead alone pass it")
	assert.Equal(t, uint64(70*mib), Limit(10*mib, 10*mib, 5*mib, 70*mib, 32*mib, 0), "a small heap stays under the floor")
	assert.Equal(t, uint64(70*mib), Limit(30*mib, 30*mib, 5*mib, 70*mib, 32*mib, 0))
	// The heap may grow by the headroom: the runtime aims it 3 % under
	// what the overhead leaves of the limit.
	heapGoal := func(limit, overhead uint64) uint64 { return (limit - overhead) / 100 * 97 }
	assert.InDelta(t, 50*mib+32*mib, heapGoal(Limit(50*mib, 50*mib, 12*mib, 70*mib, 32*mib, 0), 12*mib), 100, "a larger heap keeps its headroom")
	assert.InDelta(t, 600*mib, heapGoal(Limit(400*mib, 400*mib, 12*mib, 70*mib, 32*mib, 0), 12*mib), 100, "a larger one half its scannable size, so a collection's cost per allocated byte does not grow with it")
	assert.InDelta(t, 432*mib, heapGoal(Limit(400*mib, 40*mib, 12*mib, 70*mib, 32*mib, 0), 12*mib), 100, "memory without pointers costs a collection nothing to scan: no headroom for it")
}

var sink [][]byte

func TestStartFollowsTheLiveHeap(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)

	const floor, headroom = 8 << 20, 16 << 20
	ctx, cancel := context.WithCancel(context.Background())
	done := Start(ctx, floor, headroom, time.Millisecond)

	// Hold 64 MiB live: the limit must move above it.
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.GC()
	live, scan, overhead := LiveHeap()
	require.GreaterOrEqual(t, live, uint64(64<<20))
	require.Less(t, scan, uint64(8<<20), "the byte slices hold no pointers")
	require.Less(t, overhead, uint64(64<<20))
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

func TestCeilingOf(t *testing.T) {
	assert.Equal(t, uint64(0), ceilingOf("max\n"), "cgroup v2 without a limit")
	assert.Equal(t, uint64(0), ceilingOf("9223372036854771712\n"), "cgroup v1 without a limit")
	assert.Equal(t, uint64(536870912/10*9), ceilingOf("536870912\n"), "90 % of 512 MiB")
	assert.Equal(t, uint64(0), ceilingOf("garbage"))
}
