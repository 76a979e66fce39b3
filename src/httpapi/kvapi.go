package httpapi

// The second wave of the key-value API (CONTRACT.md, "Second wave"): key
// metadata on GET, listings and ranges, compare-and-swap, delete by prefix
// and transactions.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"raftkv/src/api"
	"raftkv/src/kv"
	"raftkv/src/node"
)

// KVReader is what the key-value API reads from the local state machine
// besides Get: a key with its metadata, and listings. Neither says
// anything about linearizability: the handlers confirm a read first.
type KVReader interface {
	Entry(key string) (value string, meta kv.Meta, found bool, applied uint64)
	Range(r kv.RangeRequest) kv.RangeResult
}

// maxListLimit bounds ?limit=; a larger page would exceed the reply bound
// anyway for any but tiny keys.
const maxListLimit = 100000

// getParams are the query parameters of GET /v1/kv/{key}, in this order.
var getParams = [...]string{"consistency", "prefix", "keys", "separator", "range_end", "limit", "continue", "index", "wait"}

const (
	gConsistency = iota
	gPrefix
	gKeys
	gSeparator
	gRangeEnd
	gLimit
	gContinue
	gIndex
	gWait
)

// handleGet serves GET /v1/kv/{key}: one key, or with ?prefix or
// ?range_end= a listing.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, key string) {
	var q [len(getParams)]queryParam
	for i, n := range getParams {
		q[i].name = n
	}
	if err := parseQuery(r.URL.RawQuery, q[:], "GET /v1/kv/{key}"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A read runs in no session, but the headers follow the same rules
	// as on writes, so that a client learns of a bad one at once.
	if _, _, err := clientSession(r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var stale bool
	switch c := q[gConsistency]; {
	case c.value == "stale":
		stale = true
	case !c.given || c.value == "linearizable":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter \"consistency\" is %q: want linearizable or stale", c.value))
		return
	}
	list := q[gPrefix].given || q[gRangeEnd].given
	if !list {
		for _, i := range []int{gKeys, gSeparator, gLimit, gContinue} {
			if q[i].given {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q lists keys: give ?prefix (or ?range_end=) too", q[i].name))
				return
			}
		}
		if key == "" {
			writeError(w, http.StatusBadRequest, "key is empty (GET /v1/kv/?prefix lists every key)")
			return
		}
		if !s.blockingWait(w, r, key, false, q[gIndex], q[gWait]) {
			return
		}
		if stale {
			s.serveValue(w, key)
		} else {
			s.linearizableGet(w, r, key)
		}
		return
	}
	req, err := rangeRequest(key, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A range (?range_end=) waits for a change of any key: it may answer
	// early, never late.
	watchKey := key
	if !req.Prefix {
		watchKey = ""
	}
	if !s.blockingWait(w, r, watchKey, true, q[gIndex], q[gWait]) {
		return
	}
	if !stale && !s.confirmRead(w, r) {
		return
	}
	s.serveRange(w, req)
}

// rangeRequest builds a listing's request from the query.
func rangeRequest(key string, q [len(getParams)]queryParam) (kv.RangeRequest, error) {
	req := kv.RangeRequest{Start: key, MaxBytes: api.MaxListBytes}
	for _, i := range []int{gPrefix, gKeys} {
		if q[i].given && q[i].value != "" {
			return req, fmt.Errorf("query parameter %q takes no value (the prefix is the key in the path)", q[i].name)
		}
	}
	switch {
	case q[gPrefix].given && q[gRangeEnd].given:
		return req, errors.New(`query parameters "prefix" and "range_end" exclude each other`)
	case q[gPrefix].given:
		req.Prefix = true
	default:
		if err := kv.ValidateKey(q[gRangeEnd].value); err != nil {
			return req, fmt.Errorf("query parameter \"range_end\": %w", err)
		}
		req.End = q[gRangeEnd].value
	}
	req.KeysOnly = q[gKeys].given
	if q[gSeparator].given {
		if !req.KeysOnly {
			return req, errors.New(`query parameter "separator" needs "keys" (it lists key names one level deep)`)
		}
		if q[gSeparator].value == "" {
			return req, errors.New(`query parameter "separator" is empty`)
		}
		req.Separator = q[gSeparator].value
	}
	if l := q[gLimit]; l.given {
		n, err := strconv.Atoi(l.value)
		if err != nil || n < 1 || n > maxListLimit {
			return req, fmt.Errorf("query parameter \"limit\" is %.40q: want an integer from 1 to %d", l.value, maxListLimit)
		}
		req.Limit = n
	}
	if c := q[gContinue]; c.given {
		after, err := base64.RawURLEncoding.DecodeString(c.value)
		if err != nil || len(after) == 0 || len(after) > api.MaxKeyBytes {
			return req, fmt.Errorf("query parameter \"continue\" is not a token this API gave (%.40q)", c.value)
		}
		req.After, req.HasAfter = string(after), true
	}
	return req, nil
}

