// Package snapstream sends a snapshot to a follower in chunks, with flow
// control, and resumes a transfer that a broken connection interrupted.
//
// The Raft core asks for a snapshot with a MsgSnap that carries only its
// metadata; the runtime on the leader opens its newest snapshot (a Source)
// and a Sender streams it as MsgChunk messages over the ordinary peer
// transport, at most Config.WindowChunks chunks (WindowChunks*ChunkBytes
// bytes) beyond what the follower acknowledged. The runtime on the
// follower feeds the chunks to a Receiver, which appends them to a staging
// file only at the offset it expects and answers every chunk with a MsgAck
// of the offset it wants next. When the file is whole, the runtime
// verifies and installs it and only then hands the core a MsgSnap: the core
// never sees the state, only its metadata, and no message ever holds the
// whole state.
//
// Loss, duplication and reordering: a chunk at any other offset than the
// expected one is never written (a gap is answered by an ack with Reject,
// which makes the sender go back to that offset; a duplicate by a plain
// ack); a sender that hears nothing for Config.RetryTicks goes back to the
// last acknowledged offset. A broken connection is only a longer silence:
// the receiver keeps its staging file, so the sender (the same one, or a
// new one for the same snapshot) resumes from the receiver's offset, which
// a new sender learns from the answer to its first chunk. A chunk of
// another snapshot (the leader took a newer one, or another node leads)
// at offset 0 restarts the staging; at any other offset it is answered by
// a Reject ack of offset 0.
//
// The wire form is the snapshot file itself, byte for byte (storage's
// single-file format); what the runtime streams and installs is its
// business (node.snapshotSource and node.snapshotInstaller).
package snapstream

import (
	"fmt"
	"io"

	"raftkv/src/raft"
)

// Message kinds the runtimes exchange; they travel in raft.Message over the
// peer transport but never reach the core.
//
//	MsgChunk: Term = the leader's term; Snapshot.Index, Snapshot.Term =
//	          the snapshot's; Snapshot.Data = the chunk; Index = the
//	          chunk's offset; Commit = the snapshot's size in bytes.
//	MsgAck:   Index, LogTerm = the snapshot's index and term; Commit = the
//	          offset the receiver wants next (all before it is staged);
//	          Reject = the chunk was not the one wanted (a gap, or another
//	          snapshot): resend from Commit.
const (
	MsgChunk raft.MessageType = 102
	MsgAck   raft.MessageType = 103
)

// Config tunes a transfer. The zero value takes the defaults.
type Config struct {
	// ChunkBytes is the size of one chunk (default 1 MiB).
	ChunkBytes int
	// WindowChunks bounds the chunks sent beyond the acknowledged offset
	// (default 4): the flow control.
	WindowChunks int
	// RetryTicks: with no progress for this many ticks, the sender goes
	// back to the acknowledged offset (default 10).
	RetryTicks int
	// GiveUpTicks: with no progress for this many ticks the sender stops
	// (default 300); the core asks again, and a new sender resumes.
	GiveUpTicks int
}

func (c Config) withDefaults() Config {
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 1 << 20
	}
	if c.WindowChunks <= 0 {
		c.WindowChunks = 4
	}
	if c.RetryTicks <= 0 {
		c.RetryTicks = 10
	}
	if c.GiveUpTicks <= 0 {
		c.GiveUpTicks = 300
	}
	return c
}

// Source is one snapshot to send: its bytes, its size and which snapshot
// it is. The runtime opens it (node's snapshotSource); the Sender closes it.
type Source interface {
	io.ReaderAt
	io.Closer
	Size() int64
	// Index and Term of the snapshot.
	Index() uint64
	Term() uint64
}

// Sender streams one snapshot to one follower. It is driven by one
// goroutine (the runtime's loop): Start, OnAck and Tick return the
// messages to send.
//
// Invariant: acked <= sent <= size; sent - acked <= WindowChunks*ChunkBytes.
type Sender struct {
	cfg      Config
	from, to raft.ID
	term     uint64
	inc      raft.Incarnation
	src      Source
	size     int64
	// acked: the follower holds [0, acked); sent: chunks up to sent left.
	acked, sent int64
	// probing: a new sender sends one chunk until the first ack tells it
	// where the follower stands (it may resume from far beyond 0).
	probing bool
	// rewoundTo is the offset of the last go-back on a Reject ack: the
	// other rejects of the same gap (one per chunk in flight) are ignored.
	rewoundTo int64
	idle      int
	done      bool
	err       error
}

