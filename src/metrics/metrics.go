package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"raftkv/src/raft"
)

// Latency buckets in seconds: 50 µs to 10 s, dense where a local cluster
// lives (a put costs two fsyncs and a round trip, ~0.3 ms and up).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// batchBuckets count entries per fsync: 0 (a hard-state-only sync), 1, 2, 4 ... 8192.
var batchBuckets = append([]float64{0}, prometheus.ExponentialBuckets(1, 2, 14)...)

var roleNames = []raft.Role{raft.RoleFollower, raft.RolePreCandidate, raft.RoleCandidate, raft.RoleLeader}

// Metrics holds one node's collectors, registered in the node's own
// registry (never the global default one, so that several nodes can live
// in one process, as in tests).
//
// A nil *Metrics is valid: every method is then a no-op, so code that runs
// without metrics (unit tests of the server) needs no checks.
//
// Concurrency: ObserveStatus must be called from one goroutine at a time
// (the server's loop); every other method is safe from any goroutine.
type Metrics struct {
	reg *prometheus.Registry

	roles                                       [4]prometheus.Gauge
	term, commit, applied, lastIndex, snapIndex prometheus.Gauge
	leaderChanges, elections                    prometheus.Counter
	proposals, reads                            prometheus.Counter
	commitLatency, readLatency                  prometheus.Histogram
	fsyncLatency, fsyncBatch                    prometheus.Histogram
	snapshotsTaken, snapshotsInstalled          prometheus.Counter
	// The HTTP edge (see httpapi.limitListener) and the peers' messages.
	httpConns, httpConnLimit prometheus.Gauge
	httpConnLimited          prometheus.Counter
	invalidMessages          prometheus.Counter

	// Loop-owned transition state (see ObserveStatus).
	started       bool
	lastRole      raft.Role
	lastLead      raft.ID
	lastElectTerm uint64

	mu      sync.Mutex
	peer    *peerCollector
	refused *refusalCollector
	ops     *opsMetrics
}

