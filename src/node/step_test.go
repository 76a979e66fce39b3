package node

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
// refuses (here with a sender ID no node has) counts every one
// in raftkv_invalid_messages_total and logs at most a line a second.
// Before, each one was a warning line.
func TestStepErrorsCountedAndRateLimited(t *testing.T) {
	cfg := testConfig(t)
	core, logs := observer.New(zap.WarnLevel)
	cfg.Logger = zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core))
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })

	start := time.Now()
	const flood = 2000
	for i := range flood {
		s.step(raft.Message{Type: raft.MsgHeartbeat, From: -99, To: 0, Term: uint64(i)})
	}
	elapsed := time.Since(start)
	assert.Equal(t, float64(flood), s.met.InvalidMessages())
	lines := logs.FilterMessage("dropped peer message").Len()
	assert.GreaterOrEqual(t, lines, 1, "the first one is logged")
	assert.LessOrEqual(t, lines, 1+int(elapsed/time.Second), "at most one line a second")
	first := logs.FilterMessage("dropped peer message").All()[0]
	assert.Equal(t, int64(-99), first.ContextMap()["from"])
}

// TestRateLimitedLog: one line per interval; the next says how many were
// held back.
func TestRateLimitedLog(t *testing.T) {
	var l rateLimitedLog
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{10 * time.Millisecond, false, 0},
		{500 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 3},
		{1500 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{6 * time.Second, true, 0},
	}
	for _, st := range steps {
		suppressed, ok := l.allow(t0.Add(st.at))
		assert.Equal(t, st.ok, ok, "at %v", st.at)
		assert.Equal(t, st.suppressed, suppressed, "at %v", st.at)
	}
}
