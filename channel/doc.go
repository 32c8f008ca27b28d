// Package channel makes Go channels span a cluster. It is dchan's user
// facing layer: a thin adapter over the actor runtime (package actor), the
// network (package remoting) and the replicated registry (package
// registry), with no networking or consensus code of its own.
//
// Every process that calls New is a node. The first node, started without
// peers, bootstraps a cluster; the others join through any member:
//
//	node, err := channel.New(ctx,
//	    channel.WithNodeID("n1"),
//	    channel.WithListenAddr("127.0.0.1:7001"),
//	    channel.WithPeers("127.0.0.1:7000"),
//	    channel.WithDataDir("/var/lib/dchan/n1"),
//	    channel.WithTypes(Order{}),
//	)
//	defer node.Close()
//
// Receive registers a receiver of a name and returns its channel; Send
// returns a channel whose values each reach one receiver of the name,
// anywhere in the cluster, at most once:
//
//	orders, closeOrders, err := node.Receive("orders", 16)   // on some node
//	out, closeOut, err := node.Send("orders", 16)            // on any node
//	out <- Order{ID: 1}
//
// Write a *Message (WithMessage) to learn whether a receiver's buffer
// accepted the value; SendContext does the same for one value, blocking.
// ReceiveOf and SendOf are typed versions.
//
// # How it works
//
// A receiver is a mailbox-actor whose mailbox is the receiver's buffer; it
// hands each value to the user's Go channel. Its name and PID are
// registered in the registry (a Raft-replicated table read from the local
// replica). A send channel is a pump goroutine that routes each value:
// receivers are tried round-robin (each send channel taking turns of its
// own) without waiting — a local one if its
// buffer has room, a remote one if its link has credit — and if none can
// take the value the pump waits on one for a short slice and looks again;
// with no receiver at all it waits for one to register. Bare values that
// wait in the send channel are routed as a batch of up to 128: one turn
// of the round-robin for the batch, each receiver taking as much of it as
// it has room for. A remote receiver grants its senders credit equal to
// its free buffer space, so a slow receiver stops its senders instead of
// filling memory.
//
// Guarantees (see docs/semantics.md for each and what would break it):
// at most once; a confirmed value was accepted by exactly one receiver;
// per-pair FIFO; backpressure; with no receivers a send blocks; a clean
// close drops nothing accepted; receivers on a dead node are removed and
// their in-flight values fail promptly; linearizable registry writes; a bad
// value fails alone; peers failing TLS or the token are refused, and no
// member can act for another (with mutual TLS, a node is the node its
// certificate names).
//
// Publish and Subscribe broadcast: every subscriber of a name gets every
// value published to it, in each publisher's order, at most once. The
// protocol is package gossip's engine (channel/internal/gossip); this
// package gives it the registry's view of the cluster, the node's streams
// and the subscribers' channels.
//
// The machinery is in packages of its own under channel/internal, each
// with its own tests: gossip (the broadcast engine), route (the routing
// policy above), pump (the goroutine behind a send or publish channel),
// tally (the counters of Stats, and the sweeping of quiet names' and
// peers'), reply (a node's pending requests and how answers travel) and
// report (the failure handler's queue and goroutine). This package wires
// them to the actor system, the endpoint and the registry.
//
// # Goroutines
//
// A Node owns: the actor system's mailbox runs (one per busy receiver,
// from a reused pool), the endpoint's gRPC server and per-peer stream
// goroutines, Raft's goroutines, the registry's health watcher, the
// node's member watcher (it fails the values in flight to nodes the
// cluster declares dead), one pump per Send channel (SendOf's included)
// and per Publish channel, the broadcast driver's ticker and its sender
// per peer with queued messages, the sweeper (it forgets the counters and
// routers of names gone quiet), and, with WithFailureHandler, the failure
// reporter. Close (or Shutdown) stops and waits for all of them.
package channel
