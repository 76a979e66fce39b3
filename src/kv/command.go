package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"raftkv/src/api"
)

// Limits on keys and values (CONTRACT.md, HTTP API; declared in api).
const (
	// MaxKeyBytes is the longest key, in bytes; the shortest is one byte.
	MaxKeyBytes = api.MaxKeyBytes
	// MaxValueBytes is the longest value, in bytes (1 MiB).
	MaxValueBytes = api.MaxValueBytes
	// MaxClientIDBytes is the longest client id, in bytes; the shortest is
	// one byte. Session ids live in every replica's memory and snapshot, so
	// a client must not choose their size freely.
	MaxClientIDBytes = 128
)

// Op is what a command does: the API's operation (api.Op), whose name is
// also what a log entry's "op" holds.
type Op = api.Op

// The operations of the state machine (declared in api).
const (
	OpPut    = api.OpPut    // set Key to Value
	OpAppend = api.OpAppend // append Value to Key's value; creates Key if absent
	OpGet    = api.OpGet    // read Key at this point of the log
	OpDelete = api.OpDelete // remove Key; deleting an absent key is not an error
	// OpTxn runs Command.Txn (a transaction); it exists in log entries
	// only, never as a CLI command or a data-file line.
	OpTxn Op = "txn"
)

// Command is what a log entry carries.
type Command struct {
	Op    Op
	Key   string
	Value string // ignored by get and delete
	// ClientID names the client's session; "" applies the command without
	// one, and so does an id that ValidateClientID refuses (see Store.Apply).
	ClientID string
	// Seq is the client's request number, increasing per client.
	Seq uint64
	// CAS, when set, makes a put or delete conditional: it applies only if
	// Key's mod_index is *CAS (0: Key is absent); else ErrCASFailed.
	CAS *uint64
	// Prefix makes a delete remove every key that starts with Key.
	Prefix bool
	// Txn is the transaction of an OpTxn command (Key is then empty).
	Txn *api.TxnRequest
	// Lease: a put attaches Key to this lease (0: none, and a put detaches
	// the key from any lease); the lease of a keep-alive, revoke or expiry.
	Lease uint64
	// TTLMillis is a lease grant's TTL.
	TTLMillis int64
	// Renew is an expiry's condition: the lease's renew index the leader
	// saw (see OpLeaseExpire).
	Renew uint64
}

// Sentinel errors. Result.Err is always nil or one of these.
var (
	// ErrBadKey: a key is empty, longer than MaxKeyBytes or not valid UTF-8 (HTTP 400).
	ErrBadKey = errors.New("kv: key must be 1 to 1024 bytes of valid UTF-8")
	// ErrBadValue: a value is not valid UTF-8 (HTTP 400).
	ErrBadValue = errors.New("kv: value must be valid UTF-8")
	// ErrTooLarge: a value, or a value after an append, would exceed MaxValueBytes (HTTP 413).
	ErrTooLarge = errors.New("kv: value would exceed 1 MiB")
	// ErrStaleRequest: the client's request is older than its last one, whose
	// result is the only one remembered; the request was not applied.
	ErrStaleRequest = errors.New("kv: stale request: a later request of this client was already applied")
	// ErrBadCommand: a log entry does not decode to a command; nothing was applied.
	ErrBadCommand = errors.New("kv: malformed command")
	// ErrCASFailed: a compare-and-swap found another mod_index than asked;
	// nothing was applied and Result.Meta holds the key's metadata (HTTP 409).
	ErrCASFailed = errors.New("kv: compare-and-swap failed: the key's mod_index is not the one given")
	// ErrBadTxn: a transaction is malformed or too large (HTTP 400).
	ErrBadTxn = errors.New("kv: malformed transaction")
	// ErrBadClientID: a client id is empty, longer than MaxClientIDBytes or
	// not valid UTF-8 (HTTP 400). It is never a Result.Err: Apply runs a
	// command with such an id without a session instead.
	ErrBadClientID = errors.New("kv: client id must be 1 to 128 bytes of valid UTF-8")
)

// ValidateKey returns an error wrapping ErrBadKey unless k is 1 to
// MaxKeyBytes bytes of valid UTF-8.
func ValidateKey(k string) error {
	switch {
	case len(k) == 0:
		return fmt.Errorf("%w: key is empty", ErrBadKey)
	case len(k) > MaxKeyBytes:
		return fmt.Errorf("%w: key is %d bytes", ErrBadKey, len(k))
	case !utf8.ValidString(k):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrBadKey)
	}
	return nil
}

