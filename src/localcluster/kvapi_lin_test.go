package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"time"

	"raftkv/src/api"
	"raftkv/src/linearizability"
)

// runLinKVClient is a client of TestLinearizableUnderFaults that uses the
// second-wave API on the keys p/0..p/2: gets that report mod_index,
// compare-and-swap puts and deletes with the mod_index it last saw,
// listings of p/, transactions, deletes of the whole prefix, and appends
// that record their index. A
// 409 is a definite "not applied" with the key's state; a 503 is "not
// applied"; anything else unanswered is an unknown outcome.
func runLinKVClient(ctx context.Context, c *Cluster, rec *linearizability.Recorder, id int, rng *rand.Rand) {
	keys := []string{"p/0", "p/1", "p/2"}
	lastMod := map[string]uint64{}
	lastVal := map[string]string{}
	node := rng.Intn(len(c.Nodes))
	clientID := fmt.Sprintf("linkv-%d", id)
	var seq uint64
	pace := time.NewTicker(15 * time.Millisecond)
	defer pace.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-pace.C:
		}
		ep := c.Nodes[node].HTTPAddr
		key := keys[rng.Intn(len(keys))]
		val := fmt.Sprintf("%d.%d;", id, n)
		failover := func() { node = rng.Intn(len(c.Nodes)) }
		// write resolves a write's pending op from its answer.
		write := func(p *linearizability.Pending, rp reply, err error, ok func(*linearizability.Op)) {
			switch {
			case err == nil && rp.code == http.StatusOK:
				p.OkWith(ok)
			case err == nil && rp.code == http.StatusConflict:
				var cb api.ConflictBody
				json.Unmarshal([]byte(rp.body), &cb)
				p.Conflict(cb.Exists, cb.ModIndex)
				lastMod[key] = cb.ModIndex
			case err == nil && rp.code == http.StatusServiceUnavailable:
				p.Failed()
				failover()
			default:
				p.Unknown()
				failover()
			}
		}
		switch r := rng.Intn(20); {
		case r < 5: // get with metadata
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpGet, Key: key})
			rp, err := doWith(linClient, http.MethodGet, ep, key, "", nil, nil)
			switch {
			case err == nil && rp.code == http.StatusOK:
				var vb api.ValueBody
				json.Unmarshal([]byte(rp.body), &vb)
				p.OkWith(func(o *linearizability.Op) { o.Output, o.Found, o.ModIndex = vb.Value, true, vb.ModIndex })
				lastMod[key], lastVal[key] = vb.ModIndex, vb.Value
			case err == nil && rp.code == http.StatusNotFound:
				p.OkWith(func(o *linearizability.Op) {})
				lastMod[key], lastVal[key] = 0, ""
			default:
				p.Unknown()
				failover()
			}
		case r < 9: // compare-and-swap put
			cas := lastMod[key]
			seq++
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpPut, Key: key, Value: val, CAS: &cas})
			rp, err := doWith(linClient, http.MethodPut, ep, key, "cas="+strconv.FormatUint(cas, 10), []byte(val), session(clientID, seq))
			write(p, rp, err, func(o *linearizability.Op) { o.Index = rp.index })
		case r < 11: // compare-and-swap delete
			cas := lastMod[key]
			seq++
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpDelete, Key: key, CAS: &cas})
			rp, err := doWith(linClient, http.MethodDelete, ep, key, "cas="+strconv.FormatUint(cas, 10), nil, session(clientID, seq))
			write(p, rp, err, func(o *linearizability.Op) { o.Index = rp.index })
		case r < 14: // list the prefix
			p := rec.BeginOp(id, linearizability.Op{Kind: linearizability.KindList, Prefix: "p/"})
			rp, err := doWith(linClient, http.MethodGet, ep, "p/", "prefix", nil, nil)
			if err == nil && rp.code == http.StatusOK {
				var lb api.ListBody
				json.Unmarshal([]byte(rp.body), &lb)
				p.OkWith(func(o *linearizability.Op) { o.List = lb.KVs })
			} else {
				p.Unknown()
				failover()
			}
		case r < 16: // a transaction: if the key still holds what we saw, move on to the next key
			other := keys[(rng.Intn(2)+1+indexOf(keys, key))%len(keys)]
			cmp := api.TxnCompare{Key: key, Target: api.TargetValue, Value: lastVal[key]}
			if lastVal[key] == "" {
				cmp = api.TxnCompare{Key: key, Target: api.TargetExists, Exists: false}
			}
			tx := api.TxnRequest{
				Compare: []api.TxnCompare{cmp},
				Then:    []api.TxnOp{{Op: api.OpPut, Key: key, Value: val}, {Op: api.OpAppend, Key: other, Value: val}, {Op: api.OpGet, Key: other}},
				Else:    []api.TxnOp{{Op: api.OpGet, Key: key}},
			}
			seq++
			p := rec.BeginOp(id, linearizability.Op{Kind: linearizability.KindTxn, Txn: &tx})
			rp, err := postTxn(ep, tx, session(clientID, seq))
			var tb api.TxnBody
			if err == nil && rp.code == http.StatusOK {
				json.Unmarshal([]byte(rp.body), &tb)
			}
			write(p, rp, err, func(o *linearizability.Op) { o.TxnOut = &tb })
		case r == 19: // delete the whole prefix
			seq++
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpDelete, Key: "p/", IsPrefix: true})
			rp, err := doWith(linClient, http.MethodDelete, ep, "p/", "prefix", nil, session(clientID, seq))
			write(p, rp, err, func(o *linearizability.Op) { o.Index = rp.index })
		default: // append, recording its index
			seq++
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpAppend, Key: key, Value: val})
			rp, err := doWith(linClient, http.MethodPut, ep, key, "op=append", []byte(val), session(clientID, seq))
			write(p, rp, err, func(o *linearizability.Op) { o.Index = rp.index })
		}
	}
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// postTxn sends a transaction to ep.
func postTxn(ep string, tx api.TxnRequest, hdr map[string]string) (reply, error) {
	b, err := json.Marshal(tx)
	if err != nil {
		return reply{}, err
	}
	req, err := http.NewRequest(http.MethodPost, "https://"+ep+"/v1/txn", bytes.NewReader(b))
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := linClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, header: resp.Header, body: string(body)}, nil
}

// kvOpCounts summarizes the second-wave operations of a history, so a
// run shows it exercised them (acknowledged CAS, conflicts, listings,
// transactions on either branch).
func kvOpCounts(ops []linearizability.Op) string {
	var cas, conflicts, lists, txnThen, txnElse, unknown int
	for _, o := range ops {
		switch {
		case o.Unknown && (o.CAS != nil || o.Kind == linearizability.KindTxn):
			unknown++
		case !o.Ok:
		case o.Conflict:
			conflicts++
		case o.CAS != nil:
			cas++
		case o.Kind == linearizability.KindList:
			lists++
		case o.Kind == linearizability.KindTxn && o.TxnOut.Succeeded:
			txnThen++
		case o.Kind == linearizability.KindTxn:
			txnElse++
		}
	}
	return fmt.Sprintf("%d CAS applied, %d CAS conflicts (409), %d listings, %d transactions then, %d else, %d CAS/txn of unknown outcome",
		cas, conflicts, lists, txnThen, txnElse, unknown)
}
