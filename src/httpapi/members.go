package httpapi

import (
	"encoding/json"
	"net/http"

	"raftkv/src/raft"
)

// MemberStatus is one member of the configuration in force, as
// GET /v1/members lists it.
type MemberStatus struct {
	Name        string           `json:"name"`
	ID          raft.ID          `json:"id"`
	Incarnation raft.Incarnation `json:"incarnation"`
	Suffrage    raft.Suffrage    `json:"suffrage"`
}

// MembersReply is GET /v1/members: the configuration in force on the node
// that answers (the latest in its log, committed or not), and that node's
// own name and incarnation. Empty members: the node waits to bootstrap or
// to be taken back into the cluster.
type MembersReply struct {
	Node        string           `json:"node"`
	Incarnation raft.Incarnation `json:"incarnation"`
	Members     []MemberStatus   `json:"members"`
}

// handleMembers serves GET /v1/members from the local configuration; it is
// not forwarded (like /v1/status).
func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	conf := s.rt.Membership()
	out := MembersReply{Node: s.cfg.Peers[s.cfg.Self].Name, Incarnation: s.rt.Incarnation(), Members: []MemberStatus{}}
	for _, x := range conf.Members {
		out.Members = append(out.Members, MemberStatus{Name: s.memberName(x), ID: x.ID, Incarnation: x.Incarnation, Suffrage: x.Suffrage})
	}
	writeJSON(w, http.StatusOK, out)
}

// memberName is the name the configuration records for a member, else the
// hostfile's for its ID.
func (s *Server) memberName(x raft.Member) string {
	var meta struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(x.Meta, &meta) == nil && meta.Name != "" {
		return meta.Name
	}
	if int(x.ID) < len(s.cfg.Peers) {
		return s.cfg.Peers[x.ID].Name
	}
	return ""
}
