// Package httpapi is a node's HTTP API (CONTRACT.md): the handlers of
// /v1/kv/{key}, /v1/status, /v1/cluster, /healthz, /metrics and
// /v1/metrics-summary, strict query parsing, forwarding from a follower to
// the leader, the fan-out of /v1/cluster and ?scope=cluster, the dashboard
// mount, and the HTTP server with its timeouts and connection limit.
//
// It drives the node runtime (src/node) only through the Runtime interface
// (a *node.Node satisfies it): the handlers never touch the Raft core. It
// maps the runtime's errors to status codes: a command that was certainly
// not applied is a 503 (retry anywhere), one whose outcome is unknown a 504
// (retry with the same Request-Seq).
//
// # Usage
//
//	rt, err := node.New(nodeCfg)
//	srv := httpapi.New(httpapi.Config{Self: 0, Peers: peers, Listen: ":8000", Logger: lg}, rt)
//	err = srv.Run(ctx) // starts rt, serves until ctx ends or rt fails, then stops both
//
// # The path of a write
//
//	PUT /v1/kv/k --> routes: Raft-Node/Raft-Leader headers --> handleKV: key, query, body, Client-Id/Request-Seq
//	  follower: forwardIfFollower --HTTP--> the leader's handleKV (Raft-Forwarded-By: never twice)
//	  leader:   write --Runtime.Propose(encoded command, timer)--> the runtime's loop (see package node)
//	            applied --> 200 {"index":N}; ErrNotLeader/ErrLost/ErrBusy --> 503; ErrTimeout and unknown --> 504
//
// # The path of a linearizable read
//
//	GET /v1/kv/k --> handleKV --> linearizableGet
//	  follower: forwardIfFollower --HTTP--> the leader
//	  leader:   Runtime.Read(timer): a quorum confirmed leadership and the read index is applied
//	            --> Runtime.Entry(k) --> 200 {"key":..,"value":..,"create_index":..,"mod_index":..,"version":..} or 404; no quorum in time --> 503
//
// A stale read (?consistency=stale) is Runtime.Entry on whichever node it
// reaches; Raft-Index says which applied index it reflects. Listings
// (?prefix, ?range_end=) take the same path to Runtime.Range (kvapi.go).
// ?cas=, DELETE ?prefix and POST /v1/txn are writes like any other: the
// compare runs in the state machine when the entry applies, and a failed
// one is a 409 with the key's metadata.
package httpapi
