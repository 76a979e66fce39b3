package client

// The second wave of the key-value API: metadata, listings,
// compare-and-swap, delete by prefix and transactions.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"raftkv/src/api"
)

// CASError is a failed compare-and-swap (409): the key's mod_index was not
// the one given. Nothing was applied; Current is the key's state then.
type CASError struct {
	Current api.ConflictBody
}

func (e *CASError) Error() string { return "client: " + e.Current.Error }

func conflictError(data []byte) error {
	var c api.ConflictBody
	if err := json.Unmarshal(data, &c); err != nil || c.Error == "" {
		c.Error = "compare-and-swap failed: " + errorMessage(data)
	}
	return &CASError{Current: c}
}

// GetEntry reads key with its metadata (create_index, mod_index, version).
// It returns ErrNotFound when the key does not exist.
func (c *Client) GetEntry(ctx context.Context, key string, opts ...GetOption) (api.ValueBody, Result, error) {
	var o getOptions
	for _, f := range opts {
		f(&o)
	}
	if key == "" {
		return api.ValueBody{}, Result{}, &BadRequestError{Msg: "key is empty"}
	}
	var body api.ValueBody
	res, err := c.do(ctx, request{method: http.MethodGet, path: kvPath(key), query: staleQuery(o)}, &body)
	return body, res, err
}

func staleQuery(o getOptions) string {
	if o.stale {
		return "consistency=stale"
	}
	return ""
}

// ListOptions select a listing (GET /v1/kv/{prefix}?prefix or
// ?range_end=).
type ListOptions struct {
	// RangeEnd, when set, lists [key, RangeEnd) instead of the keys that
	// start with the prefix.
	RangeEnd string
	// KeysOnly lists names only; Separator (with KeysOnly) one level.
	KeysOnly  bool
	Separator string
	// Limit bounds the page (0: the server's size bound only); Continue is
	// a previous page's token.
	Limit    int
	Continue string
	// Stale reads the answering node's local copy.
	Stale bool
}

// List returns one page of keys that start with prefix (or, with
// RangeEnd, in [prefix, RangeEnd)), in key order.
func (c *Client) List(ctx context.Context, prefix string, o ListOptions) (api.ListBody, Result, error) {
	var q []string
	if o.RangeEnd != "" {
		q = append(q, "range_end="+url.QueryEscape(o.RangeEnd))
	} else {
		q = append(q, "prefix")
	}
	if o.KeysOnly {
		q = append(q, "keys")
	}
	if o.Separator != "" {
		q = append(q, "separator="+url.QueryEscape(o.Separator))
	}
	if o.Limit > 0 {
		q = append(q, "limit="+strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q = append(q, "continue="+url.QueryEscape(o.Continue))
	}
	if o.Stale {
		q = append(q, "consistency=stale")
	}
	var body api.ListBody
	res, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/kv/" + url.PathEscape(prefix), query: strings.Join(q, "&")}, &body)
	return body, res, err
}

// PutCAS sets key to value only if the key's mod_index is modIndex (0:
// only if the key is absent); otherwise it returns a *CASError.
func (c *Client) PutCAS(ctx context.Context, key, value string, modIndex uint64) (Result, error) {
	return c.write(ctx, http.MethodPut, key, "cas="+strconv.FormatUint(modIndex, 10), value)
}

// DeleteCAS removes key only if its mod_index is modIndex; otherwise it
// returns a *CASError.
func (c *Client) DeleteCAS(ctx context.Context, key string, modIndex uint64) (Result, error) {
	return c.write(ctx, http.MethodDelete, key, "cas="+strconv.FormatUint(modIndex, 10), "")
}

// DeletePrefix removes every key that starts with prefix (not empty), in
// one log entry, and returns how many it removed.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) (int, Result, error) {
	if prefix == "" {
		return 0, Result{}, &BadRequestError{Msg: "prefix is empty"}
	}
	var body api.DeleteBody
	res, err := c.writeReq(ctx, request{method: http.MethodDelete, path: kvPath(prefix), query: "prefix"}, &body)
	res.Index = body.Index
	return body.Deleted, res, err
}

// Txn runs a transaction (POST /v1/txn), exactly once like any write.
func (c *Client) Txn(ctx context.Context, t api.TxnRequest) (api.TxnBody, Result, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return api.TxnBody{}, Result{}, &BadRequestError{Msg: fmt.Sprintf("encode transaction: %v", err)}
	}
	var body api.TxnBody
	res, err := c.writeReq(ctx, request{method: http.MethodPost, path: "/v1/txn", body: string(b)}, &body)
	res.Index = body.Index
	return body, res, err
}
