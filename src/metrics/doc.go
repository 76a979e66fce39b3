// Package metrics holds one raftkv node's Prometheus collectors, in the
// node's own registry, and the small API the runtime's loop and the HTTP
// handlers call: one line at each place where something worth counting happens.
//
// Usage (src/node/metrics.go and src/httpapi/observe.go do this):
//
//	m := metrics.New(prometheus.NewRegistry(), "r0")
//	m.WatchPeers(samplePeers)            // transport counters, leader's follower progress; read at scrape time
//	m.ObserveStatus(node.BasicStatus())  // after each Ready: role, term, indexes, leader changes, elections
//	t := m.ProposalStarted(); ...; m.ObserveCommit(t)
//	t := m.ReadStarted(); ...; m.ObserveReadIndex(t)
//	t := time.Now(); disk.Save(...); m.ObserveFsync(t, len(entries))
//	m.SnapshotTaken(); m.SnapshotInstalled()
//	m.HTTPConnOpened(); m.HTTPConnClosed(); m.HTTPConnLimited()   // the HTTP listener
//	m.InvalidMessage()                   // a peer message the core refused
//	http.Handle("/metrics", m.Handler())
//
// Metric names (no node label: Prometheus's instance says which node; see
// ops.go), besides the Go runtime's go_* and the process's process_*:
//
//	raftkv_role{role}                      1 for the current role (follower, pre-candidate, candidate, leader)
//	raftkv_term, raftkv_commit_index, raftkv_applied_index, raftkv_last_log_index, raftkv_snapshot_index
//	raftkv_leader_changes_seen_total, raftkv_elections_started_total
//	raftkv_proposals_total, raftkv_commit_latency_seconds (histogram)
//	raftkv_read_index_total, raftkv_read_index_latency_seconds (histogram)
//	raftkv_fsync_duration_seconds, raftkv_fsync_batch_entries (histograms)
//	raftkv_snapshots_taken_total, raftkv_snapshots_installed_total
//	raftkv_peer_{sent,received}_{bytes,messages}_total{peer}, raftkv_peer_dropped_messages_total{peer}, raftkv_peer_connected{peer}
//	raftkv_follower_lag_entries{peer}, raftkv_follower_match_index{peer}   (leader only)
//	raftkv_http_connections, raftkv_http_connections_limit, raftkv_http_connections_limited_total
//	raftkv_invalid_messages_total, raftkv_peer_handshake_refused_total{reason}
//	raftkv_node_info{name}, raftkv_has_leader, raftkv_ready
//	raftkv_http_requests_total{route,code}, raftkv_http_request_duration_seconds{route} (histogram)
//	raftkv_state_keys, raftkv_state_bytes (at the newest snapshot)
//	raftkv_snapshot_duration_seconds (histogram), raftkv_snapshot_size_bytes
//	raftkv_peer_round_trip_seconds{peer} (histogram; leader only)
//	raftkv_proposals_failed_total{reason}, raftkv_proposals_pending
//
// Summary gives the cumulative values as JSON for GET /v1/metrics-summary,
// which the dashboard turns into rates by differences.
package metrics
