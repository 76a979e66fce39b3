// Package watch keeps a node's recent history of key changes and serves it
// to watchers: the material of GET /v1/watch/{prefix}?since=N and of
// blocking reads (GET /v1/kv/{key}?index=N&wait=D).
//
// The state machine reports every change, in log order, to Hub.Publish,
// from the node's apply path. Publish never blocks and never waits for a
// watcher: it appends the event to a bounded ring (the history window,
// bounded in events and in bytes) and signals, without blocking, the
// watchers whose prefix matches. Each watcher reads the ring from its own
// cursor in its own goroutine. A watcher that falls so far behind that the
// ring dropped events it had not read yet is cancelled (ErrFellBehind): it
// resumes from the last index it completed, here or on another node, or
// gets ErrCompacted. So a slow watcher costs the apply loop nothing, and
// nobody watching costs an append to the ring.
//
// # Usage
//
//	h := watch.NewHub(watch.Options{MaxEvents: 100000}, appliedIndex)
//	store.SetHooks(kv.Hooks{Change: collect}) // then h.Publish(an entry's events)
//	w, err := h.Subscribe("config/", false, since) // err: *CompactedError
//	defer w.Close()
//	for {
//		evs, err := w.Next(ctx) // events with Index > since, in log order
//		...
//	}
//
// Indexes: since=N asks for every change at an index above N. The hub
// knows the changes above Floor (the applied index it started from, or the
// highest index whose events it dropped); since < Floor is ErrCompacted.
package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"raftkv/src/api"
	"raftkv/src/freelist"
	"raftkv/src/kv"
)

// Defaults of Options.
const (
	DefaultMaxEvents = 100000
	DefaultMaxBytes  = 64 << 20
	// eventOverhead is what an event counts against MaxBytes besides its
	// key and value.
	eventOverhead = 64
)

// Options bound the history window.
type Options struct {
	// MaxEvents bounds the events kept; 0 means DefaultMaxEvents.
	MaxEvents int
	// MaxBytes bounds their keys and values (plus an overhead each); 0
	// means DefaultMaxBytes.
	MaxBytes int
}

// CompactedError says the history no longer holds every change after the index
// asked for; Oldest is the lowest since the hub can serve.
type CompactedError struct {
	Since, Oldest uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("watch: index %d is compacted: this node's history starts after index %d", e.Since, e.Oldest)
}

// ErrFellBehind cancels a watcher that did not read its events before the
// history window dropped them.
var ErrFellBehind = errors.New("watch: the watcher fell behind the history window (too slow a reader)")

// ErrReset cancels every watcher when the node replaced its state with a
// snapshot: the changes the snapshot covers are not in the history.
var ErrReset = errors.New("watch: the node installed a snapshot; resume from the last index seen")

// Hub is a node's history window and its watchers. Safe for concurrent use.
type Hub struct {
	opts Options

	mu sync.RWMutex
	// ring holds events first .. next-1 (sequence numbers of this hub),
	// event seq at ring[seq % len(ring)]. Invariant: next-first <= len(ring).
	ring        []record
	first, next uint64
	bytes       int
	// The keys and values of the ring's events are in chunks, byte slices
	// without pointers: a full history of 100,000 events is then a few
	// hundred objects to the garbage collector, not 200,000 strings to mark
	// on every cycle (at a million keys that was 15 % of the puts). Events
	// leave the ring oldest first, so a chunk is dropped once its last
	// event has left. Invariant: live[c] is the number of the ring's
	// events in chunk c; a chunk other than cur with none is dropped (nil,
	// its index free).
	chunks freelist.Slice[[]byte]
	live   []int
	cur    int // the chunk being filled; -1: none
	// floor: every change above it is in the ring or yet to come.
	// Invariant: floor < the Index of every event in the ring.
	floor uint64
	// epoch counts Resets; a watcher of an older epoch is cancelled.
	epoch uint64
	// groups holds the watchers by what they watch, so that Publish
	// matches an event once per prefix, not once per watcher (many
	// watchers of one prefix cost one compare).
	groups map[groupKey]map[*Watcher]struct{}
}

type groupKey struct {
	prefix string
	exact  bool
}

func (g groupKey) matches(key string) bool {
	if g.exact {
		return key == g.prefix
	}
	return strings.HasPrefix(key, g.prefix)
}

