package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"raftkv/src/api"
	"raftkv/src/httpapi"
	"raftkv/src/raft"
)

// The membership experiments of issue 13 (CONTRACT.md, "Second wave"):
// test_replace, test_grow_shrink and test_rolling_restart. Besides the two
// client containers, whose data files last about ten seconds, a load
// client of the harness's own (Load) writes for as long as each procedure
// lasts; its writes are checked at the end like the clients'.

// TestReplace: a follower's folder is wiped mid-run and it is started
// again: it rejoins on its own under a new incarnation and is a voter
// again. Then issue 13's reproduction: writes while one node (the stale
// one) is stopped, so that only the leader and the other follower hold
// them; that follower is stopped and wiped; the leader is stopped; the
// stale and the wiped node are started: no leader for EXP_STALL (the
// wiped node must not vote the stale one in); the old leader is started:
// every acknowledged write is there.
func TestReplace(t *testing.T) {
	h := Setup(t, "test_replace", "wipe a follower's folder mid-run: it rejoins under a new incarnation; wipe the only other holder of recent writes: the cluster waits rather than elect a stale leader, and loses nothing")
	leader := h.WaitLeader(Nodes...)
	load := h.StartLoad("load", Nodes)
	h.WaitClients(h.Cfg.Warmup)

	// Part 1: a follower loses its disk.
	victim := others(Nodes, leader.Name)[0]
	oldInc := h.voterInc(leader.Name, victim)
	h.Printf("part 1: stop %s (a follower; leader %s, term %d), delete persistence/%s, start it on an empty folder", victim, leader.Name, leader.Term, victim)
	h.stopNode(victim)
	h.wipe(victim)
	target := h.commitOf(others(Nodes, victim))
	h.startNode(victim)
	started := time.Now()
	inc := h.waitVoter(Nodes, victim)
	h.Check(inc != oldInc, "%s rejoined on its own under a new incarnation %s (was %s) and is a voter of the leader's configuration again, %.1fs after it started",
		victim, inc, oldInc, time.Since(started).Seconds())
	h.waitCaughtUp(victim, target, started)

	// Part 2: the reproduction of issue 13.
	l := h.WaitLeader(Nodes...)
	fs := others(Nodes, l.Name)
	stale, wiped, holder := fs[0], fs[1], l.Name
	h.Printf("part 2: stop %s; write while it is out, so that only %s (leader) and %s hold the writes", stale, holder, wiped)
	h.stopNode(stale)
	acked := load.Acked()
	for i := 1; i <= 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res := h.Probe(ctx, holder, fmt.Sprintf("recent-%d", i))
		cancel()
		h.Check(res.Code == 200, "write X%d through %s while %s is out: %s", i, holder, stale, res)
	}
	h.waitLoad(load, acked+3, "while "+stale+" is out")
	incW := h.voterInc(holder, wiped)
	h.Printf("stop %s and delete persistence/%s (it held the recent writes with %s); stop %s", wiped, wiped, holder, holder)
	h.stopNode(wiped)
	h.wipe(wiped)
	h.stopNode(holder)
	h.Printf("start %s (stale) and %s (empty folder) without %s", stale, wiped, holder)
	h.startNode(stale)
	h.startNode(wiped)
	samples, _ := h.Observe(h.Cfg.Stall, []string{stale, wiped}, 0, nil)
	answered, led := 0, 0
	for _, s := range samples {
		if len(s.St) == 2 {
			answered++
		}
		for _, st := range s.St {
			if st.Role == "leader" {
				led++
				h.Printf("  %s", st)
			}
		}
	}
	h.Check(answered >= 3 && led == 0, "no leader among %s (stale) and %s (wiped) for %v, %.0f election timeouts: %d status rounds, %d answered by both, %d with a leader",
		stale, wiped, h.Cfg.Stall, float64(h.Cfg.Stall)/float64(electionTimeout()), len(samples), answered, led)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res := h.Probe(ctx, stale, "stale-leader")
	m, merr := h.Admin.Members(ctx, wiped)
	cancel()
	h.Check(res.Code != 200, "a write through %s is not acknowledged while %s is out: %s", stale, holder, res)
	h.Check(merr == nil && len(m.Members) == 0, "the wiped %s holds no configuration: it waits to be taken back under incarnation %s (%v)", wiped, m.Incarnation, merr)
	h.Printf("start %s, the last holder of the recent writes", holder)
	h.startNode(holder)
	h.WaitLeader(holder, stale)
	started = time.Now()
	inc = h.waitVoter(Nodes, wiped)
	h.Check(inc != incW, "%s rejoined under a new incarnation %s (was %s) and is a voter again, %.1fs after %s came back",
		wiped, inc, incW, time.Since(started).Seconds(), holder)
	load.Stop()
	h.Finish(Nodes, Nodes)
}

