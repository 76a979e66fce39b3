// Package benchplot draws make bench's latency-against-throughput chart. It
// is apart from package bench so that gonum/plot (whose init parses its
// fonts) is linked into the benchmark harness only, not into every raftkv
// node: it cost each node's resident memory a few MiB for nothing.
package benchplot

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"raftkv/src/bench"
)

// WritePlot draws latency (p50 and p99, log scale) against throughput for
// every row of every run into a PNG (or SVG/PDF, by file's extension): one
// colour per workload, a circle at p50, a triangle at p99, a line between
// them. The folder is created if missing.
func WritePlot(file string, runs []bench.Pass) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("raftkv: latency against throughput (3 nodes, fsync on, 256 B values, %d run(s))", len(runs))
	p.X.Label.Text = "throughput (successful requests/s)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true // top right: the fewest points there

	var order []string
	byName := map[string][]bench.Row{}
	for _, r := range runs {
		for _, row := range r.Rows {
			if _, ok := byName[row.Workload]; !ok {
				order = append(order, row.Workload)
			}
			byName[row.Workload] = append(byName[row.Workload], row)
		}
	}
	if len(order) == 0 {
		return fmt.Errorf("plot: no rows")
	}
	pos := func(ms float64) float64 { return max(ms, 0.001) } // log scale: no zeros
	// Room around the points, so that no glyph is cut at an edge.
	maxX, minY, maxY := 0.0, 0.0, 0.0
	for _, rows := range byName {
		for _, r := range rows {
			maxX = max(maxX, r.Throughput)
			maxY = max(maxY, pos(r.P99), pos(r.P50))
			if minY == 0 || pos(r.P50) < minY {
				minY = pos(r.P50)
			}
		}
	}
	p.X.Max = maxX*1.08 + 1
	p.Y.Min, p.Y.Max = minY/1.5, maxY*1.5
	for i, name := range order {
		c := plotutil.Color(i)
		var p50, p99 plotter.XYs
		for _, row := range byName[name] {
			p50 = append(p50, plotter.XY{X: row.Throughput, Y: pos(row.P50)})
			p99 = append(p99, plotter.XY{X: row.Throughput, Y: pos(row.P99)})
			l, err := plotter.NewLine(plotter.XYs{{X: row.Throughput, Y: pos(row.P50)}, {X: row.Throughput, Y: pos(row.P99)}})
			if err != nil {
				return err
			}
			l.Color, l.Width = c, vg.Points(1)
			p.Add(l)
		}
		s50, err := plotter.NewScatter(p50)
		if err != nil {
			return err
		}
		s50.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: draw.CircleGlyph{}}
		s99, err := plotter.NewScatter(p99)
		if err != nil {
			return err
		}
		s99.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: draw.TriangleGlyph{}}
		p.Add(s50, s99)
		p.Legend.Add(name, s50)
	}
	gray := color.Gray{Y: 90}
	for _, k := range []struct {
		name  string
		shape draw.GlyphDrawer
	}{{"p50 (circle)", draw.CircleGlyph{}}, {"p99 (triangle)", draw.TriangleGlyph{}}} {
		s, err := plotter.NewScatter(plotter.XYs{{X: 0, Y: 1}})
		if err != nil {
			return err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: gray, Radius: vg.Points(4), Shape: k.shape}
		p.Legend.Add(k.name, s) // legend only: not added to the plot
	}
	if dir := filepath.Dir(file); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return p.Save(10*vg.Inch, 6*vg.Inch, file)
}
