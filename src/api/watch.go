package api

// Watches and leases (CONTRACT.md, "Second wave": blocking reads, watch,
// leases, locks).

// Watch event types: the "type" of a line of GET /v1/watch/{prefix}.
const (
	EventPut    = "put"    // the key was set (Value is its new value)
	EventAppend = "append" // a value was appended (Value is the whole new value)
	EventDelete = "delete" // the key was deleted (a delete, a transaction, a revoked lease)
	EventExpire = "expire" // the key was deleted because its lease expired
	// EventCancelled ends a stream: Reason says why (a watcher too slow for
	// the history window, a snapshot installed, the node stopping); resume
	// from Index, the last index the stream completed.
	EventCancelled = "cancelled"
)

// WatchEvent is one line of a watch stream: a change of Key at log index
// Index, or the stream's last line (Type "cancelled").
type WatchEvent struct {
	Key   string `json:"key,omitempty"`
	Type  string `json:"type"`
	Index uint64 `json:"index"`
	Value string `json:"value,omitempty"`
	// Lease is the lease the key is attached to after a put (0: none).
	Lease  uint64 `json:"lease,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// CompactedBody answers a watch or blocking read for an index older than the
// node's history window (410): resume from OldestIndex or later (or read the
// keys afresh and watch from the index of that read).
type CompactedBody struct {
	Error       string `json:"error"`
	OldestIndex uint64 `json:"oldest_index"`
}

// LeaseGrantRequest is the body of POST /v1/lease: a Go duration, 1s to 24h.
type LeaseGrantRequest struct {
	TTL string `json:"ttl"`
}

// LeaseBody answers POST /v1/lease and PUT /v1/lease/{id}/keepalive, and is
// an entry of GET /v1/lease. ID is the log index of the grant.
type LeaseBody struct {
	ID uint64 `json:"id"`
	// TTL is a Go duration ("10s").
	TTL string `json:"ttl"`
	// TTLMillis is TTL in milliseconds.
	TTLMillis int64 `json:"ttl_ms"`
	// Index is the log index of the grant or keep-alive that answered;
	// RenewIndex the lease's last grant or keep-alive.
	Index      uint64   `json:"index,omitempty"`
	RenewIndex uint64   `json:"renew_index,omitempty"`
	Keys       []string `json:"keys,omitempty"`
}

// LeaseListBody answers GET /v1/lease.
type LeaseListBody struct {
	Leases []LeaseBody `json:"leases"`
}
