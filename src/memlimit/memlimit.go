// Package memlimit keeps a node's soft memory limit (runtime/debug) just
// above its live heap.
//
// With the collector's default pacing (GOGC=100) the heap grows to twice
// the live data before each collection, so a node holding 36 MiB of keys
// and values sits at 90-110 MiB resident. A fixed soft limit keeps it lower,
// but when the live data grows close to a fixed limit the collector runs
// back to back and takes half the CPU. So the limit follows the live heap:
// it is the larger of a floor and the live heap plus a fixed headroom. Then
// small states stay under the floor and large ones still have the headroom
// to allocate into between collections.
package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Limit returns the soft memory limit for a live heap of live bytes.
func Limit(live, floor, headroom uint64) uint64 {
	return max(floor, live+headroom)
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
