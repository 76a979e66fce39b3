package storage

import (
	"encoding/binary"
	"unicode/utf8"
)

// validJSON reports whether b is one JSON value (RFC 8259, optionally
// surrounded by white space) in valid UTF-8: exactly json.Valid(b) &&
// utf8.Valid(b), including encoding/json's nesting limit, but several times
// faster, which matters because every entry written or replayed is checked.
// FuzzValidJSON compares the two.
func validJSON(b []byte) bool {
	v := validator{b: b}
	v.ws()
	if !v.value(0) {
		return false
	}
	v.ws()
	return v.i == len(v.b)
}

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

type validator struct {
	b []byte
	i int
}

// plain marks string bytes that need no attention: not a control character,
// not '"', not '\\', ASCII.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (v *validator) ws() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *validator) peek() byte {
	if v.i < len(v.b) {
		return v.b[v.i]
	}
	return 0
}

func (v *validator) value(depth int) bool {
	switch c := v.peek(); {
	case c == '{':
		if depth+1 > maxNestingDepth {
			return false
		}
		v.i++
		v.ws()
		if v.peek() == '}' {
			v.i++
			return true
		}
		for {
			if v.peek() != '"' || !v.str() {
				return false
			}
			v.ws()
			if v.peek() != ':' {
				return false
			}
			v.i++
			v.ws()
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			switch v.peek() {
			case ',':
				v.i++
				v.ws()
			case '}':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		if depth+1 > maxNestingDepth {
			return false
		}
		v.i++
		v.ws()
		if v.peek() == ']' {
			v.i++
			return true
		}
		for {
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			switch v.peek() {
			case ',':
				v.i++
				v.ws()
			case ']':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return v.str()
	case c == 't':
		return v.lit("true")
	case c == 'f':
		return v.lit("false")
	case c == 'n':
		return v.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return v.num()
	}
	return false
}

func (v *validator) lit(s string) bool {
	if len(v.b)-v.i >= len(s) && string(v.b[v.i:v.i+len(s)]) == s {
		v.i += len(s)
		return true
	}
	return false
}

func (v *validator) digits() bool {
	start := v.i
	for v.i < len(v.b) && v.b[v.i] >= '0' && v.b[v.i] <= '9' {
		v.i++
	}
	return v.i > start
}

func (v *validator) num() bool {
	if v.peek() == '-' {
		v.i++
	}
	switch c := v.peek(); {
	case c == '0':
		v.i++
	case c >= '1' && c <= '9':
		v.digits()
	default:
		return false
	}
	if v.peek() == '.' {
		v.i++
		if !v.digits() {
			return false
		}
	}
	if c := v.peek(); c == 'e' || c == 'E' {
		v.i++
		if c := v.peek(); c == '+' || c == '-' {
			v.i++
		}
		if !v.digits() {
			return false
		}
	}
	return true
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// attention reports whether any of the 8 bytes in x is not plain: a control
// character (< 0x20), '"', '\\' or non-ASCII (SWAR: "has a byte less than n"
// and "has a zero byte", exact as to whether any byte matches).
func attention(x uint64) bool {
	ctl := (x - lsb*0x20) & ^x
	q := x ^ (lsb * '"')
	q = (q - lsb) & ^q
	bs := x ^ (lsb * '\\')
	bs = (bs - lsb) & ^bs
	return (ctl|q|bs|x)&msb != 0
}

// str consumes a string; v.b[v.i] is its opening quote.
func (v *validator) str() bool {
	v.i++
	for {
		for v.i+8 <= len(v.b) && !attention(binary.LittleEndian.Uint64(v.b[v.i:])) {
			v.i += 8
		}
		if v.i >= len(v.b) {
			return false
		}
		c := v.b[v.i]
		switch {
		case plain[c]:
			v.i++
		case c == '"':
			v.i++
			return true
		case c == '\\':
			v.i++
			switch v.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.i++
			case 'u':
				v.i++
				for k := 0; k < 4; k++ {
					h := v.peek()
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
					v.i++
				}
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			r, n := utf8.DecodeRune(v.b[v.i:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			v.i += n
		}
	}
}
