package node

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/raft"
)

// TestBootstrapLeavesOutJoinNodes: a brand-new cluster whose hostfile also
// lists a node marked join (Bootstrap 3 of 4 peers) bootstraps among the
// other three, without waiting for the fourth, which is not running; its
// first configuration names only them.
func TestBootstrapLeavesOutJoinNodes(t *testing.T) {
	cfgs := newConfigs(t, 4, zaptest.NewLogger(t))
	c := &cluster{t: t, cfgs: cfgs[:3], nodes: make([]*Node, 3)}
	for i := range c.cfgs {
		c.cfgs[i].Bootstrap = 3
		c.start(i)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			assert.NoError(t, n.Stop())
		}
	})
	l := c.leader()
	assert.Equal(t, []raft.ID{0, 1, 2}, c.nodes[l].Membership().Voters())
}

// TestMemberOutsideHostfileIsReached: r0..r2's hostfile does not list r3;
// r3's lists all four, itself marked join. r3 does not bootstrap and holds
// no configuration until the leader adds it with its name and address in
// Meta; then every node's transport knows it, the leader takes its
// incarnation and promotes it, and it counts: with one original node
// stopped, a write commits only with r3's acknowledgement.
func TestMemberOutsideHostfileIsReached(t *testing.T) {
	cfgs := newConfigs(t, 4, zaptest.NewLogger(t))
	for i := range 3 {
		cfgs[i].Peers = cfgs[i].Peers[:3]
	}
	cfgs[3].Bootstrap = 3
	c := &cluster{t: t, cfgs: cfgs, nodes: make([]*Node, 4)}
	for i := range cfgs {
		c.start(i)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n != nil {
				assert.NoError(t, n.Stop())
			}
		}
	})
	l := -1
	eventually(t, 10*time.Second, "r0..r2 elect a leader", func() bool {
		for i := range 3 {
			if c.nodes[i].Status().Role == raft.RoleLeader {
				l = i
			}
		}
		return l >= 0
	})
	assert.Empty(t, c.nodes[3].Membership().Members, "r3, marked join, holds a configuration before it was added")

	host, port, err := net.SplitHostPort(cfgs[3].RaftListen)
	require.NoError(t, err)
	p, _ := strconv.Atoi(port)
	meta, _ := json.Marshal(memberMeta{Name: "r3", Host: host, RaftPort: p, HTTPPort: 1})
	add := func(m raft.Membership) (raft.Membership, error) {
		m.Members = append(m.Members, raft.Member{ID: 3, Suffrage: raft.Staging, Meta: meta})
		return m, nil
	}
	eventually(t, 10*time.Second, "the leader takes the change", func() bool {
		_, err := c.nodes[l].ChangeMembership(add, within(5*time.Second))
		return err == nil
	})
	eventually(t, 20*time.Second, "r3 is a voter under its own incarnation on every node", func() bool {
		for _, n := range c.nodes {
			x, ok := n.Membership().Member(3)
			if !ok || x.Suffrage != raft.Voter || x.Incarnation != c.nodes[3].Incarnation() {
				return false
			}
		}
		return true
	})
	for i := range 3 {
		assert.Contains(t, c.nodes[i].tr.Stats(), raft.ID(3), "r%d's transport knows r3", i)
	}
	other := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == l })[0]
	c.stop(other)
	eventually(t, 20*time.Second, "a write commits with r3 and without r"+strconv.Itoa(other), func() bool {
		for i, n := range c.nodes {
			if n != nil && n.Status().Role == raft.RoleLeader {
				if _, err := c.nodes[i].Propose(put("with-r3", "yes"), within(2*time.Second)); err == nil {
					return true
				}
			}
		}
		return false
	})
}
