package dockertest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"raftkv/src/api"
)

// The five experiments of CONTRACT.md ("Make targets"). Each prints what it
// does and every comparison it makes, PASS or FAIL; see docs/docker.md.

// TestStop1: stop the leader; the other two elect a leader and keep
// committing; at the end they hold identical state machines and every
// acknowledged client write.
func TestStop1(t *testing.T) {
	h := Setup(t, "test_stop1", "stop one node (the leader) mid-run: the other two make progress and agree")
	oneOut(h, "stop", func(ctx context.Context, n string) error { return h.D.Stop(ctx, n, 10*time.Second) })
}

// TestDisconnect1: the same with `docker network disconnect` of the leader.
func TestDisconnect1(t *testing.T) {
	h := Setup(t, "test_disconnect1", "disconnect one node (the leader) mid-run: the other two make progress and agree")
	oneOut(h, "disconnect", func(ctx context.Context, n string) error { return h.D.Disconnect(ctx, n) })
}

func oneOut(h *Harness, verb string, takeOut func(context.Context, string) error) {
	leader := h.WaitLeader(Nodes...)
	h.WaitClients(h.Cfg.Warmup)
	victim := leader.Name
	survivors := others(Nodes, victim)
	ctx, cancel := h.Ctx()
	defer cancel()

	h.Printf("%s %s (the leader, term %d)", verb, victim, leader.Term)
	outStart := time.Now()
	if err := takeOut(ctx, victim); err != nil {
		h.Fatalf("%v", err)
	}
	newLeader := h.WaitLeader(survivors...)
	h.Check(newLeader.Term > leader.Term, "%s elected in a new term (%d > %d) without %s", newLeader.Name, newLeader.Term, leader.Term, victim)
	samples, probes := h.Observe(remaining(outStart, h.Cfg.Outage), survivors, time.Second, func() string { return newLeader.Name })
	outEnd := time.Now()
	checkProgress(h, samples, probes, victim, outStart, outEnd)
	if verb == "disconnect" {
		if st, err := StatusInside(ctx, h.D, victim); err == nil {
			h.Printf("%s seen from inside its container at the end of the outage: role=%s term=%d leader=%q commit=%d", victim, st.Role, st.Term, st.Leader, st.CommitIndex)
			h.Check(st.Role != "leader", "the cut-off old leader %s stepped down (check-quorum): role %s", victim, st.Role)
		} else {
			h.Printf("could not read %s's status from inside: %v", victim, err)
		}
	}
	h.Printf("%s stays out until the end; the survivors finish the run", victim)
	h.Finish(survivors, survivors)
}

// checkProgress checks that the survivors committed new entries while
// `out` was out.
func checkProgress(h *Harness, samples []Sample, probes []WriteResult, out string, from, to time.Time) {
	var answered []Sample
	for _, s := range samples {
		if len(s.St) > 0 {
			answered = append(answered, s)
		}
	}
	if len(answered) < 2 {
		h.Fatalf("the survivors answered %d of %d status polls while %s was out", len(answered), len(samples), out)
	}
	first, last := maxCommit(answered[0]), maxCommit(answered[len(answered)-1])
	okProbes := 0
	for _, p := range probes {
		if p.Code == 200 {
			okProbes++
		}
	}
	acked, _ := clientWritesIn(h.Records(), from, to)
	h.Printf("while %s was out (%.1fs): %d status samples, %d probe writes acknowledged of %d, %d client writes acknowledged",
		out, to.Sub(from).Seconds(), len(samples), okProbes, len(probes), acked)
	h.Check(last >= first+2, "commit index kept rising while %s was out: %d -> %d (%+d)", out, first, last, int64(last)-int64(first))
}

// TestStop2: stop both followers; the lone leader must commit nothing and
// acknowledge nothing; restart them: progress resumes, all three agree.
func TestStop2(t *testing.T) {
	h := Setup(t, "test_stop2", "stop two of three nodes: progress halts, nothing acknowledged is lost; restart them: progress resumes and all agree")
	leader := h.WaitLeader(Nodes...)
	victims := others(Nodes, leader.Name)
	twoOut(h, leader, victims, "stop",
		func(ctx context.Context, n string) error { return h.D.Stop(ctx, n, 10*time.Second) },
		func(ctx context.Context, n string) error { return h.D.Start(ctx, n) })
}

