package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"raftkv/src/raft"
)

// The handshake opens every connection. The dialer writes
//
//	magic "RKVT" | version byte | uint16 body length (big endian) | body
//	body: ClusterID bytes | sender ID varint | sender name bytes | receiver ID varint
//
// (bytes = uvarint length + content), and the acceptor answers with one
// status byte: 0 = accepted, anything else = rejected, followed by a one-byte
// length and a short reason, after which the acceptor closes the connection.
// After an accepted handshake only frames flow, dialer to acceptor:
//
//	uint32 payload length (big endian) | payload (one message, see codec.go)
//
// The receiver ID lets the acceptor refuse a connection meant for another
// node (a stale address in a hostfile, a reused container IP).

const (
	protocolVersion = 1
	maxHelloBody    = 1024 // bounds ClusterID + name
	maxNameLen      = 255

	ackOK     = 0
	ackReject = 1
)

var magic = [4]byte{'R', 'K', 'V', 'T'}

var (
	errBadMagic = errors.New("transport: not a raftkv peer connection (bad magic)")
	errVersion  = errors.New("transport: unsupported protocol version")
	// ErrRejected is wrapped by the error a dialer gets when the acceptor
	// refuses its handshake.
	ErrRejected = errors.New("transport: handshake rejected")
)

// hello is the dialer's side of the handshake.
type hello struct {
	ClusterID string
	From      raft.ID
	FromName  string
	To        raft.ID
}

func appendHello(buf []byte, h hello) []byte {
	buf = append(buf, magic[:]...)
	buf = append(buf, protocolVersion, 0, 0)
	start := len(buf)
	buf = appendString(buf, h.ClusterID)
	buf = binary.AppendVarint(buf, int64(h.From))
	buf = appendString(buf, h.FromName)
	buf = binary.AppendVarint(buf, int64(h.To))
	binary.BigEndian.PutUint16(buf[start-2:start], uint16(len(buf)-start))
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// readHello reads and parses a hello. It reads at most 7+maxHelloBody bytes.
func readHello(r io.Reader) (hello, error) {
	var hdr [7]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return hello{}, fmt.Errorf("read handshake header: %w", err)
	}
	if [4]byte(hdr[:4]) != magic {
		return hello{}, errBadMagic
	}
	if hdr[4] != protocolVersion {
		return hello{}, fmt.Errorf("%w %d (want %d)", errVersion, hdr[4], protocolVersion)
	}
	n := int(binary.BigEndian.Uint16(hdr[5:7]))
	if n > maxHelloBody {
		return hello{}, fmt.Errorf("handshake body of %d bytes exceeds %d", n, maxHelloBody)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return hello{}, fmt.Errorf("read handshake body: %w", err)
	}
	d := decoder{b: body}
	var h hello
	h.ClusterID = d.string("cluster id")
	h.From = d.id("sender id")
	h.FromName = d.string("sender name")
	h.To = d.id("receiver id")
	if d.err == nil && len(d.b) != 0 {
		d.fail("handshake", "trailing bytes")
	}
	if d.err != nil {
		return hello{}, d.err
	}
	return h, nil
}

func (d *decoder) string(field string) string {
	n := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(field, "length exceeds the bytes left")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// appendAck encodes the acceptor's answer; reason "" means accepted.
func appendAck(buf []byte, reason string) []byte {
	if reason == "" {
		return append(buf, ackOK)
	}
	if len(reason) > maxNameLen {
		reason = reason[:maxNameLen]
	}
	buf = append(buf, ackReject, byte(len(reason)))
	return append(buf, reason...)
}

// readAck returns nil when the acceptor accepted, an error wrapping
// ErrRejected (with the acceptor's reason) when it refused.
func readAck(r io.Reader) error {
	var st [1]byte
	if _, err := io.ReadFull(r, st[:]); err != nil {
		return fmt.Errorf("read handshake answer: %w", err)
	}
	if st[0] == ackOK {
		return nil
	}
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("%w (no reason: %v)", ErrRejected, err)
	}
	reason := make([]byte, n[0])
	if _, err := io.ReadFull(r, reason); err != nil {
		return fmt.Errorf("%w (truncated reason: %v)", ErrRejected, err)
	}
	return fmt.Errorf("%w: %s", ErrRejected, reason)
}
