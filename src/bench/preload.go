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
)

// Preload writes keys 0..keys-1 (named as the bench names them) with
// valSize-byte values through endpoint, workers puts at a time over
// keep-alive connections, so that gets find values. It stops at the first
// failed put.
func Preload(ctx context.Context, auth Auth, endpoint string, keys, keySize, valSize, workers int) error {
	client := &http.Client{Transport: auth.transport(workers), Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	val := bytes.Repeat([]byte("p"), valSize)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= keys {
					return
				}
				key := keyName(k, keySize)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, auth.url(endpoint, "/v1/kv/"+key), bytes.NewReader(val))
				auth.authorize(req)
				resp, err := client.Do(req)
				if err != nil {
					cancel(fmt.Errorf("put %s: %w", key, err))
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					cancel(fmt.Errorf("put %s: HTTP %d", key, resp.StatusCode))
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
