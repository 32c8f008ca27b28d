package remoting

import (
	"sync"
	"sync/atomic"
)

// Stats are an endpoint's message counters since it started.
type Stats struct {
	Sent      uint64 // messages put on the wire
	Delivered uint64 // incoming messages accepted into a local mailbox
	Confirmed uint64 // outgoing messages the receiver accepted
	Failed    uint64 // outgoing messages that failed (encode, refusal, node lost)
	Dropped   uint64 // incoming messages dropped because their stream or link ended
	// Gone counts links to remote actors that their node closed because
	// the actor was not there: sends to a stopped actor, or to one a
	// stale directory still lists.
	Gone uint64
}

type stats struct {
	sent, delivered, confirmed, failed, dropped, gone atomic.Uint64
}

func (s *stats) complete(err error) {
	if err == nil {
		s.confirmed.Add(1)
	} else {
		s.failed.Add(1)
	}
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	return Stats{
		Sent:      e.stats.sent.Load(),
		Delivered: e.stats.delivered.Load(),
		Confirmed: e.stats.confirmed.Load(),
		Failed:    e.stats.failed.Load(),
		Dropped:   e.stats.dropped.Load(),
		Gone:      e.stats.gone.Load(),
	}
}

// WireStats count one peer node's message streams: the frames and bytes
// of the message service (not Raft's or the registry's RPCs), and the
// streams to it that failed and were reopened.
type WireStats struct {
	SentFrames, SentBytes         uint64
	ReceivedFrames, ReceivedBytes uint64
	StreamResets                  uint64
}

// wireCounters is the live form of WireStats.
type wireCounters struct {
	node                                                 string
	sentFrames, sentBytes, recvFrames, recvBytes, resets atomic.Uint64
}

// wireSet holds the wire counters of each peer node.
type wireSet struct{ m sync.Map } // node ID → *wireCounters

func (w *wireSet) of(node string) *wireCounters {
	if c, ok := w.m.Load(node); ok {
		return c.(*wireCounters)
	}
	c, _ := w.m.LoadOrStore(node, &wireCounters{node: node})
	return c.(*wireCounters)
}

// WireStats returns the wire counters of every peer node this endpoint has
// exchanged messages with, by node ID.
func (e *Endpoint) WireStats() map[string]WireStats {
	out := make(map[string]WireStats)
	e.wire.m.Range(func(k, v any) bool {
		c := v.(*wireCounters)
		out[k.(string)] = WireStats{
			SentFrames: c.sentFrames.Load(), SentBytes: c.sentBytes.Load(),
			ReceivedFrames: c.recvFrames.Load(), ReceivedBytes: c.recvBytes.Load(),
			StreamResets: c.resets.Load(),
		}
		return true
	})
	return out
}

// ForgetWireStats drops node's wire counters (a node that left): they
// start again from zero if it comes back. Peers that counted in them
// look them up again on their next send.
func (e *Endpoint) ForgetWireStats(node string) {
	c, ok := e.wire.m.LoadAndDelete(node)
	if !ok {
		return
	}
	e.known.Range(func(_, v any) bool {
		v.(*peer).wire.CompareAndSwap(c.(*wireCounters), nil)
		return true
	})
}
