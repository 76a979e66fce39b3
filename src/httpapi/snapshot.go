package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"raftkv/src/backup"
	"raftkv/src/node"
	"raftkv/src/raft"
)

// GET /v1/snapshot streams a consistent copy of the state machine from the
// leader (`raftkv snapshot save`). The answer's headers carry the copy's
// log position and key count, its trailers the checksum of package backup
// (over index, term, keys and the bytes) and the size, so the saver checks
// what it got end to end:
//
//	Raft-Snapshot-Index, Raft-Snapshot-Term, Raft-Snapshot-Keys   (headers)
//	Raft-Snapshot-Sha256, Raft-Snapshot-Size                      (trailers)
//	Raft-Snapshot-Error                                           (trailer, when encoding failed)
//
// Only the leader serves it (a follower answers 503 naming the leader in
// Raft-Leader): forwarding would cut a large stream at the forwarding
// timeout and drop the trailers.

// Snapshot headers and trailers.
const (
	SnapshotIndexHeader  = "Raft-Snapshot-Index"
	SnapshotTermHeader   = "Raft-Snapshot-Term"
	SnapshotKeysHeader   = "Raft-Snapshot-Keys"
	SnapshotSumTrailer   = "Raft-Snapshot-Sha256"
	SnapshotSizeTrailer  = "Raft-Snapshot-Size"
	SnapshotErrorTrailer = "Raft-Snapshot-Error"
)

// snapshotWriteSlack is how long one write of the stream may take: the
// server's WriteTimeout bounds a whole answer (40 s), too short for a
// large state over a slow link, so the stream pushes its deadline forward
// as it makes progress instead.
const snapshotWriteSlack = 30 * time.Second

func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if st := s.rt.Status(); st.Role != raft.RoleLeader {
		writeError(w, http.StatusServiceUnavailable, "not the leader: the leader serves snapshots (see Raft-Leader)")
		return
	}
	timer := startTimer(s.cfg.RequestTimeout)
	defer stopTimer(timer)
	b, err := s.rt.Backup(timer.C)
	switch {
	case errors.Is(err, node.ErrNotLeader):
		writeError(w, http.StatusServiceUnavailable, "not the leader any more: the leader serves snapshots (see Raft-Leader)")
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "no consistent snapshot: "+err.Error())
		return
	}
	h := w.Header()
	h.Set(SnapshotIndexHeader, strconv.FormatUint(b.Index, 10))
	h.Set(SnapshotTermHeader, strconv.FormatUint(b.Term, 10))
	h.Set(SnapshotKeysHeader, strconv.Itoa(b.Keys))
	h.Set("Trailer", SnapshotSumTrailer+", "+SnapshotSizeTrailer+", "+SnapshotErrorTrailer)
	h["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	sum := backup.NewHash(b.Index, b.Term, b.Keys)
	out := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	start := time.Now()
	if err := b.Encode(io.MultiWriter(out, sum)); err != nil {
		h.Set(SnapshotErrorTrailer, err.Error())
		s.lg.Warn("snapshot stream failed", zap.Error(err))
		return
	}
	h.Set(SnapshotSumTrailer, backup.HexSum(sum))
	h.Set(SnapshotSizeTrailer, strconv.FormatInt(out.n, 10))
	s.lg.Info("snapshot served", zap.Uint64("index", b.Index), zap.Int64("bytes", out.n), zap.Duration("took", time.Since(start)))
}

// deadlineWriter pushes the connection's write deadline forward by
// snapshotWriteSlack before a write, at most once a second.
type deadlineWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	n    int64
	last time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.last) > time.Second {
		d.rc.SetWriteDeadline(now.Add(snapshotWriteSlack))
		d.last = now
	}
	n, err := d.w.Write(p)
	d.n += int64(n)
	return n, err
}