// New creates a node's metrics and registers them in reg (a fresh
// prometheus.NewRegistry() when reg is nil), with the Go runtime's and the
// process's collectors. node names the node in raftkv_node_info.
func New(reg *prometheus.Registry, node string) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	// No constant node label: see ops.go.
	var labels prometheus.Labels
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "raftkv", Name: name, Help: help, ConstLabels: labels})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "raftkv", Name: name, Help: help, ConstLabels: labels})
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "raftkv", Name: name, Help: help, ConstLabels: labels, Buckets: buckets})
	}
	m := &Metrics{
		reg:                reg,
		term:               gauge("term", "Current Raft term."),
		commit:             gauge("commit_index", "Highest log index known committed."),
		applied:            gauge("applied_index", "Highest log index applied to the state machine."),
		lastIndex:          gauge("last_log_index", "Index of the last entry in the log."),
		snapIndex:          gauge("snapshot_index", "Index of the latest snapshot (log compacted up to here)."),
		leaderChanges:      counter("leader_changes_seen_total", "Times this node saw a new leader (including the first one after start)."),
		elections:          counter("elections_started_total", "Elections this node started as a candidate (pre-vote rounds not counted)."),
		proposals:          counter("proposals_total", "Client commands this node proposed as leader."),
		reads:              counter("read_index_total", "Linearizable reads this node started as leader."),
		commitLatency:      hist("commit_latency_seconds", "From proposal to applied, for commands proposed on this node.", latencyBuckets),
		readLatency:        hist("read_index_latency_seconds", "From ReadIndex request to the read being servable.", latencyBuckets),
		fsyncLatency:       hist("fsync_duration_seconds", "Duration of one log write with its fsync (entries and hard state).", latencyBuckets),
		fsyncBatch:         hist("fsync_batch_entries", "Log entries written by one fsync (group commit batch size).", batchBuckets),
		snapshotsTaken:     counter("snapshots_taken_total", "Snapshots this node took of its own state machine."),
		snapshotsInstalled: counter("snapshots_installed_total", "Snapshots received from the leader and installed."),
		httpConns:          gauge("http_connections", "Client HTTP connections open now (accepted and not yet closed)."),
		httpConnLimit:      gauge("http_connections_limit", "The most client HTTP connections open at once (--max-client-conns)."),
		httpConnLimited: counter("http_connections_limited_total",
			"Times the HTTP listener was at its connection limit and stopped accepting until a connection closed (new clients wait in the kernel's backlog meanwhile)."),
		invalidMessages: counter("invalid_messages_total", "Peer messages the Raft core refused (Step returned an error) and dropped."),
	}
	roleVec := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "raftkv", Name: "role", ConstLabels: labels,
		Help: "1 for the node's current role, 0 for the others.",
	}, []string{"role"})
	for i, r := range roleNames {
		m.roles[i] = roleVec.WithLabelValues(r.String())
	}
	m.roles[0].Set(1)
	m.peer = &peerCollector{owner: m,
		sent:      prometheus.NewDesc("raftkv_peer_sent_bytes_total", "Bytes sent to a peer, frame headers included.", []string{"peer"}, labels),
		sentMsgs:  prometheus.NewDesc("raftkv_peer_sent_messages_total", "Raft messages sent to a peer.", []string{"peer"}, labels),
		recv:      prometheus.NewDesc("raftkv_peer_received_bytes_total", "Bytes received from a peer, frame headers included.", []string{"peer"}, labels),
		recvMsgs:  prometheus.NewDesc("raftkv_peer_received_messages_total", "Raft messages received from a peer.", []string{"peer"}, labels),
		dropped:   prometheus.NewDesc("raftkv_peer_dropped_messages_total", "Messages to a peer that were not sent (queue full, unreachable, write failed).", []string{"peer"}, labels),
		connected: prometheus.NewDesc("raftkv_peer_connected", "1 when the outbound stream to the peer is up.", []string{"peer"}, labels),
		lag:       prometheus.NewDesc("raftkv_follower_lag_entries", "Leader only: its last log index minus the follower's match index.", []string{"peer"}, labels),
		match:     prometheus.NewDesc("raftkv_follower_match_index", "Leader only: highest index known replicated on the follower.", []string{"peer"}, labels),
	}
	m.refused = &refusalCollector{owner: m, desc: prometheus.NewDesc("raftkv_peer_handshake_refused_total",
		"Inbound peer connections refused at the TLS or raftkv handshake, by reason (no_certificate, unknown_ca, expired, name_mismatch, ...).",
		[]string{"reason"}, labels)}
	reg.MustRegister(m.refused)
	m.ops = newOpsMetrics(m, reg, node)
	reg.MustRegister(m.term, m.commit, m.applied, m.lastIndex, m.snapIndex, roleVec,
		m.leaderChanges, m.elections, m.proposals, m.reads, m.commitLatency, m.readLatency,
		m.fsyncLatency, m.fsyncBatch, m.snapshotsTaken, m.snapshotsInstalled, m.peer,
		m.httpConns, m.httpConnLimit, m.httpConnLimited, m.invalidMessages)
	return m
}

// Registry is the node's registry.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveStatus records the core's state after a Ready was handled: the
// gauges, and the transitions that count leader changes and elections.
// The first call only sets the baseline for elections (a vote for itself
// recovered from disk is an election of a previous life).
func (m *Metrics) ObserveStatus(st raft.Status) {
	if m == nil {
		return
	}
	m.term.Set(float64(st.Term))
	m.commit.Set(float64(st.Commit))
	m.applied.Set(float64(st.Applied))
	m.lastIndex.Set(float64(st.LastIndex))
	m.snapIndex.Set(float64(st.SnapshotIndex))
	if st.Lead != raft.None {
		m.ops.hasLeader.Set(1)
	} else {
		m.ops.hasLeader.Set(0)
	}
	if !m.started || st.Role != m.lastRole {
		for i, r := range roleNames {
			if r == st.Role {
				m.roles[i].Set(1)
			} else {
				m.roles[i].Set(0)
			}
		}
	}
	// A node votes for itself exactly when it campaigns (Raft §5.2), so a
	// term with a self-vote newer than the last one seen is a new election.
	// Several campaigns between two calls count once.
	if st.Vote == st.ID && st.Term > m.lastElectTerm && (st.Role == raft.RoleCandidate || st.Role == raft.RoleLeader) {
		if m.started {
			m.elections.Inc()
		}
		m.lastElectTerm = st.Term
	}
	// As etcd counts it: a known leader other than the one last observed
	// (None in between included), so a re-election of the same node counts.
	if st.Lead != raft.None && (!m.started || st.Lead != m.lastLead) {
		m.leaderChanges.Inc()
	}
	m.lastLead = st.Lead
	m.lastRole, m.started = st.Role, true
}

