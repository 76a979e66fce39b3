package dockertest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"raftkv/src/api"
)

// TestCheckHistoriesCASAndDeletePrefix: an acknowledged CAS is a put, a
// refused one (recorded "error") must be absent, and a delete by prefix
// deletes, in client order, every key under it that anyone wrote.
func TestCheckHistoriesCASAndDeletePrefix(t *testing.T) {
	dp := func(client, prefix string, outcome api.Outcome) Op {
		return Op{Client: client, Line: 9, Kind: api.OpDelete, Key: prefix, Prefix: true, Outcome: outcome}
	}
	c0 := []Op{
		w("c0", "put", "cfg/a", "1", api.OutcomeOK),
		w("c0", "put", "cfg/b", "2", api.OutcomeOK),
		dp("c0", "cfg/", api.OutcomeOK),
		w("c0", "put", "cfg/b", "3", api.OutcomeOK),
		w("c0", "put", "lock", "c0", api.OutcomeOK),     // a cas 0 that won
		w("c0", "put", "lock", "c0b", api.OutcomeError), // a cas that lost
		w("c0", "put", "other", "x", api.OutcomeOK),
	}
	for _, tc := range []struct {
		name    string
		final   map[string]string
		ops     []Op
		wantErr string
	}{
		{"good", map[string]string{"cfg/b": "3", "lock": "c0", "other": "x"}, c0, ""},
		{"prefix delete lost", map[string]string{"cfg/a": "1", "cfg/b": "3", "lock": "c0", "other": "x"}, c0, `key "cfg/a"`},
		{"refused cas applied", map[string]string{"cfg/b": "3", "lock": "c0b", "other": "x"}, c0, `key "lock"`},
		{"unknown prefix delete either way", map[string]string{"cfg/a": "1", "cfg/b": "2", "lock": "c0", "other": "x"},
			replace(replace(c0, 2, dp("c0", "cfg/", api.OutcomeUnknown)), 3, w("c0", "get", "cfg/b", "", api.OutcomeOK)), ""},
		{"delete prefix touches only its keys", map[string]string{"cfg/b": "3", "lock": "c0"}, c0, `key "other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := CheckHistories(tc.final, []ClientHistory{{Client: "c0", Ops: tc.ops}})
			if tc.wantErr == "" {
				assert.NoError(t, res.Err())
			} else {
				assert.ErrorContains(t, res.Err(), tc.wantErr)
			}
		})
	}
}
