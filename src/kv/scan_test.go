package kv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func naivePlainPrefix(s string, i int) int {
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

func TestPlainPrefix(t *testing.T) {
	// Every byte value at every position of a 20-byte string of plain bytes.
	base := []byte("abcdefghijklmnopqrst")
	for pos := range base {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			for from := 0; from <= len(b); from += 3 {
				want := naivePlainPrefix(string(b), from)
				assert.Equal(t, want, plainPrefix(string(b), from), "byte %#x at %d from %d", c, pos, from)
				assert.Equal(t, want, plainPrefixBytes(b, from), "byte %#x at %d from %d ([]byte)", c, pos, from)
			}
		}
	}
}

func FuzzPlainPrefix(f *testing.F) {
	f.Add("hello \"world\"", 0)
	f.Fuzz(func(t *testing.T, s string, from int) {
		if from < 0 || from > len(s) {
			return
		}
		assert.Equal(t, naivePlainPrefix(s, from), plainPrefix(s, from))
		assert.Equal(t, naivePlainPrefix(s, from), plainPrefixBytes([]byte(s), from))
	})
}