// ProposalStarted counts a proposal and returns its start time for
// ObserveCommit.
func (m *Metrics) ProposalStarted() time.Time {
	if m != nil {
		m.proposals.Inc()
	}
	return time.Now()
}

// ObserveCommit records the commit latency of a proposal started at start.
func (m *Metrics) ObserveCommit(start time.Time) {
	if m != nil {
		m.commitLatency.Observe(time.Since(start).Seconds())
	}
}

// ReadStarted counts a linearizable read and returns its start time for
// ObserveReadIndex.
func (m *Metrics) ReadStarted() time.Time {
	if m != nil {
		m.reads.Inc()
	}
	return time.Now()
}

// ObserveReadIndex records the latency of a ReadIndex round started at start.
func (m *Metrics) ObserveReadIndex(start time.Time) {
	if m != nil {
		m.readLatency.Observe(time.Since(start).Seconds())
	}
}

// ObserveFsync records one durable log write that started at start and
// carried entries log entries.
func (m *Metrics) ObserveFsync(start time.Time, entries int) {
	if m != nil {
		m.fsyncLatency.Observe(time.Since(start).Seconds())
		m.fsyncBatch.Observe(float64(entries))
	}
}

// SnapshotTaken counts a snapshot of the node's own state machine.
func (m *Metrics) SnapshotTaken() {
	if m != nil {
		m.snapshotsTaken.Inc()
	}
}

// SnapshotInstalled counts a snapshot received from the leader.
func (m *Metrics) SnapshotInstalled() {
	if m != nil {
		m.snapshotsInstalled.Inc()
	}
}

// PeerSample is what the transport and the leader's progress say about one
// peer at scrape time.
type PeerSample struct {
	Name                        string
	BytesSent, MessagesSent     uint64
	BytesReceived, MessagesRecv uint64
	Dropped                     uint64
	Connected                   bool
	HasProgress                 bool // set on the leader only
	Match, Lag                  uint64
}

// SetHTTPConnLimit records the HTTP connection limit.
func (m *Metrics) SetHTTPConnLimit(n int) {
	if m == nil {
		return
	}
	m.httpConnLimit.Set(float64(n))
}

// HTTPConnOpened counts a client connection accepted.
func (m *Metrics) HTTPConnOpened() {
	if m == nil {
		return
	}
	m.httpConns.Inc()
}

// HTTPConnClosed counts a client connection closed.
func (m *Metrics) HTTPConnClosed() {
	if m == nil {
		return
	}
	m.httpConns.Dec()
}

// HTTPConnLimited counts a time the listener waited for a free connection.
func (m *Metrics) HTTPConnLimited() {
	if m == nil {
		return
	}
	m.httpConnLimited.Inc()
}

// HTTPConnections returns the open-connection gauge (for tests and
// summaries).
func (m *Metrics) HTTPConnections() float64 {
	if m == nil {
		return 0
	}
	return gaugeValue(m.httpConns)
}

// InvalidMessage counts a peer message the core refused.
func (m *Metrics) InvalidMessage() {
	if m == nil {
		return
	}
	m.invalidMessages.Inc()
}

// InvalidMessages returns the count of refused peer messages.
func (m *Metrics) InvalidMessages() float64 {
	if m == nil {
		return 0
	}
	return counterValue(m.invalidMessages)
}

// WatchPeers sets the function called at every scrape (and by Summary) for
// per-peer values. It may block briefly; it must not need the caller of
// ObserveStatus to make progress forever.
func (m *Metrics) WatchPeers(sample func() []PeerSample) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.peer.sample = sample
	m.mu.Unlock()
}

// WatchHandshakeRefusals sets the function read at every scrape for the
// refused inbound peer connections by reason (transport.Refusals).
func (m *Metrics) WatchHandshakeRefusals(counts func() map[string]uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.refused.counts = counts
	m.mu.Unlock()
}

type refusalCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]uint64 // guarded by Metrics.mu
	owner  *Metrics
}

func (c *refusalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *refusalCollector) Collect(ch chan<- prometheus.Metric) {
	c.owner.mu.Lock()
	f := c.counts
	c.owner.mu.Unlock()
	if f == nil {
		return
	}
	for reason, n := range f() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), reason)
	}
}

