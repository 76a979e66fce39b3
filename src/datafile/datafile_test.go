package datafile

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

func TestParseLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want *Command // nil: skipped or error
		err  string   // the error after "f.txt:1: "
	}{
		{"put", "put foo bar", &Command{Op: api.OpPut, Key: "foo", Value: "bar"}, ""},
		{"value with spaces", "put greeting hello big world", &Command{Op: api.OpPut, Key: "greeting", Value: "hello big world"}, ""},
		{"value keeps trailing and inner blanks", "append k a  b ", &Command{Op: api.OpAppend, Key: "k", Value: "a  b "}, ""},
		{"value after one blank only", "put k  v", &Command{Op: api.OpPut, Key: "k", Value: " v"}, ""},
		{"tab separators", "put\tk\tv", &Command{Op: api.OpPut, Key: "k", Value: "v"}, ""},
		{"blanks between op and key", "get    k", &Command{Op: api.OpGet, Key: "k"}, ""},
		{"leading blanks", "   delete k", &Command{Op: api.OpDelete, Key: "k"}, ""},
		{"get trailing blanks", "get k  ", &Command{Op: api.OpGet, Key: "k"}, ""},
		{"utf8", "put clé valeur été", &Command{Op: api.OpPut, Key: "clé", Value: "valeur été"}, ""},
		{"key with slash", "append a/b/c x", &Command{Op: api.OpAppend, Key: "a/b/c", Value: "x"}, ""},
		{"value with hash", "put k #not a comment", &Command{Op: api.OpPut, Key: "k", Value: "#not a comment"}, ""},
		{"crlf", "put k v\r", &Command{Op: api.OpPut, Key: "k", Value: "v"}, ""},
		{"blank", "", nil, ""},
		{"only blanks", " \t ", nil, ""},
		{"comment", "# put a b", nil, ""},
		{"indented comment", "  #x", nil, ""},
		{"unknown", "pur foo bar", nil, `unknown command "pur"`},
		{"upper case", "PUT foo bar", nil, `unknown command "PUT"`},
		{"put no value", "put foo", nil, "put foo: VALUE is missing"},
		{"put empty value", "put foo ", nil, "put foo: VALUE is missing"},
		{"append no key", "append", nil, "append needs KEY and VALUE"},
		{"get no key", "get", nil, "get needs KEY"},
		{"get extra", "get a b", nil, `get takes only KEY, got extra "b"`},
		{"delete extra", "delete a b c", nil, `delete takes only KEY, got extra "b c"`},
		{"key too long", "get " + strings.Repeat("k", api.MaxKeyBytes+1), nil, "get: KEY is 1025 bytes, more than 1024"},
		{"bad utf8", "put k \xff", nil, "line is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, errs := Parse(strings.NewReader(tc.line+"\n"), "f.txt")
			if tc.err != "" {
				require.Len(t, errs, 1)
				assert.Equal(t, "f.txt:1: "+tc.err, errs[0].Error())
				assert.Empty(t, cmds)
				return
			}
			require.Empty(t, errs)
			if tc.want == nil {
				assert.Empty(t, cmds)
				return
			}
			require.Len(t, cmds, 1)
			want := *tc.want
			want.Line = 1
			assert.Equal(t, want, cmds[0])
		})
	}
}

func TestParseFile(t *testing.T) {
	src := "# client c0\n" +
		"put a 1\n" +
		"\n" +
		"pur a 2\n" +
		"append a 2\r\n" +
		"get\n" +
		"get a\n" +
		"delete a" // no final newline
	cmds, errs := Parse(strings.NewReader(src), "datafile.0.txt")
	assert.Equal(t, []Command{
		{Line: 2, Op: api.OpPut, Key: "a", Value: "1"},
		{Line: 5, Op: api.OpAppend, Key: "a", Value: "2"},
		{Line: 7, Op: api.OpGet, Key: "a"},
		{Line: 8, Op: api.OpDelete, Key: "a"},
	}, cmds)
	require.Len(t, errs, 2)
	assert.EqualError(t, errs[0], `datafile.0.txt:4: unknown command "pur"`)
	assert.EqualError(t, errs[1], `datafile.0.txt:6: get needs KEY`)
}

func TestParseLongLines(t *testing.T) {
	big := strings.Repeat("v", api.MaxValueBytes)
	src := "put k " + big + "\n" + // the largest value: fine
		"put k " + big + "v\n" + // one byte too many
		"put k " + strings.Repeat("v", 2*maxLineBytes) + "\n" + // longer than a line may be
		"get k\n"
	cmds, errs := Parse(strings.NewReader(src), "f")
	require.Len(t, cmds, 2)
	assert.Equal(t, 1, cmds[0].Line)
	assert.Len(t, cmds[0].Value, api.MaxValueBytes)
	assert.Equal(t, Command{Line: 4, Op: api.OpGet, Key: "k"}, cmds[1])
	require.Len(t, errs, 2)
	assert.Contains(t, errs[0].Error(), "f:2: put k: VALUE is 1048577 bytes")
	assert.Contains(t, errs[1].Error(), "f:3: line longer than")
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	r := iotest.DataErrReader(strings.NewReader("put a b\n"))
	cmds, errs := Parse(readerThenErr{r, boom}, "f")
	assert.Len(t, cmds, 1)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], boom)
	assert.Contains(t, errs[0].Error(), "f:2: read:")
}

// readerThenErr reads r, then fails with err instead of io.EOF.
type readerThenErr struct {
	r   interface{ Read([]byte) (int, error) }
	err error
}

func (x readerThenErr) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err != nil {
		return n, x.err
	}
	return n, nil
}

func TestCommandString(t *testing.T) {
	assert.Equal(t, "put k a b", Command{Op: api.OpPut, Key: "k", Value: "a b"}.String())
	assert.Equal(t, "get k", Command{Op: api.OpGet, Key: "k"}.String())
}
