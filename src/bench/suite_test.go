package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %g, want %g", tc.in, got, tc.want)
		}
	}
}

func testRuns() []Pass {
	row := func(name string, tput, p50, p99, cpu float64) Row {
		return Row{Workload: name, Op: "put", Throughput: tput, P50: p50, P99: p99, ClusterCPUPer1k: cpu, OK: 10}
	}
	return []Pass{
		{Rows: []Row{row("put, 1 client", 1000, 0.8, 1.2, 0.9), row("put, 64 clients", 9000, 6, 20, 0.15)}},
		{Rows: []Row{row("put, 1 client", 1200, 0.7, 1.5, 0.8), row("put, 64 clients", 7000, 7, 18, 0.12)}},
		{Rows: []Row{row("put, 1 client", 1100, 0.9, 1.1, 1.0), row("put, 64 clients", 8000, 5, 30, 0.2)}},
	}
}

func TestMedianRows(t *testing.T) {
	m := MedianRows(testRuns())
	if len(m) != 2 || m[0].Workload != "put, 1 client" || m[1].Workload != "put, 64 clients" {
		t.Fatalf("rows %+v", m)
	}
	// Each column is its own median.
	if m[0].Throughput != 1100 || m[0].P50 != 0.8 || m[0].P99 != 1.2 || m[0].ClusterCPUPer1k != 0.9 {
		t.Errorf("row 0 = %+v", m[0])
	}
	if m[1].Throughput != 8000 || m[1].P50 != 6 || m[1].P99 != 20 || m[1].ClusterCPUPer1k != 0.15 {
		t.Errorf("row 1 = %+v", m[1])
	}
}

func TestNewRowCPU(t *testing.T) {
	rep := &Report{OK: 4000, Throughput: 800, Seconds: 5}
	rep.Workload.Clients = 1
	r := NewRow("put, 1 client", "put", rep, 2*time.Second, 500*time.Millisecond)
	if r.ClusterCPUPer1k != 0.5 || r.ClientCPUPer1k != 0.125 || r.Consistency != "" {
		t.Errorf("row %+v", r)
	}
}

func TestWriteTextParts(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, MedianRows(testRuns()))
	WriteMemory(&b, &Memory{AfterPuts: 155000, Keys: 100000, Nodes: []NodeRSS{{Name: "r0", MiB: 70}, {Name: "r1", Leader: true, MiB: 80}}})
	f := &Failover{TimeoutMs: 250, Kills: []Kill{{Killed: "r1", Ms: 50}, {Killed: "r0", Ms: 40}, {Killed: "r2", Ms: 300}}}
	f.FailoverMedian()
	WriteFailover(&b, f)
	out := b.String()
	for _, want := range []string{"cluster CPU", "put, 64 clients", "r1      80.0 MiB (leader)", "median 50.0 ms over 3 kills"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
