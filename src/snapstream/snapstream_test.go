package snapstream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

// memSource is a snapshot held in memory.
type memSource struct {
	*bytes.Reader
	index, term uint64
	closed      bool
}

func newSource(data []byte, index, term uint64) *memSource {
	return &memSource{Reader: bytes.NewReader(data), index: index, term: term}
}
func (m *memSource) Index() uint64 { return m.index }
func (m *memSource) Term() uint64  { return m.term }
func (m *memSource) Close() error  { m.closed = true; return nil }

// link is a network between one sender and one receiver that loses,
// duplicates and reorders messages as told.
type link struct {
	rng       *rand.Rand
	drop, dup float64
	reorder   bool
	queue     []raft.Message
}

func (l *link) send(ms ...raft.Message) {
	for _, m := range ms {
		if l.rng.Float64() < l.drop {
			continue
		}
		l.queue = append(l.queue, m)
		if l.rng.Float64() < l.dup {
			l.queue = append(l.queue, m)
		}
	}
}

// transfer is one run: what it sent and whether flow control held.
type transfer struct {
	done      *Complete
	chunkSent int64 // bytes of chunk data the sender sent
	steps     int
}

// run drives s and r over l until the receiver holds the whole snapshot
// (and the sender knows it) or steps run out. Each step delivers some of
// the queued messages (all, with no reorder) and ticks the sender. It
// checks the flow-control bound after every event.
func run(t *testing.T, s *Sender, r *Receiver, l *link, steps int) transfer {
	t.Helper()
	var tr transfer
	window := int64(s.cfg.WindowChunks * s.cfg.ChunkBytes)
	out := func(ms []raft.Message) {
		for _, m := range ms {
			tr.chunkSent += int64(len(m.Snapshot.Data))
		}
		l.send(ms...)
		require.LessOrEqual(t, s.sent-s.acked, window, "more than the window in flight")
	}
	out(s.Start())
	for tr.steps = 0; tr.steps < steps && !(s.Done() && tr.done != nil); tr.steps++ {
		q := l.queue
		l.queue = nil
		if l.reorder {
			l.rng.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
			// Some messages wait for a later step.
			k := l.rng.Intn(len(q) + 1)
			l.queue, q = append(l.queue, q[k:]...), q[:k]
		}
		for _, m := range q {
			switch m.Type {
			case MsgChunk:
				ack, done, err := r.OnChunk(m)
				require.NoError(t, err)
				if done != nil {
					require.Nil(t, tr.done, "completed twice")
					tr.done = done
				}
				l.send(ack)
			case MsgAck:
				out(s.OnAck(m))
			}
		}
		out(s.Tick())
	}
	return tr
}

func randomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

func newReceiver(t *testing.T) *Receiver {
	dir := t.TempDir()
	return NewReceiver(filepath.Join(dir, "incoming.tmp"), filepath.Join(dir, "whole.tmp"))
}

var small = Config{ChunkBytes: 64, WindowChunks: 3, RetryTicks: 4, GiveUpTicks: 1 << 30}

// lossyTransfer sends random data over a link that loses, duplicates and
// reorders, and returns an error if the staged file is not the data.
func lossyTransfer(t *testing.T, seed int64, planted PlantedBug) error {
	rng := rand.New(rand.NewSource(seed))
	data := randomData(rng, 1+rng.Intn(40*64))
	l := &link{rng: rng, drop: rng.Float64() * 0.3, dup: rng.Float64() * 0.1, reorder: true}
	r := newReceiver(t)
	r.Planted = planted
	s := NewSender(small, 1, 2, 5, 9, newSource(data, 100, 3))
	tr := run(t, s, r, l, 20000)
	if tr.done == nil {
		return fmt.Errorf("seed %d: no complete snapshot after %d steps (acked %d of %d)", seed, tr.steps, s.acked, len(data))
	}
	got, err := os.ReadFile(tr.done.Path)
	require.NoError(t, err)
	if !bytes.Equal(got, data) {
		return fmt.Errorf("seed %d: staged snapshot differs from the one sent (%d bytes, sent %d)", seed, len(got), len(data))
	}
	if !s.Done() || s.Err() != nil {
		return fmt.Errorf("seed %d: sender not done: %v", seed, s.Err())
	}
	return nil
}

// TestTransferOverLossyReorderingLink: chunks and acks lost, duplicated and
// reordered; the receiver ends with the snapshot byte for byte, and the
// sender never has more than its window beyond the acknowledged offset.
func TestTransferOverLossyReorderingLink(t *testing.T) {
	for seed := range int64(200) {
		require.NoError(t, lossyTransfer(t, seed, NoPlantedBug))
	}
}

// TestPlantedAcceptWrongOffsetIsCaught: a receiver that writes a chunk
// whatever its offset is caught by the lossy-link test on pinned seeds.
func TestPlantedAcceptWrongOffsetIsCaught(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		err := lossyTransfer(t, seed, PlantAcceptWrongOffset)
		require.Error(t, err, "seed %d: the planted bug went unnoticed", seed)
		assert.Contains(t, err.Error(), "differs", "seed %d", seed)
		require.NoError(t, lossyTransfer(t, seed, NoPlantedBug), "seed %d without the bug", seed)
	}
}

