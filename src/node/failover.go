package node

import (
	"math/rand"
	"time"

	"go.uber.org/zap"

	"raftkv/src/raft"
)

// Fast failover. When the leader's process dies, the kernel closes its
// connections and every follower sees its inbound stream end at once. A
// follower that sees this from its leader does not wait out the election
// timeout: it drops its leader lease (so it grants pre-votes) and, after a
// short random delay that keeps the followers from splitting the vote,
// starts a pre-vote. Pre-vote and check-quorum keep this from deposing a
// healthy leader when only one link broke: the other followers still hear
// from the leader, keep their leases and refuse the pre-vote. A silent
// partition breaks no connection and still waits for the election timeout.

// peerLost is the transport's callback; it must not block.
func (s *Node) peerLost(id raft.ID) {
	select {
	case s.lostc <- id:
	default:
	}
}

// maxCampaignDelay bounds the random wait before a follower campaigns after
// losing its leader's connection.
func (s *Node) maxCampaignDelay() time.Duration { return s.cfg.Heartbeat }

func (s *Node) onPeerLost(id raft.ID) {
	st := s.core.BasicStatus()
	if st.Role != raft.RoleFollower || st.Lead != id {
		return
	}
	s.core.ExpireLease()
	delay := time.Duration(rand.Int63n(int64(s.maxCampaignDelay()) + 1))
	s.lg.Info("connection from the leader broke; campaigning soon", zap.Int("leader", int(id)), zap.Duration("delay", delay))
	time.AfterFunc(delay, func() {
		select {
		case s.campaignc <- id:
		case <-s.stopc:
		}
	})
}

func (s *Node) onCampaignTimer(lost raft.ID) {
	st := s.core.BasicStatus()
	// Someone else may have won meanwhile, or the leader came back.
	if st.Role == raft.RoleFollower && st.Lead == lost {
		s.core.Campaign()
	}
}
