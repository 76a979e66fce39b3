// Package api holds the JSON shapes of the HTTP API (CONTRACT.md) that the
// node serves and that its clients and test harnesses read, so that a field
// is named once.
package api

// Status is a node's GET /v1/status.
type Status struct {
	Name          string `json:"name"`
	ID            int    `json:"id"`
	Role          string `json:"role"`
	Term          uint64 `json:"term"`
	Leader        string `json:"leader"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastLogIndex  uint64 `json:"last_log_index"`
	SnapshotIndex uint64 `json:"snapshot_index"`
}