// TestResumeAfterBrokenConnection: the connection breaks halfway (every
// message in flight lost, the leader's sender abandoned); a new sender for
// the same snapshot resumes from the receiver's offset, sending the rest
// and one probe chunk, not the whole snapshot again.
func TestResumeAfterBrokenConnection(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	data := randomData(rng, 100*64+17)
	r := newReceiver(t)
	l := &link{rng: rng}
	s := NewSender(small, 1, 2, 5, 9, newSource(data, 100, 3))
	l.send(s.Start()...)
	for r.received < int64(len(data))/2 {
		q := l.queue
		l.queue = nil
		for _, m := range q {
			if m.Type == MsgChunk {
				ack, done, err := r.OnChunk(m)
				require.NoError(t, err)
				require.Nil(t, done)
				l.send(ack)
			} else {
				l.send(s.OnAck(m)...)
			}
		}
	}
	// The break: everything in flight is lost, the sender gives up.
	l.queue = nil
	at := r.received
	src := s.src.(*memSource)
	require.NoError(t, s.Close())
	assert.True(t, src.closed)
	assert.Error(t, s.Err())

	s2 := NewSender(small, 1, 2, 5, 9, newSource(data, 100, 3))
	tr := run(t, s2, r, l, 10000)
	require.NotNil(t, tr.done)
	got, err := os.ReadFile(tr.done.Path)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	assert.LessOrEqual(t, tr.chunkSent, int64(len(data))-at+int64(small.ChunkBytes),
		"resumed at %d: only the rest and one probe chunk are sent", at)
}

// TestNewSnapshotRestartsTransfer: a receiver halfway through one snapshot
// that is offered a newer one (the leader took another) starts over with
// it; a late chunk of the old one is answered with a Reject of offset 0
// and changes nothing.
func TestNewSnapshotRestartsTransfer(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	oldData, newData := randomData(rng, 30*64), randomData(rng, 20*64+5)
	r := newReceiver(t)
	s := NewSender(small, 1, 2, 5, 9, newSource(oldData, 100, 3))
	first := s.Start()
	late := first[0]
	late.Index, late.Snapshot = 64, &raft.Snapshot{Index: 100, Term: 3, Data: oldData[64:128]}
	for _, m := range first {
		_, _, err := r.OnChunk(m)
		require.NoError(t, err)
	}
	s2 := NewSender(small, 1, 2, 5, 9, newSource(newData, 200, 4))
	l := &link{rng: rng}
	chunks := s2.Start()
	ack, _, err := r.OnChunk(chunks[0])
	require.NoError(t, err)
	assert.Equal(t, uint64(64), ack.Commit)
	stale, _, err := r.OnChunk(late)
	require.NoError(t, err)
	assert.True(t, stale.Reject)
	assert.Equal(t, uint64(0), stale.Commit)
	assert.Equal(t, uint64(100), stale.Index)
	assert.Empty(t, s2.OnAck(stale), "an ack of another snapshot moves nothing")
	l.send(ack)
	tr := run(t, s2, r, l, 10000)
	require.NotNil(t, tr.done)
	assert.Equal(t, uint64(200), tr.done.Index)
	got, err := os.ReadFile(tr.done.Path)
	require.NoError(t, err)
	assert.Equal(t, newData, got)
}

// TestMalformedChunksRefused: chunks no correct sender sends are dropped
// with ErrBadChunk, staging nothing.
func TestMalformedChunksRefused(t *testing.T) {
	snap := func(n int) *raft.Snapshot { return &raft.Snapshot{Index: 1, Term: 1, Data: make([]byte, n)} }
	for name, m := range map[string]raft.Message{
		"no snapshot":       {Type: MsgChunk, Commit: 10},
		"empty chunk":       {Type: MsgChunk, Commit: 10, Snapshot: snap(0)},
		"zero size":         {Type: MsgChunk, Commit: 0, Snapshot: snap(1)},
		"beyond the size":   {Type: MsgChunk, Index: 8, Commit: 10, Snapshot: snap(3)},
		"offset at the end": {Type: MsgChunk, Index: 10, Commit: 10, Snapshot: snap(1)},
		"absurd size":       {Type: MsgChunk, Commit: 1 << 60, Snapshot: snap(1)},
		"not a chunk":       {Type: MsgAck, Commit: 10, Snapshot: snap(1)},
	} {
		r := newReceiver(t)
		_, done, err := r.OnChunk(m)
		assert.True(t, errors.Is(err, ErrBadChunk), "%s: %v", name, err)
		assert.Nil(t, done, name)
		_, _, received, _ := r.Staged()
		assert.Zero(t, received, name)
	}
}

// TestSenderGivesUp: a follower that never answers is abandoned after
// GiveUpTicks, having been sent the first chunk again every RetryTicks.
func TestSenderGivesUp(t *testing.T) {
	s := NewSender(Config{ChunkBytes: 10, RetryTicks: 3, GiveUpTicks: 10}, 1, 2, 5, 9, newSource(make([]byte, 100), 1, 1))
	require.Len(t, s.Start(), 1, "a new sender probes with one chunk")
	resent := 0
	for range 20 {
		for _, m := range s.Tick() {
			assert.Equal(t, uint64(0), m.Index)
			resent++
		}
	}
	assert.Equal(t, 3, resent)
	assert.True(t, s.Done())
	assert.Error(t, s.Err())
}