// NewSender prepares the transfer of src from the leader from (of
// incarnation inc, in term) to follower to.
func NewSender(cfg Config, from, to raft.ID, term uint64, inc raft.Incarnation, src Source) *Sender {
	return &Sender{cfg: cfg.withDefaults(), from: from, to: to, term: term, inc: inc, src: src,
		size: src.Size(), probing: true, rewoundTo: -1}
}

// Index and Term are the snapshot's.
func (s *Sender) Index() uint64 { return s.src.Index() }
func (s *Sender) Term() uint64  { return s.src.Term() }

// LeaderTerm is the term the sender sends in.
func (s *Sender) LeaderTerm() uint64 { return s.term }

// Done reports whether the transfer ended: the follower holds the whole
// snapshot, or it stopped answering (Err says which), or reading failed.
func (s *Sender) Done() bool { return s.done }

// Err is nil after a complete transfer.
func (s *Sender) Err() error { return s.err }

// Acked is how many bytes the follower acknowledged.
func (s *Sender) Acked() int64 { return s.acked }

// Close releases the source; the sender sends nothing more.
func (s *Sender) Close() error {
	if !s.done {
		s.done = true
		if s.err == nil {
			s.err = fmt.Errorf("snapstream: transfer of %d/t%d to %d abandoned at %d of %d bytes", s.Index(), s.Term(), s.to, s.acked, s.size)
		}
	}
	return s.src.Close()
}

// Start returns the first chunk.
func (s *Sender) Start() []raft.Message { return s.pump() }

// OnAck handles the follower's answer and returns the chunks it lets out.
func (s *Sender) OnAck(m raft.Message) []raft.Message {
	if s.done || m.Index != s.Index() || m.LogTerm != s.Term() || int64(m.Commit) < 0 || int64(m.Commit) > s.size {
		return nil // another transfer's, or nonsense
	}
	off := int64(m.Commit)
	s.probing = false
	if off > s.acked {
		s.acked, s.idle = off, 0
	}
	if off > s.sent {
		// The follower already holds more than this sender sent: it
		// resumes an interrupted transfer.
		s.sent = off
	}
	if m.Reject && off < s.sent && off != s.rewoundTo {
		// A gap (chunks lost or reordered), or the follower restarted
		// staging: go back to what it wants.
		s.sent, s.rewoundTo = off, off
		if off < s.acked {
			s.acked = off // it lost what it had (another snapshot took its place)
		}
	}
	if s.acked == s.size {
		s.done = true
		return nil
	}
	return s.pump()
}

// Tick is one runtime tick: after RetryTicks without progress the sender
// goes back to the acknowledged offset; after GiveUpTicks it stops.
func (s *Sender) Tick() []raft.Message {
	if s.done {
		return nil
	}
	s.idle++
	if s.idle >= s.cfg.GiveUpTicks {
		s.done = true
		s.err = fmt.Errorf("snapstream: follower %d did not answer for %d ticks (at %d of %d bytes)", s.to, s.idle, s.acked, s.size)
		return nil
	}
	if s.idle%s.cfg.RetryTicks == 0 {
		s.sent, s.rewoundTo = s.acked, -1
		return s.pump()
	}
	return nil
}

// pump sends chunks while the window allows.
func (s *Sender) pump() []raft.Message {
	var out []raft.Message
	window := int64(s.cfg.WindowChunks) * int64(s.cfg.ChunkBytes)
	if s.probing {
		window = int64(s.cfg.ChunkBytes)
	}
	for !s.done && s.sent < s.size && s.sent-s.acked < window {
		n := min(int64(s.cfg.ChunkBytes), s.size-s.sent)
		buf := make([]byte, n)
		if _, err := s.src.ReadAt(buf, s.sent); err != nil {
			s.done = true
			s.err = fmt.Errorf("snapstream: read snapshot %d at %d: %w", s.Index(), s.sent, err)
			return out
		}
		out = append(out, raft.Message{
			Type: MsgChunk, From: s.from, To: s.to, Term: s.term, Incarnation: s.inc,
			Index: uint64(s.sent), Commit: uint64(s.size),
			Snapshot: &raft.Snapshot{Index: s.Index(), Term: s.Term(), Data: buf},
		})
		s.sent += n
	}
	return out
}
