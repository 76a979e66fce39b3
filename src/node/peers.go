package node

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"strconv"

	"go.uber.org/zap"

	"raftkv/src/raft"
	"raftkv/src/transport"
)

// Members outside the hostfile. The transport starts with the hostfile's
// nodes; a member added later under an ID beyond the hostfile (`raftkv
// member add` of a name the hostfile does not list) is known only from the
// configuration, whose Meta records its name and addresses. On every
// change of the configuration in force the loop makes the transport know
// each such member (transport.AddPeer): from then on its connections are
// accepted, under its name (with TLS, its certificate must name it), and it
// is dialed at its Meta address. The hostfile's nodes keep the hostfile's
// names and addresses, whatever a configuration says.
//
// Peers are only added, never dropped: a configuration in force may be
// truncated and the member come back, and a removed member is no more able
// to disturb the cluster than a removed hostfile node (it does not campaign
// once it knows of its removal, and its answers do not count). A member's
// address that changes (added again with another host) is followed: the
// dialer reads it on every connect. The transport refuses to rename a
// known ID (an ID given to another name after its member was removed and
// this node had seen it): that is logged, and a restart clears it.

// joinedPeers is what syncPeers last saw. Loop-owned.
type joinedPeers struct {
	// members is the configuration last synced (its members), to skip the
	// work when nothing changed.
	members []raft.Member
	// refused: IDs the transport refused, with the name, logged once each.
	refused map[raft.ID]string
}

// syncPeers brings the transport's peers in line with conf. Called by the
// loop (and by New) whenever the configuration in force may have changed.
func (s *Node) syncPeers(conf raft.Membership) {
	if sameMembers(s.joined.members, conf.Members) {
		return
	}
	s.joined.members = conf.Clone().Members
	addrs := map[raft.ID]string{}
	if cur := s.outsideAddrs.Load(); cur != nil {
		maps.Copy(addrs, *cur)
	}
	changed := false
	for _, x := range conf.Members {
		if x.ID == s.cfg.ID {
			continue
		}
		meta := decodeMeta(x.Meta)
		if int(x.ID) < len(s.cfg.Peers) {
			if meta.Name != "" && meta.Name != s.cfg.Peers[x.ID].Name {
				s.lg.Warn("the configuration names a hostfile node otherwise: the hostfile's name and address stand",
					zap.Int("id", int(x.ID)), zap.String("hostfile", s.cfg.Peers[x.ID].Name), zap.String("configuration", meta.Name))
			}
			continue
		}
		if meta.Name == "" || meta.Host == "" || meta.RaftPort <= 0 {
			s.lg.Warn("a member outside the hostfile has no name or raft address in the configuration: it cannot be reached",
				zap.Int("id", int(x.ID)), zap.ByteString("meta", x.Meta))
			continue
		}
		addr := net.JoinHostPort(meta.Host, strconv.Itoa(meta.RaftPort))
		if addrs[x.ID] != addr {
			addrs[x.ID], changed = addr, true
		}
		id := x.ID
		err := s.tr.AddPeer(id, transport.Peer{Name: meta.Name, Addr: func() string { return s.outsideAddr(id) }})
		if err != nil && s.joined.refused[id] != meta.Name {
			if s.joined.refused == nil {
				s.joined.refused = map[raft.ID]string{}
			}
			s.joined.refused[id] = meta.Name
			s.lg.Warn("cannot reach a member outside the hostfile", zap.Int("id", int(id)), zap.String("name", meta.Name), zap.Error(err))
		}
	}
	if changed {
		s.outsideAddrs.Store(&addrs)
	}
}

// outsideAddr is the raft address of a member outside the hostfile, for
// the transport's dialer (any goroutine).
func (s *Node) outsideAddr(id raft.ID) string {
	if m := s.outsideAddrs.Load(); m != nil {
		return (*m)[id]
	}
	return ""
}

// decodeMeta reads a member's Meta; a Meta that is not ours gives zeros.
func decodeMeta(b json.RawMessage) memberMeta {
	var m memberMeta
	_ = json.Unmarshal(b, &m)
	return m
}

// sameMembers reports whether a and b list the same IDs with the same Meta
// (incarnations and suffrage do not matter to the transport).
func sameMembers(a, b []raft.Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !bytes.Equal(a[i].Meta, b[i].Meta) {
			return false
		}
	}
	return true
}