// ValidateValue returns an error wrapping ErrTooLarge if v is longer than
// MaxValueBytes, or wrapping ErrBadValue if v is not valid UTF-8.
func ValidateValue(v string) error {
	if len(v) > MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes", ErrTooLarge, len(v))
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: value is not valid UTF-8", ErrBadValue)
	}
	return nil
}

// ValidateClientID returns an error wrapping ErrBadClientID unless id is 1
// to MaxClientIDBytes bytes of valid UTF-8.
func ValidateClientID(id string) error {
	switch {
	case len(id) == 0:
		return fmt.Errorf("%w: it is empty", ErrBadClientID)
	case len(id) > MaxClientIDBytes:
		return fmt.Errorf("%w: it is %d bytes", ErrBadClientID, len(id))
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: it is not valid UTF-8", ErrBadClientID)
	}
	return nil
}

// validClientID is ValidateClientID without building an error.
func validClientID(id string) bool {
	return len(id) > 0 && len(id) <= MaxClientIDBytes && utf8.ValidString(id)
}

// EncodeCommand returns c as a compact JSON object, e.g.
//
//	{"op":"put","key":"a","value":"b","client":"c0","seq":3}
//
// "value", "client" and "seq" are left out when empty or zero. Strings are
// escaped as encoding/json does; invalid UTF-8 in a key or value becomes
// U+FFFD (as in encoding/json), so only valid UTF-8 round-trips: validate
// first. A client id that is not valid UTF-8 is left out, so the command
// runs without a session: written as U+FFFD it would name another client's
// session (two different ids, one session, one client getting the other's
// remembered result).
func EncodeCommand(c Command) []byte {
	b := make([]byte, 0, 80+len(c.Key)+len(c.Value)+len(c.ClientID))
	b = append(b, `{"op":`...)
	b = appendString(b, string(c.Op))
	b = append(b, `,"key":`...)
	b = appendString(b, c.Key)
	if c.Value != "" {
		b = append(b, `,"value":`...)
		b = appendString(b, c.Value)
	}
	if c.ClientID != "" && utf8.ValidString(c.ClientID) {
		b = append(b, `,"client":`...)
		b = appendString(b, c.ClientID)
	}
	if c.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, c.Seq, 10)
	}
	if c.CAS != nil {
		b = append(b, `,"cas":`...)
		b = strconv.AppendUint(b, *c.CAS, 10)
	}
	if c.Prefix {
		b = append(b, `,"prefix":true`...)
	}
	if c.Lease != 0 {
		b = append(b, `,"lease":`...)
		b = strconv.AppendUint(b, c.Lease, 10)
	}
	if c.TTLMillis != 0 {
		b = append(b, `,"ttl_ms":`...)
		b = strconv.AppendInt(b, c.TTLMillis, 10)
	}
	if c.Renew != 0 {
		b = append(b, `,"renew":`...)
		b = strconv.AppendUint(b, c.Renew, 10)
	}
	if c.Txn != nil {
		// encoding/json writes struct fields in declaration order and
		// escapes like appendString (plus the HTML escapes), so the bytes
		// depend on the transaction only.
		t, err := json.Marshal(c.Txn)
		if err != nil {
			panic(fmt.Sprintf("kv: encode transaction: %v", err)) // strings and numbers only
		}
		b = append(b, `,"txn":`...)
		b = append(b, t...)
	}
	return append(b, '}')
}

// DecodeCommand parses what EncodeCommand wrote. Any JSON object with the
// fields "op" (one of the four operations), "key", "value", "client" and
// "seq" is accepted; unknown fields, trailing data and unknown operations are
// errors. The result depends on the bytes only, so every replica decodes an
// entry the same way.
func DecodeCommand(b []byte) (Command, error) {
	c, ok := decodeFast(b)
	if !ok {
		var err error
		if c, err = decodeSlow(b); err != nil {
			return Command{}, err
		}
	}
	if !c.Op.Valid() && c.Op != OpTxn && !isLeaseOp(c.Op) {
		return Command{}, fmt.Errorf("kv: decode command: unknown op %q", c.Op)
	}
	return c, nil
}

// wireCommand is Command as encoding/json sees it, for decodeSlow. The
// client id stays raw so that decodeSlow can see invalid UTF-8, which
// encoding/json would silently turn into U+FFFD.
type wireCommand struct {
	Op       string          `json:"op"`
	Key      string          `json:"key"`
	Value    string          `json:"value"`
	ClientID json.RawMessage `json:"client"`
	Seq      uint64          `json:"seq"`
	CAS      *uint64         `json:"cas"`
	Prefix   bool            `json:"prefix"`
	Txn      *api.TxnRequest `json:"txn"`
	Lease    uint64          `json:"lease"`
	TTL      int64           `json:"ttl_ms"`
	Renew    uint64          `json:"renew"`
}

