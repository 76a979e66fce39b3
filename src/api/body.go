package api

// Response bodies of the HTTP API (CONTRACT.md, "HTTP API").

// Limits on keys and values.
const (
	// MaxKeyBytes is the longest key, in bytes; the shortest is one byte.
	MaxKeyBytes = 1024
	// MaxValueBytes is the longest value, in bytes (1 MiB).
	MaxValueBytes = 1 << 20
)

// ErrorBody is every error answer: {"error": "message"}.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteBody answers a successful PUT or DELETE /v1/kv/{key}.
type WriteBody struct {
	Index uint64 `json:"index"`
}

// ValueBody answers a successful GET /v1/kv/{key}, with the key's metadata
// (KeyMeta, kv.go); it is also one entry of a listing.
type ValueBody struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	KeyMeta
}
