package benchplot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"raftkv/src/bench"
)

func testRuns() []bench.Pass {
	row := func(name string, tput, p50, p99 float64) bench.Row {
		return bench.Row{Workload: name, Op: "put", Throughput: tput, P50: p50, P99: p99, OK: 10}
	}
	return []bench.Pass{
		{Rows: []bench.Row{row("put, 1 client", 3000, 0.3, 0.6), row("put, 64 clients", 15000, 3, 20)}},
		{Rows: []bench.Row{row("put, 1 client", 2900, 0.31, 0.7), row("put, 64 clients", 14000, 3.2, 25)}},
	}
}

func TestWritePlot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "latency.png")
	if err := WritePlot(file, testRuns()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n")) {
		t.Fatalf("not a PNG (%d bytes, %v)", len(b), err)
	}
	if err := WritePlot(file, nil); err == nil {
		t.Error("WritePlot with no rows: no error")
	}
}
