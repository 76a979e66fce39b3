package node

import (
	"fmt"
	"runtime"
	"slices"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// Storage is the node's durable state, as the Ready handling writes it.
//
// Failure contract: an error from any method means the node can no longer
// tell what is on disk. The Handler returns it at once, before sending or
// applying anything that depends on the write, and the runtime stops the
// node (a failed fsync is never retried: the page cache may already have
// dropped the data it reported as written).
type Storage interface {
	// Save appends entries (replacing the stored log from entries[0].Index
	// on) and then the hard state, and returns only once both are on stable
	// storage. hs may be empty (unchanged), entries may be empty.
	Save(hs raft.HardState, entries []raft.Entry) error
	// SaveHardStateNoSync records a hard state whose term and vote are
	// already durable (only the commit index moved) without an fsync: a
	// crash may lose it, which is harmless since the commit index is only a
	// hint that Raft learns again from the leader.
	SaveHardStateNoSync(hs raft.HardState) error
	// SaveSnapshot stores a snapshot received from the leader durably; it
	// replaces the whole log.
	SaveSnapshot(snap raft.Snapshot) error
	// LoadSnapshot returns the newest saved snapshot with its data, or nil
	// if there is none.
	LoadSnapshot() (*raft.Snapshot, error)
}

// Sender hands messages to the network. It must not block and never fails:
// Raft tolerates lost, duplicated and reordered messages and retransmits.
// The Sender keeps the messages (and their entries) until written; the
// caller does not modify them afterwards.
type Sender interface {
	Send(msgs []raft.Message)
}

// Application is what the runtime does with what Raft decided: its state
// machine and the requests waiting on it. The Handler calls it from the
// goroutine that owns the raft.Node, and never between two Storage calls
// of one Ready.
//
// Failure contract: an error stops the node, like a storage error.
type Application interface {
	// SoftStateChanged is called first in a Ready whose role or leader
	// changed.
	SoftStateChanged(ss raft.SoftState)
	// PrepareRestore is called before a snapshot received from the leader
	// is saved: a local snapshot still being written is older and must land
	// first, or it would replace the newer one on disk.
	PrepareRestore() error
	// Restore replaces the state machine by snap (already durable).
	Restore(snap *raft.Snapshot) error
	// Apply applies one committed entry; entries come in index order.
	Apply(e raft.Entry) error
	// ReadState is a read confirmed by a quorum: it may be served once the
	// state machine has applied rs.Index.
	ReadState(rs raft.ReadState) error
	// Advanced is called after the core's Advance: the place to serve reads
	// whose index is now applied, and to start a snapshot.
	Advanced() error
}

// Handler runs the Ready handling of one raft.Node: persist, send, apply,
// advance, in the one order that keeps Raft safe on real disks. The runtime's
// loop and the simulator (package simtest) both call it, so the simulator
// proves this code's ordering, not a copy of it.
type Handler struct {
	Node    *raft.Node
	Storage Storage
	Sender  Sender
	App     Application
	// Logger gets a line per snapshot sent to a follower; nil for none.
	Logger *zap.Logger
	// StreamSnapshots: a MsgSnap goes to the Sender with its metadata
	// only, and the Sender streams the snapshot (the runtime's
	// snapshotStreams); otherwise its data is attached whole from
	// Storage.LoadSnapshot (the simulator).
	StreamSnapshots bool

	// Planted is NoPlantedBug in every runtime. Only the simulator's
	// self-test (simtest's TestPlantedSendBeforePersistIsCaught) sets it, to
	// show that the simulator catches an ordering bug in this code.
	Planted PlantedBug
}

// PlantedBug is an ordering bug planted on purpose into the Ready handling.
type PlantedBug uint8

const (
	// NoPlantedBug is the correct order.
	NoPlantedBug PlantedBug = iota
	// PlantVoteRespBeforePersist sends vote replies before the write of
	// the vote they grant.
	PlantVoteRespBeforePersist
	// PlantAllBeforePersist sends every message, acknowledgements
	// included, before the write they depend on.
	PlantAllBeforePersist
)

// HandleReady handles Ready batches until the core has none left. It
// returns the first error, and then the node must stop: its disk or its
// state machine is in an unknown state.
func (h *Handler) HandleReady() error {
	for h.Node.HasReady() {
		if err := h.HandleOne(); err != nil {
			return err
		}
	}
	return nil
}

// HandleOne handles one Ready batch, in the order raft.Ready prescribes:
//
//  1. install a snapshot received from the leader;
//  2. send the leader's replication traffic (EarlyMessages);
//  3. persist entries and hard state (fsync), or only a moved commit index
//     (no fsync);
//  4. send the other messages;
//  5. apply committed entries, hand over confirmed reads;
//  6. Advance the core.
//
// Call it only when Node.HasReady.
func (h *Handler) HandleOne() error {
	rd := h.Node.Ready()
	if rd.SoftState != nil {
		h.App.SoftStateChanged(*rd.SoftState)
	}
	if rd.Snapshot != nil {
		if err := h.App.PrepareRestore(); err != nil {
			return err
		}
		if err := h.Storage.SaveSnapshot(*rd.Snapshot); err != nil {
			return fmt.Errorf("save received snapshot: %w", err)
		}
		if err := h.App.Restore(rd.Snapshot); err != nil {
			return fmt.Errorf("restore received snapshot %d: %w", rd.Snapshot.Index, err)
		}
	}
	if h.Planted != NoPlantedBug {
		rd.EarlyMessages, rd.Messages = h.Planted.reorder(rd.EarlyMessages, rd.Messages)
	}
	// A leader's replication traffic goes out while it writes to its own
	// disk; everything else is sent only after the write (raft.Ready). The
	// leader counts its own copy towards a quorum only after Advance, and
	// followers promise durability only in their replies (Raft thesis
	// 10.2.1).
	if err := h.attachSnapshots(rd.EarlyMessages); err != nil {
		return err
	}
	h.Sender.Send(rd.EarlyMessages)
	if len(rd.EarlyMessages) > 0 && len(rd.Entries) > 0 {
		// Let the peer writers just woken run before this goroutine
		// blocks in fdatasync: the scheduler queued them on this
		// goroutine's processor, which a blocking system call holds until
		// the runtime's monitor takes it back (a go tool trace showed the
		// writers waiting ~70 µs on average, most of a follower's fsync),
		// and the early send is worth nothing if it leaves after the write.
		runtime.Gosched()
	}
	// A commit-only change of the hard state is written but not synced
	// (see Storage.SaveHardStateNoSync).
	if len(rd.Entries) > 0 || rd.MustSync {
		if err := h.Storage.Save(rd.HardState, rd.Entries); err != nil {
			return fmt.Errorf("persist log: %w", err)
		}
	} else if !rd.HardState.IsEmpty() {
		if err := h.Storage.SaveHardStateNoSync(rd.HardState); err != nil {
			return fmt.Errorf("persist commit index: %w", err)
		}
	}
	// Only now: a vote, a vote request and a reply to AppendEntries promise
	// that the term, the vote or the entries are on disk. A vote sent before
	// its fsync and lost in a crash lets the restarted node vote again in the
	// same term, for another candidate: two leaders in one term (Raft thesis
	// 3.8).
	if err := h.attachSnapshots(rd.Messages); err != nil {
		return err
	}
	h.Sender.Send(rd.Messages)
	if len(rd.Messages) > 0 {
		// Same again: a follower's acknowledgement is on the leader's
		// commit path, applying entries here is not.
		runtime.Gosched()
	}
	for _, e := range rd.CommittedEntries {
		if err := h.App.Apply(e); err != nil {
			return err
		}
	}
	for _, rs := range rd.ReadStates {
		if err := h.App.ReadState(rs); err != nil {
			return err
		}
	}
	h.Node.Advance(rd)
	return h.App.Advanced()
}

// attachSnapshots gives outgoing snapshots their data, read back from the
// newest saved snapshot (the core keeps only its metadata).
//
// The newest saved snapshot may be newer than the one the core asked for: a
// background snapshot (the runtime's startSnapshot) saves its file before the
// loop hears of it and compacts the core's log. Any durable snapshot at or
// above the requested index serves the follower just as well: it holds only
// applied, hence committed, state, and the follower acknowledges its index,
// which the leader holds in its log. So the newer one is sent, with its own
// index and term. An older one cannot be: the core learns of a snapshot only
// after it is saved (a local one once its save finished, a received one
// saved before the core's next Ready), and saved snapshots only grow newer.
func (h *Handler) attachSnapshots(msgs []raft.Message) error {
	if h.StreamSnapshots {
		return nil
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Type != raft.MsgSnap || m.Snapshot == nil || m.Snapshot.Data != nil {
			continue
		}
		snap, err := h.Storage.LoadSnapshot()
		if err != nil {
			return fmt.Errorf("load snapshot to send: %w", err)
		}
		if snap == nil || snap.Index < m.Snapshot.Index {
			var have uint64
			if snap != nil {
				have = snap.Index
			}
			return fmt.Errorf("snapshot %d to send is newer than the newest saved one (%d): a bug", m.Snapshot.Index, have)
		}
		if h.Logger != nil {
			h.Logger.Info("sending snapshot", zap.Int("to", int(m.To)), zap.Uint64("index", snap.Index),
				zap.Uint64("requested", m.Snapshot.Index), zap.Int("bytes", len(snap.Data)))
		}
		m.Snapshot = snap
	}
	return nil
}

// reorder moves the messages b names from after the write to before it.
func (b PlantedBug) reorder(early, late []raft.Message) (newEarly, newLate []raft.Message) {
	newEarly = slices.Clone(early)
	for _, m := range late {
		if b == PlantAllBeforePersist || m.Type == raft.MsgVoteResp {
			newEarly = append(newEarly, m)
		} else {
			newLate = append(newLate, m)
		}
	}
	return newEarly, newLate
}
