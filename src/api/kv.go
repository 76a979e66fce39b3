package api

// The second wave of the key-value API (CONTRACT.md, "Second wave"): key
// metadata, listing, compare-and-swap and transactions.

// KeyMeta is a key's metadata, kept in the replicated state. All three are 0
// for an absent key, which is what ?cas=0 and a transaction's compare of an
// absent key see.
type KeyMeta struct {
	// CreateIndex is the log index of the write that created the key (since
	// it was last absent).
	CreateIndex uint64 `json:"create_index"`
	// ModIndex is the log index of the key's last write: what ?cas=N
	// compares.
	ModIndex uint64 `json:"mod_index"`
	// Version counts the writes since the key was created (1 after it was
	// created).
	Version uint64 `json:"version"`
}

// Limits of listings and transactions.
const (
	// MaxListBytes bounds a listing's reply; a longer one is refused with
	// 413, asking the client to page with ?limit=.
	MaxListBytes = 4 << 20
	// MaxTxnOps bounds a transaction's compares plus operations.
	MaxTxnOps = 128
	// MaxTxnBytes bounds a transaction's request body.
	MaxTxnBytes = 2 << 20
)

// ListBody answers GET /v1/kv/{prefix}?prefix (and ?range_end=): the
// entries in key order, or with ?keys only the keys.
type ListBody struct {
	KVs  []ValueBody `json:"kvs,omitempty"`
	Keys []string    `json:"keys,omitempty"`
	// Count is the number of entries (or keys) in this page.
	Count int `json:"count"`
	// More: the range holds more keys after this page; pass Continue as
	// ?continue= (same other parameters) to get them.
	More     bool   `json:"more"`
	Continue string `json:"continue,omitempty"`
}

// DeleteBody answers DELETE /v1/kv/{prefix}?prefix.
type DeleteBody struct {
	Index   uint64 `json:"index"`
	Deleted int    `json:"deleted"`
}

// ConflictBody is the 409 of a failed compare-and-swap: the key's metadata
// now (all 0 and Exists false when it is absent).
type ConflictBody struct {
	Error  string `json:"error"`
	Key    string `json:"key"`
	Exists bool   `json:"exists"`
	KeyMeta
}

// Compare targets of a transaction.
const (
	TargetValue       = "value"
	TargetModIndex    = "mod_index"
	TargetCreateIndex = "create_index"
	TargetVersion     = "version"
	TargetExists      = "exists"
)

// TxnCompare is one condition of a transaction: the key's Target compared
// with Op to the operand: Value for "value", Number for the indexes and
// "version", Exists for "exists". Op is "==" (the default), "!=", "<" or
// ">"; "exists" takes "==" and "!=" only. An absent key's indexes and
// version are 0; a compare of an absent key's value is false whatever Op.
type TxnCompare struct {
	Key    string `json:"key"`
	Target string `json:"target"`
	Op     string `json:"op,omitempty"`
	Value  string `json:"value,omitempty"`
	Number uint64 `json:"number,omitempty"`
	Exists bool   `json:"exists,omitempty"`
}

// TxnOp is one operation of a transaction: put, append, delete or get.
type TxnOp struct {
	Op    Op     `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// TxnRequest is POST /v1/txn's body: if every compare holds, Then runs,
// else Else; either way at one log index, all or nothing. Operations run in
// order: a get sees the writes before it in its list.
type TxnRequest struct {
	Compare []TxnCompare `json:"compare,omitempty"`
	Then    []TxnOp      `json:"then,omitempty"`
	Else    []TxnOp      `json:"else,omitempty"`
}

// TxnOpResult is what one operation of a transaction did. For a get: Found
// and, when found, Value and the metadata; for a write: Found says whether
// the key existed before.
type TxnOpResult struct {
	Op    Op     `json:"op"`
	Key   string `json:"key"`
	Found bool   `json:"found"`
	Value string `json:"value,omitempty"`
	*KeyMeta
}

// TxnBody answers POST /v1/txn: which branch ran, the log index of the
// transaction (every write of it has this mod_index) and a result per
// operation of that branch.
type TxnBody struct {
	Succeeded bool          `json:"succeeded"`
	Index     uint64        `json:"index"`
	Results   []TxnOpResult `json:"results"`
}
