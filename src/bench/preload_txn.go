package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"raftkv/src/api"
)

// PreloadBatch is how many keys PreloadRange writes in one transaction.
const PreloadBatch = api.MaxTxnOps

// PreloadRange writes keys from..to-1 (named as the bench names them) with
// valSize-byte values through endpoint, PreloadBatch keys per transaction
// (POST /v1/txn), workers transactions at a time. Keys are made as they
// are sent, so ten million cost no more memory than ten. progress, if not
// nil, is called about twice a second and at the end with the number of
// keys written so far (from the goroutine that runs PreloadRange's
// ticker). It stops at the first failed transaction.
func PreloadRange(ctx context.Context, auth Auth, endpoint string, from, to, keySize, valSize, workers int, progress func(done int)) error {
	client := &http.Client{Transport: auth.transport(workers), Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	val := bytes.Repeat([]byte("p"), valSize)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			for ctx.Err() == nil {
				first := int(next.Add(PreloadBatch) - PreloadBatch)
				if first >= to {
					return
				}
				last := min(first+PreloadBatch, to)
				body = append(body[:0], `{"then":[`...)
				for k := first; k < last; k++ {
					if k > first {
						body = append(body, ',')
					}
					body = append(body, `{"op":"put","key":"`...)
					body = appendKey(body, k, keySize)
					body = append(body, `","value":"`...)
					body = append(body, val...)
					body = append(body, `"}`...)
				}
				body = append(body, "]}"...)
				if err := postRetrying(ctx, client, auth, endpoint, body); err != nil {
					cancel(fmt.Errorf("put keys %d..%d: %w", first, last-1, err))
					return
				}
				done.Add(int64(last - first))
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if progress != nil {
				progress(int(done.Load()))
			}
		case <-finished:
			if progress != nil {
				progress(int(done.Load()))
			}
			return context.Cause(ctx)
		}
	}
}

// preloadRetryFor bounds the retries of one transaction: a cluster under
// a heavy preload may change leaders (503 while it has none).
const preloadRetryFor = time.Minute

// postRetrying posts one transaction, again after a 503, a 504 or a lost
// connection (it only puts, so applying it twice changes nothing), until
// preloadRetryFor has passed.
func postRetrying(ctx context.Context, client *http.Client, auth Auth, endpoint string, body []byte) error {
	deadline := time.Now().Add(preloadRetryFor)
	backoff := 50 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, auth.url(endpoint, "/v1/txn"), bytes.NewReader(body))
		auth.authorize(req)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
			// 503: no leader for a moment; 504: the outcome is unknown.
			// The transaction only puts, so sending it again is harmless.
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
				return err
			}
		}
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ProgressBar returns a progress function for PreloadRange that redraws one
// line on w: a bar, the keys written of total and the rate.
func ProgressBar(w io.Writer, total int) func(done int) {
	start := time.Now()
	return func(done int) {
		const width = 30
		filled := 0
		if total > 0 {
			filled = done * width / total
		}
		bar := bytes.Repeat([]byte("#"), filled)
		bar = append(bar, bytes.Repeat([]byte("."), width-filled)...)
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
		fmt.Fprintf(w, "\r  [%s] %d/%d keys, %.0f keys/s   ", bar, done, total, rate)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}
