// Package client is the Go client of raftkv's HTTP API (CONTRACT.md).
//
// It knows only the HTTP API: it never imports the server. It finds and
// follows the leader on its own, retries safely, and says plainly what
// happened to each command.
//
// # Usage
//
//	c, err := client.New(client.Config{
//		Endpoints: []string{"127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"},
//		Names:     []string{"r0", "r1", "r2"}, // optional
//		Logger:    lg,
//	})
//	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // bounds all retries
//	defer cancel()
//	res, err := c.Append(ctx, "log", "x")
//	switch {
//	case err == nil:                              // applied once, at res.Index
//	case errors.Is(err, client.ErrUnknownOutcome): // may or may not have been applied
//	case errors.Is(err, client.ErrUnavailable):    // certainly not applied
//	case errors.As(err, new(*client.BadRequestError)): // rejected: 400 or 413
//	}
//	v, _, err := c.Get(ctx, "log")                    // linearizable
//	v, _, err = c.Get(ctx, "log", client.WithStale()) // the answering node's copy
//
// # Leader tracking and retries
//
// Every response names the answering node (Raft-Node) and the leader
// (Raft-Leader). The client maps names to endpoints through Config.Names, or
// learns the mapping from the Raft-Node header of each answer, and sends the
// next request to the leader first. On a 503 (no leader, no quorum), a 504
// (outcome unknown), another 5xx, a connection error or a per-attempt timeout
// (Config.RequestTimeout), it tries the next node after an exponential
// backoff with jitter (Config.BackoffBase doubling up to Config.BackoffMax),
// until the context ends. A context without a deadline retries until it is
// cancelled. 400, 413 and 404 are final and never retried.
//
// # Exactly-once writes (Raft thesis 6.3)
//
// Each write carries Client-Id and a Request-Seq. The sequence number is
// assigned once per logical command and reused on every retry of it, after a
// 504 or a timeout too, so a retry that reaches a node after the first
// attempt was committed returns the first result instead of applying the
// command again. The server keeps only the last sequence number of each
// client and refuses lower ones, so a Client sends ONE WRITE AT A TIME: the
// write methods are safe for concurrent use, but concurrent writes on one
// Client are serialized (each waits its turn, or for its context). Use one
// Client per goroutine for parallel writes. Reads carry no sequence number
// and are not serialized.
//
// The server's session of a client outlives the Client value, so a ClientID
// must never be reused with sequence numbers starting over: leave
// Config.ClientID empty (a random ID) or make it unique per process.
//
// # Errors
//
// A write that fails leaves one of two conditions, and they differ for an
// experiment that checks the final state:
//   - ErrUnknownOutcome: some attempt may have reached a node that proposed
//     the command (a 504, a timeout or a broken connection after the request
//     was sent) and no later attempt got a definite answer. The command may
//     have been applied (once) or not at all.
//   - ErrUnavailable: no attempt can have been applied (every node refused
//     the connection or answered 503) before the context ended.
//
// Both wrap the last attempt's error and, when the context ended, the
// context's error, so errors.Is(err, context.DeadlineExceeded) holds too.
package client
