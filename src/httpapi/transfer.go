package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"raftkv/src/node"
	"raftkv/src/raft"
)

// TransferBody is the answer of POST /v1/leader/transfer.
type TransferBody struct {
	// PreviousLeader led when the request arrived; Leader leads now.
	PreviousLeader string `json:"previous_leader"`
	Leader         string `json:"leader"`
	// Transferred is false when the node asked for already led.
	Transferred bool `json:"transferred"`
}

// handleTransfer serves POST /v1/leader/transfer[?to=NAME]: the leader
// hands over to NAME, or to its most caught-up follower, and the answer
// comes once another node leads. A follower forwards it to the leader.
func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
		return
	}
	q := [...]queryParam{{name: "to"}}
	if err := parseQuery(r.URL.RawQuery, q[:], "POST /v1/leader/transfer"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to := raft.None
	if q[0].given {
		id, ok := s.peerID(q[0].value)
		if !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"to\" is %q: not a node of this cluster", q[0].value))
			return
		}
		to = id
	}
	if s.forwardIfFollower(w, r, nil) {
		return
	}
	self := s.cfg.name()
	if to == s.cfg.Self {
		writeJSON(w, http.StatusOK, TransferBody{PreviousLeader: self, Leader: self})
		return
	}
	timer := startTimer(s.cfg.RequestTimeout)
	defer stopTimer(timer)
	lead, err := s.rt.TransferLeadership(to, timer.C)
	switch {
	case errors.Is(err, node.ErrNotLeader):
		if !s.forwardIfFollower(w, r, nil) {
			writeError(w, http.StatusServiceUnavailable, "no leader")
		}
	case errors.Is(err, node.ErrTimeout):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("no other node took over within %v (the leader gives up a transfer after an election timeout)", s.cfg.RequestTimeout))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, TransferBody{PreviousLeader: self, Leader: s.peerName(lead), Transferred: true})
	}
}

func (s *Server) peerID(name string) (raft.ID, bool) {
	ids, peers := s.allPeers()
	for i, p := range peers {
		if p.Name == name {
			return ids[i], true
		}
	}
	return raft.None, false
}

// peerName is the name of node id, or "" if unknown here.
func (s *Server) peerName(id raft.ID) string {
	p, _ := s.peerOf(id)
	return p.Name
}

// handOver is the first step of a clean stop: a leader hands its
// leadership to the most caught-up follower and waits (at most
// HandoverTimeout) until another node leads, so that clients see a new
// leader at once instead of after an election timeout, and no write fails
// (writes refused during the handover are 503s, never proposed: clients
// retry them). A follower, or a single-node cluster, has nothing to hand
// over; without a connected follower the handover gives up at once.
func (s *Server) handOver() {
	if s.rt.Status().Role != raft.RoleLeader || len(s.cfg.Peers) == 1 {
		return
	}
	start := time.Now()
	t := time.NewTimer(s.cfg.HandoverTimeout)
	defer t.Stop()
	lead, err := s.rt.TransferLeadership(raft.None, t.C)
	if err != nil {
		s.lg.Warn("leadership handover before shutdown failed; stopping anyway", zap.Error(err), zap.Duration("waited", time.Since(start)))
		return
	}
	s.lg.Info("handed leadership over before shutdown", zap.String("leader", s.peerName(lead)), zap.Duration("took", time.Since(start)))
}
