package node

// The leader's clock for leases (issue 16). The state machine (kv) holds
// the leases and never reads a clock; this runtime part decides, on the
// leader only, when one expired, and proposes kv.OpLeaseExpire for it,
// conditioned on the lease's renew index so that a keep-alive that commits
// first wins. Every replica then deletes the lease's keys at the same log
// index.
//
// No early expiry (etcd's lessor.Promote does the same): a lease's deadline
// is set, on the leader, when its grant or keep-alive applies there, which
// is after the client sent it, so deadline >= send + TTL. A node that
// becomes leader does not know when the old leader last saw a keep-alive
// (followers keep no deadlines), so it gives every lease a full TTL from
// the moment it took over: again later than any acknowledged keep-alive's
// send time plus TTL. A node that steps down forgets its deadlines: they
// would be stale the next time it leads. A failover thus only makes leases
// live longer, by at most the time the election took plus one TTL.

import (
	"cmp"
	"slices"
	"time"

	"go.uber.org/zap"

	"raftkv/src/kv"
	"raftkv/src/watch"
)

// testHookNoExtendOnPromote (tests only) plants the bug the rules above
// prevent: a new leader does not give the leases a full TTL but takes them
// as due now, as if the old leader's deadlines had passed (lessor_test.go
// shows the harness catches it).
var testHookNoExtendOnPromote bool

type leaseClock struct {
	deadline time.Time
	renew    uint64 // the renew index the deadline was set for
	// proposed is when an expiry was last proposed (zero: none), so that
	// a lost proposal is made again after retry, not on every tick.
	proposed time.Time
}

// lessor is the loop's (single goroutine's) view of lease deadlines.
type lessor struct {
	leading bool
	// clocks holds a deadline for every live lease while leading.
	// Invariant: empty while not leading.
	clocks map[uint64]*leaseClock
	// retry is how long an expiry proposal may take before it is made
	// again (it was lost in a leader change, or this node is cut off).
	retry time.Duration
}

func newLessor(retry time.Duration) lessor {
	return lessor{clocks: map[uint64]*leaseClock{}, retry: retry}
}

// promote starts the leader's clock: every lease gets a full TTL from now.
func (l *lessor) promote(now time.Time, leases []kv.LeaseInfo) {
	l.leading = true
	for _, info := range leases {
		deadline := now.Add(info.TTL())
		if testHookNoExtendOnPromote {
			deadline = now // the planted bug
		}
		l.clocks[info.ID] = &leaseClock{deadline: deadline, renew: info.Renew}
	}
}

// demote stops the clock and forgets the deadlines.
func (l *lessor) demote() {
	l.leading = false
	clear(l.clocks)
}

// renewed: a grant or keep-alive of info applied at now.
func (l *lessor) renewed(now time.Time, info kv.LeaseInfo) {
	if !l.leading {
		return
	}
	l.clocks[info.ID] = &leaseClock{deadline: now.Add(info.TTL()), renew: info.Renew}
}

// ended: a lease was revoked or expired.
func (l *lessor) ended(id uint64) { delete(l.clocks, id) }

// expired returns the expiries to propose at now, by lease ID.
func (l *lessor) expired(now time.Time) []kv.Command {
	if !l.leading {
		return nil
	}
	var out []kv.Command
	for id, c := range l.clocks {
		if now.Before(c.deadline) || (!c.proposed.IsZero() && now.Sub(c.proposed) < l.retry) {
			continue
		}
		c.proposed = now
		out = append(out, kv.Command{Op: kv.OpLeaseExpire, Lease: id, Renew: c.renew})
	}
	slices.SortFunc(out, func(a, b kv.Command) int { return cmp.Compare(a.Lease, b.Lease) })
	return out
}

// expireLeases proposes the expiries due (loop; on every tick). A proposal
// that fails (no longer leader) is dropped: the next leader decides.
func (s *Node) expireLeases() {
	for _, cmd := range s.lessor.expired(time.Now()) {
		if _, _, err := s.core.Propose(kv.EncodeCommand(cmd)); err != nil {
			return
		}
		s.lg.Info("lease expired", zap.Uint64("lease", cmd.Lease), zap.Uint64("renew_index", cmd.Renew))
	}
}

// Watch is the node's history of changes, for watchers.
func (s *Node) Watch() *watch.Hub { return s.hub }

// Leases returns the live leases of the local state machine.
func (s *Node) Leases() []kv.LeaseInfo { return s.kv.Leases() }

// LeaseKeys returns the keys of a lease in the local state machine.
func (s *Node) LeaseKeys(id uint64) ([]string, bool) { return s.kv.LeaseKeys(id) }
