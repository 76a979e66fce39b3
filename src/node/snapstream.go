package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"raftkv/src/raft"
	"raftkv/src/snapstream"
	"raftkv/src/storage"
)

// Snapshots go to followers in chunks (package snapstream), never as one
// message. On the leader, a MsgSnap from the core (metadata only: the
// Handler runs with StreamSnapshots) starts a snapstream.Sender over the
// newest saved snapshot (snapshotSource); acks and ticks drive it. On the
// follower, chunks go to a snapstream.Receiver that stages them in the
// node's folder; a whole snapshot is verified (snapshotInstaller.verify)
// and only then handed to the core as a MsgSnap without data, whose Ready
// installs the staged file (loopDisk.SaveSnapshot) and restores the state
// machine from it (loopApp.Restore).
//
// The two seams below are all the streaming needs from storage: a reader of
// one self-contained snapshot, and the install of one received.

// snapshotSource opens the newest saved snapshot for sending, nil if none.
type snapshotSource interface {
	OpenSnapshot() (*storage.SnapshotFile, error)
}

// snapshotInstaller checks a received snapshot file and installs it as the
// node's newest snapshot.
type snapshotInstaller interface {
	VerifySnapshotFile(path string, index, term uint64) (*raft.Snapshot, error)
	InstallSnapshotFile(path string, snap raft.Snapshot) error
}

// The staging files of a snapshot being received, in the node's folder;
// their .tmp suffix makes recovery remove them after a crash.
const (
	incomingSnapshotFile = "incoming-snapshot.tmp"
	wholeSnapshotFile    = "incoming-snapshot-whole.tmp"
)

// snapshotStreams is the loop-owned state of the transfers.
type snapshotStreams struct {
	cfg    snapstream.Config
	source snapshotSource
	inst   snapshotInstaller
	out    map[raft.ID]*snapstream.Sender
	// opening marks the followers whose snapshot is being opened for
	// sending (sendSnapshot).
	opening map[raft.ID]bool
	in      *snapstream.Receiver
	// staged is a received snapshot, verified (with its state in Data),
	// that the core was handed without data and whose Ready installs it
	// and restores the state machine from it.
	staged     *raft.Snapshot
	stagedPath string
}

func newSnapshotStreams(cfg snapstream.Config, dir string, source snapshotSource, inst snapshotInstaller) snapshotStreams {
	return snapshotStreams{
		cfg: cfg, source: source, inst: inst,
		out: map[raft.ID]*snapstream.Sender{}, opening: map[raft.ID]bool{},
		in: snapstream.NewReceiver(filepath.Join(dir, incomingSnapshotFile), filepath.Join(dir, wholeSnapshotFile)),
	}
}

// sendSnapshot answers the core's request to send m.To a snapshot
// (m.Snapshot is the core's, the index its log starts after). A transfer
// to it keeps going while its snapshot still meets the log: after it the
// follower catches up from entries. Once the log was compacted past it, a
// transfer of the newest snapshot replaces it.
//
// The snapshot is opened off the loop: when the newest one is a delta,
// opening writes base and deltas into one file (seconds for a large state)
// and the loop must go on ticking meanwhile. startSend takes it back in the
// loop.
func (s *Node) sendSnapshot(m raft.Message) {
	st := &s.streams
	if cur := st.out[m.To]; cur != nil && !cur.Done() {
		if cur.LeaderTerm() == m.Term && cur.Index() >= m.Snapshot.Index {
			return
		}
		s.endStream(m.To, cur)
	}
	if st.opening[m.To] {
		return
	}
	st.opening[m.To] = true
	source := st.source
	go func() {
		src, err := source.OpenSnapshot()
		select {
		case s.callc <- func() { s.startSend(m, src, err) }:
		case <-s.stopc:
			if src != nil {
				src.Close()
			}
		}
	}()
}

// startSend starts the transfer of the snapshot sendSnapshot opened, if
// this node still leads in the term of the request.
func (s *Node) startSend(m raft.Message, src *storage.SnapshotFile, err error) {
	st := &s.streams
	delete(st.opening, m.To)
	if err != nil || src == nil {
		s.lg.Error("cannot open the snapshot to send", zap.Int("to", int(m.To)), zap.Error(err))
		return
	}
	if bs := s.core.BasicStatus(); bs.Role != raft.RoleLeader || bs.Term != m.Term {
		src.Close() // the core asks again if it leads again
		return
	}
	if cur := st.out[m.To]; cur != nil {
		s.endStream(m.To, cur)
	}
	snd := snapstream.NewSender(st.cfg, s.cfg.ID, m.To, m.Term, s.inc, src)
	st.out[m.To] = snd
	s.lg.Info("sending snapshot", zap.Int("to", int(m.To)), zap.Uint64("index", src.Index()),
		zap.Uint64("requested", m.Snapshot.Index), zap.Int64("bytes", src.Size()))
	s.tr.Send(snd.Start())
}