// matchesRecord is matches of a key in the ring (without a string copy).
func (g groupKey) matchesRecord(key []byte) bool {
	if g.exact {
		return string(key) == g.prefix
	}
	return len(key) >= len(g.prefix) && string(key[:len(g.prefix)]) == g.prefix
}

// NewHub returns a hub whose history starts after index applied.
func NewHub(opts Options, applied uint64) *Hub {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	return &Hub{opts: opts, floor: applied, groups: map[groupKey]map[*Watcher]struct{}{}, cur: -1}
}

func eventSize(e kv.Event) int { return len(e.Key) + len(e.Value) + eventOverhead }

// record is an event in the ring: its key and value are
// chunks[chunk][off:off+klen] and the vlen bytes after.
type record struct {
	index, lease uint64
	chunk, off   uint32
	klen, vlen   uint32
	typ          uint8 // index in eventTypes
}

// eventTypes are the kv.Event types, by record.typ.
var eventTypes = []string{api.EventPut, api.EventAppend, api.EventDelete, api.EventExpire}

// chunkSize is the size of a chunk; an event over a quarter of it gets a
// chunk of its own.
const chunkSize = 64 << 10

// store copies e's key and value into a chunk and returns its record.
func (h *Hub) store(e kv.Event) record {
	r := record{index: e.Index, lease: e.Lease, klen: uint32(len(e.Key)), vlen: uint32(len(e.Value))}
	typ := slices.Index(eventTypes, e.Type)
	if typ < 0 {
		panic(fmt.Sprintf("watch: event of unknown type %q", e.Type))
	}
	r.typ = uint8(typ)
	n := len(e.Key) + len(e.Value)
	c := h.cur
	switch {
	case n > chunkSize/4:
		c = h.newChunk(n)
	case c < 0 || cap(h.chunks.Items[c])-len(h.chunks.Items[c]) < n:
		if old := h.cur; old >= 0 && h.live[old] == 0 {
			h.dropChunk(old)
		}
		h.cur = h.newChunk(chunkSize)
		c = h.cur
	}
	r.chunk, r.off = uint32(c), uint32(len(h.chunks.Items[c]))
	h.chunks.Items[c] = append(append(h.chunks.Items[c], e.Key...), e.Value...)
	h.live[c]++
	return r
}

func (h *Hub) newChunk(size int) int {
	c := h.chunks.Add(make([]byte, 0, size))
	if c == len(h.live) {
		h.live = append(h.live, 0)
	}
	return c
}

func (h *Hub) dropChunk(c int) { h.chunks.Free(c) }

// key is r's key, aliasing its chunk.
func (h *Hub) key(r record) []byte {
	return h.chunks.Items[r.chunk][r.off : r.off+r.klen]
}

// event returns r as a kv.Event, its key and value copied out of the chunk.
func (h *Hub) event(r record) kv.Event {
	v := h.chunks.Items[r.chunk][r.off+r.klen : r.off+r.klen+r.vlen]
	return kv.Event{Index: r.index, Type: eventTypes[r.typ], Key: string(h.key(r)), Value: string(v), Lease: r.lease}
}

