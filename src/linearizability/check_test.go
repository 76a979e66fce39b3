package linearizability

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// checkTimeout is far more than any history here needs, even under -race
// on a loaded 2-core machine; a timeout makes the test fail
// (Result.Unknown), never pass.
const checkTimeout = 60 * time.Second

func put(c int, key, value string, call, ret int64) Op {
	return Op{ClientID: c, Kind: api.OpPut, Key: key, Value: value, Call: call, Return: ret, Ok: true}
}

func appendOp(c int, key, value string, call, ret int64) Op {
	return Op{ClientID: c, Kind: api.OpAppend, Key: key, Value: value, Call: call, Return: ret, Ok: true}
}

func del(c int, key string, call, ret int64) Op {
	return Op{ClientID: c, Kind: api.OpDelete, Key: key, Call: call, Return: ret, Ok: true}
}

func get(c int, key, out string, call, ret int64) Op {
	return Op{ClientID: c, Kind: api.OpGet, Key: key, Call: call, Return: ret, Ok: true, Output: out, Found: true}
}

func getAbsent(c int, key string, call, ret int64) Op {
	return Op{ClientID: c, Kind: api.OpGet, Key: key, Call: call, Return: ret, Ok: true}
}

// unknown turns an op into one whose outcome is unknown; its Return is when
// the client gave up.
func unknown(op Op) Op {
	op.Ok, op.Unknown = false, true
	return op
}

