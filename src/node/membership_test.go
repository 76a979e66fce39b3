package node

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
	"raftkv/src/storage"
)

// TestBootstrapRecordsEveryIncarnation: a brand-new cluster bootstraps with
// no operator step, and its first configuration names every node under the
// incarnation of its folder.
func TestBootstrapRecordsEveryIncarnation(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	conf := c.nodes[l].Membership()
	require.Len(t, conf.Members, 3)
	for i, n := range c.nodes {
		x, ok := conf.Member(raft.ID(i))
		require.True(t, ok)
		assert.Equal(t, n.Incarnation(), x.Incarnation, "node %d", i)
		assert.NotZero(t, x.Incarnation, "node %d", i)
		assert.Equal(t, raft.Voter, x.Suffrage)
		var meta memberMeta
		require.NoError(t, json.Unmarshal(x.Meta, &meta))
		assert.Equal(t, c.cfgs[i].Peers[i].Name, meta.Name)
	}
}

// TestUpgradeFromFolderWithoutIdentity: folders written before identities
// existed (state, no identity.json, no configuration in the log) start as
// they did, with the hostfile as their configuration and incarnation 0,
// keep their data, and record the adopted identity.
func TestUpgradeFromFolderWithoutIdentity(t *testing.T) {
	c := makeCluster(t, 3, func(cfg *Config) {
		disk, _, err := storage.Open(storage.Options{Dir: cfg.DataDir})
		require.NoError(t, err)
		ents := []raft.Entry{{Term: 1, Index: 1, Type: raft.EntryNoop}, {Term: 1, Index: 2, Data: put("old", "kept")}}
		require.NoError(t, disk.Save(raft.HardState{Term: 1, Vote: raft.None, Commit: 2}, ents))
		require.NoError(t, disk.Close())
		require.NoError(t, os.Remove(filepath.Join(cfg.DataDir, "identity.json")))
	})
	l := c.leader()
	_, err := c.nodes[l].Propose(put("new", "yes"), within(5*time.Second))
	require.NoError(t, err)
	for i, n := range c.nodes {
		assert.Zero(t, n.Incarnation(), "node %d adopts incarnation 0", i)
		v, ok := n.Get("old")
		eventually(t, 5*time.Second, "the old write is applied", func() bool { v, ok = n.Get("old"); return ok })
		assert.Equal(t, "kept", v)
		b, err := os.ReadFile(filepath.Join(c.cfgs[i].DataDir, "identity.json"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"incarnation":"0000000000000000"}`, string(b))
	}
}

// TestWipedFollowerRejoinsUnderNewIncarnation: a follower whose folder is
// wiped comes back under a new incarnation, hears that a cluster exists,
// and is taken back by the leader: replaced, caught up, promoted.
func TestWipedFollowerRejoinsUnderNewIncarnation(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	for i := range 5 {
		_, err := c.nodes[l].Propose(put("k", string(rune('a'+i))), within(5*time.Second))
		require.NoError(t, err)
	}
	f := (l + 1) % 3
	old := c.nodes[f].Incarnation()
	c.stop(f)
	require.NoError(t, os.RemoveAll(c.cfgs[f].DataDir))
	c.start(f)
	require.NotEqual(t, old, c.nodes[f].Incarnation(), "a wiped folder gets a new incarnation")
	eventually(t, 10*time.Second, "the wiped follower is a voter again under its new incarnation", func() bool {
		x, ok := c.nodes[l].Membership().Member(raft.ID(f))
		return ok && x.Incarnation == c.nodes[f].Incarnation() && x.Suffrage == raft.Voter
	})
	eventually(t, 10*time.Second, "the wiped follower catches up", func() bool {
		v, ok := c.nodes[f].Get("k")
		return ok && v == "e"
	})
	assert.Positive(t, c.logs.FilterMessage("a cluster exists: waiting for its leader to take this node in under its new incarnation").Len())
}

func without(id raft.ID) func(raft.Membership) (raft.Membership, error) {
	return func(m raft.Membership) (raft.Membership, error) {
		out := raft.Membership{}
		for _, x := range m.Members {
			if x.ID != id {
				out.Members = append(out.Members, x)
			}
		}
		return out, nil
	}
}

// TestChangeMembershipRemovesTheLeader: the leader removes itself; once the
// change is applied it steps down, the two others elect a leader among
// themselves and commit without it.
func TestChangeMembershipRemovesTheLeader(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	idx, err := c.nodes[l].ChangeMembership(without(raft.ID(l)), within(5*time.Second))
	require.NoError(t, err)
	assert.Positive(t, idx)
	others := []int{(l + 1) % 3, (l + 2) % 3}
	var nl int
	eventually(t, 10*time.Second, "a leader among the two others", func() bool {
		for _, i := range others {
			if c.nodes[i].Status().Role == raft.RoleLeader {
				nl = i
				return true
			}
		}
		return false
	})
	assert.Equal(t, sortedIDs([]raft.ID{raft.ID(others[0]), raft.ID(others[1])}), sortedIDs(c.nodes[nl].Membership().Voters()))
	c.stop(l)
	_, err = c.nodes[nl].Propose(put("after", "removal"), within(5*time.Second))
	require.NoError(t, err)
}

// TestChangeMembershipRefusals: two voters at once is refused, and so is a
// change at a follower.
func TestChangeMembershipRefusals(t *testing.T) {
	c := makeCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	two := func(m raft.Membership) (raft.Membership, error) {
		return raft.Membership{Members: m.Members[:1]}, nil
	}
	// A leader refuses every change until it has committed an entry of
	// its term (ErrConfChangePending); the invalid one is refused after.
	var err error
	eventually(t, 5*time.Second, "the leader judges the change", func() bool {
		_, err = c.nodes[l].ChangeMembership(two, within(5*time.Second))
		return !errors.Is(err, raft.ErrConfChangePending)
	})
	assert.ErrorIs(t, err, raft.ErrInvalidConfChange)
	_, err = c.nodes[f].ChangeMembership(without(raft.ID(f)), within(5*time.Second))
	assert.ErrorIs(t, err, ErrNotLeader)
	assert.Len(t, c.nodes[l].Membership().Voters(), 3, "nothing changed")
}

func sortedIDs(ids []raft.ID) []raft.ID { return slices.Sorted(slices.Values(ids)) }
