package datafile

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

func TestParseCASAndDeletePrefix(t *testing.T) {
	zero, seven := uint64(0), uint64(7)
	for _, tc := range []struct {
		line string
		want *Command
		err  string
	}{
		{"cas lock 0 me", &Command{Op: api.OpPut, Key: "lock", Value: "me", CAS: &zero}, ""},
		{"cas k 7 a value  with blanks ", &Command{Op: api.OpPut, Key: "k", Value: "a value  with blanks ", CAS: &seven}, ""},
		{"delete-prefix cfg/", &Command{Op: api.OpDelete, Key: "cfg/", Prefix: true}, ""},
		{"cas k 3", nil, "cas k 3: VALUE is missing"},
		{"cas k", nil, "cas needs KEY, N"},
		{"cas k x v", nil, `N "x" is not a mod_index`},
		{"cas k -1 v", nil, `N "-1" is not a mod_index`},
		{"delete-prefix", nil, "delete-prefix needs PREFIX"},
		{"delete-prefix a b", nil, `extra "b"`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			cmds, errs := Parse(strings.NewReader(tc.line), "f.txt")
			if tc.want == nil {
				require.Len(t, errs, 1)
				assert.Contains(t, errs[0].Error(), "f.txt:1: ")
				assert.Contains(t, errs[0].Error(), tc.err)
				assert.Empty(t, cmds)
				return
			}
			require.Empty(t, errs)
			require.Len(t, cmds, 1)
			want := *tc.want
			want.Line = 1
			assert.Equal(t, want, cmds[0])
			// String gives the line back (round trip).
			again, errs := Parse(strings.NewReader(cmds[0].String()), "f.txt")
			require.Empty(t, errs)
			assert.Equal(t, cmds, again)
		})
	}
}