// TestGrowShrink: 3 -> 5 -> 3 voters under client load. The transport
// reaches only the hostfile's nodes, and nodes that read hostfiles naming
// different nodes refuse each other (the cluster ID is a hash of the
// names), so the cluster first moves to hostfile.5.json, which also names
// r3 and r4: r0, r1 and r2 are recreated with it one at a time, followers
// first (two of three always share a hostfile, so a majority is never
// lost for more than an election). r3 and r4 then start on empty folders,
// hear that a cluster exists, and wait; each is added (a learner, caught
// up, promoted). Then the leader is removed (it steps down; it is
// stopped), then a newcomer, so that the last three hold a node that
// joined late.
func TestGrowShrink(t *testing.T) {
	h := Setup(t, "test_grow_shrink", "3 -> 5 -> 3 voters under client load, the leader removed on the way")
	all := append(append([]string{}, Nodes...), Spares...)
	first := h.WaitLeader(Nodes...)
	load := h.StartLoad("load", all)
	h.WaitClients(h.Cfg.Warmup)

	env := append(append([]string{}, h.Cfg.Env...), "RAFT_HOSTFILE=/hostfile.5.json")
	var switched []string
	for _, n := range append(others(Nodes, first.Name), first.Name) {
		h.Printf("recreate %s with hostfile.5.json (r0..r4; same folder)", n)
		ctx, cancel := h.Ctx()
		err := h.D.UpServices(ctx, env, n)
		cancel()
		if err != nil {
			h.Fatalf("%v", err)
		}
		switched = append(switched, n)
		if len(switched) >= 2 {
			h.WaitLeader(switched...)
		} else {
			h.WaitLeader(others(Nodes, switched...)...)
		}
	}
	l := h.WaitLeader(Nodes...)
	h.checkVoters(l.Name, Nodes)
	h.waitLoad(load, load.Acked()+3, "after every node moved to hostfile.5.json")

	h.Printf("start %s on empty folders (hostfile.5.json)", strings.Join(Spares, " and "))
	ctx, cancel := h.Ctx()
	err := h.D.UpServices(ctx, env, Spares...)
	cancel()
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.nodes = append(h.nodes, Spares...)
	h.Observe(2*electionTimeout(), Spares, 0, nil)
	for _, s := range Spares {
		ctx, cancel := h.Ctx()
		m, err := h.Admin.Members(ctx, s)
		cancel()
		h.Check(err == nil && len(m.Members) == 0, "%s, empty, heard that a cluster exists and waits to be added (no configuration, no bootstrap): %s %v", s, Describe(m), err)
	}
	live := append([]string{}, Nodes...)
	for _, s := range Spares {
		live = append(live, s)
		added := time.Now()
		h.change("add "+s, live,
			func(ctx context.Context, via string) WriteResult {
				return h.Admin.AddMember(ctx, via, httpapi.AddMemberRequest{Name: s, Host: s, RaftPort: 7000, HTTPPort: HTTPPort})
			},
			func(m httpapi.MembersReply) bool { _, ok := memberOf(m, s); return ok })
		inc := h.waitVoter(live, s)
		h.Check(inc != 0, "%s is a voter under its own incarnation %s (caught up and promoted by the leader), %.1fs after the add", s, inc, time.Since(added).Seconds())
	}
	l = h.WaitLeader(all...)
	h.checkVoters(l.Name, all)
	h.waitLoad(load, load.Acked()+3, "by five voters")

	ex := l.Name
	rest := others(all, ex)
	h.Printf("remove the leader %s (term %d)", ex, l.Term)
	h.change("remove "+ex, all,
		func(ctx context.Context, via string) WriteResult { return h.Admin.RemoveMember(ctx, via, ex) },
		func(m httpapi.MembersReply) bool { _, ok := memberOf(m, ex); return !ok })
	nl := h.WaitLeader(rest...)
	ctx, cancel = h.Ctx()
	st, err := h.API.Status(ctx, ex)
	cancel()
	h.Check(err == nil && st.Role != "leader", "the removed %s stepped down: %s (%v); %s leads the other four in term %d", ex, st, err, nl.Name, nl.Term)
	h.stopNode(ex)
	h.checkVoters(nl.Name, rest)
	h.waitLoad(load, load.Acked()+3, "by the four left after the leader's removal")

	victim := Spares[1]
	if victim == nl.Name {
		victim = Spares[0]
	}
	final := others(rest, victim)
	h.Printf("remove %s, a follower", victim)
	h.change("remove "+victim, rest,
		func(ctx context.Context, via string) WriteResult { return h.Admin.RemoveMember(ctx, via, victim) },
		func(m httpapi.MembersReply) bool { _, ok := memberOf(m, victim); return !ok })
	h.stopNode(victim)
	fl := h.WaitLeader(final...)
	h.checkVoters(fl.Name, final)
	h.waitLoad(load, load.Acked()+3, "by the last three")
	load.Stop()
	h.Finish(final, final)
}

