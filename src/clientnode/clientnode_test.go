package clientnode

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/client"
	"raftkv/src/client/clienttest"
	"raftkv/src/datafile"
)

func TestRunCommandRecordsOutcomes(t *testing.T) {
	fake := clienttest.New(t, 3)
	c, err := client.New(client.Config{Endpoints: fake.Endpoints(), Names: fake.Names(), ClientID: "c0-test",
		BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()

	e := runCommand(ctx, c, datafile.Command{Line: 1, Op: api.OpPut, Key: "k", Value: "a"})
	assert.Equal(t, api.OutcomeOK, e.Outcome)
	assert.Equal(t, uint64(1), e.Seq)
	assert.NotZero(t, e.Index)
	assert.Equal(t, "c0-test", e.ClientID)

	e = runCommand(ctx, c, datafile.Command{Line: 2, Op: api.OpGet, Key: "k"})
	assert.Equal(t, api.OutcomeOK, e.Outcome)
	require.NotNil(t, e.Read)
	assert.Equal(t, "a", *e.Read)

	e = runCommand(ctx, c, datafile.Command{Line: 3, Op: api.OpGet, Key: "absent"})
	assert.Equal(t, api.OutcomeOK, e.Outcome, "not found is an answer")
	require.NotNil(t, e.Found)
	assert.False(t, *e.Found)
	assert.Nil(t, e.Read)

	fake.LoseRepliesForKey("lost")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	e = runCommand(short, c, datafile.Command{Line: 4, Op: api.OpAppend, Key: "lost", Value: "x"})
	assert.Equal(t, api.OutcomeUnknown, e.Outcome, "%+v", e)
	assert.NotEmpty(t, e.Error)
	v, ok := fake.Value("lost")
	assert.True(t, ok)
	assert.Equal(t, "x", v, "applied once despite the retries")
}
