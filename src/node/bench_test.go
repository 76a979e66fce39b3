package node_test

import (
	"math/rand"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"raftkv/src/node"
	"raftkv/src/raft"
)

// benchStorage keeps nothing: the benchmark measures the Ready handling,
// not a storage.
type benchStorage struct{ saves int }

func (s *benchStorage) Save(raft.HardState, []raft.Entry) error  { s.saves++; return nil }
func (s *benchStorage) SaveHardStateNoSync(raft.HardState) error { return nil }
func (s *benchStorage) SaveSnapshot(raft.Snapshot) error         { return nil }
func (s *benchStorage) LoadSnapshot() (*raft.Snapshot, error)    { return nil, nil }

// benchNet queues messages in one reused slice.
type benchNet struct{ q []raft.Message }

func (n *benchNet) Send(msgs []raft.Message) { n.q = append(n.q, msgs...) }

// benchApp counts applied entries.
type benchApp struct{ applied uint64 }

func (benchApp) SoftStateChanged(raft.SoftState) {}
func (benchApp) PrepareRestore() error           { return nil }
func (benchApp) Restore(*raft.Snapshot) error    { return nil }
func (a *benchApp) Apply(e raft.Entry) error     { a.applied = e.Index; return nil }
func (benchApp) ReadState(raft.ReadState) error  { return nil }
func (benchApp) Advanced() error                 { return nil }

type benchCluster struct {
	nodes []*raft.Node
	hs    []*node.Handler
	net   *benchNet
	recv  []raft.Message
}

func newBenchCluster(tb testing.TB) *benchCluster {
	ids := []raft.ID{0, 1, 2}
	c := &benchCluster{net: &benchNet{}}
	for _, id := range ids {
		n, err := raft.NewNode(raft.Config{ID: id, Peers: ids, ElectionTicks: 10, HeartbeatTicks: 1,
			Rand: rand.New(rand.NewSource(int64(id))), HardState: raft.HardState{Vote: raft.None}})
		require.NoError(tb, err)
		c.nodes = append(c.nodes, n)
		c.hs = append(c.hs, &node.Handler{Node: n, Storage: &benchStorage{}, Sender: c.net, App: &benchApp{}})
	}
	c.nodes[0].Campaign()
	c.stabilize(tb)
	require.Equal(tb, raft.RoleLeader, c.nodes[0].BasicStatus().Role)
	return c
}

// stabilize handles Ready and delivers messages until the cluster is quiet.
func (c *benchCluster) stabilize(tb testing.TB) {
	for {
		for _, h := range c.hs {
			if err := h.HandleReady(); err != nil {
				tb.Fatal(err)
			}
		}
		if len(c.net.q) == 0 {
			return
		}
		c.recv, c.net.q = c.net.q, c.recv[:0]
		for _, m := range c.recv {
			if err := c.nodes[m.To].Step(m); err != nil {
				tb.Fatal(err)
			}
		}
		clear(c.recv) // drop references to entries
	}
}

// BenchmarkHandleReady runs 100-byte commands through a 3-node in-memory
// cluster (no I/O) driven by node.Handler: one op is one committed entry.
func BenchmarkHandleReady(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			c := newBenchCluster(b)
			l := c.nodes[0]
			cmd := make([]byte, 100)
			b.ReportAllocs()
			for i := 0; i < b.N; {
				for j := 0; j < batch && i < b.N; j++ {
					if _, _, err := l.Propose(cmd); err != nil {
						b.Fatal(err)
					}
					i++
				}
				c.stabilize(b)
				for _, n := range c.nodes {
					if st := n.BasicStatus(); st.Applied-st.SnapshotIndex > 10000 {
						require.NoError(b, n.Compact(st.Applied))
					}
				}
			}
		})
	}
}
