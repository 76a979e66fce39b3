package kv

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
	"raftkv/src/linearizability"
)

// The planted-bug checks: two ways to break the new operations that the
// linearizability checker must catch, each run against the real state
// machine, once with the bug and once without (the control must pass, so
// the test shows the checker tells them apart).
//
//   - "stale-cas": compare-and-swap compared on a follower's lagging copy
//     before proposing, then proposed as a blind put (instead of comparing
//     at apply time in the state machine, as Store.exec does).
//   - "half-txn": a transaction whose commit applies only the first half
//     of the keys it writes (testHookTxnCommit).

// simCluster is a leader's and a lagging follower's copy of one log.
type simCluster struct {
	log            [][]byte
	leader, follow *Store
	rng            *rand.Rand
}

func newSim(seed int64) *simCluster {
	return &simCluster{leader: New(Options{}), follow: New(Options{}), rng: rand.New(rand.NewSource(seed))}
}

// propose commits data at the next index and applies it on the leader;
// the follower catches up a random part of the way.
func (c *simCluster) propose(data []byte) Result {
	c.log = append(c.log, data)
	res := c.leader.Apply(uint64(len(c.log)), data)
	if lag := c.rng.Intn(4); lag == 0 {
		for i := c.follow.AppliedIndex(); i < uint64(len(c.log)); i++ {
			c.follow.Apply(i+1, c.log[i])
		}
	}
	return res
}

// runLockClients runs clients that each read a counter with its mod_index
// and write it back incremented with ?cas=; staleCAS plants bug 1.
func runLockClients(t *testing.T, seed int64, staleCAS bool) []linearizability.Op {
	c := newSim(seed)
	rec := linearizability.NewLogicalRecorder()
	lastMod := map[int]uint64{}
	lastVal := map[int]int{}
	for step := range 300 {
		id := c.rng.Intn(3)
		if c.rng.Intn(2) == 0 {
			p := rec.BeginOp(id, linearizability.Op{Kind: api.OpGet, Key: "n"})
			v, m, found, _ := c.leader.Entry("n")
			var n int
			fmt.Sscan(v, &n)
			lastMod[id], lastVal[id] = m.ModIndex, n
			p.OkWith(func(o *linearizability.Op) { o.Output, o.Found, o.ModIndex = v, found, m.ModIndex })
			continue
		}
		cas := lastMod[id]
		val := fmt.Sprint(lastVal[id] + 1)
		p := rec.BeginOp(id, linearizability.Op{Kind: api.OpPut, Key: "n", Value: val, CAS: &cas})
		if staleCAS {
			_, m, found, _ := c.follow.Entry("n")
			if m.ModIndex != cas {
				p.Conflict(found, m.ModIndex)
				continue
			}
			res := c.propose(EncodeCommand(Command{Op: OpPut, Key: "n", Value: val, ClientID: fmt.Sprint(id), Seq: uint64(step + 1)}))
			p.OkWith(func(o *linearizability.Op) { o.Index = res.Index })
			continue
		}
		res := c.propose(EncodeCommand(Command{Op: OpPut, Key: "n", Value: val, CAS: &cas, ClientID: fmt.Sprint(id), Seq: uint64(step + 1)}))
		if res.Err == ErrCASFailed {
			p.Conflict(res.Found, res.Meta.ModIndex)
			continue
		}
		require.NoError(t, res.Err)
		p.OkWith(func(o *linearizability.Op) { o.Index = res.Index })
	}
	return rec.Ops()
}

// runTransfers moves one unit between two accounts in transactions
// guarded by the source's value, and lists the accounts; halfTxn plants
// bug 2.
func runTransfers(t *testing.T, seed int64, halfTxn bool) []linearizability.Op {
	if halfTxn {
		testHookTxnCommit = func(keys []string) int { return len(keys) / 2 }
		defer func() { testHookTxnCommit = nil }()
	}
	c := newSim(seed)
	rec := linearizability.NewLogicalRecorder()
	acct := []string{"acct/a", "acct/b"}
	for _, k := range acct {
		p := rec.BeginOp(0, linearizability.Op{Kind: api.OpPut, Key: k, Value: "5"})
		res := c.propose(EncodeCommand(Command{Op: OpPut, Key: k, Value: "5"}))
		p.OkWith(func(o *linearizability.Op) { o.Index = res.Index })
	}
	for range 100 {
		id := c.rng.Intn(3)
		if c.rng.Intn(2) == 0 {
			p := rec.BeginOp(id, linearizability.Op{Kind: linearizability.KindList, Prefix: "acct/"})
			r := c.leader.Range(RangeRequest{Start: "acct/", Prefix: true})
			p.OkWith(func(o *linearizability.Op) { o.List = r.Entries })
			continue
		}
		from := c.rng.Intn(2)
		cur, _, _, _ := c.leader.Entry(acct[from])
		var n, m int
		fmt.Sscan(cur, &n)
		other, _, _, _ := c.leader.Entry(acct[1-from])
		fmt.Sscan(other, &m)
		tx := api.TxnRequest{
			Compare: []api.TxnCompare{{Key: acct[from], Target: api.TargetValue, Value: cur}},
			Then: []api.TxnOp{
				{Op: api.OpPut, Key: acct[from], Value: fmt.Sprint(n - 1)},
				{Op: api.OpPut, Key: acct[1-from], Value: fmt.Sprint(m + 1)},
			},
		}
		p := rec.BeginOp(id, linearizability.Op{Kind: linearizability.KindTxn, Txn: &tx})
		res := c.propose(EncodeCommand(Command{Op: OpTxn, Txn: &tx}))
		require.NoError(t, res.Err)
		p.OkWith(func(o *linearizability.Op) { o.TxnOut = res.Txn })
	}
	return rec.Ops()
}

func TestPlantedBugsAreCaught(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("stale-cas seed %d", seed), func(t *testing.T) {
			assert.True(t, linearizability.Check(runLockClients(t, seed, false), 0).Linearizable, "control: CAS at apply time")
			assert.False(t, linearizability.Check(runLockClients(t, seed, true), 0).Linearizable, "planted: CAS on the follower's copy")
		})
		t.Run(fmt.Sprintf("half-txn seed %d", seed), func(t *testing.T) {
			assert.True(t, linearizability.Check(runTransfers(t, seed, false), 0).Linearizable, "control: whole transactions")
			assert.False(t, linearizability.Check(runTransfers(t, seed, true), 0).Linearizable, "planted: half transactions")
		})
	}
}
