// Command measure reports what a node's memory holds for its log, and what
// sending a large snapshot to a follower costs, on a local 3-node cluster
// of real processes (BENCHMARKS.md quotes it):
//
//	go run ./src/snapstream/measure -mode log -keys 100000
//	go run ./src/snapstream/measure -mode snap -keys 1000000
//
// -mode log: no snapshot is taken (--snapshot-every 1000000000), so the log
// since the last snapshot holds every write; after -keys puts (8-byte keys,
// -val-size values) it prints each node's resident memory (VmRSS) and Go
// heap (the lowest go_memstats_heap_alloc_bytes of a few scrapes, close to
// the live heap).
//
// -mode snap: one follower is stopped while -keys puts are written and the
// leader compacts its log past the follower; then the follower starts and
// must be sent a snapshot. It prints the time to catch up and the peak
// resident memory (VmHWM, reset just before the restart) of the leader and
// the follower during the transfer.
//
// -binary runs another raftkv binary (e.g. one built from main, to compare);
// -node-args adds flags to every node.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"raftkv/src/localcluster"
)

func main() {
	mode := flag.String("mode", "log", "log or snap")
	keys := flag.Int("keys", 100000, "keys to write")
	valSize := flag.Int("val-size", 256, "value size in bytes")
	binary := flag.String("binary", "", "the raftkv binary (default: build one)")
	nodeArgs := flag.String("node-args", "", "extra flags for every node")
	catchUp := flag.Duration("catch-up-timeout", 10*time.Minute, "-mode snap: how long the follower may take to catch up")
	flag.Parse()
	if err := run(*mode, *keys, *valSize, *binary, strings.Fields(*nodeArgs), *catchUp); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

func run(mode string, keys, valSize int, bin string, args []string, catchUp time.Duration) error {
	dir, err := os.MkdirTemp("", "raftkv-measure")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		if bin, err = localcluster.Build(dir); err != nil {
			return err
		}
	}
	if mode == "log" {
		args = append([]string{"--snapshot-every", "1000000000"}, args...)
	}
	c, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: filepath.Join(dir, "c"), Insecure: true, Args: args})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	lead, err := c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	f := (lead + 1) % 3
	if mode == "snap" {
		if err := c.Stop(f, 10*time.Second); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := preload(ctx, c, keys, valSize); err != nil {
		return err
	}
	if lead, err = c.WaitLeader(ctx); err != nil { // it may have moved
		return err
	}
	fmt.Printf("binary %s, node args %q\nwrote %d keys of %d-byte values in %v\n", bin, args, keys, valSize, time.Since(start).Round(time.Millisecond))
	ls, err := c.NodeStatus(lead)
	if err != nil {
		return err
	}
	switch mode {
	case "log":
		if err := waitApplied(ctx, c, []int{0, 1, 2}, ls.CommitIndex); err != nil {
			return err
		}
		for i := range c.Nodes {
			st, _ := c.NodeStatus(i)
			heap, err := liveHeap(c.Nodes[i].HTTPAddr)
			if err != nil {
				return err
			}
			rss, _, err := procMem(c.Nodes[i].Pid())
			if err != nil {
				return err
			}
			fmt.Printf("%s (%s): last index %d, snapshot %d: VmRSS %.1f MiB, Go heap %.1f MiB\n",
				c.Nodes[i].Name, st.Role, st.LastLogIndex, st.SnapshotIndex, mib(rss), mib(heap))
		}
	case "snap":
		// The leader must have compacted past the follower's log.
		for ls.SnapshotIndex < uint64(keys)/2 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(100 * time.Millisecond) // a poll interval, bounded by ctx
			if ls, err = c.NodeStatus(lead); err != nil {
				return err
			}
		}
		other := 3 - lead - f
		for _, i := range []int{lead, other} {
			if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.Nodes[i].Pid()), []byte("5"), 0); err != nil {
				return fmt.Errorf("reset peak RSS: %w", err)
			}
		}
		if ls, err = c.NodeStatus(lead); err != nil {
			return err
		}
		before, _, _ := procMem(c.Nodes[lead].Pid())
		t0 := time.Now()
		if err := c.StartNode(f); err != nil {
			return err
		}
		cctx, ccancel := context.WithTimeout(ctx, catchUp)
		defer ccancel()
		if err := waitApplied(cctx, c, []int{f}, ls.CommitIndex); err != nil {
			_, fpeak, _ := procMem(c.Nodes[f].Pid())
			_, lpeak, _ := procMem(c.Nodes[lead].Pid())
			fmt.Printf("follower did not catch up within %v (peaks: leader %.1f MiB, follower %.1f MiB)\n", catchUp, mib(lpeak), mib(fpeak))
			for _, line := range grep(c.Log(lead), "snapshot") {
				fmt.Println("  leader log:", line)
			}
			return err
		}
		took := time.Since(t0)
		lrss, lpeak, _ := procMem(c.Nodes[lead].Pid())
		frss, fpeak, _ := procMem(c.Nodes[f].Pid())
		fst, _ := c.NodeStatus(f)
		fmt.Printf("leader snapshot index %d; follower %s restarted and applied %d in %v\n", ls.SnapshotIndex, c.Nodes[f].Name, fst.AppliedIndex, took.Round(time.Millisecond))
		fmt.Printf("leader %s: VmRSS %.1f MiB before, peak during the transfer %.1f MiB, after %.1f MiB\n", c.Nodes[lead].Name, mib(before), mib(lpeak), mib(lrss))
		fmt.Printf("follower %s: peak %.1f MiB, after %.1f MiB\n", c.Nodes[f].Name, mib(fpeak), mib(frss))
		for _, line := range grep(c.Log(lead), "snapshot") {
			fmt.Println("  leader log:", line)
		}
		for _, line := range grep(c.Log(f), "snapshot") {
			fmt.Println("  follower log:", line)
		}
	default:
		return fmt.Errorf("unknown -mode %q", mode)
	}
	return nil
}

