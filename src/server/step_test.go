package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"raftkv/src/raft"
)

// TestStepErrorsCountedAndRateLimited: a flood of messages the core
// refuses (here from a node that is not in the cluster) counts every one
// in raftkv_invalid_messages_total and logs at most a line a second.
// Before, each one was a warning line.
func TestStepErrorsCountedAndRateLimited(t *testing.T) {
	cfg := testConfigs(t, 1)[0]
	core, logs := observer.New(zap.WarnLevel)
	cfg.Logger = zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.tr.Close(); s.disk.Close() })

	start := time.Now()
	const flood = 2000
	for i := range flood {
		s.step(raft.Message{Type: raft.MsgHeartbeat, From: 99, To: 0, Term: uint64(i)})
	}
	elapsed := time.Since(start)
	assert.Equal(t, float64(flood), s.met.InvalidMessages())
	lines := logs.FilterMessage("dropped peer message").Len()
	assert.GreaterOrEqual(t, lines, 1, "the first one is logged")
	assert.LessOrEqual(t, lines, 1+int(elapsed/time.Second), "at most one line a second")
	first := logs.FilterMessage("dropped peer message").All()[0]
	assert.Equal(t, int64(99), first.ContextMap()["from"])
}
