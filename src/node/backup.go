package node

import (
	"errors"
	"io"
	"time"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// ErrNoTransferee is returned when no follower can take over (none answered recently).
var ErrNoTransferee = errors.New("no follower has answered the leader recently; none can take over")

// inLoop runs f in the loop, between two turns (so it sees the core, the
// state machine and the waiters at rest, and the loop's next Ready sends
// whatever f made the core do), and returns when f returned. ErrBusy: the
// loop did not take f before deadline; ErrStopping: the node is stopping.
func (s *Node) inLoop(f func(), deadline <-chan time.Time) error {
	done := make(chan struct{})
	select {
	case s.callc <- func() { f(); close(done) }:
	case <-deadline:
		return ErrBusy
	case <-s.stopc:
		return ErrStopping
	}
	<-done // the loop runs f as soon as it took it
	return nil
}

// Backup is a consistent copy of the state machine at one applied log
// position, for `raftkv snapshot save`.
type Backup struct {
	// Index and Term are those of the last entry the state reflects.
	Index, Term uint64
	Keys        int
	// Encode writes the state machine's snapshot JSON (the bytes a node's
	// snapshots store as StateMachine). It may be called once, from any
	// goroutine; the node keeps applying entries meanwhile.
	Encode func(w io.Writer) error
}

// Backup waits until a read on this node would be linearizable (it is the
// leader, a quorum confirmed it, and it applied everything committed when
// Backup was called), then freezes the state machine. So the backup holds
// every write acknowledged before the call. Freezing is cheap (see
// kv.Store.Freeze); the encoding is the caller's. Errors: those of Read.
func (s *Node) Backup(deadline <-chan time.Time) (Backup, error) {
	if err := s.Read(deadline); err != nil {
		return Backup{}, err
	}
	var b Backup
	err := s.inLoop(func() {
		f := s.kv.Freeze()
		// The loop applies entries one by one and records the term of the
		// last: index and term belong together here.
		b = Backup{Index: f.AppliedIndex(), Term: s.appliedTerm, Keys: f.Len(), Encode: f.EncodeTo}
	}, deadline)
	return b, err
}

// TransferLeadership hands this node's leadership to the node to, or with
// raft.None to the follower that holds the most of the log among those
// heard from within the last election timeout (Raft thesis 3.10: the
// leader stops taking proposals, catches the target up and tells it to
// campaign at once). It returns the node that leads after the transfer,
// once this node saw another node lead (raft.None picks only among the
// followers connected both ways); the core gives up after an
// election timeout, so a deadline longer than that ends in ErrTimeout with
// this node still leading. ErrNotLeader: this node does not lead.
func (s *Node) TransferLeadership(to raft.ID, deadline <-chan time.Time) (raft.ID, error) {
	// A peer whose streams are both down cannot take over (it stopped, or
	// the network is cut); its Progress may still look recent for up to an
	// election timeout.
	up := map[raft.ID]bool{}
	for id, ps := range s.tr.Stats() {
		up[id] = ps.Connected && ps.InboundConnected
	}
	var terr error
	err := s.inLoop(func() {
		st := s.core.Status()
		if st.Role != raft.RoleLeader {
			terr = ErrNotLeader
			return
		}
		if to == raft.None {
			to = pickTransferee(st, up)
			if to == raft.None {
				terr = ErrNoTransferee
				return
			}
		}
		terr = s.core.TransferLeadership(to)
	}, deadline)
	if err == nil {
		err = terr
	}
	if err != nil {
		return raft.None, err
	}
	s.lg.Info("transferring leadership", zap.String("to", s.tr.Stats()[to].Name))
	poll := time.NewTicker(max(s.cfg.Heartbeat/5, time.Millisecond))
	defer poll.Stop()
	for {
		if st := s.status.Load(); st.Lead != raft.None && st.Lead != s.cfg.ID {
			return st.Lead, nil
		}
		select {
		case <-poll.C:
		case <-deadline:
			return raft.None, ErrTimeout
		case <-s.stopc:
			return raft.None, ErrStopping
		}
	}
}

// pickTransferee is the follower with the highest match index among those
// that answered within the last election timeout and are connected both
// ways (ties: the lowest ID), or raft.None.
func pickTransferee(st raft.Status, up map[raft.ID]bool) raft.ID {
	best := raft.None
	for id, pr := range st.Progress {
		if id == st.ID || !pr.RecentActive || !up[id] {
			continue
		}
		if b, ok := st.Progress[best]; best == raft.None || !ok || pr.Match > b.Match || (pr.Match == b.Match && id < best) {
			best = id
		}
	}
	return best
}
