// Package linearizability records the history of concurrent key-value
// operations against a raftkv cluster and checks it with porcupine
// (github.com/anishathalye/porcupine), as etcd's robustness tests do.
//
// A history is linearizable if every operation can be placed at one instant
// between its call and its return so that, in that order, each get returns
// what the sequential key-value store would. Model is that store, partitioned
// by key (a history is linearizable iff each key's history is), with state
// (value, exists) per key.
//
// # Outcomes
//
// Each operation ends in one of three ways, and the difference matters:
//
//   - Ok: acknowledged. It took effect exactly once between Call and Return;
//     a get's answer (value, or not found) must match the state there.
//   - Unknown: a timeout, a 504, a connection lost after sending. A write may
//     take effect at any time after its call, even after the client gave up
//     (a proposal can commit later), or never: Check gives it an infinite
//     Return time and accepts any output. A read with no answer is dropped.
//   - Failed: certainly not applied (400, 413, the client's ErrUnavailable):
//     dropped. Recording a possibly applied write as Failed would make the
//     checker report false violations; recording an acknowledged one as
//     Unknown would hide real ones.
//
// # Usage in the real-cluster tests
//
// Every client goroutine has its own small ClientID and issues one operation
// at a time through its own client.Client; writes carry values unique across
// the run (say "c3.17;"), so an append applied twice, lost, or reordered shows
// in later reads:
//
//	rec := linearizability.NewRecorder()
//	// in client goroutine id, while nodes are killed, paused and restarted:
//	p := rec.Begin(id, api.OpAppend, key, value) // just before sending
//	_, err := c.Append(ctx, key, value)
//	switch {
//	case err == nil:
//		p.Ok("", false)
//	case errors.Is(err, client.ErrUnknownOutcome), errors.Is(err, context.DeadlineExceeded):
//		p.Unknown()
//	default: // client.ErrUnavailable, *client.BadRequestError
//		p.Failed()
//	}
//
//	p = rec.Begin(id, api.OpGet, key, "")
//	v, _, err := c.Get(ctx, key)
//	switch {
//	case err == nil:
//		p.Ok(v, true)
//	case errors.Is(err, client.ErrNotFound):
//		p.Ok("", false)
//	default: // no answer: the read constrains nothing
//		p.Unknown()
//	}
//
// When the load stops (operations still in flight count as Unknown):
//
//	ops := rec.Ops()
//	res := linearizability.Check(ops, time.Minute)
//	if !res.Linearizable {
//		path := filepath.Join(t.ArtifactDir(), "history.html") // kept with go test -artifacts
//		_ = linearizability.Visualize(ops, path)
//		t.Fatalf("history %v; visualization in %s", res, path)
//	}
//
// res.Unknown means the checker gave up at the timeout: a failure to check,
// not a pass. Keep histories checkable: a few keys shared by all clients make
// conflicts likely, but thousands of operations on one key with many Unknown
// writes can make the search exponential.
//
// Times come from the Recorder's monotonic clock, so all operations of one
// history must be recorded by one Recorder. Intervals are closed: operations
// whose Call and Return touch are concurrent.
package linearizability