// preload puts keys 8-byte keys with valSize-byte values through any node,
// 64 at a time, retrying a put that failed or timed out (puts of the same
// value are idempotent): under load a leader may change mid-way.
func preload(ctx context.Context, c *localcluster.Cluster, keys, valSize int) error {
	client := &http.Client{Timeout: 10 * time.Second}
	val := strings.Repeat("p", valSize)
	var next atomic.Int64
	errc := make(chan error, 64)
	for w := range 64 {
		go func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= keys {
					errc <- nil
					return
				}
				for attempt := 0; ; attempt++ {
					node := c.Nodes[(w+attempt)%len(c.Nodes)]
					req, _ := http.NewRequestWithContext(ctx, http.MethodPut, fmt.Sprintf("http://%s/v1/kv/%08d", node.HTTPAddr, k), strings.NewReader(val))
					resp, err := client.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							break
						}
					}
					if ctx.Err() != nil || attempt > 50 {
						errc <- fmt.Errorf("put %08d: %v", k, err)
						return
					}
				}
			}
		}()
	}
	for range 64 {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// waitApplied polls until nodes have applied index.
func waitApplied(ctx context.Context, c *localcluster.Cluster, nodes []int, index uint64) error {
	for _, i := range nodes {
		for {
			st, err := c.NodeStatus(i)
			if err == nil && st.AppliedIndex >= index {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("node %d did not apply %d: %w", i, index, ctx.Err())
			}
			time.Sleep(50 * time.Millisecond) // a poll interval, bounded by ctx
		}
	}
	return nil
}

// procMem reads VmRSS and VmHWM (peak) of a process, in bytes.
func procMem(pid int) (rss, peak uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				rss = v << 10
			} else {
				peak = v << 10
			}
		}
	}
	return rss, peak, nil
}

// liveHeap is the lowest heap_alloc of five scrapes of /metrics, 200 ms
// apart: the garbage collector runs in between, so it nears the live heap.
func liveHeap(addr string) (uint64, error) {
	best := ^uint64(0)
	for range 5 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_alloc_bytes "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				best = min(best, uint64(f))
			}
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
	if best == ^uint64(0) {
		return 0, errors.New("no go_memstats_heap_alloc_bytes in /metrics")
	}
	return best, nil
}

func grep(text, word string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, word) && len(out) < 12 {
			if len(line) > 240 {
				line = line[:240]
			}
			out = append(out, line)
		}
	}
	return out
}
