package raft

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"
)

// network is a hand-driven in-memory cluster for scenario tests, in the
// style of etcd's raft_test.go: messages are delivered until the cluster is
// quiet; links can be cut and nodes isolated. No clock, no goroutines.
type network struct {
	t       testing.TB
	nodes   map[ID]*Node
	disk    map[ID]*memDisk
	applied map[ID][]Entry
	reads   map[ID][]ReadState
	cut     map[[2]ID]bool
	// filter, when set, may drop a message (return false).
	filter func(Message) bool
	// stepErr, when set, receives the errors Step returns; by default an
	// error fails the test (a correct cluster sends no invalid messages).
	stepErr func(Message, error)
	queue   []Message
	cfg     func(*Config)
	// discard keeps no log or applied entries (benchmarks).
	discard bool
	// onReady, when set, sees each Ready after it is persisted and before
	// Advance (the transcript tests print it).
	onReady func(ID, Ready)
}

type memDisk struct {
	hs   HardState
	snap *Snapshot
	ents []Entry
}

func newNetwork(t testing.TB, size int, tweak func(*Config)) *network {
	nw := &network{
		t: t, nodes: map[ID]*Node{}, disk: map[ID]*memDisk{}, applied: map[ID][]Entry{},
		reads: map[ID][]ReadState{}, cut: map[[2]ID]bool{}, cfg: tweak,
	}
	for i := range size {
		nw.disk[ID(i)] = &memDisk{hs: HardState{Vote: None}}
	}
	for i := range size {
		nw.start(ID(i))
	}
	return nw
}

func (nw *network) ids() []ID {
	var ids []ID
	for id := range nw.disk {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// start (re)creates node id from its disk.
func (nw *network) start(id ID) *Node {
	d := nw.disk[id]
	cfg := Config{
		ID: id, Peers: nw.ids(), ElectionTicks: 10, HeartbeatTicks: 1,
		Rand: rand.New(rand.NewSource(int64(id) + 1)), MaxInflight: 256,
		Snapshot: d.snap, HardState: d.hs, Entries: slices.Clone(d.ents),
	}
	if d.snap != nil {
		cfg.Applied = d.snap.Index
	}
	if nw.cfg != nil {
		nw.cfg(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		nw.t.Fatal(err)
	}
	nw.nodes[id] = n
	return n
}

// ready handles every node's Ready once: persist, queue messages, apply.
func (nw *network) ready() bool {
	any := false
	for _, id := range nw.ids() {
		if nw.readyNode(id) {
			any = true
		}
	}
	return any
}

// readyNode handles node id's Ready, if it has one, and reports whether it
// had one.
func (nw *network) readyNode(id ID) bool {
	n := nw.nodes[id]
	if n == nil || !n.HasReady() {
		return false
	}
	rd := n.Ready()
	d := nw.disk[id]
	if rd.Snapshot != nil {
		d.snap, d.ents = rd.Snapshot, nil
	}
	if len(rd.Entries) > 0 && !nw.discard {
		var base uint64
		if d.snap != nil {
			base = d.snap.Index
		}
		keep := int(rd.Entries[0].Index - base - 1)
		d.ents = append(d.ents[:keep:keep], rd.Entries...)
	}
	if !rd.HardState.IsEmpty() {
		d.hs = rd.HardState
	}
	for _, m := range append(rd.EarlyMessages, rd.Messages...) {
		if m.Type == MsgSnap {
			// The runtime attaches its saved snapshot's data.
			s := *d.snap
			m.Snapshot = &s
		}
		nw.queue = append(nw.queue, m)
	}
	if !nw.discard {
		nw.applied[id] = append(nw.applied[id], rd.CommittedEntries...)
	}
	nw.reads[id] = append(nw.reads[id], rd.ReadStates...)
	if nw.onReady != nil {
		nw.onReady(id, rd)
	}
	n.Advance(rd)
	return true
}

// stabilize delivers messages and handles Readys until nothing moves.
func (nw *network) stabilize() {
	for i := 0; ; i++ {
		if i > 10000 {
			nw.t.Fatal("network never quiets down")
		}
		moved := nw.ready()
		if len(nw.queue) == 0 && !moved {
			return
		}
		q := nw.queue
		nw.queue = nil
		for _, m := range q {
			nw.deliver(m)
		}
	}
}

func (nw *network) deliver(m Message) {
	to := nw.nodes[m.To]
	if to == nil || nw.cut[[2]ID{m.From, m.To}] || (nw.filter != nil && !nw.filter(m)) {
		return
	}
	if err := to.Step(m); err != nil {
		if nw.stepErr == nil {
			nw.t.Fatal(err)
		}
		nw.stepErr(m, err)
	}
}

// compact snapshots node id at its applied index, as the runtime does: the
// disk keeps the snapshot (with data) and the entries after it.
func (nw *network) compact(id ID) {
	nw.compactTo(id, nw.nodes[id].log.applied)
}

// compactTo snapshots node id at index idx <= its applied index.
func (nw *network) compactTo(id ID, idx uint64) {
	n, d := nw.nodes[id], nw.disk[id]
	var base uint64
	if d.snap != nil {
		base = d.snap.Index
	}
	if idx <= n.log.offset || idx <= base || idx-base > uint64(len(d.ents)) {
		return
	}
	conf, _ := n.log.confAt(idx)
	d.snap = &Snapshot{Index: idx, Term: d.ents[idx-base-1].Term, Membership: &conf, Data: fmt.Appendf(nil, "state@%d", idx)}
	d.ents = slices.Clone(d.ents[idx-base:])
	if err := n.Compact(idx); err != nil {
		nw.t.Fatal(err)
	}
}

// wipe replaces node id by a new node with empty state and the same ID, as
// after its data folder was lost and it restarted.
func (nw *network) wipe(id ID) *Node {
	nw.disk[id] = &memDisk{hs: HardState{Vote: None}}
	nw.applied[id] = nil
	return nw.start(id)
}

// isolate cuts every link to and from id.
func (nw *network) isolate(id ID) {
	for _, o := range nw.ids() {
		if o != id {
			nw.cut[[2]ID{id, o}] = true
			nw.cut[[2]ID{o, id}] = true
		}
	}
}

func (nw *network) heal() { clear(nw.cut) }

// tick advances every node's clock n times, stabilizing after each tick.
func (nw *network) tick(n int, ids ...ID) {
	if len(ids) == 0 {
		ids = nw.ids()
	}
	for range n {
		for _, id := range ids {
			if nd := nw.nodes[id]; nd != nil {
				nd.Tick()
			}
		}
		nw.stabilize()
	}
}

// elect makes id leader by letting its election timer fire first.
func (nw *network) elect(id ID) {
	n := nw.nodes[id]
	for i := 0; n.role != RoleLeader; i++ {
		if i > 100 {
			nw.t.Fatalf("node %d did not become leader: %s", id, n.role)
		}
		n.Tick()
		nw.stabilize()
	}
	nw.stabilize()
}

func (nw *network) propose(id ID, data string) uint64 {
	idx, _, err := nw.nodes[id].Propose([]byte(data))
	if err != nil {
		nw.t.Fatalf("propose at %d: %v", id, err)
	}
	return idx
}

func (nw *network) leader() ID {
	for _, id := range nw.ids() {
		if n := nw.nodes[id]; n != nil && n.role == RoleLeader {
			return id
		}
	}
	return None
}
