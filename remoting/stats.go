package remoting

import "sync/atomic"

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
