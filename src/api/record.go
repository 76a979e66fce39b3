package api

// RecordFile is the name of a client node's record in its folder:
// persistence/<client>/record.json.
const RecordFile = "record.json"

// Outcome is what a client node recorded of one command.
type Outcome string

// The outcomes. A get that found no key is OutcomeOK with Found false.
const (
	// OutcomeOK: the cluster acknowledged it (a write was applied once, at
	// Index; a get read Read, or found no key).
	OutcomeOK Outcome = "ok"
	// OutcomeUnknown: a write that may or may not have been applied.
	OutcomeUnknown Outcome = "unknown"
	// OutcomeError: a write certainly not applied, or a get that read nothing.
	OutcomeError Outcome = "error"
)

// ClientRecord is a client node's account of what it sent and what the
// cluster answered, kept in persistence/<client>/record.json so that an
// experiment can check afterwards that every acknowledged write is in the
// final state.
type ClientRecord struct {
	Client    string   `json:"client"`
	ClientID  string   `json:"client_id"`
	Datafile  string   `json:"datafile"`
	Endpoints []string `json:"endpoints"`
	Started   string   `json:"started"`
	// Stopped is set at a clean stop; AllSent when every command was sent.
	Stopped  string          `json:"stopped,omitempty"`
	AllSent  bool            `json:"all_sent"`
	BadLines []string        `json:"bad_lines"`
	Commands []RecordCommand `json:"commands"`
}

// RecordCommand is one command of a ClientRecord.
type RecordCommand struct {
	Line     int     `json:"line"`
	Op       Op      `json:"op"`
	Key      string  `json:"key"`
	Value    string  `json:"value,omitempty"`
	ClientID string  `json:"client_id"`
	Seq      uint64  `json:"seq,omitempty"`
	Outcome  Outcome `json:"outcome"`
	Index    uint64  `json:"index,omitempty"`
	Found    *bool   `json:"found,omitempty"`
	Read     *string `json:"read,omitempty"`
	Error    string  `json:"error,omitempty"`
	Node     string  `json:"node,omitempty"`
	Leader   string  `json:"leader,omitempty"`
	Attempts int     `json:"attempts"`
	// Start and End bound the command in time (RFC 3339, ns), for a
	// linearizability check.
	Start string `json:"start"`
	End   string `json:"end"`

	// CAS: a put with ?cas= (data-file "cas KEY N VALUE"); Prefix: a
	// delete of every key under Key (data-file "delete-prefix PREFIX").
	CAS    *uint64 `json:"cas,omitempty"`
	Prefix bool    `json:"prefix,omitempty"`
}
