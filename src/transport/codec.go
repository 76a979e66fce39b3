package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"raftkv/src/raft"
)

// The wire form of one raft.Message (the payload of one frame):
//
//	type      byte      (non-zero)
//	flags     byte      bit0 Reject, bit1 Force, bit2 Snapshot present,
//	                    bit3 Incarnation present, bit4 Snapshot.Membership present,
//	                    bit5 Rejoin;
//	                    other bits must be 0
//	From, To  varint    (zig-zag, so raft.None = -1 is one byte)
//	Term, LogTerm, Index, Commit, RejectHint, Context   uvarint
//	Incarnation (if flag) uvarint
//	Entries   slice     each: Term uvarint, Index uvarint, Type byte, Data bytes
//	Snapshot  (if flag) Index uvarint, Term uvarint, Peers: count + varint each, Data bytes,
//	          then (if flag) Membership bytes (raft.EncodeMembership)
//
// Incarnation 0 and a snapshot without a Membership (a cluster that
// predates configurations in the log) set no new flag, so such a node's
// messages read the same as before the flags existed.
//
// A "slice" or "bytes" length is written as uvarint(n+1), with 0 meaning nil,
// so that nil and empty survive a round trip unchanged.
//
// Every decoded length is bounded by the bytes that remain in the payload
// before anything is allocated, so a hostile length cannot make the decoder
// allocate more than a small multiple of the frame it was given.

const (
	flagReject      = 1 << 0
	flagForce       = 1 << 1
	flagSnapshot    = 1 << 2
	flagIncarnation = 1 << 3
	flagMembership  = 1 << 4
	flagRejoin      = 1 << 5
	flagsKnown      = flagReject | flagForce | flagSnapshot | flagIncarnation | flagMembership | flagRejoin

	// minEntrySize is the fewest bytes one encoded entry takes:
	// Term, Index, Type and the Data length, one byte each.
	minEntrySize = 4
)

// ErrDecode is wrapped by every error DecodeMessage returns.
var ErrDecode = errors.New("transport: malformed message")

// AppendMessage appends the binary encoding of m to buf and returns the
// extended buffer. It never fails: every raft.Message has an encoding.
func AppendMessage(buf []byte, m *raft.Message) []byte {
	var flags byte
	if m.Reject {
		flags |= flagReject
	}
	if m.Force {
		flags |= flagForce
	}
	if m.Rejoin {
		flags |= flagRejoin
	}
	if m.Snapshot != nil {
		flags |= flagSnapshot
		if m.Snapshot.Membership != nil {
			flags |= flagMembership
		}
	}
	if m.Incarnation != 0 {
		flags |= flagIncarnation
	}
	buf = append(buf, byte(m.Type), flags)
	buf = binary.AppendVarint(buf, int64(m.From))
	buf = binary.AppendVarint(buf, int64(m.To))
	buf = binary.AppendUvarint(buf, m.Term)
	buf = binary.AppendUvarint(buf, m.LogTerm)
	buf = binary.AppendUvarint(buf, m.Index)
	buf = binary.AppendUvarint(buf, m.Commit)
	buf = binary.AppendUvarint(buf, m.RejectHint)
	buf = binary.AppendUvarint(buf, m.Context)
	if m.Incarnation != 0 {
		buf = binary.AppendUvarint(buf, uint64(m.Incarnation))
	}

	buf = appendLen(buf, m.Entries == nil, len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		buf = binary.AppendUvarint(buf, e.Term)
		buf = binary.AppendUvarint(buf, e.Index)
		buf = append(buf, byte(e.Type))
		buf = appendBytes(buf, e.Data)
	}

	if s := m.Snapshot; s != nil {
		buf = binary.AppendUvarint(buf, s.Index)
		buf = binary.AppendUvarint(buf, s.Term)
		buf = appendLen(buf, s.Peers == nil, len(s.Peers))
		for _, id := range s.Peers {
			buf = binary.AppendVarint(buf, int64(id))
		}
		buf = appendBytes(buf, s.Data)
		if s.Membership != nil {
			buf = appendBytes(buf, raft.EncodeMembership(*s.Membership))
		}
	}
	return buf
}

// EncodedSize returns len(AppendMessage(nil, m)) without encoding; it is an
// upper bound used to size buffers, exact for the current format.
func EncodedSize(m *raft.Message) int {
	n := 2 + varintLen(int64(m.From)) + varintLen(int64(m.To)) +
		uvarintLen(m.Term) + uvarintLen(m.LogTerm) + uvarintLen(m.Index) +
		uvarintLen(m.Commit) + uvarintLen(m.RejectHint) + uvarintLen(m.Context)
	if m.Incarnation != 0 {
		n += uvarintLen(uint64(m.Incarnation))
	}
	n += uvarintLen(uint64(len(m.Entries)) + 1)
	for i := range m.Entries {
		e := &m.Entries[i]
		n += uvarintLen(e.Term) + uvarintLen(e.Index) + 1 +
			uvarintLen(uint64(len(e.Data))+1) + len(e.Data)
	}
	if s := m.Snapshot; s != nil {
		n += uvarintLen(s.Index) + uvarintLen(s.Term) + uvarintLen(uint64(len(s.Peers))+1)
		for _, id := range s.Peers {
			n += varintLen(int64(id))
		}
		n += uvarintLen(uint64(len(s.Data))+1) + len(s.Data)
		if s.Membership != nil {
			// Rare (snapshots only): encoding it twice is cheaper than
			// keeping a second encoder exact.
			k := len(raft.EncodeMembership(*s.Membership))
			n += uvarintLen(uint64(k)+1) + k
		}
	}
	return n
}

