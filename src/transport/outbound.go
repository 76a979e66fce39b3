package transport

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"raftkv/src/raft"
)

const (
	writeBufSize = 64 << 10
	// writeChunk bounds one conn.Write so that the write deadline measures
	// progress, not the time to push a whole snapshot.
	writeChunk = 1 << 20
	// keepScratch: an encoding buffer grown past this (by a snapshot) is
	// released after use rather than kept for the life of the connection.
	keepScratch = 1 << 20
)

var errPeerClosed = errors.New("peer closed the connection")

// runPeer owns the outbound stream to p: dial, handshake, stream until an
// error, back off, dial again (calling p.addr() again), until Close.
func (t *Transport) runPeer(p *peer) {
	defer t.wg.Done()
	backoff := t.backoffMin
	failures := 0
	everConnected := false
	for t.ctx.Err() == nil {
		conn, err := t.dial(p)
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			failures++
			p.dialFails.Add(1)
			// An unreachable peer gets no stale backlog: Raft resends what
			// matters, and fresh messages should not queue behind old ones.
			dropped := p.discard()
			p.dropped.Add(uint64(dropped))
			fields := []zap.Field{zap.Error(err), zap.Int("attempt", failures), zap.Int("dropped", dropped)}
			if failures == 1 {
				p.lg.Warn("peer unreachable, retrying", fields...)
			} else {
				p.lg.Debug("peer still unreachable", fields...)
			}
			if !t.wait(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, t.backoffMax)
			continue
		}

		if everConnected {
			p.reconnects.Add(1)
		}
		everConnected = true
		p.lg.Info("connected to peer", zap.String("addr", conn.RemoteAddr().String()), zap.Int("failed_attempts", failures))
		failures = 0
		p.connected.Store(true)
		began := time.Now()
		err = t.stream(p, conn)
		p.connected.Store(false)
		p.mu.Lock()
		p.conn = nil
		p.mu.Unlock()
		_ = conn.Close()
		if t.ctx.Err() != nil {
			return
		}
		p.lg.Warn("lost connection to peer", zap.Error(err), zap.Duration("after", time.Since(began)))
		// A stream that lasted resets the backoff; one that dies at once
		// (a peer that accepts and then closes) keeps doubling it.
		if time.Since(began) > t.backoffMax {
			backoff = t.backoffMin
		}
		if !t.wait(jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, t.backoffMax)
	}
}

// jitter spreads d over [0.75d, 1.25d) so that nodes do not redial in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d*3/4 + rand.N(d/2+1)
}

// dial connects to p.addr(), sends the hello and waits for the answer.
func (t *Transport) dial(p *peer) (net.Conn, error) {
	addr := p.addr()
	d := net.Dialer{Timeout: t.dialTimeout, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// Go sets this by default; say it, since batching is ours to do.
		_ = tc.SetNoDelay(true)
	}
	tuneConn(conn)
	p.mu.Lock()
	if t.ctx.Err() != nil {
		p.mu.Unlock()
		_ = conn.Close()
		return nil, ErrClosed
	}
	p.conn = conn // from here Close can unblock us
	p.mu.Unlock()

	fail := func(err error) (net.Conn, error) {
		p.mu.Lock()
		p.conn = nil
		p.mu.Unlock()
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(t.handshakeTimeout))
	// rw is the stream: conn, or TLS over it. p.conn stays the raw conn,
	// whose Close unblocks a TLS write too.
	rw := conn
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			return fail(fmt.Errorf("TLS handshake with %s (%s): %w", p.name, addr, err))
		}
		rw = tc
	}
	h := hello{ClusterID: t.cfg.ClusterID, From: t.cfg.Self, FromName: t.cfg.SelfName, To: p.id}
	if _, err := rw.Write(appendHello(nil, h)); err != nil {
		return fail(fmt.Errorf("handshake with %s: %w", addr, err))
	}
	if err := readAck(rw); err != nil {
		return fail(fmt.Errorf("handshake with %s: %w", addr, err))
	}
	_ = conn.SetDeadline(time.Time{})
	return rw, nil
}

// stream writes p's queue to conn until an error, the peer closing, or Close.
func (t *Transport) stream(p *peer, conn net.Conn) error {
	// The acceptor never writes after its handshake answer, so a read that
	// returns at all means the peer closed or reset the connection: notice it
	// now rather than on the next write, which would lose that message.
	dead := make(chan struct{})
	t.wg.Add(1) // safe: runPeer's own count keeps the group above zero
	go func() {
		defer t.wg.Done()
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(dead)
	}()

	bw := bufio.NewWriterSize(deadlineWriter{conn, t.writeTimeout}, writeBufSize)
	var frame []byte
	for {
		select {
		case <-t.ctx.Done():
			return nil
		case <-dead:
			return errPeerClosed
		case <-p.signal:
		}
		var pendMsgs, pendBytes int
		// Drain the queue until it stays empty, then flush once: under load
		// many messages share one write syscall.
		for batch := p.take(); len(batch) > 0; batch = p.take() {
			for i := range batch {
				m := &batch[i]
				size := EncodedSize(m)
				if size > t.cfg.MaxFrame {
					p.dropped.Add(1)
					p.lg.Error("message larger than MaxFrame dropped",
						zap.Stringer("msg", m), zap.Int("size", size), zap.Int("max_frame", t.cfg.MaxFrame))
					continue
				}
				frame = append(frame[:0], 0, 0, 0, 0)
				frame = AppendMessage(frame, m)
				binary.BigEndian.PutUint32(frame[:4], uint32(len(frame)-4))
				if _, err := bw.Write(frame); err != nil {
					p.dropped.Add(uint64(pendMsgs + len(batch) - i))
					p.recycle(batch)
					return err
				}
				pendMsgs++
				pendBytes += len(frame)
			}
			p.recycle(batch)
			if cap(frame) > keepScratch {
				frame = nil
			}
		}
		if pendMsgs == 0 {
			continue
		}
		if err := bw.Flush(); err != nil {
			p.dropped.Add(uint64(pendMsgs))
			return err
		}
		p.msgsSent.Add(uint64(pendMsgs))
		p.bytesSent.Add(uint64(pendBytes))
		if ce := p.lg.Check(zapcore.DebugLevel, "sent"); ce != nil {
			ce.Write(zap.Int("messages", pendMsgs), zap.Int("bytes", pendBytes))
		}
	}
}

// take removes and returns everything queued for p.
func (p *peer) take() []raft.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.queue
	if len(b) == 0 {
		return nil
	}
	p.queue = p.spare
	p.spare = nil
	return b
}

// recycle keeps a drained batch's array for the next swap.
func (p *peer) recycle(b []raft.Message) {
	clear(b) // release entries and snapshots to the GC
	p.mu.Lock()
	if p.spare == nil && cap(b) <= 2*p.qcap {
		p.spare = b[:0]
	}
	p.mu.Unlock()
}

// discard empties p's queue and returns how many messages it held.
func (p *peer) discard() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	clear(p.queue)
	p.queue = p.queue[:0]
	return n
}

// deadlineWriter gives every chunk of a write writeTimeout to complete, so a
// peer that stops reading cannot hang the writer forever.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), writeChunk)
		_ = w.c.SetWriteDeadline(time.Now().Add(w.timeout))
		m, err := w.c.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}