// TestDisconnect2: cut the leader and one follower off the network; each
// node is alone; reconnect them.
func TestDisconnect2(t *testing.T) {
	h := Setup(t, "test_disconnect2", "disconnect two of three nodes: progress halts, nothing acknowledged is lost; reconnect them: progress resumes and all agree")
	leader := h.WaitLeader(Nodes...)
	victims := []string{leader.Name, others(Nodes, leader.Name)[0]}
	twoOut(h, leader, victims, "disconnect",
		func(ctx context.Context, n string) error { return h.D.Disconnect(ctx, n) },
		func(ctx context.Context, n string) error { return h.D.Connect(ctx, n) })
}

func twoOut(h *Harness, leader Status, victims []string, verb string, takeOut, bringBack func(context.Context, string) error) {
	h.WaitClients(h.Cfg.Warmup)
	survivor := others(Nodes, victims...)[0]
	ctx, cancel := h.Ctx()
	defer cancel()

	h.Printf("%s %s (leader was %s, term %d); %s is left alone", verb, strings.Join(victims, " and "), leader.Name, leader.Term, survivor)
	outStart := time.Now()
	for _, v := range victims {
		if err := takeOut(ctx, v); err != nil {
			h.Fatalf("%v", err)
		}
	}
	// Entries the victims acknowledged just before they left may still
	// commit: the no-progress window starts after a grace period.
	grace := 2 * electionTimeout()
	h.Observe(grace, []string{survivor}, 0, nil)
	baseline, err := h.API.Status(ctx, survivor)
	if err != nil {
		h.Fatalf("status of %s: %v", survivor, err)
	}
	inside := map[string]Status{}
	if verb == "disconnect" {
		for _, v := range victims {
			if st, err := StatusInside(ctx, h.D, v); err == nil {
				inside[v] = st
			}
		}
	}
	windowStart := time.Now()
	h.Printf("no-progress window starts %v after the fault: %s", grace, baseline)

	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	probe := h.Probe(pctx, survivor, "no-quorum")
	pcancel()
	h.Check(probe.Code != 200, "a write through %s without a quorum is not acknowledged: %s", survivor, probe)

	samples, _ := h.Observe(remaining(outStart, h.Cfg.Outage), []string{survivor}, 0, nil)
	windowEnd := time.Now()
	moved := 0
	for _, s := range samples {
		if st, ok := s.St[survivor]; ok && st.CommitIndex != baseline.CommitIndex {
			moved++
		}
	}
	h.Check(moved == 0, "%s's commit index stayed at %d for %.1fs (%d samples, %d differ)", survivor, baseline.CommitIndex, windowEnd.Sub(windowStart).Seconds(), len(samples), moved)
	for _, v := range victims {
		before, ok := inside[v]
		if !ok {
			continue
		}
		if st, err := StatusInside(ctx, h.D, v); err == nil {
			h.Check(st.CommitIndex == before.CommitIndex, "cut-off %s's commit index stayed at %d (seen from inside its container; role %s, term %d)", v, before.CommitIndex, st.Role, st.Term)
		}
	}
	acked, failed := clientWritesIn(h.Records(), windowStart, windowEnd)
	h.Check(acked == 0, "no client write acknowledged during the window (%d writes ended in 503/timeout/unknown, 0 expected acknowledged, %d found)", failed, acked)

	h.Printf("%s %s back", verbBack(verb), strings.Join(victims, " and "))
	for _, v := range victims {
		if err := bringBack(ctx, v); err != nil {
			h.Fatalf("%v", err)
		}
	}
	back := time.Now()
	nl := h.WaitLeader(Nodes...)
	pctx, pcancel = context.WithTimeout(ctx, 10*time.Second)
	probe = h.Probe(pctx, nl.Name, "after-recovery")
	pcancel()
	h.Check(probe.Code == 200, "a write after recovery is acknowledged (%s), %.1fs after the nodes came back", probe, time.Since(back).Seconds())
	st, err := h.API.Status(ctx, nl.Name)
	if err == nil {
		h.Check(st.CommitIndex > baseline.CommitIndex, "progress resumed: commit index %d -> %d", baseline.CommitIndex, st.CommitIndex)
	}
	h.Finish(Nodes, Nodes)
}