// DecodeMessage decodes one message encoded by AppendMessage. The whole of b
// must be one message: trailing bytes are an error. It never panics, and it
// allocates at most a small multiple of len(b) whatever b holds.
//
// The returned message's byte slices (Entry.Data, Snapshot.Data) alias b, so
// b must not be modified or reused while the message is in use.
func DecodeMessage(b []byte) (raft.Message, error) {
	d := decoder{b: b}
	var m raft.Message
	typ := d.byte("type")
	flags := d.byte("flags")
	if d.err == nil {
		if typ == 0 {
			d.fail("type", "zero message type")
		} else if flags&^flagsKnown != 0 {
			d.fail("flags", fmt.Sprintf("unknown flag bits %#x", flags))
		}
	}
	m.Type = raft.MessageType(typ)
	m.Reject = flags&flagReject != 0
	m.Force = flags&flagForce != 0
	m.Rejoin = flags&flagRejoin != 0
	m.From = d.id("from")
	m.To = d.id("to")
	m.Term = d.uvarint("term")
	m.LogTerm = d.uvarint("log_term")
	m.Index = d.uvarint("index")
	m.Commit = d.uvarint("commit")
	m.RejectHint = d.uvarint("reject_hint")
	m.Context = d.uvarint("context")
	if flags&flagIncarnation != 0 {
		m.Incarnation = raft.Incarnation(d.uvarint("incarnation"))
		if m.Incarnation == 0 && d.err == nil {
			d.fail("incarnation", "flagged but zero")
		}
	}
	if flags&flagMembership != 0 && flags&flagSnapshot == 0 && d.err == nil {
		d.fail("flags", "membership without a snapshot")
	}

	if n, isNil := d.length("entries", minEntrySize); !isNil && d.err == nil {
		m.Entries = make([]raft.Entry, n)
		for i := range m.Entries {
			e := &m.Entries[i]
			e.Term = d.uvarint("entry term")
			e.Index = d.uvarint("entry index")
			e.Type = raft.EntryType(d.byte("entry type"))
			e.Data = d.bytes("entry data")
			if d.err != nil {
				break
			}
		}
	}

	if flags&flagSnapshot != 0 && d.err == nil {
		s := &raft.Snapshot{}
		s.Index = d.uvarint("snapshot index")
		s.Term = d.uvarint("snapshot term")
		if n, isNil := d.length("snapshot peers", 1); !isNil && d.err == nil {
			s.Peers = make([]raft.ID, n)
			for i := range s.Peers {
				s.Peers[i] = d.id("snapshot peer")
			}
		}
		s.Data = d.bytes("snapshot data")
		if flags&flagMembership != 0 && d.err == nil {
			b := d.bytes("snapshot membership")
			if d.err == nil {
				if mb, err := raft.DecodeMembership(b); err != nil {
					d.fail("snapshot membership", err.Error())
				} else {
					s.Membership = &mb
				}
			}
		}
		m.Snapshot = s
	}

	if d.err == nil && len(d.b) != 0 {
		d.fail("end", fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return raft.Message{}, d.err
	}
	return m, nil
}

// decoder reads fields from b; the first failure sticks in err and every
// later read returns a zero value, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrDecode, field, why)
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "unexpected end")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		if n == 0 {
			d.fail(field, "unexpected end")
		} else {
			d.fail(field, "varint overflows 64 bits")
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) id(field string) raft.ID {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		if n == 0 {
			d.fail(field, "unexpected end")
		} else {
			d.fail(field, "varint overflows 64 bits")
		}
		return 0
	}
	if v < math.MinInt || v > math.MaxInt {
		d.fail(field, "node ID out of range")
		return 0
	}
	d.b = d.b[n:]
	return raft.ID(v)
}

// length reads a slice length written as n+1 (0 = nil) and checks that n
// elements of at least minSize bytes each fit in what remains.
func (d *decoder) length(field string, minSize int) (n int, isNil bool) {
	v := d.uvarint(field)
	if d.err != nil {
		return 0, true
	}
	if v == 0 {
		return 0, true
	}
	v--
	if v > uint64(len(d.b)/minSize) {
		d.fail(field, fmt.Sprintf("length %d exceeds the %d bytes left", v, len(d.b)))
		return 0, true
	}
	return int(v), false
}

func (d *decoder) bytes(field string) []byte {
	n, isNil := d.length(field, 1)
	if isNil || d.err != nil {
		return nil
	}
	// Full slice expression: a caller appending to Data must not overwrite
	// the bytes that follow it in the frame.
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func appendLen(buf []byte, isNil bool, n int) []byte {
	if isNil {
		return append(buf, 0)
	}
	return binary.AppendUvarint(buf, uint64(n)+1)
}

func appendBytes(buf []byte, p []byte) []byte {
	buf = appendLen(buf, p == nil, len(p))
	return append(buf, p...)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}
