// Package memlimit keeps a node's soft memory limit (runtime/debug) just
// above its live heap.
//
// With the collector's default pacing (GOGC=100) the heap grows to twice
// the live data before each collection, so a node holding 36 MiB of keys
// and values sits at 90-110 MiB resident. A fixed soft limit keeps it lower,
// but when the live data grows close to a fixed limit the collector runs
// back to back and takes half the CPU. So the limit follows the live heap:
// it is the larger of a floor and the live heap plus a headroom: a fixed
// one, or half the live heap when that is more. Then small states stay
// under the floor, and large ones allocate at least half their live heap
// between two collections. A fixed headroom alone made a collection's cost
// (marking the live heap) per allocated byte grow with the state: at
// 300,000 keys puts ran at half the rate of 100,000 keys, with twice the
// CPU per put, nearly all of it the collector's.
package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Limit returns the soft memory limit for a live heap of live bytes.
func Limit(live, floor, headroom uint64) uint64 {
	return max(floor, live+max(headroom, live/2))
}

const liveHeapMetric = "/gc/heap/live:bytes"

// LiveHeap reads the heap marked live by the last collection.
func LiveHeap() uint64 {
	s := []metrics.Sample{{Name: liveHeapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Run sets the limit at once and then every interval until ctx ends.
func Run(ctx context.Context, floor, headroom uint64, interval time.Duration) {
	set := func() { debug.SetMemoryLimit(int64(Limit(LiveHeap(), floor, headroom))) }
	set()
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
}
