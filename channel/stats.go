package channel

import "sync"

// Stats are a node's counters since it started.
type Stats struct {
	Sent      uint64 // values handed to a receiver (on this node or on the wire)
	Delivered uint64 // values confirmed accepted by a receiver's buffer
	Failed    uint64 // values that failed (timeout, node lost, encode, no receivers)
	Dropped   uint64 // values a receiver accepted but could not hand to its user (forced shutdown, wrong type)
	InFlight  uint64 // values sent and not yet confirmed or failed
	Received  uint64 // values handed to users of this node's receivers

	Names map[string]Counters // per channel name
	Peers map[string]Counters // per receiving node (Sent only)
}

// Counters are the counters of one name or peer.
type Counters struct {
	Sent, Delivered, Failed, Dropped, Received uint64
}

type stats struct {
	mu    sync.Mutex
	total Counters
	names map[string]*Counters
	peers map[string]*Counters
}

func (s *stats) name(n string) *Counters {
	if s.names == nil {
		s.names = make(map[string]*Counters)
	}
	c := s.names[n]
	if c == nil {
		c = &Counters{}
		s.names[n] = c
	}
	return c
}

func (s *stats) sent(name, peer string) {
	s.mu.Lock()
	s.total.Sent++
	s.name(name).Sent++
	if s.peers == nil {
		s.peers = make(map[string]*Counters)
	}
	p := s.peers[peer]
	if p == nil {
		p = &Counters{}
		s.peers[peer] = p
	}
	p.Sent++
	s.mu.Unlock()
}

func (s *stats) delivered(name string) {
	s.mu.Lock()
	s.total.Delivered++
	s.name(name).Delivered++
	s.mu.Unlock()
}

func (s *stats) failed(name string) {
	s.mu.Lock()
	s.total.Failed++
	s.name(name).Failed++
	s.mu.Unlock()
}

func (s *stats) dropped(name string) {
	s.mu.Lock()
	s.total.Dropped++
	s.name(name).Dropped++
	s.mu.Unlock()
}

func (s *stats) wrongType(name string) { s.dropped(name) }

func (s *stats) received(name string) {
	s.mu.Lock()
	s.total.Received++
	s.name(name).Received++
	s.mu.Unlock()
}

// Stats returns a copy of the node's counters.
func (n *Node) Stats() Stats {
	s := &n.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{
		Sent:      s.total.Sent,
		Delivered: s.total.Delivered,
		Failed:    s.total.Failed,
		Dropped:   s.total.Dropped,
		Received:  s.total.Received,
		Names:     make(map[string]Counters, len(s.names)),
		Peers:     make(map[string]Counters, len(s.peers)),
	}
	if d := s.total.Delivered + s.total.Failed; s.total.Sent > d {
		out.InFlight = s.total.Sent - d
	}
	for k, v := range s.names {
		out.Names[k] = *v
	}
	for k, v := range s.peers {
		out.Peers[k] = *v
	}
	return out
}