// confirmRead makes the local state linearizable to read (ReadIndex) or
// forwards the request to the leader; it reports whether to serve locally.
func (s *Server) confirmRead(w http.ResponseWriter, r *http.Request) bool {
	if s.forwardIfFollower(w, r, nil) {
		return false
	}
	start := s.met.ReadStarted()
	timer := startTimer(s.cfg.RequestTimeout)
	defer stopTimer(timer)
	err := s.rt.Read(timer.C)
	switch {
	case errors.Is(err, node.ErrBusy):
		writeError(w, http.StatusServiceUnavailable, "node too busy to take the read")
	case errors.Is(err, node.ErrTimeout):
		writeError(w, http.StatusServiceUnavailable, "the read was not confirmed by a quorum in time")
	case errors.Is(err, node.ErrNotLeader):
		if !s.forwardIfFollower(w, r, nil) {
			writeError(w, http.StatusServiceUnavailable, "no leader could confirm the read")
		}
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.met.ObserveReadIndex(start)
		return true
	}
	return false
}

func (s *Server) serveRange(w http.ResponseWriter, req kv.RangeRequest) {
	res := s.rt.Range(req)
	w.Header().Set("Raft-Index", strconv.FormatUint(res.Applied, 10))
	if res.TooLarge {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"the listing exceeds %d MiB: page through it with ?limit=N, then ?continue= with the token of each answer", api.MaxListBytes>>20))
		return
	}
	body := api.ListBody{KVs: res.Entries, Keys: res.Keys, Count: len(res.Entries) + len(res.Keys), More: res.More}
	if res.More {
		body.Continue = base64.RawURLEncoding.EncodeToString([]byte(res.Last))
	}
	writeJSON(w, http.StatusOK, body)
}

// handleDelete serves DELETE /v1/kv/{key}, ?cas=N and ?prefix.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, key string) {
	q := [...]queryParam{{name: "cas"}, {name: "prefix"}}
	if err := parseQuery(r.URL.RawQuery, q[:], "DELETE /v1/kv/{key}"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cas, err := parseCAS(q[0], kv.OpDelete)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p := q[1]; p.given {
		switch {
		case p.value != "":
			writeError(w, http.StatusBadRequest, `query parameter "prefix" takes no value (the prefix is the key in the path)`)
			return
		case cas != nil:
			writeError(w, http.StatusBadRequest, `query parameters "prefix" and "cas" exclude each other`)
			return
		}
	}
	s.write(w, r, kv.Command{Op: kv.OpDelete, Key: key, CAS: cas, Prefix: q[1].given}, nil)
}

// parseCAS reads ?cas=N: nil when not given.
func parseCAS(p queryParam, op kv.Op) (*uint64, error) {
	if !p.given {
		return nil, nil
	}
	if op != kv.OpPut && op != kv.OpDelete {
		return nil, fmt.Errorf(`query parameter "cas" works with put and delete, not %s (use POST /v1/txn)`, op)
	}
	n, err := strconv.ParseUint(p.value, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("query parameter \"cas\" is %.40q: want the key's mod_index (0: the key must be absent)", p.value)
	}
	return &n, nil
}

// appendMetaJSON appends the metadata fields of a key's JSON object.
func appendMetaJSON(b []byte, m kv.Meta) []byte {
	b = append(b, `,"create_index":`...)
	b = strconv.AppendUint(b, m.CreateIndex, 10)
	b = append(b, `,"mod_index":`...)
	b = strconv.AppendUint(b, m.ModIndex, 10)
	b = append(b, `,"version":`...)
	return strconv.AppendUint(b, m.Version, 10)
}

// writeConflict answers a failed compare-and-swap: 409 with the key's
// metadata as the state machine saw it when it applied the command.
func writeConflict(w http.ResponseWriter, cmd kv.Command, res kv.Result) {
	msg := fmt.Sprintf("compare-and-swap failed: key %q has mod_index %d, not %d", cmd.Key, res.Meta.ModIndex, *cmd.CAS)
	if !res.Found {
		msg = fmt.Sprintf("compare-and-swap failed: key %q is absent, so its mod_index is 0, not %d", cmd.Key, *cmd.CAS)
	} else if *cmd.CAS == 0 {
		msg = fmt.Sprintf("compare-and-swap failed: key %q exists (mod_index %d); cas=0 writes only an absent key", cmd.Key, res.Meta.ModIndex)
	}
	writeJSON(w, http.StatusConflict, api.ConflictBody{Error: msg, Key: cmd.Key, Exists: res.Found, KeyMeta: res.Meta})
}

// writeWriteResult answers a transaction or a delete by prefix that
// applied.
func writeWriteResult(w http.ResponseWriter, cmd kv.Command, res kv.Result) {
	if res.Txn != nil {
		writeJSON(w, http.StatusOK, res.Txn)
		return
	}
	writeJSON(w, http.StatusOK, api.DeleteBody{Index: res.Index, Deleted: res.Deleted})
}

// handleTxn serves POST /v1/txn: a JSON api.TxnRequest, decoded strictly.
func (s *Server) handleTxn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
		return
	}
	if err := noQuery(r.URL.RawQuery, "POST /v1/txn"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxTxnBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("transaction exceeds %d MiB", api.MaxTxnBytes>>20))
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return
	}
	var t api.TxnRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		writeError(w, http.StatusBadRequest, "transaction body: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "transaction body: data after the JSON object")
		return
	}
	if err := kv.ValidateTxn(&t); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, kv.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err.Error())
		return
	}
	s.write(w, r, kv.Command{Op: kv.OpTxn, Txn: &t}, body)
}
