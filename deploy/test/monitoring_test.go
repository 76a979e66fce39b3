package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/localcluster"
)

const (
	alertsFile    = "../prometheus/alerts.yaml"
	dashboardFile = "../grafana/raftkv.json"
)

// metricNames returns the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, "expression %q", expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			require.NotEmpty(t, name, "expression %q selects series without a metric name", expr)
			names = append(names, name)
		}
		return nil
	})
	require.NotEmpty(t, names, "expression %q names no metric", expr)
	return names
}

// ruleExprs parses the alert rules with Prometheus's own rule parser
// (which also parses every expression and template) and returns their
// expressions by alert.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs, "%s does not parse as Prometheus rules", alertsFile)
	out := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "a recording rule in %s", alertsFile)
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// dashboardExprs returns every query of the Grafana dashboard, by panel.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d), dashboardFile)
	require.NotEmpty(t, d.UID)
	out := map[string]string{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, q := range p.Targets {
			out[p.Title+" "+q.RefID] = q.Expr
		}
	}
	return out
}

// TestAlertsAndDashboardNameLiveMetrics parses deploy/prometheus/alerts.yaml
// with Prometheus's rule parser and every query of deploy/grafana/raftkv.json
// with its PromQL parser, then starts a real 3-node cluster, writes through
// it, and requires every metric a rule or a panel names to be exported by
// a live node (histograms by their _bucket, _sum and _count series).
func TestAlertsAndDashboardNameLiveMetrics(t *testing.T) {
	rules := ruleExprs(t)
	for _, want := range []string{"RaftkvNoLeader", "RaftkvFrequentLeaderChanges", "RaftkvSlowFsync", "RaftkvFollowerLag"} {
		assert.Contains(t, rules, want)
	}
	named := map[string][]string{} // metric -> where
	for alert, e := range rules {
		for _, n := range metricNames(t, e) {
			named[n] = append(named[n], "alert "+alert)
		}
	}
	for panel, e := range dashboardExprs(t) {
		for _, n := range metricNames(t, e) {
			named[n] = append(named[n], "panel "+panel)
		}
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "raftkv")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	c, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: dir, Insecure: true,
		Env: []string{"RAFT_HEARTBEAT=50ms", "RAFT_ELECTION_TIMEOUT=500ms"}, Args: []string{"--snapshot-every", "20"}})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lead, err := c.WaitLeader(ctx)
	require.NoError(t, err)
	// Writes through a follower (forwarded) and the leader, so that
	// requests, commits, fsyncs and a snapshot (every 20 entries) happen.
	for i := range 60 {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v1/kv/k%d", c.Nodes[i%3].HTTPAddr, i), strings.NewReader("v"))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	live := map[string]bool{}
	var families []string
	for i, n := range c.Nodes {
		resp, err := http.Get("http://" + n.HTTPAddr + "/metrics")
		require.NoError(t, err)
		tp := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := tp.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, "node %s's /metrics does not parse", n.Name)
		for name, f := range fams {
			if len(f.GetMetric()) == 0 {
				continue
			}
			live[name] = true
			if i == lead {
				families = append(families, name)
			}
			switch f.GetType().String() {
			case "HISTOGRAM":
				live[name+"_bucket"], live[name+"_sum"], live[name+"_count"] = true, true, true
			case "SUMMARY":
				live[name+"_sum"], live[name+"_count"] = true, true
			}
		}
	}
	var missing []string
	for n, where := range named {
		if !live[n] {
			missing = append(missing, fmt.Sprintf("%s (named by %s)", n, strings.Join(where, ", ")))
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "metrics named by the alerts or the dashboard that no live node exports")
	sort.Strings(families)
	t.Logf("%d metrics named by %d rules and the dashboard; the leader exports %d families", len(named), len(rules), len(families))
}
