// Package raft is raftkv's consensus core: the Raft algorithm as a
// deterministic state machine, after etcd's raft library. It does no I/O,
// reads no clock, starts no goroutines and draws randomness only from the
// Rand its caller seeds, so a simulator can drive a whole cluster from one
// seed (see package simtest).
//
// # Usage
//
// The runtime builds a Node from its recovered durable state, then loops in
// one goroutine:
//
//	n, err := raft.NewNode(raft.Config{ID: id, Peers: ids, ElectionTicks: 10,
//		HeartbeatTicks: 1, Rand: rand.New(rand.NewSource(seed)),
//		Snapshot: snap, HardState: hs, Entries: ents, Applied: snap.Index})
//	for {
//		select {
//		case <-ticker.C:
//			n.Tick()
//		case m := <-fromPeers:
//			if err := n.Step(m); err != nil {
//				// errors.Is(err, raft.ErrInvalidMessage): dropped; log and count it
//			}
//		case p := <-proposals:
//			index, term, err := n.Propose(p.data) // answer p once (index, term) applies
//		case r := <-reads:
//			n.ReadIndex(r.id) // answer r once its ReadState's index applies
//		}
//		for n.HasReady() {
//			rd := n.Ready()
//			storage.Save(rd.Snapshot, rd.HardState, rd.Entries) // fsync if rd.MustSync
//			transport.Send(rd.Messages)
//			apply(rd.CommittedEntries); serve(rd.ReadStates)
//			n.Advance(rd)
//		}
//	}
//
// The order inside the Ready loop is what makes Raft safe on real disks:
// see Ready. After taking a snapshot of its state machine at an applied
// index and saving it durably, the runtime calls Compact so the core can
// drop those entries and ship the snapshot to followers that need them.
// A MsgSnap carries only the snapshot's metadata: the runtime attaches the
// data, or streams it and hands the follower's core a MsgSnap once the
// state is installed (src/snapstream).
//
// With Config.LogStorage, the log is not a second copy of the runtime's in
// memory: the core keeps a window of recent entries (LogWindowEntries,
// LogWindowBytes) and evicts older ones once applied and reported stable,
// remembering only their terms (as runs) and configuration entries; a
// leader reads them back through LogStorage.Entries, synchronously, when a
// follower lags behind (as etcd-io/raft's Storage). The core still does no
// I/O of its own, and MemoryLogStorage keeps it testable in memory.
//
// # What is in it
//
// Randomized election timeouts; the election restriction; pre-vote and
// check-quorum, with leader leases on followers so that a node that was cut
// off cannot depose a healthy leader when it returns; a no-op entry at the
// start of each term and commitment only by counting current-term entries;
// AppendEntries batched by entry count and bytes and pipelined within a
// bounded window per follower; fast backtracking by conflicting term;
// ReadIndex reads that share one heartbeat round per batch; snapshots and
// InstallSnapshot; leadership transfer; membership changes one server at a
// time with learners and incarnations, so that a node that lost its disk
// rejoins without voting or acknowledging as the node it was (see
// membership.go and ProposeMembership).
//
// # Messages that make no sense
//
// Step checks every message before it changes anything and drops one that
// no correct peer sends (forged, corrupted, or from a node whose log went
// backwards): it returns an error wrapping ErrInvalidMessage that names the
// field at fault. No message, whatever its contents, makes Step panic; the
// FuzzStep target checks that. Raft's safety still assumes that peers are
// who they say they are (authenticating them is the runtime's job) and that
// an incarnation keeps what it persisted: a node that lost its disk must
// come back under a new Config.Incarnation.
//
// Invariant violations (overwriting a committed entry, committing beyond the
// log) that no message can cause are bugs and panic with a precise message.
package raft
