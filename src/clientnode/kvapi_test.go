package clientnode

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"raftkv/src/api"
	"raftkv/src/client"
	"raftkv/src/datafile"
	"raftkv/src/httpapi"
	"raftkv/src/node"
)

// TestRecordsCASAndDeletePrefix: a client node runs a data file's cas and
// delete-prefix lines against a real one-node cluster, and records a
// refused compare as a definite error (not applied).
func TestRecordsCASAndDeletePrefix(t *testing.T) {
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addrs[i] = l.Addr().String()
		require.NoError(t, l.Close())
	}
	lg := zaptest.NewLogger(t)
	rt, err := node.New(node.Config{
		ID: 0, Peers: []node.Peer{{Name: "r0", RaftAddr: func() string { return addrs[0] }}}, ClusterID: "test",
		DataDir: filepath.Join(t.TempDir(), "r0"), RaftListen: addrs[0],
		Heartbeat: 20 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, Logger: lg,
	})
	require.NoError(t, err)
	srv := httpapi.New(httpapi.Config{Self: 0, Peers: []httpapi.Peer{{Name: "r0", HTTPAddr: addrs[1]}},
		Listen: addrs[1], RequestTimeout: 3 * time.Second, Logger: lg}, rt)
	require.NoError(t, srv.Start())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Wait(ctx) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })

	c, err := client.New(client.Config{Endpoints: []string{addrs[1]}, ClientID: "c0-test", Logger: lg})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cmds, errs := datafile.Parse(strings.NewReader("cas lock 0 c0\ncas lock 0 again\nput cfg/a 1\nput cfg/b 2\ndelete-prefix cfg/\n"), "df")
	require.Empty(t, errs)
	var got []api.RecordCommand
	for _, cmd := range cmds {
		got = append(got, runCommand(context.Background(), c, cmd))
	}
	require.Len(t, got, 5)
	assert.Equal(t, api.OutcomeOK, got[0].Outcome, got[0].Error)
	require.NotNil(t, got[0].CAS)
	assert.Equal(t, uint64(0), *got[0].CAS)
	assert.Equal(t, api.OutcomeError, got[1].Outcome, "a refused compare is not applied")
	assert.Contains(t, got[1].Error, "compare-and-swap failed")
	assert.Equal(t, api.OutcomeOK, got[4].Outcome, got[4].Error)
	assert.True(t, got[4].Prefix)
	assert.NotZero(t, got[4].Index)
	v, ok := rt.Get("lock")
	assert.True(t, ok)
	assert.Equal(t, "c0", v)
	_, ok = rt.Get("cfg/a")
	assert.False(t, ok)
}
