package client

// Watches, blocking reads and leases (issue 16).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"raftkv/src/api"
)

// PutOptions are the conditions and the lease of PutWith.
type PutOptions struct {
	// CAS, when set, writes only if the key's mod_index is *CAS (0: absent).
	CAS *uint64
	// Lease attaches the key to a lease (0: none; a put without a lease
	// detaches the key from its lease).
	Lease uint64
}

// PutWith sets key to value with o's condition and lease; a failed
// compare is a *CASError, an unknown lease ErrLeaseNotFound.
func (c *Client) PutWith(ctx context.Context, key, value string, o PutOptions) (Result, error) {
	q := url.Values{}
	if o.CAS != nil {
		q.Set("cas", strconv.FormatUint(*o.CAS, 10))
	}
	if o.Lease != 0 {
		q.Set("lease", strconv.FormatUint(o.Lease, 10))
	}
	return c.write(ctx, http.MethodPut, key, q.Encode(), value)
}

// WaitEntry is a blocking read: it waits until key changes past index (or
// wait passes), then reads it. Result.RaftIndex is the index to wait past
// next. ErrNotFound when the key is absent then.
func (c *Client) WaitEntry(ctx context.Context, key string, index uint64, wait time.Duration) (api.ValueBody, Result, error) {
	if key == "" {
		return api.ValueBody{}, Result{}, &BadRequestError{Msg: "key is empty"}
	}
	var body api.ValueBody
	q := fmt.Sprintf("index=%d&wait=%s", index, wait)
	res, err := c.do(ctx, request{method: http.MethodGet, path: kvPath(key), query: q, timeout: wait + c.cfg.RequestTimeout}, &body)
	return body, res, err
}

// LeaseGrant grants a lease of ttl (1s to 24h).
func (c *Client) LeaseGrant(ctx context.Context, ttl time.Duration) (api.LeaseBody, Result, error) {
	b, _ := json.Marshal(api.LeaseGrantRequest{TTL: ttl.String()})
	var body api.LeaseBody
	res, err := c.writeReq(ctx, request{method: http.MethodPost, path: "/v1/lease", body: string(b)}, &body)
	res.Index = body.Index
	return body, res, err
}

// LeaseKeepAlive renews lease id for its TTL, counted (safely) from when
// this call started. ErrLeaseNotFound: it expired or was revoked.
func (c *Client) LeaseKeepAlive(ctx context.Context, id uint64) (api.LeaseBody, Result, error) {
	var body api.LeaseBody
	res, err := c.writeReq(ctx, request{method: http.MethodPut, path: fmt.Sprintf("/v1/lease/%d/keepalive", id)}, &body)
	res.Index = body.Index
	return body, res, err
}

// LeaseRevoke ends lease id now and deletes its keys; it returns how many.
func (c *Client) LeaseRevoke(ctx context.Context, id uint64) (int, Result, error) {
	var body api.DeleteBody
	res, err := c.writeReq(ctx, request{method: http.MethodDelete, path: fmt.Sprintf("/v1/lease/%d", id)}, &body)
	res.Index = body.Index
	return body.Deleted, res, err
}

// LeaseList lists the live leases with their keys (linearizable).
func (c *Client) LeaseList(ctx context.Context) ([]api.LeaseBody, Result, error) {
	var body api.LeaseListBody
	res, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/lease"}, &body)
	return body.Leases, res, err
}

// CompactedError is Watch's error when no node's history holds every
// change after the index the watch asked for. Read the keys afresh and
// watch from that read's index.
type CompactedError struct {
	Since  uint64
	Oldest uint64 // the highest oldest index the nodes named
	Msg    string
}

func (e *CompactedError) Error() string { return "client: watch: " + e.Msg }

