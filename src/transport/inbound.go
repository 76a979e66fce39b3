package transport

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	readBufSize = 64 << 10
	// readChunk: a large frame's buffer grows as its bytes arrive, so a
	// peer announcing a big frame and sending little costs little memory.
	readChunk = 1 << 20
)

// inConn is the current inbound stream from one peer.
type inConn struct {
	conn net.Conn
	// closedByUs is set before we close conn (Close, or a newer stream from
	// the same peer), so its end is not reported as the peer's loss.
	closedByUs atomic.Bool
}

// protocolError is a violation by an authenticated peer: the stream is
// dropped and counted, the node carries on.
type protocolError struct{ error }

func (t *Transport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	delay := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and carry on.
			t.lg.Warn("accept failed, retrying", zap.Error(err), zap.Duration("delay", delay))
			if !t.wait(delay) {
				return
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		tuneConn(conn)
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			_ = conn.Close()
			return
		}
		t.pending[conn] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serveInbound(conn)
	}
}

// serveInbound checks the dialer's hello and then reads its frames until the
// stream ends. Nothing a remote sends can do more than close this connection.
func (t *Transport) serveInbound(conn net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.pending, conn)
		t.mu.Unlock()
	}()
	remote := zap.String("remote", conn.RemoteAddr().String())

	_ = conn.SetDeadline(time.Now().Add(t.handshakeTimeout))
	// rw is the stream: conn itself, or TLS over it. conn stays the handle
	// that Close and a newer stream close, which unblocks rw too.
	rw := conn
	var peerCert *x509.Certificate
	if t.serverTLS != nil {
		tc := tls.Server(conn, t.serverTLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			_ = conn.Close()
			t.rejected.Add(1)
			t.refusals.add(handshakeReason(err), "TLS handshake refused, connection dropped", remote, zap.Error(err))
			return
		}
		rw = tc
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			peerCert = certs[0]
		} else {
			t.rejected.Add(1)
			t.refuse(rw, conn, "no client certificate")
			t.refusals.add(ReasonNoCertificate, "peer presented no certificate, connection dropped", remote)
			return
		}
	}
	h, err := readHello(rw)
	if err != nil {
		t.rejected.Add(1)
		if errors.Is(err, errVersion) {
			t.refuse(rw, conn, err.Error())
		} else {
			_ = conn.Close()
		}
		t.refusals.add(ReasonBadHello, "bad handshake, connection dropped", remote, zap.Error(err))
		return
	}
	fields := []zap.Field{remote, zap.String("cluster_id", h.ClusterID),
		zap.Int("sender_id", int(h.From)), zap.String("sender_name", h.FromName), zap.Int("receiver_id", int(h.To))}
	p := t.peerMap()[h.From]
	var reason, label string
	switch {
	case h.ClusterID != t.cfg.ClusterID:
		reason, label = "cluster id mismatch", ReasonClusterID
	case h.From == t.cfg.Self:
		reason, label = "sender claims the receiver's own id", ReasonUnknownSender
	case p == nil:
		reason, label = "unknown sender id", ReasonUnknownSender
	case p.name != h.FromName:
		reason, label = fmt.Sprintf("sender id %d is %q here, not %q", h.From, p.name, h.FromName), ReasonUnknownSender
	case h.To != t.cfg.Self:
		reason, label = fmt.Sprintf("this is node %d (%s), not node %d", t.cfg.Self, t.cfg.SelfName, h.To), ReasonWrongReceiver
	case peerCert != nil && peerCert.VerifyHostname(h.FromName) != nil:
		reason, label = fmt.Sprintf("the certificate (%s) does not name %q", certNames(peerCert), h.FromName), ReasonNameMismatch
	}
	if reason != "" {
		t.rejected.Add(1)
		t.refuse(rw, conn, reason)
		t.refusals.add(label, "handshake refused, connection dropped", append(fields, zap.String("detail", reason))...)
		return
	}
	if _, err := rw.Write(appendAck(nil, "")); err != nil {
		_ = conn.Close()
		t.lg.Warn("handshake answer failed", append(fields, zap.Error(err))...)
		return
	}
	_ = conn.SetDeadline(time.Time{})

	ic := &inConn{conn: conn}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = conn.Close()
		return
	}
	old := t.inbound[p.id]
	t.inbound[p.id] = ic
	delete(t.pending, conn)
	t.mu.Unlock()
	p.inConnected.Store(true)
	if old != nil {
		// One inbound stream per peer: the newer one is the peer's current
		// process or connection; the older one is stale.
		old.closedByUs.Store(true)
		_ = old.conn.Close()
		p.lg.Info("newer inbound connection replaces the old one", remote)
	} else {
		p.lg.Info("peer connected to us", remote)
	}

	err = t.readLoop(p, rw)

	t.mu.Lock()
	if t.inbound[p.id] == ic {
		delete(t.inbound, p.id)
		p.inConnected.Store(false)
	}
	t.mu.Unlock()
	_ = conn.Close()

	var perr protocolError
	switch {
	case ic.closedByUs.Load() || t.ctx.Err() != nil:
		// Replaced or shutting down: not the peer's doing.
	case errors.As(err, &perr):
		t.rejected.Add(1)
		p.rejectedIn.Add(1)
		p.lg.Warn("protocol violation, inbound connection dropped", remote, zap.Error(err))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		p.lg.Info("peer closed its connection to us", remote, zap.Error(err))
		if t.cfg.OnPeerLost != nil {
			t.cfg.OnPeerLost(p.id)
		}
	default:
		p.lg.Warn("inbound connection failed", remote, zap.Error(err))
	}
}

// refuse answers a hello with a rejection over rw (conn, or TLS over it)
// and closes conn.
func (t *Transport) refuse(rw, conn net.Conn, reason string) {
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = rw.Write(appendAck(nil, reason))
	_ = conn.Close()
}

// certNames lists a certificate's DNS names, for a refusal's message.
func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) == 0 {
		return "CN " + c.Subject.CommonName
	}
	return "DNS " + strings.Join(c.DNSNames, ",")
}

// readLoop reads frames from p's stream and delivers them until an error.
func (t *Transport) readLoop(p *peer, conn net.Conn) error {
	br := bufio.NewReaderSize(conn, readBufSize)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if uint64(n) > uint64(t.cfg.MaxFrame) {
			return protocolError{fmt.Errorf("frame of %d bytes exceeds MaxFrame %d", n, t.cfg.MaxFrame)}
		}
		payload, err := readPayload(br, int(n))
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		m, err := DecodeMessage(payload)
		if err != nil {
			return protocolError{err}
		}
		if m.From != p.id {
			return protocolError{fmt.Errorf("message claims to be from node %d on node %d's stream (forged): %v", m.From, p.id, m)}
		}
		if m.To != t.cfg.Self {
			return protocolError{fmt.Errorf("message for node %d arrived at node %d: %v", m.To, t.cfg.Self, m)}
		}
		p.msgsRecv.Add(1)
		p.bytesRecv.Add(uint64(n) + 4)
		if ce := p.lg.Check(zapcore.DebugLevel, "received"); ce != nil {
			ce.Write(zap.Stringer("msg", m))
		}
		t.deliver(m)
	}
}

// readPayload reads exactly n bytes into a new buffer, growing it as bytes
// arrive rather than trusting n up front.
func readPayload(r io.Reader, n int) ([]byte, error) {
	if n <= readChunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b := make([]byte, 0, readChunk)
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(2*cap(b), n))
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}