// TestRollingRestart: every node is stopped (SIGTERM) and started again in
// turn under client load, followers first, the leader last (it hands
// leadership over before it exits): no client write fails, and the
// incarnations are those of before (a restart is not a new disk).
func TestRollingRestart(t *testing.T) {
	h := Setup(t, "test_rolling_restart", "every node restarted in turn (SIGTERM: the leader hands over; start) under client load: no client write fails")
	first := h.WaitLeader(Nodes...)
	ctx, cancel := h.Ctx()
	before, err := h.Admin.Members(ctx, first.Name)
	cancel()
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Printf("configuration before: %s", Describe(before))
	load := h.StartLoad("load", Nodes)
	h.WaitClients(h.Cfg.Warmup)
	for i, n := range append(others(Nodes, first.Name), first.Name) {
		cur := h.WaitLeader(Nodes...)
		acked := load.Acked()
		role := "a follower"
		if cur.Name == n {
			role = "the leader"
		}
		h.Printf("restart %d of %d: stop %s (%s; leader %s, term %d)", i+1, len(Nodes), n, role, cur.Name, cur.Term)
		signalled := time.Now()
		h.stopNode(n)
		if cur.Name == n {
			nl := h.WaitLeader(others(Nodes, n)...)
			ctx, cancel := h.Ctx()
			logs, err := h.D.Logs(ctx, n)
			cancel()
			h.Check(err == nil && strings.Contains(string(logs), "handed leadership over before shutdown"),
				"%s handed leadership over before it exited (its log says so; %s leads in term %d, %.1fs after SIGTERM)", n, nl.Name, nl.Term, time.Since(signalled).Seconds())
		}
		target := h.commitOf(others(Nodes, n))
		h.startNode(n)
		h.waitCaughtUp(n, target, time.Now())
		h.WaitLeader(Nodes...)
		h.waitLoad(load, acked+1, "while "+n+" restarted")
	}
	ctx, cancel = h.Ctx()
	l, err := h.API.WaitLeader(ctx, Nodes)
	var after httpapi.MembersReply
	if err == nil {
		after, err = h.Admin.Members(ctx, l.Name)
	}
	cancel()
	h.Check(err == nil && Describe(after) == Describe(before), "the configuration is the one of before (same voters, same incarnations): %s (%v)", Describe(after), err)
	hist := load.Stop()
	h.Finish(Nodes, Nodes)

	// Zero failed writes: every write of the clients and of the load was
	// acknowledged.
	failed, writes := 0, 0
	recs := h.Records()
	names := make([]string, 0, len(recs))
	for c := range recs {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		for _, cmd := range recs[c].Commands {
			if !cmd.Op.IsWrite() {
				continue
			}
			writes++
			if cmd.Outcome != api.OutcomeOK {
				failed++
				h.Printf("  %s line %d: %s %s: %s %s", c, cmd.Line, cmd.Op, cmd.Key, cmd.Outcome, cmd.Error)
			}
		}
	}
	for _, op := range hist.Ops {
		writes++
		if op.Outcome != api.OutcomeOK {
			failed++
			h.Printf("  %s", op)
		}
	}
	h.Check(failed == 0 && writes > 0, "no client write failed during the rolling restart: %d writes of %s and %s, %d not acknowledged", writes, strings.Join(names, ", "), hist.Client, failed)
}