// TestDisconnectReconnect: cut a follower off, let the others go on,
// reconnect it: it catches up, and (pre-vote) forces no election.
func TestDisconnectReconnect(t *testing.T) {
	h := Setup(t, "test_disconnect_reconnect", "disconnect one follower, reconnect it: it catches up, all three agree, no election is forced")
	leader := h.WaitLeader(Nodes...)
	h.WaitClients(h.Cfg.Warmup)
	victim := others(Nodes, leader.Name)[0]
	survivors := others(Nodes, victim)
	ctx, cancel := h.Ctx()
	defer cancel()

	before, err := h.API.Status(ctx, victim)
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Printf("disconnect %s (a follower, term %d; leader %s, term %d)", victim, before.Term, leader.Name, leader.Term)
	outStart := time.Now()
	if err := h.D.Disconnect(ctx, victim); err != nil {
		h.Fatalf("%v", err)
	}
	samples, probes := h.Observe(h.Cfg.Outage, survivors, time.Second, func() string { return leader.Name })
	outEnd := time.Now()
	checkProgress(h, samples, probes, victim, outStart, outEnd)
	isolated, err := StatusInside(ctx, h.D, victim)
	if err != nil {
		h.Fatalf("status of %s from inside: %v", victim, err)
	}
	majority, err := h.API.Status(ctx, leader.Name)
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Printf("before reconnecting: %s (cut off) role=%s term=%d commit=%d; %s role=%s term=%d commit=%d",
		victim, isolated.Role, isolated.Term, isolated.CommitIndex, majority.Name, majority.Role, majority.Term, majority.CommitIndex)
	h.Check(isolated.Term == before.Term, "pre-vote: the cut-off %s did not raise its term while alone (%d -> %d)", victim, before.Term, isolated.Term)

	h.Printf("reconnect %s", victim)
	back := time.Now()
	if err := h.D.Connect(ctx, victim); err != nil {
		h.Fatalf("%v", err)
	}
	target := majority.CommitIndex
	var caught Status
	err = poll(ctx, 100*time.Millisecond, func() (bool, error) {
		st, err := h.API.Status(ctx, victim)
		if err != nil {
			return false, nil
		}
		caught = st
		return st.AppliedIndex >= target, nil
	})
	if !h.Check(err == nil, "%s caught up: applied index %d >= leader's commit index %d at reconnection, %.1fs after reconnecting",
		victim, caught.AppliedIndex, target, time.Since(back).Seconds()) {
		h.Fatalf("%s did not catch up: %v (last %s)", victim, err, caught)
	}
	after := h.WaitLeader(Nodes...)
	h.Printf("terms: %s before disconnect %d, alone %d; leader %s before reconnect %d, after %d (leader now %s)",
		victim, before.Term, isolated.Term, majority.Name, majority.Term, after.Term, after.Name)
	h.Check(after.Term == majority.Term && after.Name == majority.Name,
		"reconnecting %s forced no election: leader %s, term %d before and %s, term %d after", victim, majority.Name, majority.Term, after.Name, after.Term)
	h.Finish(Nodes, Nodes)
}

func verbBack(verb string) string {
	if verb == "stop" {
		return "start"
	}
	return "reconnect"
}

// remaining is what is left of an outage of length d begun at from (at least
// one second, so that there are samples to compare).
func remaining(from time.Time, d time.Duration) time.Duration {
	return max(time.Until(from.Add(d)), time.Second)
}

func maxCommit(s Sample) uint64 {
	var m uint64
	for _, st := range s.St {
		m = max(m, st.CommitIndex)
	}
	return m
}

// clientWritesIn counts the clients' writes that ended in [from, to]:
// acknowledged, and not (failed or unknown).
func clientWritesIn(recs map[string]*api.ClientRecord, from, to time.Time) (acked, failed int) {
	for _, r := range recs {
		for _, c := range r.Commands {
			if c.Op == "get" {
				continue
			}
			end, err := time.Parse(time.RFC3339Nano, c.End)
			if err != nil || end.Before(from) || end.After(to) {
				continue
			}
			if c.Outcome == api.OutcomeOK {
				acked++
			} else {
				failed++
			}
		}
	}
	return acked, failed
}

// electionTimeout is RAFT_ELECTION_TIMEOUT (default 1s).
func electionTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RAFT_ELECTION_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return time.Second
}
