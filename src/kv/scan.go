package kv

import "encoding/binary"

// Word-at-a-time scanning for the JSON string fast paths.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainPrefix returns the first index j >= i such that s[j] is not a byte
// that JSON carries as is: it is a control character (< 0x20), '"', '\\' or
// not ASCII (>= 0x80). It returns len(s) if there is none.
func plainPrefix(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if !plainWord(w) {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// plainPrefixBytes is plainPrefix for a byte slice.
func plainPrefixBytes(s []byte, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if !plainWord(binary.LittleEndian.Uint64(s[i:])) {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// plainWord reports whether none of w's bytes is >= 0x80, < 0x20, '"' or
// '\\'. Each term below has the high bit of a byte set if that byte is,
// respectively: >= 0x80, < 0x20, '"', '\\' (exact when no byte is >= 0x80,
// and the first term catches those; a set bit may also spill into bytes above
// a hit, which is harmless). See "Bit Twiddling Hacks", "Determine if a word
// has a byte less than n".
func plainWord(w uint64) bool {
	return (w|((w-lsb*0x20)&^w)|hasZero(w^(lsb*'"'))|hasZero(w^(lsb*'\\')))&msb == 0
}

// hasZero has the high bit of a byte set if that byte of w is zero (and
// maybe of bytes above a zero byte, which only makes the caller look closer).
func hasZero(w uint64) uint64 { return (w - lsb) &^ w & msb }

// appendBytesString is appendString of a byte slice: plain ASCII is
// appended as it is, without a string copy.
func appendBytesString(b, s []byte) []byte {
	if plainPrefixBytes(s, 0) == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return appendString(b, string(s))
}
