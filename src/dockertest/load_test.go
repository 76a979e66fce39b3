package dockertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"raftkv/src/api"
	"raftkv/src/client"
)

// Load is a client of the harness's own that writes for as long as an
// experiment's procedure lasts (the client containers' data files last
// about ten seconds): the Go client, as an application would use it
// (retries on another node, Client-Id and Request-Seq so that a retried
// write is applied once), appending a numbered token to one key per write.
// Its writes join the final check like a client container's: an
// acknowledged token must be in the value once and in order, a failed one
// absent. The nodes are addressed by name ("r0:8000", so that TLS checks
// the certificate against the name) and each connection is dialled to the
// container's current address.
type Load struct {
	h      *Harness
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	ops []Op
}

// StartLoad starts a load client called name over the nodes names; it
// writes one command at a time, pausing the clients' interval between
// two.
func (h *Harness) StartLoad(name string, names []string) *Load {
	creds, err := LoadCreds(h.Repo)
	if err != nil {
		h.Fatalf("load %s: %v", name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = creds.TLS.Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		real, err := h.API.Addr(ctx, host)
		if err != nil {
			return nil, err
		}
		if real == "" {
			return nil, fmt.Errorf("dial %s: the container is not running", host)
		}
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, real)
	}
	endpoints := make([]string, len(names))
	for i, n := range names {
		endpoints[i] = net.JoinHostPort(n, fmt.Sprint(HTTPPort))
	}
	cl, err := client.New(client.Config{Endpoints: endpoints, Names: names, TLS: creds.TLS, Token: creds.Token,
		HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		h.Fatalf("load %s: %v", name, err)
	}
	pause, _ := time.ParseDuration(h.Cfg.Interval)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{h: h, name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer cl.Close()
		key := "load/" + name
		for n := 1; ctx.Err() == nil; n++ {
			value := fmt.Sprintf("%s.%d;", name, n)
			// Each write gets what a client container's command gets
			// (10 s), whatever the load's context does: a write cut short
			// by the end of the load is no failure of the cluster.
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			began := time.Now()
			_, err := cl.Append(wctx, key, value)
			wcancel()
			op := Op{Client: name, Line: n, Kind: api.OpAppend, Key: key, Value: value, Outcome: api.OutcomeOK,
				Start: began.UTC().Format(time.RFC3339Nano), End: time.Now().UTC().Format(time.RFC3339Nano)}
			switch {
			case err == nil:
			case errors.Is(err, client.ErrUnknownOutcome):
				op.Outcome = api.OutcomeUnknown
			default:
				op.Outcome = api.OutcomeError
			}
			l.mu.Lock()
			l.ops = append(l.ops, op)
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}()
	h.Printf("load client %s started: appends to %q through %v, one at a time, every %s (the Go client: retries, exactly-once)", name, "load/"+name, names, h.Cfg.Interval)
	return l
}

// Acked counts the load's acknowledged writes so far.
func (l *Load) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, op := range l.ops {
		if op.Outcome == api.OutcomeOK {
			n++
		}
	}
	return n
}

// Stop ends the load after its write under way and hands its history to
// the final check.
func (l *Load) Stop() ClientHistory {
	l.cancel()
	<-l.done
	l.mu.Lock()
	hist := ClientHistory{Client: l.name, Ops: append([]Op{}, l.ops...)}
	l.mu.Unlock()
	ok, other := 0, 0
	for _, op := range hist.Ops {
		if op.Outcome == api.OutcomeOK {
			ok++
		} else {
			other++
		}
	}
	l.h.mu.Lock()
	l.h.loads = append(l.h.loads, hist)
	l.h.mu.Unlock()
	l.h.Printf("load client %s stopped: %d writes acknowledged, %d failed or of unknown outcome", l.name, ok, other)
	return hist
}
