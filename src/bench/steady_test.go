package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"raftkv/src/api"
)

// fakeNode answers every put with 200 and names itself the leader.
func fakeNode(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Raft-Node", name)
		w.Header().Set("Raft-Leader", name)
		w.Write([]byte(`{"index": 1}`))
	}))
}

func TestSteadyWriterFailsOver(t *testing.T) {
	a, b := fakeNode("a"), fakeNode("b")
	defer b.Close()
	nodes := []NodeAddr{
		{"a", strings.TrimPrefix(a.URL, "http://")},
		{"b", strings.TrimPrefix(b.URL, "http://")},
	}
	sw := NewSteadyWriter(nodes, Auth{}, time.Second, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sw.Run(runCtx)
	}()
	defer wg.Wait()
	defer stop()

	first, err := sw.WaitAck(ctx, time.Time{}, "")
	if err != nil || first.Node != "a" {
		t.Fatalf("first ack %+v, %v; want one from a", first, err)
	}
	t0 := time.Now()
	a.CloseClientConnections()
	a.Close() // "kill" a: its connections break, new ones are refused
	ack, err := sw.WaitAck(ctx, t0, "a")
	if err != nil || ack.Node != "b" || !ack.At.After(t0) {
		t.Fatalf("ack after the kill %+v, %v; want one from b after %v", ack, err, t0)
	}
	if sw.Acks() < 2 {
		t.Errorf("Acks() = %d", sw.Acks())
	}
}

func TestSteadyWriterWaitAckDeadline(t *testing.T) {
	sw := NewSteadyWriter([]NodeAddr{{"x", "127.0.0.1:1"}}, Auth{}, time.Second, 16)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sw.WaitAck(ctx, time.Now(), ""); err == nil {
		t.Fatal("WaitAck with an ended context: no error")
	}
}

func TestPreloadRange(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tx api.TxnRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/txn" || json.NewDecoder(r.Body).Decode(&tx) != nil || len(tx.Then) > PreloadBatch {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, op := range tx.Then {
			if op.Op != api.OpPut || len(op.Value) != 32 {
				w.WriteHeader(http.StatusBadRequest)
			}
			keys[op.Key]++
		}
		mu.Unlock()
	}))
	defer srv.Close()
	var last int
	var buf strings.Builder
	bar := ProgressBar(&buf, 700)
	err := PreloadRange(context.Background(), Auth{}, strings.TrimPrefix(srv.URL, "http://"), 300, 1000, 8, 32, 3, func(n int) { last = n; bar(n) })
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 700 || keys["00000300"] != 1 || keys["00000999"] != 1 || keys["00000299"] != 0 || last != 700 {
		t.Fatalf("%d distinct keys written, progress said %d", len(keys), last)
	}
	if !strings.Contains(buf.String(), "700/700 keys") {
		t.Fatalf("progress bar: %q", buf.String())
	}
	// A 503 (no leader for a moment) is retried; another error is not.
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer flaky.Close()
	if err := PreloadRange(context.Background(), Auth{}, strings.TrimPrefix(flaky.URL, "http://"), 0, 50, 8, 32, 1, nil); err != nil {
		t.Fatalf("PreloadRange through three 503s: %v", err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer bad.Close()
	if err := PreloadRange(context.Background(), Auth{}, strings.TrimPrefix(bad.URL, "http://"), 0, 50, 8, 32, 4, nil); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("PreloadRange against 400s: %v", err)
	}
}
