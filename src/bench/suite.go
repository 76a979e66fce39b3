package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// The `make bench` suite (src/bench/benchrun): the result types, the
// per-row median over repeated runs, and the text table.

// Row is one workload of one run of the table.
type Row struct {
	Workload    string  `json:"workload"`
	Clients     int     `json:"clients"`
	Op          string  `json:"op"` // "put", "get" or "list"
	Consistency string  `json:"consistency,omitempty"`
	Seconds     float64 `json:"seconds"`
	OK          uint64  `json:"ok"`
	Errors      uint64  `json:"errors"`
	Throughput  float64 `json:"throughput"` // successful requests per second
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	Max         float64 `json:"max_ms"`
	// CPU seconds (user + system) used per 1,000 successful operations:
	// the three node processes together (/proc/<pid>/stat), and the bench
	// client itself (/proc/self/stat).
	ClusterCPUPer1k float64 `json:"cluster_cpu_s_per_1k_ops"`
	ClientCPUPer1k  float64 `json:"client_cpu_s_per_1k_ops"`
	ClusterCPU      float64 `json:"cluster_cpu_s"`
	ClientCPU       float64 `json:"client_cpu_s"`
}

// NewRow fills a row from a report and the CPU the cluster and the client
// used during it.
func NewRow(name, op string, rep *Report, clusterCPU, clientCPU time.Duration) Row {
	r := Row{
		Workload: name, Clients: rep.Workload.Clients, Op: op, Seconds: rep.Seconds,
		OK: rep.OK, Errors: rep.Errors, Throughput: rep.Throughput,
		P50: rep.Latency.P50, P99: rep.Latency.P99, Max: rep.Latency.Max,
		ClusterCPU: clusterCPU.Seconds(), ClientCPU: clientCPU.Seconds(),
	}
	if op == "get" || op == "list" {
		r.Consistency = rep.Workload.Consistency
	}
	if rep.OK > 0 {
		r.ClusterCPUPer1k = r.ClusterCPU / float64(rep.OK) * 1000
		r.ClientCPUPer1k = r.ClientCPU / float64(rep.OK) * 1000
	}
	return r
}

// NodeRSS is one node's resident memory.
type NodeRSS struct {
	Name   string  `json:"name"`
	Leader bool    `json:"leader"`
	Bytes  int64   `json:"rss_bytes"`
	MiB    float64 `json:"rss_mib"`
}

// Memory is the nodes' resident memory after a number of puts.
type Memory struct {
	// Puts acknowledged since the cluster started (the preload included).
	AfterPuts uint64    `json:"after_puts"`
	Keys      int       `json:"keys"`
	Nodes     []NodeRSS `json:"nodes"`
}

// Pass is one pass over the table.
type Pass struct {
	Rows   []Row   `json:"rows"`
	Memory *Memory `json:"memory,omitempty"`
}

// Kill is one failover measurement.
type Kill struct {
	Killed string `json:"killed"`
	// From just before SIGKILL to the next write acknowledged by another
	// node.
	Ms         float64        `json:"ms"`
	NewLeader  string         `json:"new_leader"` // the node that acknowledged it
	Errors     int            `json:"failed_attempts"`
	ErrorKinds map[string]int `json:"failed_attempts_by_kind,omitempty"`
	// From the restart to the node being healthy again (caught up).
	RestartMs float64 `json:"restart_ms"`
}

// Failover is the kill -9 measurement.
type Failover struct {
	TimeoutMs float64 `json:"request_timeout_ms"`
	// Between a restarted node being healthy and the next kill.
	SettleMs float64 `json:"settle_ms"`
	Kills    []Kill  `json:"kills"`
	MedianMs float64 `json:"median_ms"`
}

// Suite is everything `make bench` measured.
type Suite struct {
	Machine     Machine           `json:"machine"`
	LoadBefore  string            `json:"load_average_before"`
	LoadAfter   string            `json:"load_average_after"`
	Settings    map[string]string `json:"settings"`
	PreloadKeys int               `json:"preload_keys"`
	PreloadSecs float64           `json:"preload_seconds"`
	Runs        []Pass            `json:"runs"`
	Median      []Row             `json:"median"` // per row, per column, over the runs
	Failover    *Failover         `json:"failover,omitempty"`
}

