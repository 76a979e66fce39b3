package dockertest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"raftkv/src/api"
)

func w(client string, kind api.Op, key, value string, outcome api.Outcome) Op {
	return Op{Client: client, Line: 1, Kind: kind, Key: key, Value: value, Outcome: outcome}
}

func read(client, key string, value *string) Op {
	found := value != nil
	return Op{Client: client, Line: 2, Kind: api.OpGet, Key: key, Outcome: api.OutcomeOK, Found: &found, Read: value}
}

func sp(s string) *string { return &s }

func TestCheckHistories(t *testing.T) {
	c0 := []Op{
		w("c0", "put", "c0-k", "a", api.OutcomeOK),
		w("c0", "append", "shared", "c0.1;", api.OutcomeOK),
		w("c0", "append", "c0-k", "b", api.OutcomeOK),
		read("c0", "c0-k", sp("ab")),
		w("c0", "append", "shared", "c0.2;", api.OutcomeOK),
		w("c0", "put", "last", "c0", api.OutcomeOK),
	}
	c1 := []Op{
		w("c1", "append", "shared", "c1.1;", api.OutcomeOK),
		w("c1", "append", "shared", "c1.2;", api.OutcomeUnknown),
		w("c1", "append", "shared", "c1.3;", api.OutcomeError),
		w("c1", "append", "shared", "c1.4;", api.OutcomeOK),
		w("c1", "put", "last", "c1", api.OutcomeOK),
		w("c1", "delete", "c1-gone", "", api.OutcomeOK),
	}
	good := map[string]string{"c0-k": "ab", "shared": "c1.1;c0.1;c1.2;c0.2;c1.4;", "last": "c1"}
	tests := []struct {
		name    string
		final   map[string]string
		c0, c1  []Op
		wantErr string // "" = pass
	}{
		{name: "good", final: good},
		{name: "unknown not applied", final: with(good, "shared", "c1.1;c0.1;c0.2;c1.4;")},
		{name: "last put by either", final: with(good, "last", "c0")},
		{name: "acknowledged append lost", final: with(good, "shared", "c1.1;c1.2;c0.2;c1.4;"), wantErr: `key "shared"`},
		{name: "acknowledged append twice", final: with(good, "shared", "c1.1;c0.1;c0.1;c0.2;c1.4;"), wantErr: `key "shared"`},
		{name: "client order broken", final: with(good, "shared", "c0.2;c1.1;c0.1;c1.4;"), wantErr: `key "shared"`},
		{name: "failed write applied", final: with(good, "shared", "c1.1;c0.1;c1.3;c0.2;c1.4;"), wantErr: `key "shared"`},
		{name: "unknown applied twice", final: with(good, "shared", "c1.1;c0.1;c1.2;c1.2;c0.2;c1.4;"), wantErr: `key "shared"`},
		{name: "private key lost", final: without(good, "c0-k"), wantErr: `key "c0-k"`},
		{name: "deleted key back", final: with(good, "c1-gone", "x"), wantErr: `key "c1-gone"`},
		{name: "key nobody wrote", final: with(good, "ghost", "boo"), wantErr: `no client wrote it`},
		{name: "stale read", final: good, c0: replace(c0, 3, read("c0", "c0-k", sp("a"))), wantErr: `get c0-k read "a"`},
		{name: "read of absent key", final: good, c0: replace(c0, 3, read("c0", "c0-k", nil)), wantErr: `get c0-k read (absent)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h0, h1 := c0, c1
			if tt.c0 != nil {
				h0 = tt.c0
			}
			if tt.c1 != nil {
				h1 = tt.c1
			}
			res := CheckHistories(tt.final, []ClientHistory{{Client: "c0", Ops: h0}, {Client: "c1", Ops: h1}})
			if tt.wantErr == "" {
				assert.NoError(t, res.Err())
				return
			}
			if assert.Error(t, res.Err()) {
				assert.Contains(t, res.Err().Error(), tt.wantErr)
			}
		})
	}
}

// TestCheckLongSharedLog: the search stays small for the shape of the
// shipped data files (many appends to one key from two clients).
func TestCheckLongSharedLog(t *testing.T) {
	var h [2][]Op
	var final strings.Builder
	for i := range 200 {
		for c, name := range []string{"c0", "c1"} {
			v := name + "." + strings.Repeat("x", i%3) + ";"
			h[c] = append(h[c], w(name, "append", "log", v, api.OutcomeOK))
			final.WriteString(v)
		}
	}
	res := CheckHistories(map[string]string{"log": final.String()}, []ClientHistory{{"c0", h[0]}, {"c1", h[1]}})
	assert.NoError(t, res.Err())
}

func with(m map[string]string, k, v string) map[string]string {
	out := without(m, "")
	out[k] = v
	return out
}

func without(m map[string]string, k string) map[string]string {
	out := map[string]string{}
	for kk, v := range m {
		if kk != k {
			out[kk] = v
		}
	}
	return out
}

func replace(ops []Op, i int, op Op) []Op {
	out := append([]Op{}, ops...)
	out[i] = op
	return out
}
