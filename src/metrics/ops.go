package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"raftkv/src/raft"
)

// This file holds the metrics an operator's dashboards and alerts want
// beyond the Raft internals: the Go runtime and the process, whether a
// leader is known, client requests by route and status code, the state's
// size, snapshots, peer round trips and failed proposals.
//
// No metric carries a node label: Prometheus adds instance (the scraped
// address) to every series, and a second label saying the same would
// double what a query must aggregate away. raftkv_node_info{name} maps
// instance to the node's name for a dashboard that wants it (a join on
// instance).

// snapshotBuckets: a snapshot of a small state takes milliseconds, of a
// large one seconds.
var snapshotBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// The reasons of raftkv_proposals_failed_total (see ProposalFailed).
const (
	FailNotLeader = iota // not proposed: not the leader, or a transfer under way
	FailBusy             // not proposed: the loop did not take it in time
	FailTimeout          // proposed, not known committed in time: outcome unknown
	FailLost             // another entry committed at its index: not applied
	FailUnknown          // stopping, or covered by a snapshot: outcome unknown
	numFailReasons
)

var failReasonNames = [numFailReasons]string{"not_leader", "busy", "timeout", "lost", "unknown"}

type opsMetrics struct {
	hasLeader    prometheus.Gauge
	stateBytes   prometheus.Gauge
	snapshotSize prometheus.Gauge
	snapshotDur  prometheus.Histogram
	pending      prometheus.Gauge
	failed       [numFailReasons]prometheus.Counter

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// routes holds each route's pre-resolved children, by the route's
	// index in SetHTTPRoutes' list: the request path pays an atomic load,
	// never a label lookup.
	routes atomic.Pointer[[]*routeMetrics]

	rtt *prometheus.HistogramVec
	// rttPeers: a peer's round-trip histogram, by raft.ID (SetPeers).
	rttPeers atomic.Pointer[[]prometheus.Observer]

	stateKeys func() int     // guarded by Metrics.mu
	ready     func() float64 // guarded by Metrics.mu
}

type routeMetrics struct {
	latency prometheus.Observer
	// codes[c-100] is the counter of status code c, made on first use so
	// that only codes that happened are exported.
	codes [500]atomic.Pointer[prometheus.Counter]
	name  string
}

func newOpsMetrics(m *Metrics, reg *prometheus.Registry, node string) *opsMetrics {
	o := &opsMetrics{
		hasLeader:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "raftkv_has_leader", Help: "1 when this node knows a leader (itself included), else 0."}),
		stateBytes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "raftkv_state_bytes", Help: "Size in bytes of the state machine's encoding at its newest snapshot (taken, installed or recovered)."}),
		snapshotSize: prometheus.NewGauge(prometheus.GaugeOpts{Name: "raftkv_snapshot_size_bytes", Help: "Size in bytes of the state machine in the newest snapshot this node took."}),
		snapshotDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "raftkv_snapshot_duration_seconds",
			Help: "Time to encode and durably save a snapshot of this node's state machine.", Buckets: snapshotBuckets}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "raftkv_proposals_pending", Help: "Commands proposed by this node (as leader) waiting to be applied."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "raftkv_http_requests_total",
			Help: "Client HTTP requests answered, by route (a fixed set, not the path) and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "raftkv_http_request_duration_seconds",
			Help: "Time from a request's arrival to its answer's end, by route.", Buckets: latencyBuckets}, []string{"route"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "raftkv_peer_round_trip_seconds",
			Help: "Leader only: time from a heartbeat to its answer, by peer (network round trip plus the peer's loop turn).", Buckets: latencyBuckets}, []string{"peer"}),
	}
	failed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "raftkv_proposals_failed_total",
		Help: "Client commands that failed on this node, by reason: not_leader and busy were not proposed, lost was not applied, timeout and unknown have an unknown outcome."}, []string{"reason"})
	for i, r := range failReasonNames {
		o.failed[i] = failed.WithLabelValues(r)
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "raftkv_node_info", Help: "Always 1; name is the node's name in the hostfile (join on instance)."}, []string{"name"})
	info.WithLabelValues(node).Set(1)
	keys := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "raftkv_state_keys", Help: "Keys in the state machine."}, func() float64 {
		m.mu.Lock()
		f := o.stateKeys
		m.mu.Unlock()
		if f == nil {
			return 0
		}
		return float64(f())
	})
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "raftkv_ready", Help: "1 when GET /readyz answers 200 (leader known, in the configuration, applied close to the leader's commit)."}, func() float64 {
		m.mu.Lock()
		f := o.ready
		m.mu.Unlock()
		if f == nil {
			return 0
		}
		return f()
	})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		o.hasLeader, o.stateBytes, o.snapshotSize, o.snapshotDur, o.pending, failed, o.requests, o.latency, o.rtt, info, keys, ready)
	return o
}

