package httpapi

import (
	"encoding/json"
	"net"
	"strconv"

	"raftkv/src/raft"
)

// Members outside the hostfile. Config.Peers lists the hostfile's nodes; a
// member added later under an ID beyond them (POST /v1/members of a name
// the hostfile does not list) is known only from the configuration in
// force, whose Meta records the add request's name and addresses. The
// leader's name in Raft-Leader, forwarding to the leader, the status
// fan-out (/v1/cluster, the dashboard), a member's certificate, and
// transfer-leader all find such a member here.

// peerOf is the node with this ID: the hostfile's, else a member of the
// configuration in force whose Meta names it and its HTTP address.
func (s *Server) peerOf(id raft.ID) (Peer, bool) {
	if id >= 0 && int(id) < len(s.cfg.Peers) {
		return s.cfg.Peers[id], true
	}
	x, ok := s.rt.Membership().Member(id)
	if !ok {
		return Peer{}, false
	}
	return metaPeer(x)
}

// metaPeer reads a member's name and HTTP address from its Meta.
func metaPeer(x raft.Member) (Peer, bool) {
	var m AddMemberRequest
	if json.Unmarshal(x.Meta, &m) != nil || m.Name == "" || m.Host == "" || m.HTTPPort <= 0 {
		return Peer{}, false
	}
	return Peer{Name: m.Name, HTTPAddr: net.JoinHostPort(m.Host, strconv.Itoa(m.HTTPPort))}, true
}

// outsidePeers are the members of the configuration in force outside the
// hostfile, in ID order, with their IDs.
func (s *Server) outsidePeers() (ids []raft.ID, peers []Peer) {
	for _, x := range s.rt.Membership().Members {
		if int(x.ID) < len(s.cfg.Peers) {
			continue
		}
		if p, ok := metaPeer(x); ok {
			ids, peers = append(ids, x.ID), append(peers, p)
		}
	}
	return ids, peers
}

// allPeers are the hostfile's nodes and then the members outside it.
func (s *Server) allPeers() (ids []raft.ID, peers []Peer) {
	for i, p := range s.cfg.Peers {
		ids, peers = append(ids, raft.ID(i)), append(peers, p)
	}
	oids, ops := s.outsidePeers()
	return append(ids, oids...), append(peers, ops...)
}

// nameAtHTTP is the name of the node whose HTTP address is addr: what a
// peer's certificate must name (see newPeerClient).
func (s *Server) nameAtHTTP(addr string) (string, bool) {
	_, peers := s.allPeers()
	for _, p := range peers {
		if p.HTTPAddr == addr {
			return p.Name, true
		}
	}
	return "", false
}
