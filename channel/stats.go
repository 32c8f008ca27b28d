package channel

import (
	"github.com/dchan-io/dchan/channel/internal/gossip"

	"sync"
	"sync/atomic"
)

// Stats are a node's counters since it started.
//
// A remote receiver confirms bare values (written without a Message) in
// batches, within a few milliseconds (remoting.AckDelay): until then they
// count as InFlight, not yet as Delivered.
type Stats struct {
	Sent      uint64 // values handed to a receiver (on this node or on the wire)
	Delivered uint64 // values confirmed accepted by a receiver's buffer
	Failed    uint64 // values that failed (timeout, node lost, encode, no receivers, wrong type)
	Dropped   uint64 // values a receiver accepted but could not hand to its user (forced shutdown)
	InFlight  uint64 // values sent and not yet confirmed or failed
	Received  uint64 // values handed to users of this node's receivers

	Names map[string]Counters // per channel name
	Peers map[string]Counters // per receiving node (Sent only)

	Broadcast BroadcastStats // Publish/Subscribe
}

// BroadcastStats count this node's share of broadcast traffic. Values
// dropped by a full subscriber buffer are counted in Stats.Dropped.
type BroadcastStats struct {
	Published    uint64 // values published on this node
	Sent         uint64 // value messages sent to peers: first hops, forwards, repairs
	Duplicates   uint64 // value messages that arrived for a value already delivered here
	Repaired     uint64 // values delivered here that anti-entropy fetched after the tree missed them
	Lost         uint64 // values given up: still missing after values behind them waited 3 s
	Rerouted     uint64 // hops that failed and were passed to the next node of their group
	QueueDropped uint64 // messages dropped by a full per-peer queue
	Digests      uint64 // anti-entropy digests sent
	Grafts       uint64 // anti-entropy requests for missing values sent (grafts, and joins of a node that had none)
	MaxHops      uint64 // longest path, in hops, a value took to reach this node
	Refused      uint64 // values and announcements of publishers not tracked: of a node that is no live member, or one that has too many publishers
}

// Counters are the counters of one name or peer.
type Counters struct {
	Sent, Delivered, Failed, Dropped, Received uint64
}

// counters is the live, lock-free form of Counters.
// counters of one name, one peer, or the node. The send pump, the outcome
// callbacks and the receivers update sent, delivered and received from
// different goroutines, usually on different cores: each sits on a cache
// line of its own, so that they do not take the line from each other.
type counters struct {
	sent            atomic.Uint64
	_               [56]byte
	delivered       atomic.Uint64
	_               [56]byte
	received        atomic.Uint64
	_               [56]byte
	failed, dropped atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Sent: c.sent.Load(), Delivered: c.delivered.Load(), Failed: c.failed.Load(),
		Dropped: c.dropped.Load(), Received: c.received.Load(),
	}
}

// stats counts without locks on the value path: a name's or peer's counters
// are created once (sync.Map) and then only atomically incremented.
type stats struct {
	bcast    gossip.Counters
	total    counters
	inFlight atomic.Int64
	_        [56]byte
	names    sync.Map // string → *counters
	peers    sync.Map // string → *counters
}

// name returns the counters of name: routers and receivers look them up
// once, not per value.
func (s *stats) name(name string) *counters { return counterFor(&s.names, name) }

func counterFor(m *sync.Map, key string) *counters {
	if c, ok := m.Load(key); ok {
		return c.(*counters)
	}
	c, _ := m.LoadOrStore(key, &counters{})
	return c.(*counters)
}

// sent counts n values handed to a receiver on peer.
func (s *stats) sent(name *counters, peer string, n int) {
	if n == 0 {
		return
	}
	s.total.sent.Add(uint64(n))
	s.inFlight.Add(int64(n))
	name.sent.Add(uint64(n))
	counterFor(&s.peers, peer).sent.Add(uint64(n))
}

// delivered counts n values confirmed accepted.
func (s *stats) delivered(name *counters, n int) {
	s.total.delivered.Add(uint64(n))
	s.inFlight.Add(-int64(n))
	name.delivered.Add(uint64(n))
}

// failed counts n values that failed; wasSent says whether they had been
// handed to a receiver (and so counted in flight).
func (s *stats) failed(name string, wasSent bool, n int) {
	s.total.failed.Add(uint64(n))
	if wasSent {
		s.inFlight.Add(-int64(n))
	}
	counterFor(&s.names, name).failed.Add(uint64(n))
}

func (s *stats) dropped(name string) {
	s.total.dropped.Add(1)
	counterFor(&s.names, name).dropped.Add(1)
}

func (s *stats) received(name *counters) {
	s.total.received.Add(1)
	name.received.Add(1)
}

func bcastSnapshot(c *gossip.Counters) BroadcastStats {
	return BroadcastStats{
		Published: c.Published.Load(), Sent: c.Sent.Load(), Duplicates: c.Duplicates.Load(),
		Repaired: c.Repaired.Load(), Lost: c.Lost.Load(), Rerouted: c.Rerouted.Load(),
		QueueDropped: c.QueueDropped.Load(), Digests: c.Digests.Load(), Grafts: c.Grafts.Load(),
		MaxHops: c.MaxHops.Load(), Refused: c.Refused.Load(),
	}
}

// Stats returns a copy of the node's counters.
func (n *Node) Stats() Stats {
	s := &n.stats
	t := s.total.snapshot()
	out := Stats{
		Sent: t.Sent, Delivered: t.Delivered, Failed: t.Failed, Dropped: t.Dropped, Received: t.Received,
		InFlight: uint64(max(s.inFlight.Load(), 0)),
		Names:    make(map[string]Counters),
		Peers:    make(map[string]Counters),

		Broadcast: bcastSnapshot(&s.bcast),
	}
	s.names.Range(func(k, v any) bool {
		out.Names[k.(string)] = v.(*counters).snapshot()
		return true
	})
	s.peers.Range(func(k, v any) bool {
		out.Peers[k.(string)] = v.(*counters).snapshot()
		return true
	})
	return out
}
