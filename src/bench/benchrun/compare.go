package main

// --compare-insecure: the same workloads against a cluster with TLS and
// tokens (peer mutual TLS, HTTPS, a bearer token on every request) and
// then against one run --insecure, printed side by side: what security
// costs per put and per get.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
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
	secure, err := measure(f, log)
	if err != nil {
		return fmt.Errorf("with TLS: %w", err)
	}
	fmt.Fprintln(log, "==== with --insecure")
	plain := f
	plain.insecure, plain.plot = true, "" // the plot is the TLS run's
	insecure, err := measure(plain, log)
	if err != nil {
		return fmt.Errorf("with --insecure: %w", err)
	}
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
		writeComparison(os.Stdout, secure, insecure)
	}
	if err := checkRows(secure); err != nil {
		return err
	}
	return checkRows(insecure)
}

// writeComparison prints, per workload, throughput, latency and cluster
// CPU per 1,000 operations with TLS and tokens next to --insecure, and
// the throughput TLS loses.
func writeComparison(w io.Writer, secure, insecure *bench.Suite) {
	fmt.Fprintln(w, "==== TLS and tokens against --insecure (medians)")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\treq/s TLS\treq/s plain\tthroughput lost\tp50 ms TLS\tp50 ms plain\tp99 ms TLS\tp99 ms plain\tCPU s/1k TLS\tCPU s/1k plain\t")
	byName := map[string]bench.Row{}
	for _, r := range insecure.Median {
		byName[r.Workload] = r
	}
	for _, s := range secure.Median {
		p, ok := byName[s.Workload]
		if !ok {
			continue
		}
		lost := "-"
		if p.Throughput > 0 {
			lost = fmt.Sprintf("%.1f %%", 100*(p.Throughput-s.Throughput)/p.Throughput)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", s.Workload, s.Throughput, p.Throughput, lost,
			s.P50, p.P50, s.P99, p.P99, s.ClusterCPUPer1k, p.ClusterCPUPer1k)
	}
	tw.Flush()
	if secure.Failover != nil && insecure.Failover != nil {
		fmt.Fprintf(w, "failover (median to the next acknowledged write): TLS %.1f ms, plain %.1f ms\n",
			secure.Failover.MedianMs, insecure.Failover.MedianMs)
	}
}