// failed turns an op into one that certainly did not take effect.
func failed(op Op) Op {
	op.Ok = false
	return op
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want bool
	}{
		{"empty history", nil, true},
		{"sequential put append get delete get", []Op{
			getAbsent(0, "x", 0, 1),
			put(0, "x", "a", 2, 3),
			appendOp(1, "x", "b", 4, 5),
			get(0, "x", "ab", 6, 7),
			del(1, "x", 8, 9),
			getAbsent(0, "x", 10, 11),
			appendOp(0, "x", "c", 12, 13),
			get(1, "x", "c", 14, 15),
		}, true},
		{"sequential get returns a value never written", []Op{
			put(0, "x", "a", 0, 1),
			get(0, "x", "b", 2, 3),
		}, false},
		{"concurrent put and get, get sees the old state", []Op{
			put(0, "x", "1", 0, 10),
			getAbsent(1, "x", 5, 15),
		}, true},
		{"concurrent put and get, get sees the new value", []Op{
			put(0, "x", "1", 0, 10),
			get(1, "x", "1", 5, 15),
		}, true},
		{"get inside a put's interval sees the new value", []Op{
			put(0, "x", "1", 0, 10),
			get(1, "x", "1", 2, 4),
		}, true},
		{"overlapping puts, reads agree on one order", []Op{
			put(0, "x", "a", 0, 10),
			put(1, "x", "b", 1, 11),
			get(2, "x", "a", 12, 13),
			get(3, "x", "a", 14, 15),
		}, true},
		{"overlapping puts, reads see both orders", []Op{
			put(0, "x", "a", 0, 10),
			put(1, "x", "b", 1, 11),
			get(2, "x", "a", 12, 13),
			get(3, "x", "b", 14, 15),
		}, false},
		{"a read sees the new value, a later read the old one", []Op{
			put(0, "x", "1", 0, 100),
			get(1, "x", "1", 10, 20),
			getAbsent(2, "x", 30, 40),
		}, false},
		{"stale read after a completed put", []Op{
			put(0, "x", "a", 0, 1),
			put(0, "x", "b", 2, 3),
			get(1, "x", "a", 4, 5),
		}, false},
		{"read overlapping the second put may see the old value", []Op{
			put(0, "x", "a", 0, 1),
			put(0, "x", "b", 2, 4),
			get(1, "x", "a", 3, 5),
		}, true},
		{"touching intervals are concurrent", []Op{
			put(0, "x", "a", 0, 1),
			put(0, "x", "b", 2, 3),
			get(1, "x", "a", 3, 5),
		}, true},
		{"append applied twice", []Op{
			appendOp(0, "x", "1", 0, 1),
			appendOp(0, "x", "2", 2, 3),
			get(1, "x", "122", 4, 5),
		}, false},
		{"unknown append appears once", []Op{
			appendOp(0, "x", "1", 0, 1),
			unknown(appendOp(0, "x", "2", 2, 3)),
			get(1, "x", "12", 4, 5),
		}, true},
		{"unknown append never appears", []Op{
			appendOp(0, "x", "1", 0, 1),
			unknown(appendOp(0, "x", "2", 2, 3)),
			get(1, "x", "1", 4, 5),
			get(1, "x", "1", 6, 7),
		}, true},
		{"unknown append applied twice", []Op{
			appendOp(0, "x", "1", 0, 1),
			unknown(appendOp(0, "x", "2", 2, 3)),
			get(1, "x", "122", 4, 5),
		}, false},
		{"unknown append applied after the client gave up", []Op{
			appendOp(0, "x", "1", 0, 1),
			unknown(appendOp(0, "x", "2", 2, 3)),
			get(1, "x", "1", 4, 5),
			get(1, "x", "12", 6, 7),
		}, true},
		{"unknown append seen, then gone", []Op{
			appendOp(0, "x", "1", 0, 1),
			unknown(appendOp(0, "x", "2", 2, 3)),
			get(1, "x", "12", 4, 5),
			get(1, "x", "1", 6, 7),
		}, false},
		{"unknown append cannot take effect before its call", []Op{
			appendOp(0, "x", "1", 0, 1),
			get(1, "x", "12", 2, 3),
			unknown(appendOp(0, "x", "2", 4, 5)),
		}, false},
		{"append creates an absent key", []Op{
			appendOp(0, "x", "a", 0, 1),
			get(1, "x", "a", 2, 3),
		}, true},
		{"stale read of a deleted key", []Op{
			put(0, "x", "a", 0, 1),
			del(0, "x", 2, 3),
			get(1, "x", "a", 4, 5),
		}, false},
		{"read of a deleted key is absent", []Op{
			put(0, "x", "a", 0, 1),
			del(0, "x", 2, 3),
			getAbsent(1, "x", 4, 5),
		}, true},
		{"read concurrent with a delete sees the old value", []Op{
			put(0, "x", "a", 0, 1),
			del(0, "x", 2, 5),
			get(1, "x", "a", 3, 6),
		}, true},
		{"unknown delete may have happened", []Op{
			put(0, "x", "a", 0, 1),
			unknown(del(0, "x", 2, 3)),
			getAbsent(1, "x", 4, 5),
		}, true},
		{"unknown delete may not have happened", []Op{
			put(0, "x", "a", 0, 1),
			unknown(del(0, "x", 2, 3)),
			get(1, "x", "a", 4, 5),
		}, true},
		{"empty value is not absent", []Op{
			put(0, "x", "", 0, 1),
			getAbsent(1, "x", 2, 3),
		}, false},
		{"empty value is found", []Op{
			put(0, "x", "", 0, 1),
			get(1, "x", "", 2, 3),
		}, true},
		{"a failed put is dropped", []Op{
			put(0, "x", "a", 0, 1),
			failed(put(0, "x", "b", 2, 3)),
			get(1, "x", "a", 4, 5),
		}, true},
		{"a failed put never takes effect", []Op{
			put(0, "x", "a", 0, 1),
			failed(put(0, "x", "b", 2, 3)),
			get(1, "x", "b", 4, 5),
		}, false},
		{"an unknown read constrains nothing", []Op{
			put(0, "x", "a", 0, 1),
			unknown(get(1, "x", "garbage", 4, 5)),
		}, true},
		{"keys are independent: a stale read on one key fails the history", []Op{
			put(0, "x", "a", 0, 1),
			put(0, "y", "a", 2, 3),
			put(0, "y", "b", 4, 5),
			get(1, "x", "a", 6, 7),
			get(1, "y", "a", 8, 9),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check(tt.ops, checkTimeout)
			require.False(t, res.Unknown, "checker timed out")
			assert.Equal(t, tt.want, res.Linearizable, "history:\n%s", formatOps(tt.ops))
		})
	}
}