// onSnapAck feeds a follower's ack to its transfer.
func (s *Node) onSnapAck(m raft.Message) {
	snd := s.streams.out[m.From]
	if snd == nil {
		return
	}
	s.tr.Send(snd.OnAck(m))
	if snd.Done() {
		s.endStream(m.From, snd)
	}
}

// tickStreams runs the transfers' retries and give-ups.
func (s *Node) tickStreams() {
	for id, snd := range s.streams.out {
		s.tr.Send(snd.Tick())
		if snd.Done() {
			s.endStream(id, snd)
		}
	}
}

func (s *Node) endStream(to raft.ID, snd *snapstream.Sender) {
	delete(s.streams.out, to)
	if snd.Done() && snd.Err() == nil {
		s.lg.Info("snapshot sent", zap.Int("to", int(to)), zap.Uint64("index", snd.Index()), zap.Int64("bytes", snd.Acked()))
	} else {
		s.lg.Warn("snapshot transfer stopped", zap.Int("to", int(to)), zap.Uint64("index", snd.Index()), zap.Int64("acked", snd.Acked()), zap.NamedError("why", snd.Err()))
	}
	if err := snd.Close(); err != nil {
		s.lg.Warn("close snapshot file", zap.Error(err))
	}
}

// endStreams stops every transfer (leadership lost, or stopping).
func (s *Node) endStreams() {
	for id, snd := range s.streams.out {
		s.endStream(id, snd)
	}
}

// onSnapChunk stages a chunk; once the snapshot is whole and verified, the
// core gets it, as a MsgSnap from the leader that sent it.
func (s *Node) onSnapChunk(m raft.Message) {
	st := &s.streams
	ack, done, err := st.in.OnChunk(m)
	if err != nil {
		s.met.InvalidMessage()
		if errors.Is(err, snapstream.ErrBadChunk) {
			s.lg.Warn("dropped snapshot chunk", zap.Int("from", int(m.From)), zap.Error(err))
			return
		}
		s.lg.Error("cannot stage snapshot chunk", zap.Error(err))
		return
	}
	ack.Incarnation = s.inc
	s.tr.Send([]raft.Message{ack})
	if done == nil {
		return
	}
	meta, err := st.inst.VerifySnapshotFile(done.Path, done.Index, done.Term)
	if err != nil {
		// Not the leader's snapshot byte for byte: drop it; the leader's
		// core asks again after an election timeout.
		s.lg.Error("received snapshot refused", zap.Uint64("index", done.Index), zap.Error(err))
		os.Remove(done.Path)
		st.in.Forget()
		return
	}
	s.lg.Info("snapshot received", zap.Int("from", int(done.From)), zap.Uint64("index", done.Index), zap.Int64("bytes", done.Size))
	st.staged, st.stagedPath = meta, done.Path
	snap := *meta
	snap.Data = nil
	msg := raft.Message{Type: raft.MsgSnap, From: done.From, To: s.cfg.ID, Term: done.LeaderTerm, Incarnation: m.Incarnation, Snapshot: &snap}
	if err := s.core.Step(msg); err != nil {
		s.lg.Warn("core refused the received snapshot", zap.Error(err))
	}
}

// installStaged installs the staged received snapshot the core restored
// (the Ready's Snapshot, without data).
func (s *Node) installStaged(snap raft.Snapshot) error {
	st := &s.streams
	if st.staged == nil || st.staged.Index != snap.Index || st.staged.Term != snap.Term {
		return fmt.Errorf("snapshot %d/t%d to install was not received whole (a bug)", snap.Index, snap.Term)
	}
	return st.inst.InstallSnapshotFile(st.stagedPath, snap)
}

// dropStaged forgets a staged snapshot the core did not restore (it had
// caught up meanwhile): the Ready that would have installed it was handled
// in the same loop turn. Its state is not kept in memory.
func (s *Node) dropStaged() {
	st := &s.streams
	if st.staged == nil {
		return
	}
	s.lg.Info("received snapshot not needed", zap.Uint64("index", st.staged.Index))
	st.staged = nil
	os.Remove(st.stagedPath)
}

// takeStaged returns the state of the staged snapshot snap, once: the
// state machine restores from it.
func (s *Node) takeStaged(snap *raft.Snapshot) []byte {
	st := &s.streams
	if st.staged == nil || st.staged.Index != snap.Index || st.staged.Term != snap.Term {
		return nil
	}
	data := st.staged.Data
	st.staged = nil
	return data
}
