package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"raftkv/src/bench"
	"raftkv/src/localcluster"
)

// --scale: how the cost of puts, gets, memory and a follower's restart
// follows the size of the state. One cluster grows through the key counts
// of --scale-keys; at each it runs the put workload twice (right after the
// load, while the nodes still write the snapshots the load started, then
// again: the figure compared across sizes) and the linearizable get
// workload, with 64 clients over all the keys, reads every node's RSS,
// then kills a follower with SIGKILL, restarts it and times it until it has
// applied what the leader had committed at the restart, and reads its RSS
// again. Raw data is keys x (8 + 256) bytes.

func parseScaleKeys(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxPreloadKeys {
			return nil, fmt.Errorf("%q is not a key count in 1..%d", f, maxPreloadKeys)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("key counts must ascend: %d after %d", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}

type scaleRow struct {
	keys               int
	preloadSecs        float64
	putFirst, put, get bench.Row
	rssMiB             []float64 // per node, after the workloads
	restartNode        string
	caughtUp           time.Duration
	rssAfterRestartMiB float64
}

func scale(f flags, counts []int) error {
	log := os.Stdout
	c, dir, leader, cleanup, err := startCluster(f, log)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Fprintf(log, "cluster of 3 on %s, leader %s, folder %s; load average %s\n",
		strings.Join(c.Endpoints(), ","), c.Nodes[leader].Name, dir, bench.LoadAverage())
	auth, err := clusterAuth(c)
	if err != nil {
		return err
	}
	var rows []scaleRow
	have := 0
	for _, n := range counts {
		row := scaleRow{keys: n}
		if leader, err = waitLeader(c, 30*time.Second); err != nil {
			return err
		}
		fmt.Fprintf(log, "preloading keys %d..%d:\n", have, n-1)
		t0 := time.Now()
		if err := bench.PreloadRange(context.Background(), auth, c.Nodes[leader].HTTPAddr, have, n, keySize, valSize, 16, bench.ProgressBar(log, n-have)); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		row.preloadSecs = time.Since(t0).Seconds()
		have = n
		g := f
		g.preloadKeys = n
		if row.putFirst, err = runWorkload(g, c, auth, workloads[1], log); err != nil {
			return err
		}
		if row.put, err = runWorkload(g, c, auth, workloads[1], log); err != nil {
			return err
		}
		if row.get, err = runWorkload(g, c, auth, workloads[3], log); err != nil {
			return err
		}
		for _, node := range c.Nodes {
			rss, err := bench.ProcRSS(node.Pid())
			if err != nil {
				return err
			}
			row.rssMiB = append(row.rssMiB, float64(rss)/(1<<20))
		}
		if err := restartFollower(c, &row, log); err != nil {
			return err
		}
		rows = append(rows, row)
	}
	writeScale(log, rows)
	return nil
}

// restartFollower kills a follower with SIGKILL, restarts it and waits
// until it applied what the leader had committed when it was restarted.
func restartFollower(c *localcluster.Cluster, row *scaleRow, log io.Writer) error {
	leader, err := waitLeader(c, 30*time.Second)
	if err != nil {
		return err
	}
	i := (leader + 1) % len(c.Nodes)
	row.restartNode = c.Nodes[i].Name
	if err := c.Kill(i); err != nil {
		return err
	}
	lst, err := c.NodeStatus(leader)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := c.StartNode(i); err != nil {
		return err
	}
	deadline := t0.Add(5 * time.Minute)
	for {
		if st, err := c.NodeStatus(i); err == nil && st.AppliedIndex >= lst.CommitIndex {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not caught up with commit %d within 5 minutes", row.restartNode, lst.CommitIndex)
		}
		time.Sleep(10 * time.Millisecond)
	}
	row.caughtUp = time.Since(t0)
	rss, err := bench.ProcRSS(c.Nodes[i].Pid())
	if err != nil {
		return err
	}
	row.rssAfterRestartMiB = float64(rss) / (1 << 20)
	fmt.Fprintf(log, "    kill -9 %s, restart: caught up with commit %d after %.2f s, RSS %.0f MiB\n",
		row.restartNode, lst.CommitIndex, row.caughtUp.Seconds(), row.rssAfterRestartMiB)
	return nil
}

func writeScale(w io.Writer, rows []scaleRow) {
	fmt.Fprintf(w, "\n==== raftkv scale: 3 local nodes, fsync on, 8 B keys, 256 B values, 64 clients\n")
	fmt.Fprintf(w, "| keys | raw data | preload | put req/s right after the load | put req/s | put p99 | get req/s | get p99 | RSS per node (max) | follower kill -9 to caught up | its RSS after | RSS / raw |\n")
	fmt.Fprintf(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rows {
		raw := float64(r.keys) * (keySize + valSize) / (1 << 20)
		maxRSS := 0.0
		for _, m := range r.rssMiB {
			maxRSS = max(maxRSS, m)
		}
		fmt.Fprintf(w, "| %d | %.0f MiB | %.0f s | %.0f | %.0f | %.1f ms | %.0f | %.1f ms | %.0f MiB | %.2f s | %.0f MiB | %.2fx |\n",
			r.keys, raw, r.preloadSecs, r.putFirst.Throughput, r.put.Throughput, r.put.P99, r.get.Throughput, r.get.P99, maxRSS,
			r.caughtUp.Seconds(), r.rssAfterRestartMiB, r.rssAfterRestartMiB/raw)
	}
}
