package kv

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeCommandFormat(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want string
	}{
		{"full", Command{Op: OpPut, Key: "a", Value: "b", ClientID: "c0", Seq: 3},
			`{"op":"put","key":"a","value":"b","client":"c0","seq":3}`},
		{"no session", Command{Op: OpDelete, Key: "a"}, `{"op":"delete","key":"a"}`},
		{"escapes", Command{Op: OpAppend, Key: "q\"b\\", Value: "l1\nl2\t\r\x00\x1f"},
			`{"op":"append","key":"q\"b\\","value":"l1\nl2\t\r\u0000\u001f"}`},
		{"line separators", Command{Op: OpPut, Key: "k", Value: "a\u2028b\u2029"},
			`{"op":"put","key":"k","value":"a\u2028b\u2029"}`},
		{"invalid utf-8 becomes U+FFFD", Command{Op: OpPut, Key: "k", Value: "a\xffb"},
			`{"op":"put","key":"k","value":"a\ufffdb"}`},
		{"max seq", Command{Op: OpGet, Key: "k", ClientID: "c", Seq: 1<<64 - 1},
			`{"op":"get","key":"k","client":"c","seq":18446744073709551615}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeCommand(tt.cmd)
			assert.Equal(t, tt.want, string(got))
			assert.True(t, json.Valid(got))
		})
	}
}

// jsonCommand is the command's JSON as plain encoding/json reads it.
type jsonCommand struct {
	Op       string `json:"op"`
	Key      string `json:"key"`
	Value    string `json:"value"`
	ClientID string `json:"client"`
	Seq      uint64 `json:"seq"`
}

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"put", Command{Op: OpPut, Key: "a", Value: "b", ClientID: "c0", Seq: 3}},
		{"append", Command{Op: OpAppend, Key: "a", Value: "123"}},
		{"get", Command{Op: OpGet, Key: "a", ClientID: "c", Seq: 1}},
		{"delete", Command{Op: OpDelete, Key: "a"}},
		{"empty value", Command{Op: OpPut, Key: "a", Value: ""}},
		{"seq zero with client", Command{Op: OpPut, Key: "a", ClientID: "c"}},
		{"unicode", Command{Op: OpPut, Key: "ключ 🔑", Value: "値 ✓ \u00e9\u0301 \U0001F600", ClientID: "клиент"}},
		{"json special characters", Command{Op: OpPut, Key: `{"op":"x"}`, Value: "\\\"\n\t\b\f\x7f<>&", ClientID: `"`}},
		{"control characters", Command{Op: OpPut, Key: "\x01", Value: "\x00\x1f\u2028\u2029"}},
		{"max key and 1 MiB value", Command{Op: OpPut, Key: strings.Repeat("k", MaxKeyBytes), Value: strings.Repeat("é", MaxValueBytes/2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EncodeCommand(tt.cmd)
			got, err := DecodeCommand(b)
			require.NoError(t, err)
			assert.Equal(t, tt.cmd, got)

			// encoding/json reads the same command (the format is plain JSON).
			var w jsonCommand
			require.NoError(t, json.Unmarshal(b, &w))
			assert.Equal(t, tt.cmd, Command{Op: Op(w.Op), Key: w.Key, Value: w.Value, ClientID: w.ClientID, Seq: w.Seq})
		})
	}
}

func TestDecodeCommandOtherShapes(t *testing.T) {
	// JSON that EncodeCommand does not write, but that is a valid command:
	// decoded by the encoding/json path.
	tests := []struct {
		name string
		in   string
		want Command
	}{
		{"white space", ` { "op" : "put", "key" : "a" , "value":"b" } `, Command{Op: OpPut, Key: "a", Value: "b"}},
		{"reordered", `{"seq":2,"client":"c","key":"a","op":"get"}`, Command{Op: OpGet, Key: "a", ClientID: "c", Seq: 2}},
		{"unicode escapes", `{"op":"put","key":"\u00e9","value":"\ud83d\ude00"}`, Command{Op: OpPut, Key: "é", Value: "😀"}},
		{"raw invalid utf-8 becomes U+FFFD", "{\"op\":\"put\",\"key\":\"k\",\"value\":\"\xff\"}", Command{Op: OpPut, Key: "k", Value: "\ufffd"}},
		{"null value", `{"op":"delete","key":"a","value":null}`, Command{Op: OpDelete, Key: "a"}},
		{"seq zero", `{"op":"put","key":"a","seq":0}`, Command{Op: OpPut, Key: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeCommand([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ``},
		{"not json", `put a b`},
		{"truncated", `{"op":"put","key":"a"`},
		{"truncated string", `{"op":"put","key":"a`},
		{"array", `["put","a"]`},
		{"null", `null`},
		{"no op", `{"key":"a"}`},
		{"unknown op", `{"op":"incr","key":"a"}`},
		{"unknown field", `{"op":"put","key":"a","ttl":3}`},
		{"negative seq", `{"op":"put","key":"a","seq":-1}`},
		{"fractional seq", `{"op":"put","key":"a","seq":1.5}`},
		{"seq overflow", `{"op":"put","key":"a","seq":18446744073709551616}`},
		{"seq as string", `{"op":"put","key":"a","seq":"1"}`},
		{"key as number", `{"op":"put","key":1}`},
		{"trailing data", `{"op":"put","key":"a"}{"op":"put","key":"b"}`},
		{"trailing garbage", `{"op":"put","key":"a"}x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCommand([]byte(tt.in))
			assert.Error(t, err)
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte(`{"op":"put","key":"a","value":"b","client":"c0","seq":3}`))
	f.Add([]byte(`{"op":"put","key":"\u00e9"}`))
	f.Add([]byte(`{"seq":01,"op":"get"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to an equivalent command.
		c2, err := DecodeCommand(EncodeCommand(c))
		require.NoError(t, err)
		assert.Equal(t, c, c2)
	})
}

func FuzzCommandRoundTrip(f *testing.F) {
	f.Add("put", "k", "v", "c", uint64(1))
	f.Add("append", "\x00\"", "\u2028\xff", "", uint64(0))
	f.Fuzz(func(t *testing.T, op, key, value, client string, seq uint64) {
		c := Command{Op: Op(op), Key: key, Value: value, ClientID: client, Seq: seq}
		got, err := DecodeCommand(EncodeCommand(c))
		if !c.Op.Valid() {
			assert.Error(t, err)
			return
		}
		require.NoError(t, err)
		// Valid UTF-8 round-trips exactly; invalid UTF-8 in a key or value
		// as encoding/json would have it (U+FFFD); a client id that is not
		// UTF-8 is left out (no session) rather than merged with another.
		want := Command{Op: c.Op, Key: viaJSON(t, key), Value: viaJSON(t, value), ClientID: client, Seq: seq}
		if !utf8.ValidString(client) {
			want.ClientID = ""
		}
		assert.Equal(t, want, got)
	})
}

// viaJSON returns s after a round trip through encoding/json.
func viaJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var out string
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		value  string
		keyErr error
		valErr error
	}{
		{"ok", "k", "v", nil, nil},
		{"empty value ok", "k", "", nil, nil},
		{"max key", strings.Repeat("k", MaxKeyBytes), "v", nil, nil},
		{"max value", "k", strings.Repeat("v", MaxValueBytes), nil, nil},
		{"empty key", "", "v", ErrBadKey, nil},
		{"long key", strings.Repeat("k", MaxKeyBytes+1), "v", ErrBadKey, nil},
		{"invalid utf-8", "\xff", "\xc3", ErrBadKey, ErrBadValue},
		{"value too large", "k", strings.Repeat("v", MaxValueBytes+1), nil, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, ValidateKey(tt.key), tt.keyErr)
			assert.ErrorIs(t, ValidateValue(tt.value), tt.valErr)
		})
	}
}

func FuzzDecodeFastMatchesSlow(f *testing.F) {
	f.Add([]byte(`{"op":"put","key":"a","value":"b","client":"c0","seq":3}`))
	f.Add([]byte(`{"op":"get","key":"é","seq":0}`))
	f.Add([]byte(`{"key":"a","key":"b","op":"put"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeFast(b)
		if !ok {
			return
		}
		// Whatever the fast path takes, encoding/json reads the same way.
		slow, err := decodeSlow(b)
		require.NoError(t, err)
		assert.Equal(t, slow, fast)
	})
}