// decodeSlow decodes with encoding/json whatever decodeFast did not take:
// escapes, white space, reordered fields, errors.
func decodeSlow(b []byte) (Command, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireCommand
	if err := dec.Decode(&w); err != nil {
		return Command{}, fmt.Errorf("kv: decode command: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Command{}, errors.New("kv: decode command: data after the object")
	}
	var client string
	if len(w.ClientID) > 0 {
		if err := json.Unmarshal(w.ClientID, &client); err != nil {
			return Command{}, fmt.Errorf("kv: decode command: client: %w", err)
		}
	}
	if !utf8.Valid(w.ClientID) {
		// Only a forged or damaged entry holds raw invalid UTF-8 (EncodeCommand
		// never writes it). Decoded, it would be U+FFFD and could name another
		// client's session: the command runs without one.
		client = ""
	}
	return Command{Op: Op(w.Op), Key: w.Key, Value: w.Value, ClientID: client, Seq: w.Seq, CAS: w.CAS, Prefix: w.Prefix, Txn: w.Txn,
		Lease: w.Lease, TTLMillis: w.TTL, Renew: w.Renew}, nil
}

// decodeFast decodes the exact shape EncodeCommand writes when no string
// needs an escape: no white space, known lower-case field names each at most
// once, strings of valid UTF-8 without backslashes or control characters, a
// plain unsigned seq. It reports false for anything else, and decodeSlow
// decides; for every input it accepts, it gives what encoding/json would.
func decodeFast(b []byte) (c Command, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return c, false
	}
	const (
		seenOp = 1 << iota
		seenKey
		seenValue
		seenClient
		seenSeq
	)
	seen := 0
	i := 1
	for {
		name, j, ok := scanPlainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return c, false
		}
		i = j + 1
		var bit int
		switch string(name) { // no allocation: the compiler compares in place
		case "op":
			bit = seenOp
		case "key":
			bit = seenKey
		case "value":
			bit = seenValue
		case "client":
			bit = seenClient
		case "seq":
			bit = seenSeq
		default:
			return c, false
		}
		if seen&bit != 0 {
			return c, false
		}
		seen |= bit
		if bit == seenSeq {
			j = i
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				j++
			}
			digits := b[i:j]
			if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
				return c, false
			}
			n, err := strconv.ParseUint(string(digits), 10, 64)
			if err != nil {
				return c, false
			}
			c.Seq = n
		} else {
			s, j2, ok := scanPlainString(b, i)
			if !ok {
				return c, false
			}
			j = j2
			switch bit {
			case seenOp:
				c.Op = internOp(s)
			case seenKey:
				c.Key = string(s)
			case seenValue:
				c.Value = string(s)
			case seenClient:
				c.ClientID = string(s)
			}
		}
		if j >= len(b) {
			return c, false
		}
		switch b[j] {
		case ',':
			i = j + 1
		case '}':
			return c, j == len(b)-1
		default:
			return c, false
		}
	}
}

// scanPlainString reads a JSON string starting at b[i] == '"' that needs no
// unescaping: it returns its contents and the index after the closing quote,
// or false if the string has an escape, a control character or invalid UTF-8.
func scanPlainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	j := start
	for {
		j = plainPrefixBytes(b, j)
		if j >= len(b) {
			return nil, 0, false
		}
		switch c := b[j]; {
		case c == '"':
			return b[start:j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
		// Not ASCII: take one well-formed rune, or give up.
		r, size := utf8.DecodeRune(b[j:])
		if r == utf8.RuneError && size == 1 {
			return nil, 0, false
		}
		j += size
	}
}

// internOp returns the constant for a known op without allocating.
func internOp(s []byte) Op {
	switch string(s) {
	case string(OpPut):
		return OpPut
	case string(OpAppend):
		return OpAppend
	case string(OpGet):
		return OpGet
	case string(OpDelete):
		return OpDelete
	}
	return Op(s)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (invalid UTF-8 becomes U+FFFD); for replies built by hand.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s to b as a JSON string, escaped as encoding/json
// escapes it (without the HTML escapes): '"', '\\', control characters,
// U+2028 and U+2029; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; ; {
		i = plainPrefix(s, i)
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