func (m *Metrics) peers() []PeerSample {
	m.mu.Lock()
	f := m.peer.sample
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

type peerCollector struct {
	sent, sentMsgs, recv, recvMsgs, dropped, connected, lag, match *prometheus.Desc
	sample                                                         func() []PeerSample // guarded by Metrics.mu
	owner                                                          *Metrics
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sent, c.sentMsgs, c.recv, c.recvMsgs, c.dropped, c.connected, c.lag, c.match} {
		ch <- d
	}
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	if c.owner == nil {
		return
	}
	for _, p := range c.owner.peers() {
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(p.BytesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(c.sentMsgs, prometheus.CounterValue, float64(p.MessagesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(c.recv, prometheus.CounterValue, float64(p.BytesReceived), p.Name)
		ch <- prometheus.MustNewConstMetric(c.recvMsgs, prometheus.CounterValue, float64(p.MessagesRecv), p.Name)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(p.Dropped), p.Name)
		conn := 0.0
		if p.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, conn, p.Name)
		if p.HasProgress {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(p.Lag), p.Name)
			ch <- prometheus.MustNewConstMetric(c.match, prometheus.GaugeValue, float64(p.Match), p.Name)
		}
	}
}

// HistogramSummary is a cumulative histogram: Buckets[i] counts the
// observations <= UpperBounds[i] (seconds, or entries for batches).
type HistogramSummary struct {
	Count       uint64    `json:"count"`
	Sum         float64   `json:"sum"`
	UpperBounds []float64 `json:"upper_bounds"`
	Buckets     []uint64  `json:"buckets"`
}

// Summary is the JSON of GET /v1/metrics-summary for one node: cumulative
// counters the dashboard turns into rates and latencies by differences.
type Summary struct {
	Node               string           `json:"node"`
	Proposals          uint64           `json:"proposals"`
	CommitLatency      HistogramSummary `json:"commit_latency_seconds"`
	ReadIndexLatency   HistogramSummary `json:"read_index_latency_seconds"`
	FsyncLatency       HistogramSummary `json:"fsync_seconds"`
	FsyncBatch         HistogramSummary `json:"fsync_batch_entries"`
	SnapshotsTaken     uint64           `json:"snapshots_taken"`
	SnapshotsInstalled uint64           `json:"snapshots_installed"`
	// FollowerLag is the leader's view (last index - match), by peer name;
	// empty on followers.
	FollowerLag map[string]uint64 `json:"follower_lag,omitempty"`
	Reachable   *bool             `json:"reachable,omitempty"`
	Error       string            `json:"error,omitempty"`
}

// Summary reads the node's cumulative values.
func (m *Metrics) Summary(node string) Summary {
	s := Summary{Node: node}
	if m == nil {
		return s
	}
	s.Proposals = uint64(counterValue(m.proposals))
	s.CommitLatency = histogramValue(m.commitLatency)
	s.ReadIndexLatency = histogramValue(m.readLatency)
	s.FsyncLatency = histogramValue(m.fsyncLatency)
	s.FsyncBatch = histogramValue(m.fsyncBatch)
	s.SnapshotsTaken = uint64(counterValue(m.snapshotsTaken))
	s.SnapshotsInstalled = uint64(counterValue(m.snapshotsInstalled))
	for _, p := range m.peers() {
		if p.HasProgress {
			if s.FollowerLag == nil {
				s.FollowerLag = map[string]uint64{}
			}
			s.FollowerLag[p.Name] = p.Lag
		}
	}
	return s
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}

func histogramValue(h prometheus.Histogram) HistogramSummary {
	var d dto.Metric
	if err := h.Write(&d); err != nil || d.Histogram == nil {
		return HistogramSummary{}
	}
	out := HistogramSummary{Count: d.Histogram.GetSampleCount(), Sum: d.Histogram.GetSampleSum()}
	for _, b := range d.Histogram.GetBucket() {
		out.UpperBounds = append(out.UpperBounds, b.GetUpperBound())
		out.Buckets = append(out.Buckets, b.GetCumulativeCount())
	}
	return out
}

func gaugeValue(g prometheus.Gauge) float64 {
	var d dto.Metric
	if err := g.Write(&d); err != nil || d.Gauge == nil {
		return 0
	}
	return d.Gauge.GetValue()
}
