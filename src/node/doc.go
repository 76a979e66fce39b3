// Package node is the node runtime's Ready handling: the one function
// (Handler.HandleReady) that persists, sends, applies and advances for a
// raft.Node, in the order that keeps Raft safe on real disks. The server's
// loop (src/server) and the simulator (src/raft/simtest) both run it, so the
// simulator's thousands of crash schedules test this code, not a copy of
// it. The rest of the runtime (the loop, proposals, reads, snapshots) still
// lives in src/server and moves here later.
//
// # Usage
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
//	client --PUT--> HTTP handler --proposal--> loop: n.Propose (waiter kept by index)
//	  loop: h.HandleReady
//	    leader: EarlyMessages (AppendEntries) --Sender--> followers   } in parallel
//	    leader: Storage.Save(entries) + fsync                          }
//	    follower: Storage.Save(entries) + fsync, then MsgAppResp --Sender--> leader
//	    leader: Advance counts its own copy; a quorum of copies commits
//	  next Ready: CommittedEntries --App.Apply--> state machine --> waiter --> HTTP answer
//
// # The path of a linearizable read
//
//	client --GET--> HTTP handler --read--> loop: n.ReadIndex (batched, one round at a time)
//	  Ready: heartbeat round --Sender--> followers; acknowledgements --Step--> leader
//	  Ready: ReadStates --App.ReadState--> wait until applied >= read index
//	  App.Advanced: serve the reads whose index is applied --> HTTP answer
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
// Imports: node uses raft (and zap); it knows storage, transport and kv only
// through the interfaces above, so the simulator plugs in memory versions.
package node
