// Package api holds raftkv's shared vocabulary: the JSON shapes of the HTTP
// API (CONTRACT.md) that the node serves and that its clients and test
// harnesses read, the operation names, the client record a client node
// writes, and the outcomes it records. Each word is declared here once.
//
// api imports nothing of raftkv's, so every package may import it.
package api

import "fmt"

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
	// PeerTLS: the node's peer traffic is mutual TLS (false: --insecure).
	PeerTLS bool `json:"peer_tls"`
	// ClientTLS: the HTTP API is HTTPS; Tokens: it requires bearer tokens
	// (both false: --insecure, open to anyone who reaches it).
	ClientTLS bool `json:"client_tls"`
	Tokens    bool `json:"tokens"`
	// Incarnation is the node's data folder's (16 hex digits); Suffrage
	// what its configuration makes it: voter, learner or staging (a
	// learner to be promoted once caught up), empty while it is no member
	// (it waits to bootstrap or to be taken back).
	Incarnation string `json:"incarnation,omitempty"`
	Suffrage    string `json:"suffrage,omitempty"`
}

// String describes the status in one line, for logs and test failures.
func (s Status) String() string {
	return fmt.Sprintf("%s role=%s term=%d leader=%q commit=%d applied=%d", s.Name, s.Role, s.Term, s.Leader, s.CommitIndex, s.AppliedIndex)
}

// ClusterNode is one entry of GET /v1/cluster: a node's status, or for a
// node that did not answer its name, id, Reachable false and Error.
type ClusterNode struct {
	Status
	// Reachable and Error are set in /v1/cluster; nil Reachable (a plain
	// GET /v1/status) means the node answered.
	Reachable *bool  `json:"reachable,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Cluster is GET /v1/cluster: one node's view of all nodes, in hostfile
// order.
type Cluster struct {
	Nodes []ClusterNode `json:"nodes"`
}
