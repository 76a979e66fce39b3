package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/api"
	"raftkv/src/client"
	"raftkv/src/httpapi"
	"raftkv/src/node"
	"raftkv/src/raft"
)

// startRealNode runs a real one-node cluster in process (real TCP, real
// fsync) and returns its HTTP address once it leads.
func startRealNode(t *testing.T) string {
	t.Helper()
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addrs[i] = l.Addr().String()
		require.NoError(t, l.Close())
	}
	lg := zaptest.NewLogger(t)
	peers := []node.Peer{{Name: "r0", RaftAddr: func() string { return addrs[0] }}}
	rt, err := node.New(node.Config{
		ID: 0, Peers: peers, ClusterID: "test", DataDir: filepath.Join(t.TempDir(), "r0"),
		RaftListen: addrs[0], Heartbeat: 20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, Logger: lg,
	})
	require.NoError(t, err)
	srv := httpapi.New(httpapi.Config{Self: 0, Peers: []httpapi.Peer{{Name: "r0", HTTPAddr: addrs[1]}},
		Listen: addrs[1], RequestTimeout: 3 * time.Second, Logger: lg}, rt)
	require.NoError(t, srv.Start())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Wait(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	deadline := time.Now().Add(10 * time.Second)
	for rt.Status().Role != raft.RoleLeader {
		require.True(t, time.Now().Before(deadline), "no leader")
		<-time.After(5 * time.Millisecond)
	}
	return addrs[1]
}

func TestKVAPIMethods(t *testing.T) {
	c := newClient(t, []string{startRealNode(t)}, nil)
	ctx := ctxTimeout(t, 20*time.Second)

	r1, err := c.PutCAS(ctx, "lock", "a", 0)
	require.NoError(t, err)
	_, err = c.PutCAS(ctx, "lock", "b", 0)
	var ce *client.CASError
	require.ErrorAs(t, err, &ce, "a second cas 0 on the same key")
	assert.Equal(t, api.ConflictBody{Error: ce.Current.Error, Key: "lock", Exists: true,
		KeyMeta: api.KeyMeta{CreateIndex: r1.Index, ModIndex: r1.Index, Version: 1}}, ce.Current)
	e, _, err := c.GetEntry(ctx, "lock")
	require.NoError(t, err)
	assert.Equal(t, api.ValueBody{Key: "lock", Value: "a", KeyMeta: api.KeyMeta{CreateIndex: r1.Index, ModIndex: r1.Index, Version: 1}}, e)
	_, err = c.DeleteCAS(ctx, "lock", r1.Index+1)
	require.ErrorAs(t, err, &ce)
	_, err = c.DeleteCAS(ctx, "lock", r1.Index)
	require.NoError(t, err)
	_, _, err = c.GetEntry(ctx, "lock")
	assert.ErrorIs(t, err, client.ErrNotFound)

	for i := range 5 {
		_, err := c.Put(ctx, fmt.Sprintf("dir/%d", i), "v")
		require.NoError(t, err)
	}
	page, _, err := c.List(ctx, "dir/", client.ListOptions{Limit: 3, KeysOnly: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"dir/0", "dir/1", "dir/2"}, page.Keys)
	require.True(t, page.More)
	page, _, err = c.List(ctx, "dir/", client.ListOptions{Limit: 3, Continue: page.Continue})
	require.NoError(t, err)
	require.Len(t, page.KVs, 2)
	assert.Equal(t, "dir/4", page.KVs[1].Key)
	assert.False(t, page.More)
	page, _, err = c.List(ctx, "dir/1", client.ListOptions{RangeEnd: "dir/3", KeysOnly: true, Stale: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"dir/1", "dir/2"}, page.Keys)

	tb, res, err := c.Txn(ctx, api.TxnRequest{
		Compare: []api.TxnCompare{{Key: "dir/0", Target: api.TargetVersion, Number: 1}},
		Then:    []api.TxnOp{{Op: api.OpDelete, Key: "dir/0"}, {Op: api.OpGet, Key: "dir/1"}},
	})
	require.NoError(t, err)
	assert.True(t, tb.Succeeded)
	assert.Equal(t, tb.Index, res.Index)
	assert.NotZero(t, res.Seq, "a transaction runs in the client's session")
	assert.Equal(t, "v", tb.Results[1].Value)

	n, _, err := c.DeletePrefix(ctx, "dir/")
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	_, _, err = c.DeletePrefix(ctx, "")
	var bad *client.BadRequestError
	assert.ErrorAs(t, err, &bad)
	_, _, err = c.Txn(ctx, api.TxnRequest{Then: []api.TxnOp{{Op: "cas", Key: "k"}}})
	require.ErrorAs(t, err, &bad)
	assert.Equal(t, 400, bad.Status)
	assert.False(t, errors.As(err, &ce))
}
