// Package gossip is dchan's broadcast engine: the protocol behind
// channel.Publish and channel.Subscribe.
//
// It has two parts. Engine is the protocol itself, with no goroutine, no
// clock and no network: Step takes a message that arrived, Tick the time,
// Publish a value published on this node, Undeliverable a message that did
// not reach its peer; Ready returns what to send and what to deliver, in
// order. Its tests (engine_test.go) drive it with a fake membership and no
// sockets. Driver runs an Engine for a node: it serialises the calls,
// delivers to local subscribers, queues messages per peer (an outbox with
// the tree's queue and anti-entropy's), sends them through a Transport and
// ticks the engine.
//
// The protocol (see Engine): a publisher lays a tree over the nodes with
// subscribers of the name and sends each value down it, each hop passing
// it on to the first node of each of its groups; anti-entropy (digests,
// grafts and joins, while values are cached) repairs what the tree missed;
// each node delivers a publisher's values in order, at most once.
//
// A peer is trusted no further than the protocol needs: values are passed
// on only to distinct live members and to at most MaxFanout children, and
// once per value however often it arrives; at most MaxOriginsPerNode publishers of
// one node are tracked, only of live members; headers are decoded with
// bounds on every count.
//
// # Goroutines
//
// A Driver runs one ticker (Start to Close) and one sender per peer with
// queued messages, which ends after a few idle seconds or at Close. Close
// stops them all and waits for them.
package gossip
