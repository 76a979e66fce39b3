package node_test

import (
	"errors"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/node"
	"raftkv/src/raft"
)

// recorder is storage, network and state machine at once, and writes down
// the order of the calls the Handler makes.
type recorder struct {
	events  []string
	saveErr error
	net     []raft.Message
}

func (r *recorder) Save(hs raft.HardState, ents []raft.Entry) error {
	r.events = append(r.events, "save")
	return r.saveErr
}
func (r *recorder) SaveHardStateNoSync(raft.HardState) error {
	r.events = append(r.events, "save-nosync")
	return nil
}
func (r *recorder) SaveSnapshot(raft.Snapshot) error      { return nil }
func (r *recorder) LoadSnapshot() (*raft.Snapshot, error) { return nil, nil }
func (r *recorder) Send(msgs []raft.Message) {
	for _, m := range msgs {
		r.events = append(r.events, "send "+m.Type.String())
	}
	r.net = append(r.net, msgs...)
}
func (r *recorder) SoftStateChanged(raft.SoftState) {}
func (r *recorder) PrepareRestore() error           { return nil }
func (r *recorder) Restore(*raft.Snapshot) error    { return nil }
func (r *recorder) Apply(raft.Entry) error {
	r.events = append(r.events, "apply")
	return nil
}
func (r *recorder) ReadState(raft.ReadState) error { return nil }
func (r *recorder) Advanced() error {
	r.events = append(r.events, "advanced")
	return nil
}

func newRecorded(t *testing.T, id raft.ID) (*raft.Node, *node.Handler, *recorder) {
	ids := []raft.ID{0, 1, 2}
	n, err := raft.NewNode(raft.Config{ID: id, Peers: ids, ElectionTicks: 10, HeartbeatTicks: 1,
		Rand: rand.New(rand.NewSource(1)), HardState: raft.HardState{Vote: raft.None}})
	require.NoError(t, err)
	r := &recorder{}
	return n, &node.Handler{Node: n, Storage: r, Sender: r, App: r}, r
}

// pass hands the messages from's handler sent to to's node, and forgets
// both recorders' events.
func pass(t *testing.T, from *recorder, to *node.Handler, toRec *recorder) {
	for _, m := range from.net {
		if m.To == 1 || m.To == 0 {
			require.NoError(t, to.Node.Step(m))
		}
	}
	from.net, from.events, toRec.events = nil, nil, nil
	require.NoError(t, to.HandleReady())
}

// TestOrder pins the order of HandleReady's calls for the cases Raft's
// safety rests on, through a pre-vote, a vote and the first AppendEntries.
func TestOrder(t *testing.T) {
	cand, hc, rc := newRecorded(t, 0)
	_, hv, rv := newRecorded(t, 1)
	cand.Campaign()
	require.NoError(t, hc.HandleReady())
	pass(t, rc, hv, rv) // PreVote
	assert.Equal(t, []string{"send PreVoteResp", "advanced"}, rv.events, "a pre-vote promises nothing")

	pass(t, rv, hc, rc) // PreVoteResp: the real campaign
	// A candidate's vote for itself is durable before it asks for votes.
	assert.Equal(t, []string{"save", "send Vote", "send Vote", "advanced"}, rc.events)

	pass(t, rc, hv, rv) // Vote
	// A granted vote leaves only after it is on disk (Raft thesis 3.8).
	assert.Equal(t, []string{"save", "send VoteResp", "advanced"}, rv.events)

	pass(t, rv, hc, rc) // VoteResp
	require.Equal(t, raft.RoleLeader, cand.BasicStatus().Role)
	// A leader's AppendEntries go out before its own write (thesis 10.2.1).
	assert.Equal(t, []string{"send App", "send App", "save", "advanced"}, rc.events)

	pass(t, rc, hv, rv) // App
	// An acknowledgement leaves only after the entries are on disk.
	assert.Equal(t, []string{"save", "send AppResp", "advanced"}, rv.events)

	pass(t, rv, hc, rc) // AppResp: the no-op commits and applies
	assert.Equal(t, []string{"save-nosync", "apply", "advanced"}, rc.events)
}

// TestStorageErrorStops: after a failed write nothing is sent or applied,
// and the error comes back to stop the node.
func TestStorageErrorStops(t *testing.T) {
	_, hv, rv := newRecorded(t, 1)
	rv.saveErr = errors.New("disk on fire")
	require.NoError(t, hv.Node.Step(raft.Message{Type: raft.MsgVote, From: 0, To: 1, Term: 1}))
	err := hv.HandleReady()
	require.ErrorIs(t, err, rv.saveErr)
	assert.Equal(t, []string{"save"}, rv.events)
}