// stopNode stops a node cleanly (SIGTERM; SIGKILL after 10 s) and checks it
// exited with 0.
func (h *Harness) stopNode(name string) {
	ctx, cancel := h.Ctx()
	defer cancel()
	if err := h.D.Stop(ctx, name, 10*time.Second); err != nil {
		h.Fatalf("%v", err)
	}
	st, err := h.D.Inspect(ctx, name)
	if err != nil {
		h.Fatalf("%v", err)
	}
	if st.ExitCode != 0 {
		h.Check(false, "%s stopped cleanly (exit code %d)", name, st.ExitCode)
	}
}

// startNode starts a stopped node's container again (its folder as it is).
func (h *Harness) startNode(name string) {
	ctx, cancel := h.Ctx()
	defer cancel()
	if err := h.D.Start(ctx, name); err != nil {
		h.Fatalf("%v", err)
	}
}

// wipe deletes a stopped node's data folder: the disk is lost.
func (h *Harness) wipe(name string) {
	dir := filepath.Join(h.Persist, name)
	if err := os.RemoveAll(dir); err != nil {
		h.Fatalf("wipe %s: %v", dir, err)
	}
	h.Printf("deleted %s", rel(h.Repo, dir))
}

// commitOf is the highest commit index among the named nodes.
func (h *Harness) commitOf(names []string) uint64 {
	ctx, cancel := h.Ctx()
	defer cancel()
	var c uint64
	for _, st := range h.API.Statuses(ctx, names) {
		c = max(c, st.CommitIndex)
	}
	return c
}

// waitCaughtUp waits until node name applied index target.
func (h *Harness) waitCaughtUp(name string, target uint64, since time.Time) {
	ctx, cancel := h.Ctx()
	defer cancel()
	var last Status
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		st, err := h.API.Status(ctx, name)
		if err != nil {
			return false, nil
		}
		last = st
		return st.AppliedIndex >= target, nil
	})
	if !h.Check(err == nil, "%s caught up: applied index %d >= %d (the others' commit index when it started), %.1fs after it started", name, last.AppliedIndex, target, time.Since(since).Seconds()) {
		h.Fatalf("%s did not catch up: %v (last %s)", name, err, last)
	}
}

// waitLoad waits until the load has n acknowledged writes.
func (h *Harness) waitLoad(l *Load, n int, when string) {
	ctx, cancel := h.Ctx()
	defer cancel()
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) { return l.Acked() >= n, nil })
	h.Check(err == nil, "the load's writes are acknowledged %s (%d acknowledged, %d wanted)", when, l.Acked(), n)
}

// leaderOf is the node among names that says it leads (highest term), or "".
func (h *Harness) leaderOf(ctx context.Context, names []string) string {
	best, term := "", uint64(0)
	for n, st := range h.API.Statuses(ctx, names) {
		if st.Role == "leader" && st.Term >= term {
			best, term = n, st.Term
		}
	}
	return best
}