// Publish appends the events of one log entry to the history and wakes
// the watchers they match. It never blocks. Entries must come in log
// order, each entry's events in one call, so that a watcher never sees
// half an entry.
func (h *Hub) Publish(evs []kv.Event) {
	if len(evs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ring == nil {
		h.ring = make([]record, min(h.opts.MaxEvents, 1024))
	}
	for _, e := range evs {
		if int(h.next-h.first) == len(h.ring) && len(h.ring) < h.opts.MaxEvents {
			h.grow()
		}
		h.bytes += eventSize(e)
		for h.next > h.first && (int(h.next-h.first) >= len(h.ring) || h.bytes > h.opts.MaxBytes) {
			h.dropOldest()
		}
		h.ring[h.next%uint64(len(h.ring))] = h.store(e)
		h.next++
	}
	for g, ws := range h.groups {
		for _, e := range evs {
			if g.matches(e.Key) {
				for w := range ws {
					select {
					case w.wake <- struct{}{}:
					default:
					}
				}
				break
			}
		}
	}
}

// grow doubles the ring (up to MaxEvents), keeping its events.
func (h *Hub) grow() {
	n := min(2*len(h.ring), h.opts.MaxEvents)
	ring := make([]record, n)
	for seq := h.first; seq < h.next; seq++ {
		ring[seq%uint64(n)] = h.ring[seq%uint64(len(h.ring))]
	}
	h.ring = ring
}

func (h *Hub) dropOldest() {
	i := h.first % uint64(len(h.ring))
	r := h.ring[i]
	h.bytes -= int(r.klen+r.vlen) + eventOverhead
	// Events of one index are dropped together or the index is not whole:
	// either way nothing at or below it can be served any more.
	h.floor = max(h.floor, r.index)
	h.ring[i] = record{}
	h.first++
	if h.live[r.chunk]--; h.live[r.chunk] == 0 && int(r.chunk) != h.cur {
		h.dropChunk(int(r.chunk))
	}
}

// Reset forgets the history and cancels every watcher (ErrReset): the node
// replaced its state with a snapshot at index applied.
func (h *Hub) Reset(applied uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.ring)
	h.chunks, h.live, h.cur = freelist.Slice[[]byte]{}, nil, -1
	h.first, h.next, h.bytes = 0, 0, 0
	h.floor = applied
	h.epoch++
	for _, ws := range h.groups {
		for w := range ws {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Floor is the lowest index Subscribe accepts as since.
func (h *Hub) Floor() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.floor
}

// Watcher reads the changes of the keys under a prefix (or of one key),
// from an index on. Its methods are for one goroutine.
type Watcher struct {
	h      *Hub
	group  groupKey // the prefix, or with exact one key
	wake   chan struct{}
	cursor uint64 // the next sequence number to read
	epoch  uint64
	// done is the last index whose events this watcher returned whole.
	done uint64
}

// Subscribe starts a watcher of the keys that start with prefix (with exact,
// of the key prefix only) whose first events are those above index since.
// It returns a *CompactedError if since is below Floor.
func (h *Hub) Subscribe(prefix string, exact bool, since uint64) (*Watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if since < h.floor {
		return nil, &CompactedError{Since: since, Oldest: h.floor}
	}
	w := &Watcher{h: h, group: groupKey{prefix, exact}, wake: make(chan struct{}, 1), epoch: h.epoch, done: since}
	// The first event above since: the ring is in index order.
	lo, hi := h.first, h.next
	for lo < hi {
		mid := lo + (hi-lo)/2
		if h.ring[mid%uint64(len(h.ring))].index <= since {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	w.cursor = lo
	ws := h.groups[w.group]
	if ws == nil {
		ws = map[*Watcher]struct{}{}
		h.groups[w.group] = ws
	}
	ws[w] = struct{}{}
	return w, nil
}

// Watchers returns how many watchers are subscribed.
func (h *Hub) Watchers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, ws := range h.groups {
		n += len(ws)
	}
	return n
}

// Close ends the watcher.
func (w *Watcher) Close() {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	ws := w.h.groups[w.group]
	delete(ws, w)
	if len(ws) == 0 {
		delete(w.h.groups, w.group)
	}
}

// maxBatch bounds the events one Next returns.
const maxBatch = 1024

// Next waits until there are events for the watcher and returns them, in
// log order, each once; or returns ctx's error, ErrFellBehind or ErrReset.
// The events of one index always come in one batch (up to maxBatch per
// index), so that Done is a whole index.
func (w *Watcher) Next(ctx context.Context) ([]kv.Event, error) {
	for {
		evs, err := w.poll()
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Done is the last index whose events the watcher returned (the since to
// resume from): it starts at since.
func (w *Watcher) Done() uint64 { return w.done }

func (w *Watcher) poll() ([]kv.Event, error) {
	h := w.h
	h.mu.RLock()
	defer h.mu.RUnlock()
	if w.epoch != h.epoch {
		return nil, ErrReset
	}
	if w.cursor < h.first {
		return nil, ErrFellBehind
	}
	var out []kv.Event
	seq := w.cursor
	for ; seq < h.next; seq++ {
		r := h.ring[seq%uint64(len(h.ring))]
		if len(out) >= maxBatch && r.index != out[len(out)-1].Index {
			break
		}
		if w.group.matchesRecord(h.key(r)) {
			out = append(out, h.event(r))
		}
	}
	w.cursor = seq
	if seq > h.first {
		// Everything up to the last event read is whole unless the next
		// one shares its index; the ring holds an index whole once its
		// last event was published, and the state machine publishes an
		// entry's events before the next entry's.
		last := h.ring[(seq-1)%uint64(len(h.ring))].index
		if seq == h.next || h.ring[seq%uint64(len(h.ring))].index != last {
			w.done = max(w.done, last)
		} else {
			w.done = max(w.done, last-1)
		}
	}
	return out, nil
}
