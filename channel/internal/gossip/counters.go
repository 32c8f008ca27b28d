package gossip

import "sync/atomic"

// Counters count what a node's broadcast did, without locks.
type Counters struct {
	Published    atomic.Uint64 // values published on this node
	Sent         atomic.Uint64 // data messages handed to the transport
	Duplicates   atomic.Uint64 // values that arrived again, dropped
	Repaired     atomic.Uint64 // values that came by anti-entropy
	Lost         atomic.Uint64 // values given up behind gaps
	Rerouted     atomic.Uint64 // groups handed to their next node after a failed hop
	QueueDropped atomic.Uint64 // messages dropped from, or refused by, a full queue
	Digests      atomic.Uint64 // digests sent
	Grafts       atomic.Uint64 // grafts and joins sent
	Refused      atomic.Uint64 // values and announcements of publishers not tracked: of a non-member, or past MaxOriginsPerNode
	MaxHops      atomic.Uint64 // the longest path a value took to this node
}

func (c *Counters) noteHops(h uint64) {
	for {
		cur := c.MaxHops.Load()
		if h <= cur || c.MaxHops.CompareAndSwap(cur, h) {
			return
		}
	}
}