// Watch streams every change of the keys under prefix above index since,
// in log order, each exactly once, to fn, until ctx ends or fn returns an
// error (Watch returns it). When the node it reads from fails or cancels
// the stream, Watch resumes on the next node from the last index it
// delivered whole, skipping what it delivered of a later index, so nothing
// is lost or doubled. It returns a *CompactedError when no node still has
// the history it needs.
func (c *Client) Watch(ctx context.Context, prefix string, since uint64, fn func(api.WatchEvent) error) error {
	st := watchState{done: since}
	target := c.first()
	compacted := map[int]*CompactedError{}
	for n := 0; ; n++ {
		if n > 0 {
			if err := c.backoff(ctx, min(n, 4)); err != nil {
				return err
			}
		}
		err := c.watchOnce(ctx, c.cfg.Endpoints[target], prefix, &st, fn)
		var ce *CompactedError
		sw, stop := err.(stopWatch)
		switch {
		case stop:
			return sw.err
		case errors.As(err, &ce):
			compacted[target] = ce
			if len(compacted) == len(c.cfg.Endpoints) {
				return ce
			}
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			clear(compacted)
		}
		c.lg.Warn("watch interrupted, resuming on the next node", zap.String("endpoint", c.cfg.Endpoints[target]),
			zap.Uint64("since", st.done), zap.Error(err))
		target = (target + 1) % len(c.cfg.Endpoints)
	}
}

// watchState is what a watch delivered: every change up to done, and seen
// changes of index cur (whose rest may be still to come).
type watchState struct {
	done, cur uint64
	seen      int
}

// stopWatch ends a watch without a retry: the callback's error, or a
// request the nodes refuse (4xx).
type stopWatch struct{ err error }

func (e stopWatch) Error() string { return e.err.Error() }

// testHookResumeFromCur (tests only) plants a bug: a stream resumes after
// the index it was in the middle of, rather than after the last whole one,
// losing that index's undelivered changes (watch_test.go catches it).
var testHookResumeFromCur bool

// watchOnce runs one stream from st.done; it returns why it ended.
func (c *Client) watchOnce(ctx context.Context, endpoint, prefix string, st *watchState, fn func(api.WatchEvent) error) error {
	u := url.URL{Scheme: c.scheme, Host: endpoint}
	since := st.done
	if testHookResumeFromCur {
		since = max(st.cur, st.done)
	}
	full := fmt.Sprintf("%s/v1/watch/%s?since=%d", u.String(), url.PathEscape(prefix), since)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, full, nil)
	if err != nil {
		return err
	}
	if c.authz != nil {
		req.Header["Authorization"] = c.authz
	}
	// An answer must start within the request timeout; the stream may then
	// idle, but a line (at least a progress line) comes every 15 s.
	timer := time.AfterFunc(c.cfg.RequestTimeout, cancel)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	timer.Stop()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusGone:
		var cb api.CompactedBody
		json.NewDecoder(resp.Body).Decode(&cb)
		return &CompactedError{Since: st.done, Oldest: cb.OldestIndex, Msg: cb.Error}
	default:
		var eb api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		err := &StatusError{Status: resp.StatusCode, Node: resp.Header.Get("Raft-Node"), Msg: eb.Error}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return stopWatch{&BadRequestError{Status: resp.StatusCode, Msg: eb.Error}}
		}
		return err
	}
	// skip: the events of index cur delivered already, which the new
	// stream sends again (since = done < cur).
	skip := st.seen
	idle := time.AfterFunc(time.Minute, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4*api.MaxValueBytes)
	for sc.Scan() {
		idle.Reset(time.Minute)
		var e api.WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("watch %s: bad line: %w", endpoint, err)
		}
		switch e.Type {
		case "progress":
			if e.Index > st.cur {
				st.done, st.cur, st.seen, skip = e.Index, e.Index, 0, 0
			}
			continue
		case api.EventCancelled:
			return fmt.Errorf("watch on %s cancelled: %s", endpoint, e.Reason)
		}
		switch {
		case e.Index < st.cur:
			return fmt.Errorf("watch %s: index %d after %d: out of order", endpoint, e.Index, st.cur)
		case e.Index == st.cur && skip > 0:
			skip--
			continue
		case e.Index > st.cur:
			if st.cur > 0 {
				st.done = st.cur
			}
			st.cur, st.seen, skip = e.Index, 0, 0
		}
		st.seen++
		if err := fn(e); err != nil {
			return stopWatch{err}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch %s: %w", endpoint, err)
	}
	return fmt.Errorf("watch %s: the stream ended", endpoint)
}