func formatOps(ops []Op) string {
	var b strings.Builder
	for _, op := range ops {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func TestCheckCounts(t *testing.T) {
	ops := []Op{
		put(0, "x", "a", 0, 1),
		unknown(appendOp(0, "y", "b", 2, 3)),
		failed(put(0, "z", "c", 4, 5)),  // dropped
		unknown(get(1, "w", "?", 4, 5)), // dropped
		get(1, "x", "a", 6, 7),
	}
	res := Check(ops, checkTimeout)
	assert.True(t, res.Linearizable)
	assert.False(t, res.Unknown)
	assert.Equal(t, 3, res.Ops)
	assert.Equal(t, 2, res.Keys) // x and y
	assert.Equal(t, "linearizable (3 ops on 2 keys)", res.String())

	res = Check([]Op{put(0, "x", "a", 0, 1), get(1, "x", "b", 2, 3)}, checkTimeout)
	assert.Equal(t, "not linearizable (2 ops on 1 keys)", res.String())
}

func TestCheckPanicsOnInvalidOp(t *testing.T) {
	both := put(0, "x", "a", 0, 1)
	both.Unknown = true
	backwards := put(0, "x", "a", 5, 1)
	badKind := put(0, "x", "a", 0, 1)
	badKind.Kind = "cas"
	for name, op := range map[string]Op{"ok and unknown": both, "return before call": backwards, "bad kind": badKind} {
		t.Run(name, func(t *testing.T) {
			assert.Panics(t, func() { Check([]Op{op}, checkTimeout) })
		})
	}
}

func TestModelInitEqual(t *testing.T) {
	m := Model()
	s := m.Init()
	assert.True(t, m.Equal(s, state{}), "Init is the absent key")
	ok, s := m.Step(s, input{kind: api.OpPut, key: "x", value: "a"}, output{})
	require.True(t, ok)
	assert.False(t, m.Equal(s, m.Init()))
	ok, s = m.Step(s, input{kind: api.OpDelete, key: "x"}, output{})
	require.True(t, ok)
	assert.True(t, m.Equal(s, m.Init()), "a deleted key equals one never written")
	assert.Equal(t, m.Hash(s), m.Hash(m.Init()))

	// exists matters: the empty value is not the absent key.
	_, empty := m.Step(m.Init(), input{kind: api.OpPut, key: "x", value: ""}, output{})
	assert.False(t, m.Equal(empty, m.Init()))
	assert.NotEqual(t, m.Hash(empty), m.Hash(m.Init()))
}

func TestModelDescribe(t *testing.T) {
	m := Model()
	tests := []struct {
		in   input
		out  output
		want string
	}{
		{input{api.OpPut, "k", "v"}, output{}, `put("k", "v")`},
		{input{api.OpAppend, "k", "v"}, output{unknown: true}, `append("k", "v") -> ? (outcome unknown)`},
		{input{api.OpDelete, "k", ""}, output{}, `delete("k")`},
		{input{api.OpGet, "k", ""}, output{value: "v", found: true}, `get("k") -> "v"`},
		{input{api.OpGet, "k", ""}, output{}, `get("k") -> absent`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, m.DescribeOperation(tt.in, tt.out))
	}
	assert.Equal(t, "absent", m.DescribeState(state{}))
	assert.Equal(t, `"ab"`, m.DescribeState(state{value: "ab", exists: true}))
}

func TestPartitionEvent(t *testing.T) {
	// The event representation goes through PartitionEvent: the stale read on
	// y must be found there too, and x alone must pass.
	ev := func(kind porcupine.EventKind, id int, v any) porcupine.Event {
		return porcupine.Event{Kind: kind, Id: id, Value: v}
	}
	call, ret := porcupine.CallEvent, porcupine.ReturnEvent
	history := []porcupine.Event{
		ev(call, 0, input{api.OpPut, "y", "a"}), ev(ret, 0, output{}),
		ev(call, 1, input{api.OpPut, "x", "a"}),
		ev(call, 2, input{api.OpPut, "y", "b"}), ev(ret, 2, output{}),
		ev(ret, 1, output{}),
		ev(call, 3, input{api.OpGet, "x", ""}), ev(ret, 3, output{value: "a", found: true}),
		ev(call, 4, input{api.OpGet, "y", ""}), ev(ret, 4, output{value: "a", found: true}),
	}
	parts := partitionEvent(history)
	require.Len(t, parts, 2)
	assert.Len(t, parts[0], 4) // x
	assert.Len(t, parts[1], 6) // y
	assert.False(t, porcupine.CheckEvents(Model(), history))
	assert.True(t, porcupine.CheckEvents(Model(), parts[0]))
}

func TestVisualize(t *testing.T) {
	ops := []Op{
		appendOp(0, "x", "1", 0, 1),
		unknown(appendOp(0, "x", "2", 2, 3)),
		get(1, "x", "122", 4, 5),
	}
	path := filepath.Join(t.TempDir(), "history.html")
	require.NoError(t, Visualize(ops, path))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	html := string(data)
	assert.Contains(t, html, "<html")
	assert.Contains(t, html, "outcome unknown")
	assert.Contains(t, html, "append")

	// Result.Info serves the same purpose without checking twice.
	res := Check(ops, checkTimeout)
	require.False(t, res.Linearizable)
	assert.NoError(t, porcupine.VisualizePath(Model(), res.Info, filepath.Join(t.TempDir(), "info.html")))

	assert.Error(t, Visualize(ops, filepath.Join(t.TempDir(), "no-such-dir", "h.html")))
}
