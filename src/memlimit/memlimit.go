// Package memlimit keeps a node's soft memory limit (runtime/debug) just
// above its live heap.
//
// With the collector's default pacing (GOGC=100) the heap grows to twice
// the live data before each collection, so a node holding 36 MiB of keys
// and values sits at 90-110 MiB resident. A fixed soft limit keeps it lower,
// but when the live data grows close to a fixed limit the collector runs
// back to back and takes half the CPU. So the limit follows the live heap:
// it is the larger of a floor and the live heap plus a headroom: a fixed
// one, or half the scannable live heap when that is more. Then small
// states stay under the floor, and large ones allocate at least half their
// scannable heap between two collections. A fixed headroom alone made a
// collection's cost per allocated byte grow with the state: at 300,000
// keys puts ran at half the rate of 100,000 keys, with twice the CPU per
// put, nearly all of it the collector's.
//
// Half the scannable heap, not half the heap: a collection's cost is the
// memory it scans for pointers. The key-value store keeps its values in
// large slabs without pointers, which the collector marks in one step
// and never reads; headroom for them would cost memory (a third more at a
// million keys) and save no collector work.
package memlimit

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Limit returns the soft memory limit for a live heap of live bytes, scan
// of them scannable (holding pointers), with overhead bytes of runtime
// memory besides the heap's objects: the larger of floor and the memory
// that lets the heap grow the larger of headroom and scan/2 past live. With
// a ceiling (0: none), at most the ceiling, unless live plus headroom alone
// is above it: a node in a container then collects more often rather than
// grow into the container's hard limit and be killed.
//
// The limit bounds all the runtime's memory, not the heap: the collector
// aims the heap at the limit less the overhead (stacks, the collector's
// own metadata, fragmentation, free pages not yet returned) and less 3 %
// of what remains. A limit of live + headroom alone left a 300 MB heap 3 MB
// to grow in: the collector ran 35 times a second.
func Limit(live, scan, overhead, floor, headroom, ceiling uint64) uint64 {
	heap := live + max(headroom, scan/2)
	l := max(floor, heap/97*100+overhead)
	if ceiling > 0 {
		l = min(l, max(ceiling, live+headroom+overhead))
	}
	return l
}

// cgroupLimits are the files that hold a container's hard memory limit
// (cgroup v2, then v1).
var cgroupLimits = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Ceiling returns 90 % of the hard memory limit of the process's container
// (its cgroup), or 0 when it has none.
func Ceiling() uint64 {
	for _, path := range cgroupLimits {
		if b, err := os.ReadFile(path); err == nil {
			return ceilingOf(string(b))
		}
	}
	return 0
}

// ceilingOf is 90 % of a cgroup memory limit file's value; 0 for "max" or
// v1's "no limit" (a value near the largest int64).
func ceilingOf(s string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n >= 1<<62 {
		return 0
	}
	return n / 10 * 9
}

// LiveHeap reads the heap marked live by the last collection, how much of
// the heap is scannable, and the runtime's memory besides heap objects that
// counts against the limit (all it has mapped and not returned, less the
// objects and the free pages).
func LiveHeap() (live, scan, overhead uint64) {
	s := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"},
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0, 0, 0
		}
		v[i] = s[i].Value.Uint64()
	}
	live, scan = v[0], min(v[1], v[0])
	if used := v[3] + v[4] + v[5]; v[2] > used {
		overhead = v[2] - used
	}
	return live, scan, overhead
}

// Start collects, returns freed memory to the system, sets the limit, and
// then keeps it set every interval until ctx ends, in a goroutine that
// closes done when it returns. The ceiling is the container's (Ceiling),
// read once.
//
// A node starts it once its state is loaded, before it serves: what the
// load used and dropped (the snapshot file's bytes, the decoder's lists:
// more than the state itself at a million keys) would otherwise stay
// resident until the scavenger gets to it, slowly.
func Start(ctx context.Context, floor, headroom uint64, interval time.Duration) (done <-chan struct{}) {
	debug.FreeOSMemory()
	ceiling := Ceiling()
	set := func() {
		live, scan, overhead := LiveHeap()
		debug.SetMemoryLimit(int64(Limit(live, scan, overhead, floor, headroom, ceiling)))
	}
	set()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
	return stopped
}
