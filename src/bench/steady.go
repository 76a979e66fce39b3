package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// NodeAddr names a node and its HTTP address.
type NodeAddr struct {
	Name     string
	Endpoint string
}

// Ack is one acknowledged write of a SteadyWriter.
type Ack struct {
	Sent time.Time // when the attempt that succeeded was sent
	At   time.Time // when its 200 arrived
	Node string    // Raft-Node of the response: the node that answered (the leader, when forwarded)
	// FailedBefore is the number of failed attempts before this ack, and
	// FailedKinds those by kind ("connection refused", "http 503", ...).
	FailedBefore int
	FailedKinds  map[string]int
}

// SteadyWriter is the failover probe: a single client with one put in
// flight at a time, a short per-request timeout, and on any error the next
// node in turn. A failed put is retried with the same Client-Id and
// Request-Seq (as a real client does: it is applied at most once).
type SteadyWriter struct {
	nodes   []NodeAddr
	client  *http.Client
	auth    Auth
	value   []byte
	id      string
	keySize int

	mu      sync.Mutex
	acks    []Ack
	errs    int
	kinds   map[string]int // errs by kind
	changed chan struct{}  // closed and replaced at every ack
}

// NewSteadyWriter writes to nodes, starting with nodes[0]; each attempt
// gives up after timeout.
func NewSteadyWriter(nodes []NodeAddr, auth Auth, timeout time.Duration, valSize int) *SteadyWriter {
	tr := auth.transport(4)
	return &SteadyWriter{
		nodes: nodes, client: &http.Client{Transport: tr, Timeout: timeout}, auth: auth,
		value: bytes.Repeat([]byte("w"), valSize), id: fmt.Sprintf("steady-%d", time.Now().UnixNano()),
		keySize: 8, kinds: map[string]int{}, changed: make(chan struct{}),
	}
}

// Run writes until ctx ends.
func (s *SteadyWriter) Run(ctx context.Context) {
	defer s.client.CloseIdleConnections()
	cur, failedInRow := 0, 0
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		key := keyName(int(seq%100000), s.keySize)
		for ctx.Err() == nil {
			sent := time.Now()
			node, leader, err := s.put(ctx, s.nodes[cur].Endpoint, key, seq)
			if err == nil {
				s.record(Ack{Sent: sent, At: time.Now(), Node: node})
				failedInRow = 0
				// Go straight to the leader next time.
				for i, n := range s.nodes {
					if n.Name == leader {
						cur = i
					}
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			s.errs++
			s.kinds[classifyAttempt(err)]++
			s.mu.Unlock()
			cur = (cur + 1) % len(s.nodes)
			if failedInRow++; failedInRow%len(s.nodes) == 0 {
				// Every node refused: no leader yet. Do not spin.
				pause(ctx, 2*time.Millisecond)
			}
		}
	}
}

func (s *SteadyWriter) put(ctx context.Context, ep, key string, seq uint64) (node, leader string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.auth.url(ep, "/v1/kv/"+key), bytes.NewReader(s.value))
	if err != nil {
		return "", "", err
	}
	s.auth.authorize(req)
	req.Header.Set("Client-Id", s.id)
	req.Header.Set("Request-Seq", strconv.FormatUint(seq, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		return "", "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", httpStatusError(resp.StatusCode)
	}
	return resp.Header.Get("Raft-Node"), resp.Header.Get("Raft-Leader"), nil
}

type httpStatusError int

func (e httpStatusError) Error() string { return fmt.Sprintf("HTTP %d", int(e)) }

func classifyAttempt(err error) string {
	var st httpStatusError
	if errors.As(err, &st) {
		return fmt.Sprintf("http %d", int(st))
	}
	return classify(err)
}

func (s *SteadyWriter) record(a Ack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.FailedBefore, a.FailedKinds = s.errs, maps.Clone(s.kinds)
	s.acks = append(s.acks, a)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Acks is the number of acknowledged writes so far.
func (s *SteadyWriter) Acks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks)
}

// WaitAck waits for the first write acknowledged after t by a node other
// than notNode ("" excludes none) and returns it. A response of notNode
// after t can only be one it sent just before it was killed, so it does not
// count.
func (s *SteadyWriter) WaitAck(ctx context.Context, after time.Time, notNode string) (Ack, error) {
	next := 0
	for {
		s.mu.Lock()
		for ; next < len(s.acks); next++ {
			if a := s.acks[next]; a.At.After(after) && (notNode == "" || a.Node != notNode) {
				s.mu.Unlock()
				return a, nil
			}
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Ack{}, errors.New("no write acknowledged before the deadline")
		}
	}
}
