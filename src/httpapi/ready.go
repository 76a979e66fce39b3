package httpapi

import (
	"fmt"
	"net/http"

	"raftkv/src/raft"
)

// ReadyMaxLag is how far, in log entries, a node's applied index may trail
// the leader's commit index and the node still count as ready (GET
// /readyz). A node catching up after a restart or a partition serves stale
// reads and slow forwards until it is back within this bound, so a load
// balancer (a Kubernetes Service) should not send it clients yet. 1024
// entries is a fraction of a second of the measured write throughput
// (BENCHMARKS.md) and far more than a healthy follower trails by.
const ReadyMaxLag = 1024

// readiness is what /readyz decides from. The loop publishes st; the rest
// are read from the server when a probe comes.
type readiness struct {
	st raft.Status
	// leaderCommit is the highest commit index this node heard from a
	// leader (0 if none yet); on the leader, its own commit index is used.
	leaderCommit uint64
	inConfig     bool
}

// ready reports whether the node should get clients, and why not: it knows
// a leader, it is a member of the configuration (under its own incarnation), and its applied index is
// within ReadyMaxLag of the leader's commit.
//
// A follower does not know the leader's commit index at the time of the
// probe, only the last one it heard (every append and heartbeat carries
// it, see raft.Message): that is at most a heartbeat interval old. A
// follower cut off from the leader stops knowing a leader after an
// election timeout (it campaigns or pre-campaigns, and raft clears its
// Lead), and a leader cut off from a quorum steps down (check-quorum):
// both then fail the first condition.
func (r readiness) ready() (ok bool, reason string) {
	switch {
	case !r.inConfig:
		return false, "not a member of the cluster configuration"
	case r.st.Lead == raft.None:
		return false, fmt.Sprintf("no leader known (role %s, term %d)", r.st.Role, r.st.Term)
	}
	commit := r.leaderCommit
	if r.st.Role == raft.RoleLeader || commit < r.st.Commit {
		commit = r.st.Commit
	}
	if lag := commit - min(r.st.Applied, commit); lag > ReadyMaxLag {
		return false, fmt.Sprintf("applied index %d trails the leader's commit %d by %d entries (at most %d allowed)",
			r.st.Applied, commit, lag, ReadyMaxLag)
	}
	return true, ""
}

func (s *Server) readiness() readiness {
	r := readiness{
		st:           *s.rt.Status(),
		leaderCommit: s.rt.LeaderCommit(),
		// A member under this folder's incarnation (a voter or a learner):
		// not a node waiting to bootstrap or to be taken back after it lost
		// its disk, nor one that was removed.
		inConfig: s.selfSuffrage() != "",
	}
	return r
}

// handleReadyz serves GET /readyz: 200 {"status": "ready", ...} or 503
// {"error": reason}. /healthz stays the liveness check (the process
// serves); a node that is alive but not ready must not be restarted.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	rd := s.readiness()
	if ok, reason := rd.ready(); !ok {
		writeError(w, http.StatusServiceUnavailable, reason)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status       string `json:"status"`
		Leader       string `json:"leader"`
		AppliedIndex uint64 `json:"applied_index"`
		CommitIndex  uint64 `json:"commit_index"`
	}{"ready", s.leaderName(&rd.st), rd.st.Applied, rd.st.Commit})
}
