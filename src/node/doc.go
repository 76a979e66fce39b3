// Package node is the node runtime: the one loop (Node) that joins the
// Raft core (src/raft), the storage (src/storage), the transport
// (src/transport) and the state machine (src/kv), and its Ready handling
// (Handler.HandleReady), the one function that persists, sends, applies and
// advances for a raft.Node in the order that keeps Raft safe on real disks.
// The loop and the simulator (src/raft/simtest) both run that function, so
// the simulator's thousands of crash schedules test this code, not a copy
// of it.
//
// Node is what the HTTP API (src/httpapi) drives, through a small interface:
// Propose a command and wait until it applied, Read (a linearizable
// barrier), the published Status, Get from the local state machine. The
// loop is the only goroutine that touches the core: other goroutines send
// it requests on channels and wait for the answer or a deadline. Its clock
// is a Ticker (Config.NewTicker; a time.Ticker by default), so tests can
// drive it. Inspect reads a node's folder offline, as the node would
// recover it.
//
// # Running a node
//
//	n, err := node.New(node.Config{ID: 0, Peers: peers, DataDir: dir, RaftListen: ":7000",
//		Heartbeat: 100 * time.Millisecond, ElectionTimeout: time.Second, Logger: lg})
//	if err := n.Start(); err != nil { ... }  // listens for peers, starts the loop
//	res, err := n.Propose(kv.EncodeCommand(cmd), deadline) // answered after apply
//	err = n.Read(deadline)                   // then n.Get(key) is linearizable
//	err = n.Stop()                           // fails pending requests, writes statemachine.json
//
// Errors of Propose and Read say whether a command may have been applied:
// ErrNotLeader, ErrBusy and ErrLost mean it was not (the HTTP API answers
// 503); ErrTimeout, ErrStopping and ErrUnknownOutcome mean it may have been
// (504; the client retries with the same Request-Seq).
//
// # Using the Ready handling alone
//
// The owner of the raft.Node plugs in its storage, network and state
// machine and calls HandleReady after every event it fed the core, from the
// same goroutine:
//
//	h := node.Handler{Node: n, Storage: disk, Sender: transport, App: app, Logger: lg}
//	for {
//		select { /* Tick, Step, Propose, ReadIndex on n */ }
//		if err := h.HandleReady(); err != nil {
//			return err // storage or state machine failed: stop the node
//		}
//	}
//
// # The path of a write
//
//	client --PUT--> httpapi handler --Node.Propose--> propc --> loop: core.Propose (waiter kept by index)
//	  loop: h.HandleReady
//	    leader: EarlyMessages (AppendEntries) --Sender--> followers   } in parallel
//	    leader: Storage.Save(entries) + fsync                          }
//	    follower: Storage.Save(entries) + fsync, then MsgAppResp --Sender--> leader
//	    leader: Advance counts its own copy; a quorum of copies commits
//	  next Ready: CommittedEntries --App.Apply--> kv.Store.Apply --> waiter --> HTTP answer
//
// A follower's handler forwards the request to the leader's HTTP API
// instead. The answer comes only after the leader applied the command; if
// another entry lands at its index, the answer is ErrLost.
//
// # The path of a linearizable read
//
//	client --GET--> httpapi handler --Node.Read--> readc --> loop: core.ReadIndex(id), one id per loop turn (waiters kept by id)
//	  core: reads share a heartbeat round; at most one round in flight
//	  Ready: heartbeat round --Sender--> followers; acknowledgements --Step--> leader
//	  Ready: ReadStates --App.ReadState--> waiter by id; wait until applied >= read index
//	  App.Advanced: release the reads whose index is applied
//	httpapi handler: Node.Get(key) from the local state machine --> HTTP answer
//
// # Failure contracts
//
//   - Storage: an error means the node no longer knows what is on disk.
//     HandleReady returns it before sending anything that depends on the
//     write, and the runtime stops the node; a failed fsync is never retried.
//   - Sender: never fails and never blocks; the network may lose, duplicate
//     or reorder messages and Raft retransmits.
//   - Application: an error stops the node like a storage error. Apply must
//     be deterministic: every node applies the same entries in the same
//     order.
//
// # The rule that matters
//
// A message leaves only after the state it promises is durable: a vote
// request or a granted vote promises the term and the vote, an
// acknowledgement of AppendEntries promises the entries (Raft thesis 3.8).
// Only a leader's replication traffic (raft.Ready.EarlyMessages) may leave
// before its own write (thesis 10.2.1). The simulator checks this rule at
// every send and crashes nodes inside writes; its
// TestPlantedSendBeforePersistIsCaught shows a planted violation caught.
//
// Imports: node uses raft, storage, transport, kv and metrics. The Handler
// knows storage, network and state machine only through the interfaces
// above, so the simulator plugs in memory versions.
package node