// WatchState sets the function read at every scrape for the number of
// keys (raftkv_state_keys).
func (m *Metrics) WatchState(keys func() int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.ops.stateKeys = keys
	m.mu.Unlock()
}

// WatchReady sets the function read at every scrape for raftkv_ready.
func (m *Metrics) WatchReady(ready func() bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.ops.ready = func() float64 {
		if ready() {
			return 1
		}
		return 0
	}
	m.mu.Unlock()
}

// SetHTTPRoutes names the routes HTTPRequest is called with, by index.
func (m *Metrics) SetHTTPRoutes(names []string) {
	if m == nil {
		return
	}
	rs := make([]*routeMetrics, len(names))
	for i, n := range names {
		rs[i] = &routeMetrics{name: n, latency: m.ops.latency.WithLabelValues(n)}
	}
	m.ops.routes.Store(&rs)
}

// HTTPRequest counts a request answered with code on route (an index into
// SetHTTPRoutes' names) and records its duration.
func (m *Metrics) HTTPRequest(route, code int, d time.Duration) {
	if m == nil {
		return
	}
	rs := m.ops.routes.Load()
	if rs == nil || route < 0 || route >= len(*rs) {
		return
	}
	r := (*rs)[route]
	r.latency.Observe(d.Seconds())
	if code < 100 || code >= 600 {
		code = 500 // net/http answers nothing else; a handler's bug
	}
	slot := &r.codes[code-100]
	c := slot.Load()
	if c == nil {
		cc := m.ops.requests.WithLabelValues(r.name, strconv.Itoa(code))
		slot.CompareAndSwap(nil, &cc)
		c = slot.Load()
	}
	(*c).Inc()
}

// SetPeers names the peers by raft.ID for ObservePeerRTT; "" marks the
// node itself (no round trip to itself is exported).
func (m *Metrics) SetPeers(names []string) {
	if m == nil {
		return
	}
	obs := make([]prometheus.Observer, len(names))
	for i, n := range names {
		if n != "" {
			obs[i] = m.ops.rtt.WithLabelValues(n)
		}
	}
	m.ops.rttPeers.Store(&obs)
}

// ObservePeerRTT records a heartbeat round trip to peer id.
func (m *Metrics) ObservePeerRTT(id raft.ID, d time.Duration) {
	if m == nil {
		return
	}
	if obs := m.ops.rttPeers.Load(); obs != nil && int(id) >= 0 && int(id) < len(*obs) && (*obs)[id] != nil {
		(*obs)[id].Observe(d.Seconds())
	}
}

// ProposalFailed counts a failed client command by reason (Fail*).
func (m *Metrics) ProposalFailed(reason int) {
	if m == nil || reason < 0 || reason >= numFailReasons {
		return
	}
	m.ops.failed[reason].Inc()
}

// SetPendingProposals records the commands waiting to be applied.
func (m *Metrics) SetPendingProposals(n int) {
	if m == nil {
		return
	}
	m.ops.pending.Set(float64(n))
}

// ObserveSnapshot records a snapshot this node took: the state machine's
// encoded size and the time to encode and save it.
func (m *Metrics) ObserveSnapshot(bytes uint64, took time.Duration) {
	if m == nil {
		return
	}
	m.ops.snapshotSize.Set(float64(bytes))
	m.ops.stateBytes.Set(float64(bytes))
	m.ops.snapshotDur.Observe(took.Seconds())
}

// SetStateBytes records the state's encoded size from a snapshot installed
// or recovered.
func (m *Metrics) SetStateBytes(bytes uint64) {
	if m == nil {
		return
	}
	m.ops.stateBytes.Set(float64(bytes))
}
