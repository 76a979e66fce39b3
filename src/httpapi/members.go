package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"raftkv/src/node"
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

// handleMember serves the changes of one member, at the leader (a follower
// forwards them): DELETE /v1/members/{name} removes it, POST
// /v1/members/{name}/promote makes a learner a voter once caught up. One
// change at a time: a change while another is pending is 409.
func (s *Server) handleMember(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		if err := noQuery(r.URL.RawQuery, r.Method+" "+r.URL.Path); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/members/")
	name, action, _ := strings.Cut(rest, "/")
	var edit func(raft.Membership) (raft.Membership, error)
	switch {
	case name == "":
		writeError(w, http.StatusNotFound, "no member name in the path")
		return
	case r.Method == http.MethodDelete && action == "":
		edit = func(m raft.Membership) (raft.Membership, error) {
			i, err := s.memberIndex(m, name)
			if err != nil {
				return m, err
			}
			m.Members = append(m.Members[:i], m.Members[i+1:]...)
			return m, nil
		}
	case r.Method == http.MethodPost && action == "promote":
		edit = func(m raft.Membership) (raft.Membership, error) {
			i, err := s.memberIndex(m, name)
			if err != nil {
				return m, err
			}
			if m.Members[i].Suffrage == raft.Voter {
				return m, fmt.Errorf("%w: %s is already a voter", errAlready, name)
			}
			m.Members[i].Suffrage = raft.Voter
			return m, nil
		}
	case action == "" || action == "promote":
		w.Header().Set("Allow", map[bool]string{true: "DELETE", false: "POST"}[action == ""])
		writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+" is not supported")
		return
	default:
		writeError(w, http.StatusNotFound, "unknown member action "+strconv.Quote(action))
		return
	}
	s.changeMember(w, r, nil, edit)
}

// changeMember proposes edit at the leader (forwarding the request and its
// body from a follower) and answers with the outcome.
func (s *Server) changeMember(w http.ResponseWriter, r *http.Request, body []byte, edit func(raft.Membership) (raft.Membership, error)) {
	if s.forwardIfFollower(w, r, body) {
		return
	}
	timer := startTimer(s.cfg.RequestTimeout)
	defer stopTimer(timer)
	idx, err := s.rt.ChangeMembership(edit, timer.C)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
	case errors.Is(err, errNoMember):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, raft.ErrInvalidConfChange):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errAlready), errors.Is(err, raft.ErrConfChangePending), errors.Is(err, raft.ErrNotCaughtUp),
		errors.Is(err, raft.ErrProposalDropped):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, node.ErrNotLeader):
		if !s.forwardIfFollower(w, r, body) {
			writeError(w, http.StatusServiceUnavailable, "no leader; the change was not proposed")
		}
	case errors.Is(err, node.ErrBusy), errors.Is(err, node.ErrLost):
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; the change was not applied")
	default:
		writeError(w, http.StatusGatewayTimeout, err.Error()+"; the change's outcome is unknown")
	}
}

var (
	errNoMember = errors.New("no such member")
	errAlready  = errors.New("nothing to change")
)