// memberOf finds member name in m.
func memberOf(m httpapi.MembersReply, name string) (httpapi.MemberStatus, bool) {
	for _, x := range m.Members {
		if x.Name == name {
			return x, true
		}
	}
	return httpapi.MemberStatus{}, false
}

// voterInc is member's incarnation in node's configuration; it must be a
// voter there.
func (h *Harness) voterInc(node, member string) raft.Incarnation {
	ctx, cancel := h.Ctx()
	defer cancel()
	m, err := h.Admin.Members(ctx, node)
	if err != nil {
		h.Fatalf("%v", err)
	}
	inc, voter := Voter(m, member)
	h.Check(voter, "%s is a voter under incarnation %s (%s's configuration %s)", member, inc, node, Describe(m))
	return inc
}

// waitVoter waits until the leader among names holds a configuration that
// names member as a voter under the incarnation member itself reports,
// and returns that incarnation.
func (h *Harness) waitVoter(names []string, member string) raft.Incarnation {
	ctx, cancel := h.Ctx()
	defer cancel()
	var own, view httpapi.MembersReply
	err := poll(ctx, 200*time.Millisecond, func() (bool, error) {
		m, err := h.Admin.Members(ctx, member)
		if err != nil || m.Incarnation == 0 {
			return false, nil
		}
		own = m
		l := h.leaderOf(ctx, names)
		if l == "" {
			return false, nil
		}
		if view, err = h.Admin.Members(ctx, l); err != nil {
			return false, nil
		}
		inc, voter := Voter(view, member)
		return voter && inc == own.Incarnation, nil
	})
	if err != nil {
		h.Fatalf("%s is not a voter under its incarnation %s: %v (leader's configuration %s)", member, own.Incarnation, err, Describe(view))
	}
	h.Printf("%s is a voter under its incarnation %s: %s", member, own.Incarnation, Describe(view))
	return own.Incarnation
}

// checkVoters checks that node's configuration has exactly the voters
// want, and no other member.
func (h *Harness) checkVoters(node string, want []string) {
	ctx, cancel := h.Ctx()
	defer cancel()
	m, err := h.Admin.Members(ctx, node)
	var voters []string
	for _, x := range m.Members {
		if x.Suffrage == raft.Voter {
			voters = append(voters, x.Name)
		}
	}
	sort.Strings(voters)
	w := append([]string{}, want...)
	sort.Strings(w)
	h.Check(err == nil && len(m.Members) == len(w) && strings.Join(voters, ",") == strings.Join(w, ","),
		"%d voters %s in %s's configuration %s (%v)", len(w), strings.Join(w, ", "), node, Describe(m), err)
}

// change sends a membership change to the leader among names until it is
// answered 200 or done holds in the leader's configuration. A 409 (another
// change pending, a learner not caught up), a 503 or no answer is tried
// again; a 504 too, once done says the change did not happen.
func (h *Harness) change(what string, names []string, send func(context.Context, string) WriteResult, done func(httpapi.MembersReply) bool) {
	ctx, cancel := h.Ctx()
	defer cancel()
	began := time.Now()
	var last WriteResult
	tries := 0
	err := poll(ctx, 300*time.Millisecond, func() (bool, error) {
		via := h.leaderOf(ctx, names)
		if via == "" {
			return false, nil
		}
		if m, err := h.Admin.Members(ctx, via); err == nil && done(m) {
			return true, nil
		}
		tries++
		last = send(ctx, via)
		switch last.Code {
		case 200:
			return true, nil
		case 400, 404:
			return false, fmt.Errorf("refused by %s: %s", via, last)
		}
		return false, nil
	})
	h.Check(err == nil, "%s: accepted after %d request(s) in %.1fs (last answer: %s) %v", what, tries, time.Since(began).Seconds(), last, err)
	if err != nil {
		h.t.FailNow()
	}
}
