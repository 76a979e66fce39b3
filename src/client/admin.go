package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// This file holds the operator's requests: a snapshot of the state
// (`raftkv snapshot save`) and a leadership transfer.

// Snapshot headers and trailers of GET /v1/snapshot (see httpapi).
const (
	snapshotIndexHeader  = "Raft-Snapshot-Index"
	snapshotTermHeader   = "Raft-Snapshot-Term"
	snapshotKeysHeader   = "Raft-Snapshot-Keys"
	snapshotSumTrailer   = "Raft-Snapshot-Sha256"
	snapshotSizeTrailer  = "Raft-Snapshot-Size"
	snapshotErrorTrailer = "Raft-Snapshot-Error"
)

// SnapshotInfo describes a snapshot streamed by the leader.
type SnapshotInfo struct {
	Index, Term uint64
	Keys        int
	Node        string // the leader that served it
	// SHA256 and Size are the leader's, from the trailers, known once the
	// stream ended.
	SHA256 string
	Size   int64
}

// Snapshot streams a consistent snapshot of the state machine from the
// leader: it finds the leader (GET /v1/status of every node), asks it for
// GET /v1/snapshot, calls open with what the headers say, and copies the
// state to the writer open returns. The leader's checksum and size are in
// the returned SnapshotInfo: the caller compares them with its own (see
// package backup). ctx bounds the whole transfer.
func (c *Client) Snapshot(ctx context.Context, open func(SnapshotInfo) (io.Writer, error)) (SnapshotInfo, error) {
	var info SnapshotInfo
	endpoint := ""
	for _, st := range c.Statuses(ctx) {
		if st.Reachable && st.Role == "leader" {
			endpoint = st.Endpoint
			break
		}
	}
	if endpoint == "" {
		return info, fmt.Errorf("%w: no node says it leads", ErrUnavailable)
	}
	u := url.URL{Scheme: c.scheme, Host: endpoint, Path: "/v1/snapshot"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return info, err
	}
	if c.authz != nil {
		req.Header["Authorization"] = c.authz
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return info, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	info.Node = resp.Header.Get("Raft-Node")
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return info, fmt.Errorf("%w: %w", ErrUnavailable, &StatusError{Status: resp.StatusCode, Node: info.Node, Msg: errorMessage(data)})
	}
	var perr error
	parse := func(h, v string, dst *uint64) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil && perr == nil {
			perr = fmt.Errorf("bad %s %q from %s", h, v, endpoint)
		}
		*dst = n
	}
	var keys uint64
	parse(snapshotIndexHeader, resp.Header.Get(snapshotIndexHeader), &info.Index)
	parse(snapshotTermHeader, resp.Header.Get(snapshotTermHeader), &info.Term)
	parse(snapshotKeysHeader, resp.Header.Get(snapshotKeysHeader), &keys)
	if perr != nil {
		return info, perr
	}
	info.Keys = int(keys)
	w, err := open(info)
	if err != nil {
		return info, err
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return info, fmt.Errorf("snapshot stream from %s broke: %w", endpoint, err)
	}
	// Trailers are set once the body was read to its end.
	if e := resp.Trailer.Get(snapshotErrorTrailer); e != "" {
		return info, fmt.Errorf("%s failed to encode the snapshot: %s", endpoint, e)
	}
	info.SHA256 = resp.Trailer.Get(snapshotSumTrailer)
	var size uint64
	parse(snapshotSizeTrailer, resp.Trailer.Get(snapshotSizeTrailer), &size)
	if perr != nil || info.SHA256 == "" {
		return info, fmt.Errorf("snapshot stream from %s ended without its checksum trailers (cut short?)", endpoint)
	}
	info.Size = int64(size)
	return info, nil
}

// TransferResult is the answer of a leadership transfer.
type TransferResult struct {
	PreviousLeader string `json:"previous_leader"`
	Leader         string `json:"leader"`
	Transferred    bool   `json:"transferred"`
}

// TransferLeader asks the leader to hand over to the node called to, or
// with to == "" to its most caught-up follower (POST /v1/leader/transfer),
// and returns once another node leads.
func (c *Client) TransferLeader(ctx context.Context, to string) (TransferResult, error) {
	var out TransferResult
	q := ""
	if to != "" {
		q = "to=" + url.QueryEscape(to)
	}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/leader/transfer", query: q}, &out)
	return out, err
}
