// Package transport carries Raft messages between the nodes of a raftkv
// cluster over TCP.
//
// # Usage
//
// The node runtime builds one Transport from the hostfile, starts it, hands
// every Ready's messages to Send, and feeds what deliver receives into its
// loop:
//
//	incoming := make(chan raft.Message, 4096)
//	tr, err := transport.New(transport.Config{
//		Self:       0,
//		SelfName:   "r0",
//		ClusterID:  clusterID, // from the hostfile's names, in order
//		ListenAddr: ":7000",
//		Peers: map[raft.ID]transport.Peer{
//			1: {Name: "r1", Addr: func() string { return "r1:7000" }},
//			2: {Name: "r2", Addr: func() string { return "r2:7000" }},
//		},
//		Logger:     lg,
//		TLS:        peerTLS, // certs.LoadPeer(ca, cert, key); nil: plaintext
//		OnPeerLost: func(id raft.ID) { /* must not block */ },
//	}, func(m raft.Message) {
//		select {
//		case incoming <- m:
//		default: // the loop is behind: drop, Raft retransmits
//		}
//	})
//	if err != nil { ... }
//	if err := tr.Start(); err != nil { ... } // the listen error
//	defer tr.Close()
//	...
//	tr.Send(rd.Messages) // after the Ready's hard state and entries are durable
//
// A member added to the cluster after New (one outside the hostfile) is
// made known with AddPeer, while the transport runs:
//
//	err = tr.AddPeer(3, transport.Peer{Name: "n3", Addr: func() string { return "n3:7000" }})
//
// # Delivery contract
//
// Send never blocks. Messages may be lost (a full queue, a peer that is down,
// a connection that breaks), and after a reconnect they may arrive late, but
// over one connection they arrive in the order sent and never duplicated or
// altered by the transport. This is what Raft assumes of a network; it needs
// nothing stronger, and resends what matters. Stats tells what was dropped.
//
// # Connections
//
// Each node dials one long-lived outbound stream to every peer and accepts
// one inbound stream from each: messages to a peer go over our stream,
// messages from it arrive over its stream. A writer goroutine per peer drains
// that peer's bounded queue through a bufio.Writer and flushes when the queue
// is empty, so a burst of messages costs one write syscall. After any error
// it redials with exponential backoff (50 ms doubling to 1 s, with jitter),
// calling Peer.Addr again, so a peer that moved is found at its new address;
// a dial failure empties the queue (counted as drops) so a recovered peer
// does not first receive a stale backlog.
//
// # Protocol
//
// A connection opens with the dialer's hello: magic "RKVT", a version byte,
// the cluster ID, the sender's ID and name, and the receiver's ID. The
// acceptor checks that the cluster ID is its own, that the sender is a known
// peer (by ID and name, and not itself) and that the receiver is itself, and
// answers with one status byte (and a reason when refusing). Refused, it logs
// a warning and closes the connection. Then the dialer sends frames: a
// big-endian uint32 length and one message encoded by AppendMessage. A frame
// longer than Config.MaxFrame, a payload that does not decode, a message
// whose From is not the hello's sender or whose To is not this node: the
// connection is dropped and logged, and the node carries on. A newer inbound
// connection from a peer replaces its older one.
//
// The codec (AppendMessage, DecodeMessage) is hand-written: varints for
// numbers, length-prefixed byte strings, nil and empty kept apart. Decoding
// bounds every length by the bytes that remain, so hostile input cannot make
// it panic or allocate much more than the frame it came in.
//
// The hello alone authenticates nothing: it stops misconfiguration
// (another cluster, a stale address now used by another node), not an
// attacker. Config.TLS adds the authentication: the connection is mutual
// TLS 1.3 with the cluster CA, the hello runs inside it, and the acceptor
// refuses a hello whose sender the dialer's certificate does not name
// (tls.go). Every refused inbound connection is counted by reason
// (Refusals) and logged, rate-limited. Without Config.TLS (the node's
// --insecure) peer traffic belongs on a private network.
package transport
