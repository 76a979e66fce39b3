package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestInteraction runs the scenario transcripts in testdata/*.txt, after
// etcd's interaction_test.go: each file is a story a reviewer reads top to
// bottom, and the expected output is what the cluster did. Regenerate with
// -rewrite, then read the diff.
//
// Node IDs are 0-based as in the hostfile. Commands:
//
//	add-nodes <n> [election=] [heartbeat=] [max-msg-entries=] [max-inflight=]
//	set-log <id> term=<t> [commit=<c>] terms=(<t1>,<t2>,...)  restart id with this log
//	campaign <id>                 start a pre-vote now (Node.Campaign)
//	tick-election <id>            tick until the election (or check-quorum) timer fires
//	tick-heartbeat <id>           tick HeartbeatTicks times
//	propose <id> <data>
//	read-index <id> <request-id>
//	transfer-leadership <from> <to>
//	compact <id> <index>
//	process-ready [<id>...]       handle each node's Ready once
//	deliver-msgs [<id>...] [from=] deliver the queued messages (to these nodes, from this one)
//	stabilize [<id>...]           process-ready and deliver-msgs until quiet
//	partition <id>...             cut these nodes off from the others
//	isolate <id> / heal
//	step <to> from= type= term= [index=] [log-term=] [commit=]  a hand-made message
//	status <id> / log <id> / raft-state
func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skip()
		}
		env := &interactionEnv{}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			env.out.Reset()
			env.handle(t, td)
			if env.out.Len() == 0 {
				return "ok\n"
			}
			return env.out.String()
		})
	})
}

type interactionEnv struct {
	nw  *network
	out strings.Builder
}

func (env *interactionEnv) printf(format string, args ...any) {
	fmt.Fprintf(&env.out, format, args...)
}

// ids returns the positional (key-only) arguments as node IDs, or every node.
func (env *interactionEnv) ids(t *testing.T, td *datadriven.TestData, all bool) []ID {
	var ids []ID
	for _, a := range td.CmdArgs {
		if len(a.Vals) == 0 {
			ids = append(ids, ID(atoi(t, td, a.Key)))
		}
	}
	if len(ids) == 0 && all {
		return env.nw.ids()
	}
	return ids
}

func atoi(t *testing.T, td *datadriven.TestData, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		td.Fatalf(t, "%s: not a number: %q", td.Cmd, s)
	}
	return n
}

// pos returns the i-th positional argument.
func pos(t *testing.T, td *datadriven.TestData, i int) string {
	if i >= len(td.CmdArgs) {
		td.Fatalf(t, "%s: missing argument %d", td.Cmd, i+1)
	}
	return td.CmdArgs[i].Key
}

func (env *interactionEnv) node(t *testing.T, td *datadriven.TestData, i int) (ID, *Node) {
	id := ID(atoi(t, td, pos(t, td, i)))
	n := env.nw.nodes[id]
	if n == nil {
		td.Fatalf(t, "no node %d", id)
	}
	return id, n
}

func (env *interactionEnv) handle(t *testing.T, td *datadriven.TestData) {
	if env.nw == nil && td.Cmd != "add-nodes" {
		td.Fatalf(t, "add-nodes first")
	}
	switch td.Cmd {
	case "add-nodes":
		tweak := func(c *Config) {}
		for _, f := range []struct {
			key string
			cfg func(*Config) *int
		}{
			{"election", func(c *Config) *int { return &c.ElectionTicks }},
			{"heartbeat", func(c *Config) *int { return &c.HeartbeatTicks }},
			{"max-msg-entries", func(c *Config) *int { return &c.MaxMsgEntries }},
			{"max-inflight", func(c *Config) *int { return &c.MaxInflight }},
		} {
			var v int
			if td.MaybeScanArgs(t, f.key, &v) {
				prev, f := tweak, f
				tweak = func(c *Config) { prev(c); *f.cfg(c) = v }
			}
		}
		env.nw = newNetwork(t, atoi(t, td, pos(t, td, 0)), tweak)
		env.nw.onReady = env.printReady
		env.raftState()
	case "set-log":
		id, _ := env.node(t, td, 0)
		var term, commit uint64
		td.ScanArgs(t, "term", &term)
		td.MaybeScanArgs(t, "commit", &commit)
		arg, _ := td.Arg("terms")
		d := env.nw.disk[id]
		d.snap, d.ents = nil, nil
		for i, v := range arg.Vals {
			lt, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				td.Fatalf(t, "terms: %v", err)
			}
			d.ents = append(d.ents, Entry{Index: uint64(i + 1), Term: lt, Data: fmt.Appendf(nil, "t%d", lt)})
		}
		d.hs = HardState{Term: term, Vote: None, Commit: commit}
		env.nw.start(id)
		env.logOf(id)
	case "campaign":
		_, n := env.node(t, td, 0)
		n.Campaign()
	case "tick-election":
		_, n := env.node(t, td, 0)
		timeout := n.randomizedTimeout
		if n.role == RoleLeader {
			timeout = n.cfg.ElectionTicks
		}
		for k := n.electionElapsed; k < timeout; k++ {
			n.Tick()
		}
	case "tick-heartbeat":
		_, n := env.node(t, td, 0)
		for range n.cfg.HeartbeatTicks {
			n.Tick()
		}
	case "propose":
		_, n := env.node(t, td, 0)
		if _, _, err := n.Propose([]byte(pos(t, td, 1))); err != nil {
			env.printf("error: %v\n", err)
		}
	case "read-index":
		_, n := env.node(t, td, 0)
		if err := n.ReadIndex(uint64(atoi(t, td, pos(t, td, 1)))); err != nil {
			env.printf("error: %v\n", err)
		}
	case "transfer-leadership":
		_, n := env.node(t, td, 0)
		if err := n.TransferLeadership(ID(atoi(t, td, pos(t, td, 1)))); err != nil {
			env.printf("error: %v\n", err)
		}
	case "compact":
		id, n := env.node(t, td, 0)
		env.nw.compactTo(id, uint64(atoi(t, td, pos(t, td, 1))))
		env.printf("%d: snapshot at %d, log (%d, %d]\n", id, n.log.offset, n.log.offset, n.log.lastIndex())
	case "process-ready":
		for _, id := range env.ids(t, td, true) {
			env.nw.readyNode(id)
		}
	case "deliver-msgs":
		from := None
		if td.HasArg("from") {
			var f int
			td.ScanArgs(t, "from", &f)
			from = ID(f)
		}
		env.deliver(env.ids(t, td, true), from)
	case "stabilize":
		ids := env.ids(t, td, true)
		for i := 0; ; i++ {
			if i > 1000 {
				td.Fatalf(t, "the cluster never quiets down")
			}
			moved := false
			for _, id := range ids {
				moved = env.nw.readyNode(id) || moved
			}
			if !env.deliver(ids, None) && !moved {
				break
			}
		}
	case "partition":
		side := env.ids(t, td, false)
		for _, a := range env.nw.ids() {
			for _, b := range env.nw.ids() {
				if slices.Contains(side, a) != slices.Contains(side, b) {
					env.nw.cut[[2]ID{a, b}] = true
				}
			}
		}
	case "isolate":
		id, _ := env.node(t, td, 0)
		env.nw.isolate(id)
	case "heal":
		env.nw.heal()
	case "step":
		id, n := env.node(t, td, 0)
		m := Message{To: id}
		var typ string
		td.ScanArgs(t, "type", &typ)
		for i, name := range msgNames {
			if name == typ {
				m.Type = MessageType(i)
			}
		}
		var from int
		td.ScanArgs(t, "from", &from)
		m.From = ID(from)
		td.ScanArgs(t, "term", &m.Term)
		td.MaybeScanArgs(t, "index", &m.Index)
		td.MaybeScanArgs(t, "log-term", &m.LogTerm)
		td.MaybeScanArgs(t, "commit", &m.Commit)
		env.printf("%s\n", m)
		if err := n.Step(m); err != nil {
			env.printf("refused: %v\n", err)
		} else {
			env.printf("accepted\n")
		}
	case "status":
		id, n := env.node(t, td, 0)
		s := n.Status()
		env.printf("%d: %s term=%d vote=%s lead=%s commit=%d applied=%d last=%d snapshot=%d\n",
			id, s.Role, s.Term, idString(s.Vote), idString(s.Lead), s.Commit, s.Applied, s.LastIndex, s.SnapshotIndex)
		for _, p := range n.peers {
			if pr, ok := s.Progress[p]; ok {
				env.printf("  %d: %s\n", p, &pr)
			}
		}
	case "log":
		id, _ := env.node(t, td, 0)
		env.logOf(id)
	case "raft-state":
		env.raftState()
	default:
		td.Fatalf(t, "unknown command %q", td.Cmd)
	}
}

func idString(id ID) string {
	if id == None {
		return "none"
	}
	return strconv.Itoa(int(id))
}

func entryString(e Entry) string {
	if e.Type == EntryNoop {
		return fmt.Sprintf("%d/t%d noop", e.Index, e.Term)
	}
	return fmt.Sprintf("%d/t%d %q", e.Index, e.Term, e.Data)
}

func (env *interactionEnv) logOf(id ID) {
	l := &env.nw.nodes[id].log
	env.printf("%d: term=%d commit=%d", id, env.nw.nodes[id].term, l.committed)
	if l.offset > 0 {
		env.printf(" snapshot=%d/t%d", l.offset, l.offsetTerm)
	}
	env.printf("\n")
	for _, e := range l.entries {
		env.printf("  %s\n", entryString(e))
	}
}

func (env *interactionEnv) raftState() {
	for _, id := range env.nw.ids() {
		n := env.nw.nodes[id]
		env.printf("%d: %s term=%d lead=%s commit=%d last=%d\n",
			id, n.role, n.term, idString(n.lead), n.log.committed, n.log.lastIndex())
	}
}

// printReady prints what node id's Ready asked the runtime to do.
func (env *interactionEnv) printReady(id ID, rd Ready) {
	env.printf("> %d handling Ready\n", id)
	if ss := rd.SoftState; ss != nil {
		env.printf("  SoftState: %s lead=%s\n", ss.Role, idString(ss.Lead))
	}
	if hs := rd.HardState; !hs.IsEmpty() {
		env.printf("  HardState: term=%d vote=%s commit=%d\n", hs.Term, idString(hs.Vote), hs.Commit)
	}
	if s := rd.Snapshot; s != nil {
		env.printf("  Snapshot: %d/t%d\n", s.Index, s.Term)
	}
	env.entries("Entries", rd.Entries)
	env.msgs("EarlyMessages (sent while persisting)", rd.EarlyMessages)
	env.msgs("Messages (sent after persisting)", rd.Messages)
	env.entries("CommittedEntries", rd.CommittedEntries)
	for _, rs := range rd.ReadStates {
		env.printf("  ReadState: request %d at index %d\n", rs.RequestID, rs.Index)
	}
}

func (env *interactionEnv) entries(what string, ents []Entry) {
	if len(ents) == 0 {
		return
	}
	env.printf("  %s:", what)
	for _, e := range ents {
		env.printf(" %s", entryString(e))
	}
	env.printf("\n")
}

func (env *interactionEnv) msgs(what string, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	env.printf("  %s:\n", what)
	for _, m := range msgs {
		env.printf("    %s\n", msgString(m))
	}
}

// msgString is Message.String with the entries spelled out.
func msgString(m Message) string {
	s := m.String()
	if len(m.Entries) > 0 {
		var es []string
		for _, e := range m.Entries {
			es = append(es, entryString(e))
		}
		s += " [" + strings.Join(es, ", ") + "]"
	}
	return s
}

// deliver hands every queued message for the given nodes (and from the
// given sender, unless None) to its recipient,
// grouped by recipient in ID order (each recipient sees its messages in the
// order they were sent). Messages on a cut link are dropped. It reports
// whether anything was delivered or dropped.
func (env *interactionEnv) deliver(ids []ID, from ID) bool {
	nw := env.nw
	var keep []Message
	byTo := map[ID][]Message{}
	for _, m := range nw.queue {
		if slices.Contains(ids, m.To) && (from == None || m.From == from) {
			byTo[m.To] = append(byTo[m.To], m)
		} else {
			keep = append(keep, m)
		}
	}
	nw.queue = keep
	moved := false
	for _, id := range nw.ids() {
		if len(byTo[id]) == 0 {
			continue
		}
		moved = true
		env.printf("> %d receiving messages\n", id)
		for _, m := range byTo[id] {
			if nw.cut[[2]ID{m.From, m.To}] {
				env.printf("  %s DROPPED (link cut)\n", msgString(m))
				continue
			}
			env.printf("  %s\n", msgString(m))
			if err := nw.nodes[id].Step(m); err != nil {
				env.printf("  refused: %v\n", err)
			}
		}
	}
	return moved
}
