package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"raftkv/src/api"
)

// Histograms record microseconds, 1 µs to 5 min, 3 significant digits.
const (
	histMin    = 1
	histMax    = int64(5 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// leaderFinder knows the nodes' names and which one leads.
type leaderFinder struct {
	endpoints []string
	client    *http.Client
	auth      Auth

	mu      sync.Mutex
	byName  map[string]string // node name -> endpoint
	current string            // endpoint requests go to
	leader  string            // its name, "" when unknown
	checked time.Time
	busy    bool // a refresh is under way
}

// refresh asks every endpoint for its status and points the clients at the
// leader (by its name from Raft-Leader). Calls closer than 100 ms apart are
// coalesced. Without a known leader it keeps the first endpoint that
// answers: a follower forwards to the leader.
func (f *leaderFinder) refresh(ctx context.Context) error {
	f.mu.Lock()
	if f.busy || (time.Since(f.checked) < 100*time.Millisecond && f.current != "") {
		f.mu.Unlock()
		return nil
	}
	f.busy, f.checked = true, time.Now()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.busy = false
		f.mu.Unlock()
	}()
	leader, answered := "", ""
	names := map[string]string{}
	var lastErr error
	for _, ep := range f.endpoints {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.auth.url(ep, "/v1/status"), nil)
		f.auth.authorize(req)
		resp, err := f.client.Do(req)
		if err != nil {
			cancel()
			lastErr = err
			continue
		}
		var st api.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		cancel()
		if err != nil {
			lastErr = fmt.Errorf("status of %s: %w", ep, err)
			continue
		}
		if answered == "" {
			answered = ep
		}
		names[st.Name] = ep
		if l := resp.Header.Get("Raft-Leader"); l != "" {
			leader = l
		} else if st.Leader != "" {
			leader = st.Leader
		}
	}
	if answered == "" {
		return fmt.Errorf("no node answered at %v: %w", f.endpoints, lastErr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, ep := range names {
		f.byName[n] = ep
	}
	f.leader = leader
	if ep, ok := f.byName[leader]; ok {
		f.current = ep
	} else if f.current == "" {
		f.current = answered
	}
	return nil
}

// knows reports whether name is a node with a known endpoint.
func (f *leaderFinder) knows(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.byName[name]
	return ok
}

func (f *leaderFinder) target() (endpoint, leader string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current, f.leader
}

// worker is one client: its own connection, histograms, error counts and
// session.
type worker struct {
	id       int
	clientID string
	seq      uint64
	conn     *httpConn
	req      request // reused: a request allocates nothing
	rng      *rand.Rand
	value    []byte
	hist     [numOps]*hdrhistogram.Histogram
	all      *hdrhistogram.Histogram
	ok       [numOps]uint64
	notFound uint64
	errs     map[string]uint64
}

// Run benchmarks the cluster with opts. progress, when not nil, gets a
// progress bar redrawn in place (a terminal). It fails only when no node
// answers at the start; request errors are counted in the report.
func Run(ctx context.Context, opts Options, progress io.Writer) (*Report, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.Auth = opts.Auth.withSessionCache()
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	finder := &leaderFinder{
		endpoints: opts.Endpoints, byName: map[string]string{},
		client: &http.Client{Transport: opts.Auth.transport(4)}, auth: opts.Auth,
	}
	if err := finder.refresh(ctx); err != nil {
		return nil, err
	}
	runID := strconv.FormatInt(seed&0xffffffff, 36)
	workers := make([]*worker, opts.Clients)
	for i := range workers {
		rng := rand.New(rand.NewSource(seed + int64(i)*7919))
		w := &worker{
			id: i, clientID: fmt.Sprintf("bench-%s-%d", runID, i),
			rng: rng, value: randomValue(rng, opts.ValSize), all: newHist(), errs: map[string]uint64{},
		}
		for k := range w.hist {
			w.hist[k] = newHist()
		}
		workers[i] = w
	}

	runCtx := ctx
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	for _, w := range workers {
		w.conn = newHTTPConn(runCtx, opts.Auth)
	}
	defer func() {
		for _, w := range workers {
			w.conn.close()
		}
	}()
	var issued, done, failed atomic.Int64
	m := newMix(opts)
	_, leaderName := finder.target()
	start := time.Now()
	stopBar := startProgress(progress, opts, start, &done, &failed)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				if opts.Total > 0 && issued.Add(1) > int64(opts.Total) {
					return
				}
				if !w.one(runCtx, opts, m, finder) {
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()
	return buildReport(opts, workers, elapsed, leaderName), nil
}

// one sends one request on the worker's connection and records it; it
// reports success. In the steady state it allocates nothing.
func (w *worker) one(ctx context.Context, opts Options, m mix, finder *leaderFinder) bool {
	op := m.pick(w.rng)
	r := &w.req
	r.path = appendKey(append(r.path[:0], "/v1/kv/"...), w.rng.Intn(opts.Keys), opts.KeySize)
	ep, _ := finder.target()
	switch op {
	case opPut, opAppend:
		if op == opAppend {
			r.path = append(r.path, "?op=append"...)
		}
		w.seq++
		r.method, r.clientID, r.seq, r.body = http.MethodPut, w.clientID, w.seq, w.value
	case opGet:
		if opts.Consistency == "stale" {
			r.path = append(r.path, "?consistency=stale"...)
		}
		r.method, r.clientID, r.seq, r.body = http.MethodGet, "", 0, nil
	case opList:
		r.path = append(r.path[:len(r.path)-2], "?prefix"...)
		if opts.Consistency == "stale" {
			r.path = append(r.path, "&consistency=stale"...)
		}
		r.method, r.clientID, r.seq, r.body = http.MethodGet, "", 0, nil
	}
	t0 := time.Now()
	// A request ends at its timeout or with the run, whichever is first.
	deadline := t0.Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	status, leader, err := w.conn.do(ep, r, deadline)
	lat := time.Since(t0)
	if err != nil {
		if end, bounded := ctx.Deadline(); ctx.Err() != nil || bounded && !time.Now().Before(end) {
			// The run ended mid-request: neither a success nor an error.
			// (The connection's deadline, set to the run's end, may fire
			// an instant before the context's own timer does.)
			return true
		}
		w.errs[classify(err)]++
		finder.refresh(ctx)
		pause(ctx, 10*time.Millisecond)
		return false
	}
	switch {
	case status == http.StatusOK:
	case status == http.StatusNotFound && op == opGet:
		w.notFound++
	default:
		w.errs[fmt.Sprintf("http %d", status)]++
		if status == http.StatusServiceUnavailable {
			finder.refresh(ctx)
			pause(ctx, 10*time.Millisecond)
		}
		return false
	}
	if leader != "" {
		if _, cur := finder.target(); leader != cur && finder.knows(leader) {
			finder.refresh(ctx)
		}
	}
	us := lat.Microseconds()
	if us < histMin {
		us = histMin
	}
	w.hist[op].RecordValue(us)
	w.all.RecordValue(us)
	w.ok[op]++
	return true
}

// pause waits d or until ctx ends (back-off after an error, so a dead
// leader does not turn the clients into a busy loop).
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// classify names the kind of a transport error for the report.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, new(*net.OpError)):
		return "network error"
	default:
		return "other error"
	}
}
