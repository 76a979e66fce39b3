// Command load preloads an etcd cluster with 8-byte keys and 256-byte
// values and runs raftkv's put workload against it (64 clients, random
// keys over all the keys), printing req/s, p50 and p99.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func key(i int) string { return fmt.Sprintf("%08d", i) }

func main() {
	eps := flag.String("endpoints", "127.0.0.1:23791", "")
	from := flag.Int("preload-from", 0, "")
	to := flag.Int("preload-to", 0, "")
	keys := flag.Int("keys", 100000, "key space of the puts")
	clients := flag.Int("clients", 64, "")
	conns := flag.Int("conns", 8, "")
	dur := flag.Duration("duration", 5*time.Second, "")
	flag.Parse()
	var cs []*clientv3.Client
	for range *conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*eps, ","), DialTimeout: 5 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	val := strings.Repeat("p", 256)
	if *to > *from {
		t0 := time.Now()
		var next atomic.Int64
		next.Store(int64(*from))
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cs[w%len(cs)]
				for {
					lo := int(next.Add(128) - 128)
					if lo >= *to {
						return
					}
					var ops []clientv3.Op
					for i := lo; i < min(lo+128, *to); i++ {
						ops = append(ops, clientv3.OpPut(key(i), val))
					}
					for {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						_, err := c.Txn(ctx).Then(ops...).Commit()
						cancel()
						if err == nil {
							break
						}
						fmt.Fprintln(os.Stderr, "preload retry:", err)
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("preloaded %d..%d in %.1f s\n", *from, *to, time.Since(t0).Seconds())
	}
	if *dur <= 0 {
		return
	}
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	deadline := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			c := cs[w%len(cs)]
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Put(ctx, key(rng.Intn(*keys)), val)
				cancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	fmt.Printf("put, %d clients over %d keys: %.0f req/s, p50 %.3f ms, p99 %.3f ms, %d errors\n",
		*clients, *keys, float64(len(lat))/dur.Seconds(), q(0.5), q(0.99), errs.Load())
}