// median of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianRows is the per-row median over runs: each numeric column is its
// own median (so a row's p99 and throughput may come from different
// runs). Rows are matched by workload name; the first run's order is kept.
func MedianRows(runs []Pass) []Row {
	if len(runs) == 0 {
		return nil
	}
	var out []Row
	for _, first := range runs[0].Rows {
		var rows []Row
		for _, r := range runs {
			for _, row := range r.Rows {
				if row.Workload == first.Workload {
					rows = append(rows, row)
				}
			}
		}
		col := func(f func(Row) float64) float64 {
			xs := make([]float64, len(rows))
			for i, r := range rows {
				xs[i] = f(r)
			}
			return median(xs)
		}
		m := first
		m.Seconds = col(func(r Row) float64 { return r.Seconds })
		m.OK = uint64(col(func(r Row) float64 { return float64(r.OK) }))
		m.Errors = uint64(col(func(r Row) float64 { return float64(r.Errors) }))
		m.Throughput = col(func(r Row) float64 { return r.Throughput })
		m.P50 = col(func(r Row) float64 { return r.P50 })
		m.P99 = col(func(r Row) float64 { return r.P99 })
		m.Max = col(func(r Row) float64 { return r.Max })
		m.ClusterCPUPer1k = col(func(r Row) float64 { return r.ClusterCPUPer1k })
		m.ClientCPUPer1k = col(func(r Row) float64 { return r.ClientCPUPer1k })
		m.ClusterCPU = col(func(r Row) float64 { return r.ClusterCPU })
		m.ClientCPU = col(func(r Row) float64 { return r.ClientCPU })
		out = append(out, m)
	}
	return out
}

// WriteTable prints rows as the `make bench` table.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-30s %9s %9s %9s %9s %7s %12s %12s\n",
		"workload (256 B values)", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "cluster CPU", "client CPU")
	fmt.Fprintf(w, "%-30s %9s %9s %9s %9s %7s %12s %12s\n", "", "", "", "", "", "", "s/1k ops", "s/1k ops")
	for _, r := range rows {
		fmt.Fprintf(w, "%-30s %9.0f %9.3f %9.3f %9.3f %7d %12.3f %12.3f\n",
			r.Workload, r.Throughput, r.P50, r.P99, r.Max, r.Errors, r.ClusterCPUPer1k, r.ClientCPUPer1k)
	}
}

// WriteMemory prints a memory snapshot on one line per node.
func WriteMemory(w io.Writer, m *Memory) {
	fmt.Fprintf(w, "resident memory after %d puts over %d keys:\n", m.AfterPuts, m.Keys)
	for _, n := range m.Nodes {
		mark := ""
		if n.Leader {
			mark = " (leader)"
		}
		fmt.Fprintf(w, "  %-4s %7.1f MiB%s\n", n.Name, n.MiB, mark)
	}
}

// WriteFailover prints each kill and the median.
func WriteFailover(w io.Writer, f *Failover) {
	fmt.Fprintf(w, "failover: kill -9 the leader under a steady single writer (one put at a time, %.0f ms timeout per attempt, next node on error);\n", f.TimeoutMs)
	fmt.Fprintf(w, "  time from SIGKILL to the next write acknowledged by another node; then restart, wait until caught up, +%.0f ms steady\n", f.SettleMs)
	var ms []string
	for i, k := range f.Kills {
		fmt.Fprintf(w, "  #%d killed %-3s next acknowledged write after %8.1f ms (by %s, %d failed attempts%s); restarted, healthy after %.0f ms\n",
			i+1, k.Killed, k.Ms, k.NewLeader, k.Errors, kinds(k.ErrorKinds), k.RestartMs)
		ms = append(ms, fmt.Sprintf("%.1f", k.Ms))
	}
	fmt.Fprintf(w, "  median %.1f ms over %d kills (%s)\n", f.MedianMs, len(f.Kills), strings.Join(ms, ", "))
}

func kinds(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// FailoverMedian sets f.MedianMs from its kills.
func (f *Failover) FailoverMedian() {
	var xs []float64
	for _, k := range f.Kills {
		xs = append(xs, k.Ms)
	}
	f.MedianMs = median(xs)
}
