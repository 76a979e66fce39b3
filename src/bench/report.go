package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: uint64(h.TotalCount()), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// Report is the outcome of one run (`--json` prints it as is).
type Report struct {
	Workload struct {
		Clients     int     `json:"clients"`
		Put         float64 `json:"put"`
		Append      float64 `json:"append"`
		Get         float64 `json:"get"`
		List        float64 `json:"list,omitempty"`
		KeySize     int     `json:"key_size"`
		ValSize     int     `json:"val_size"`
		Keys        int     `json:"keys"`
		Total       int     `json:"total,omitempty"`
		Duration    string  `json:"duration,omitempty"`
		Consistency string  `json:"consistency"`
	} `json:"workload"`
	Leader     string  `json:"leader"` // at the start
	Seconds    float64 `json:"seconds"`
	Requests   uint64  `json:"requests"`
	OK         uint64  `json:"ok"`
	Errors     uint64  `json:"errors"`
	NotFound   uint64  `json:"get_not_found"` // successful gets of absent keys
	Throughput float64 `json:"throughput"`    // successful requests per second
	// Latency is over successful requests, from send to the whole response.
	Latency      Latency            `json:"latency"`
	ByOperation  map[string]Latency `json:"by_operation"`
	ErrorsByKind map[string]uint64  `json:"errors_by_kind"`
}

func buildReport(o Options, workers []*worker, elapsed time.Duration, leader string) *Report {
	r := &Report{Leader: leader, Seconds: elapsed.Seconds(), ByOperation: map[string]Latency{}, ErrorsByKind: map[string]uint64{}}
	w := &r.Workload
	w.Clients, w.Put, w.Append, w.Get, w.List = o.Clients, o.Put, o.Append, o.Get, o.List
	w.KeySize, w.ValSize, w.Keys, w.Total, w.Consistency = o.KeySize, o.ValSize, o.Keys, o.Total, o.Consistency
	if o.Duration > 0 {
		w.Duration = o.Duration.String()
	}
	all := newHist()
	var perOp [numOps]*hdrhistogram.Histogram
	for k := range perOp {
		perOp[k] = newHist()
	}
	for _, wk := range workers {
		all.Merge(wk.all)
		for k := range numOps {
			perOp[k].Merge(wk.hist[k])
			r.OK += wk.ok[k]
		}
		r.NotFound += wk.notFound
		for kind, n := range wk.errs {
			r.ErrorsByKind[kind] += n
			r.Errors += n
		}
	}
	r.Requests = r.OK + r.Errors
	if r.Seconds > 0 {
		r.Throughput = float64(r.OK) / r.Seconds
	}
	r.Latency = latencyOf(all)
	for k := range numOps {
		if perOp[k].TotalCount() > 0 {
			r.ByOperation[opNames[k]] = latencyOf(perOp[k])
		}
	}
	return r
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) {
	wl := r.Workload
	var mix []string
	for _, p := range []struct {
		name string
		v    float64
	}{{"put", wl.Put}, {"append", wl.Append}, {"get", wl.Get}, {"list", wl.List}} {
		if p.v > 0 {
			mix = append(mix, fmt.Sprintf("%s %g", p.name, p.v))
		}
	}
	fmt.Fprintf(w, "Workload: %d clients, one connection per client, mix %s, key %d B over %d keys, value %d B",
		wl.Clients, strings.Join(mix, " / "), wl.KeySize, wl.Keys, wl.ValSize)
	if wl.Get > 0 || wl.List > 0 {
		fmt.Fprintf(w, ", %s reads", wl.Consistency)
	}
	fmt.Fprintf(w, "; leader %s\n", orDash(r.Leader))
	fmt.Fprintf(w, "Summary:\n  Total:       %.3f s\n  Requests:    %d (ok %d, errors %d)\n  Throughput:  %.1f req/s\n",
		r.Seconds, r.Requests, r.OK, r.Errors, r.Throughput)
	if r.NotFound > 0 {
		fmt.Fprintf(w, "  Not found:   %d gets of absent keys (counted ok)\n", r.NotFound)
	}
	fmt.Fprintf(w, "Latency (ms):  %8s %8s %8s %8s %8s %8s %9s\n", "p50", "p90", "p99", "p99.9", "max", "mean", "count")
	line := func(name string, l Latency) {
		fmt.Fprintf(w, "  %-11s  %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %9d\n", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean, l.Count)
	}
	line("all", r.Latency)
	if len(r.ByOperation) > 1 {
		for _, name := range opNames {
			if l, ok := r.ByOperation[name]; ok {
				line(name, l)
			}
		}
	}
	if len(r.ErrorsByKind) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, kind := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
			fmt.Fprintf(w, "  %-24s %d\n", kind+":", r.ErrorsByKind[kind])
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// startProgress redraws a progress bar on w every 200 ms until the
// returned function is called (which clears it). w nil: no bar.
func startProgress(w io.Writer, o Options, start time.Time, done, failed *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				el := time.Since(start)
				frac := 0.0
				if o.Total > 0 {
					frac = float64(done.Load()) / float64(o.Total)
				} else if o.Duration > 0 {
					frac = el.Seconds() / o.Duration.Seconds()
				}
				frac = min(max(frac, 0), 1)
				const width = 30
				n := int(frac * width)
				bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
				fmt.Fprintf(w, "\r[%s] %3.0f%%  %d req  %.0f req/s  %d errors  %.1fs",
					bar, frac*100, done.Load(), float64(done.Load())/el.Seconds(), failed.Load(), el.Seconds())
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
