// Command benchrun is `make bench`: it builds raftkv, starts a local
// 3-node cluster (real processes, fsync on) in a temporary folder, runs the
// benchmark workloads of issue 7 against it with 256-byte values, prints
// each report and a summary table, and tears the cluster down.
//
//	go run ./src/bench/benchrun [--duration 3s] [--only get] [--binary ./raftkv] [--keep]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"raftkv/src/bench"
	"raftkv/src/localcluster"
)

type workload struct {
	name        string
	clients     int
	put, get    float64
	consistency string
}

var workloads = []workload{
	{"put, 1 client", 1, 1, 0, "linearizable"},
	{"put, 64 clients", 64, 1, 0, "linearizable"},
	{"put, 256 clients", 256, 1, 0, "linearizable"},
	{"linearizable get, 64 clients", 64, 0, 1, "linearizable"},
	{"stale get, 64 clients", 64, 0, 1, "stale"},
}

// readKeys is the key space the get workloads read; it is written first.
const readKeys = 1000

func main() {
	os.Exit(run())
}

func run() int {
	duration := flag.Duration("duration", 3*time.Second, "length of each workload")
	keep := flag.Bool("keep", false, "keep the temporary folder (node logs, persistence)")
	only := flag.String("only", "", "run only workloads whose name contains this text")
	binary := flag.String("binary", "", "a raftkv binary to run (default: build one in the temporary folder)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "raftkv-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		return 1
	}
	if *keep {
		fmt.Println("working folder (kept):", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := *binary
	if bin == "" {
		fmt.Println("building raftkv ...")
		if bin, err = localcluster.Build(dir); err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			return 1
		}
	} else if bin, err = filepath.Abs(bin); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		return 1
	}
	c, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun: start cluster:", err)
		return 1
	}
	defer func() {
		for i := range c.Nodes {
			if c.Running(i) {
				if err := c.Stop(i, 10*time.Second); err != nil {
					fmt.Fprintln(os.Stderr, "benchrun: stop:", err)
				}
			}
		}
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	leader, err := c.WaitLeader(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		return 1
	}
	fmt.Printf("cluster of 3 on %s, leader %s, folder %s\n\n", strings.Join(c.Endpoints(), ","), c.Nodes[leader].Name, dir)
	if err := preload(c.Nodes[leader].HTTPAddr, readKeys, 256); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun: preload:", err)
		return 1
	}

	type row struct {
		w   workload
		rep *bench.Report
	}
	var rows []row
	for _, w := range workloads {
		if *only != "" && !strings.Contains(w.name, *only) {
			continue
		}
		opts := bench.Options{
			Endpoints: c.Endpoints(), Clients: w.clients, Conns: 1,
			Put: w.put, Get: w.get, KeySize: 8, ValSize: 256, Keys: 100000,
			Duration: *duration, Consistency: w.consistency, Timeout: 10 * time.Second,
		}
		if w.get > 0 {
			opts.Keys = readKeys
		}
		fmt.Printf("=== %s (%v)\n", w.name, *duration)
		rep, err := bench.Run(context.Background(), opts, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			return 1
		}
		rep.WriteText(os.Stdout)
		fmt.Println()
		rows = append(rows, row{w, rep})
	}
	fmt.Printf("%-30s %12s %10s %10s %10s %8s\n", "workload (256 B values)", "req/s", "p50 ms", "p99 ms", "max ms", "errors")
	failed := false
	for _, r := range rows {
		fmt.Printf("%-30s %12.0f %10.3f %10.3f %10.3f %8d\n", r.w.name, r.rep.Throughput, r.rep.Latency.P50, r.rep.Latency.P99, r.rep.Latency.Max, r.rep.Errors)
		failed = failed || r.rep.OK == 0
	}
	if failed {
		fmt.Fprintln(os.Stderr, "benchrun: a workload completed no request")
		return 1
	}
	return 0
}

// preload writes keys 0..n-1 (8-byte names, as bench makes them) so that
// the get workloads find values.
func preload(addr string, n, size int) error {
	val := strings.Repeat("v", size)
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := g; k < n; k += 16 {
				req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v1/kv/%08d", addr, k), strings.NewReader(val))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("put %08d: HTTP %d", k, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
