package main

// --compare-insecure: the same workloads against a cluster with TLS and
// tokens (peer mutual TLS, HTTPS, a bearer token on every request) and
// then against one run --insecure, printed side by side: what security
// costs per put and per get.
//
// --compare-watchers: the same workloads on one cluster without and with
// --watchers idle watch streams, pass by pass: what idle watchers cost.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"

	"raftkv/src/bench"
	"raftkv/src/localcluster"
)

// clusterAuth is what the load generator needs for c: its CA and the
// read-write token, or nothing for an insecure cluster.
func clusterAuth(c *localcluster.Cluster) (bench.Auth, error) {
	tlsCfg, tok, err := c.ClientAuth(localcluster.TokenReadWrite)
	return bench.Auth{TLS: tlsCfg, Token: tok}, err
}

// comparison is --compare-insecure's JSON.
type comparison struct {
	TLS      *bench.Suite `json:"tls"`
	Insecure *bench.Suite `json:"insecure"`
}

func compare(f flags, log io.Writer) error {
	fmt.Fprintln(log, "==== with TLS and tokens")
	secures, err := measure(f, log)
	if err != nil {
		return fmt.Errorf("with TLS: %w", err)
	}
	secure := secures[0]
	fmt.Fprintln(log, "==== with --insecure")
	plain := f
	plain.insecure, plain.plot = true, "" // the plot is the TLS run's
	insecures, err := measure(plain, log)
	if err != nil {
		return fmt.Errorf("with --insecure: %w", err)
	}
	insecure := insecures[0]
	if f.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(comparison{secure, insecure}); err != nil {
			return err
		}
	} else {
		printSuite(os.Stdout, secure)
		printSuite(os.Stdout, insecure)
		fmt.Fprintln(os.Stdout)
		writeComparison(os.Stdout, "TLS and tokens against --insecure", "TLS", "plain", secure, insecure)
	}
	if err := checkRows(secure); err != nil {
		return err
	}
	return checkRows(insecure)
}

// writeComparison prints, per workload, throughput, latency and cluster
// CPU per 1,000 operations of a (labelled la) next to b (lb), and the
// throughput a loses against b.
func writeComparison(w io.Writer, title, la, lb string, a, b *bench.Suite) {
	fmt.Fprintf(w, "==== %s (medians)\n", title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "workload\treq/s %[1]s\treq/s %[2]s\tthroughput lost\tp50 ms %[1]s\tp50 ms %[2]s\tp99 ms %[1]s\tp99 ms %[2]s\tCPU s/1k %[1]s\tCPU s/1k %[2]s\t\n", la, lb)
	byName := map[string]bench.Row{}
	for _, r := range b.Median {
		byName[r.Workload] = r
	}
	for _, s := range a.Median {
		p, ok := byName[s.Workload]
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", s.Workload, s.Throughput, p.Throughput, lost(s.Throughput, p.Throughput),
			s.P50, p.P50, s.P99, p.P99, s.ClusterCPUPer1k, p.ClusterCPUPer1k)
	}
	tw.Flush()
	if a.Failover != nil && b.Failover != nil {
		fmt.Fprintf(w, "failover (median to the next acknowledged write): %s %.1f ms, %s %.1f ms\n",
			la, a.Failover.MedianMs, lb, b.Failover.MedianMs)
	}
}

// lost is the throughput a loses against b, as a percentage of b.
func lost(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*(b-a)/b)
}

// watcherComparison is --compare-watchers' JSON.
type watcherComparison struct {
	Without *bench.Suite `json:"without_watchers"`
	With    *bench.Suite `json:"with_watchers"`
}

// compareWatchers measures the table without and with f.watchers idle
// watch streams on one cluster (see measure) and prints both, the medians
// side by side and, run by run, what the watchers cost each workload: a
// paired comparison, since two passes of one run are neighbours in time.
func compareWatchers(f flags, log io.Writer) error {
	suites, err := measure(f, log)
	if err != nil {
		return err
	}
	without, with := suites[0], suites[1]
	if f.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(watcherComparison{without, with}); err != nil {
			return err
		}
	} else {
		printSuite(os.Stdout, without)
		printSuite(os.Stdout, with)
		fmt.Fprintln(os.Stdout)
		label := fmt.Sprintf("%d watchers", f.watchers)
		writeComparison(os.Stdout, label+" against none", label, "none", with, without)
		fmt.Fprintln(os.Stdout, "throughput lost run by run (the two passes of a run are neighbours in time):")
		for i, row := range with.Median {
			fmt.Fprintf(os.Stdout, "  %-30s", row.Workload)
			var losses []float64
			for r := range with.Runs {
				a, b := with.Runs[r].Rows[i].Throughput, without.Runs[r].Rows[i].Throughput
				fmt.Fprintf(os.Stdout, " %8s", lost(a, b))
				losses = append(losses, (b-a)/b)
			}
			slices.Sort(losses)
			fmt.Fprintf(os.Stdout, "   median %.1f %%\n", 100*losses[len(losses)/2])
		}
	}
	if err := checkRows(without); err != nil {
		return err
	}
	return checkRows(with)
}