// memberIndex finds the member called name in m.
func (s *Server) memberIndex(m raft.Membership, name string) (int, error) {
	for i, x := range m.Members {
		if s.memberName(x) == name {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: %q is not in the configuration %s", errNoMember, name, m)
}

// AddMemberRequest is the body of POST /v1/members.
type AddMemberRequest struct {
	Name     string `json:"name"`
	Host     string `json:"host"`
	RaftPort int    `json:"raft_port"`
	HTTPPort int    `json:"http_port"`
	// Learner: the node stays a learner until promoted by hand; otherwise
	// the leader promotes it to voter once it has caught up.
	Learner bool `json:"learner,omitempty"`
}

// handleMembersRoot serves GET /v1/members (the list) and POST /v1/members
// (add a node).
func (s *Server) handleMembersRoot(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(s.handleMembers)(w, r)
	case http.MethodPost:
		s.handleAddMember(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, r.Method+" /v1/members is not supported")
	}
}

// maxAddMemberBody bounds the body of POST /v1/members.
const maxAddMemberBody = 4 << 10

// handleAddMember adds a node: one of the hostfile that is not a member
// (one that was removed, or never bootstrapped with the others) under its
// hostfile ID, or one outside the hostfile under the next free ID (beyond
// the hostfile's and every current member's; see nextFreeID). Its
// incarnation is not known yet: it enters under the placeholder 0, and the
// leader replaces that by the incarnation the node answers with
// (raft/membership.go), then promotes it once caught up unless it is to
// stay a learner. The request's fields are the member's Meta: every node
// reaches a member outside its hostfile at these addresses, under this
// name (node/peers.go, outside.go).
func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery != "" {
		if err := noQuery(r.URL.RawQuery, "POST /v1/members"); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAddMemberBody+1))
	if err != nil || len(body) > maxAddMemberBody {
		writeError(w, http.StatusBadRequest, "cannot read a request body of at most 4 KiB")
		return
	}
	var req AddMemberRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	id := raft.None
	for i, p := range s.cfg.Peers {
		if p.Name == req.Name {
			id = raft.ID(i)
		}
	}
	switch {
	case req.Name == "":
		writeError(w, http.StatusBadRequest, "body: name is empty")
		return
	case req.Host == "" || req.RaftPort <= 0 || req.RaftPort > 65535 || req.HTTPPort <= 0 || req.HTTPPort > 65535:
		writeError(w, http.StatusBadRequest, "body: host, raft_port and http_port (1-65535) are required")
		return
	case !validName(req.Name):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: name %q must be 1 to 64 letters, digits, '.', '_' or '-'", req.Name))
		return
	case strings.ContainsFunc(req.Host, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body: host %q holds white space or control characters", req.Host))
		return
	}
	meta, _ := json.Marshal(req)
	suffrage := raft.Staging
	if req.Learner {
		suffrage = raft.Learner
	}
	edit := func(m raft.Membership) (raft.Membership, error) {
		if _, err := s.memberIndex(m, req.Name); err == nil {
			return m, fmt.Errorf("%w: %s is already a member", errAlready, req.Name)
		}
		id := id
		if id == raft.None {
			id = s.nextFreeID(m)
		}
		if _, taken := m.Member(id); taken {
			return m, fmt.Errorf("%w: ID %d of %s is already a member's", errAlready, id, req.Name)
		}
		m.Members = append(m.Members, raft.Member{ID: id, Suffrage: suffrage, Meta: meta})
		slices.SortFunc(m.Members, func(a, b raft.Member) int { return int(a.ID) - int(b.ID) })
		return m, nil
	}
	s.changeMember(w, r, body, edit)
}

// nextFreeID is the ID of a node added from outside the hostfile: beyond
// the hostfile's IDs and every current member's. A removed member's ID may
// come back only when it was the highest; the transport of a node that
// still knows it under its old name refuses the new one until restarted
// (node/peers.go), so in the hostfile of the node added, it sits at this
// position: after the cluster's nodes, the members added outside the
// hostfile, in ID order (they are marked join).
func (s *Server) nextFreeID(m raft.Membership) raft.ID {
	next := raft.ID(len(s.cfg.Peers))
	for _, x := range m.Members {
		next = max(next, x.ID+1)
	}
	return next
}

// validName: a node's name becomes a folder, a certificate name and a
// log field (config.MaxNameLen, the hostfile's rule).
func validName(s string) bool {
	if s == "" || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// selfSuffrage is this node's suffrage in the configuration it holds, or ""
// if that configuration does not name it under its incarnation.
func (s *Server) selfSuffrage() string {
	x, ok := s.rt.Membership().Member(s.cfg.Self)
	if !ok || x.Incarnation != s.rt.Incarnation() {
		return ""
	}
	return x.Suffrage.String()
}
