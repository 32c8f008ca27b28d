package channel

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/internal/hist"
	"github.com/dchan-io/dchan/registry"
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

	// FailedBy counts Failed by reason (see Counters.FailedBy).
	FailedBy map[string]uint64

	// Names holds the counters of each channel name this node sends to or
	// receives from. A name with no receiver or sender on this node,
	// and no traffic, is forgotten after a quiet while (one to two minutes):
	// its counters start again from zero if it is used again.
	Names map[string]Counters
	// Peers holds, for each node values were sent to, Counters.Sent. A
	// node that is no longer a live member is forgotten after a quiet while.
	Peers map[string]Counters

	// AcceptLatency is the time from WithMessage (or SendContext) to the
	// receiver's acceptance, for every confirmed value.
	AcceptLatency Histogram

	// DeadLetters counts messages the node's actor system could not
	// deliver (actor.System.DeadLetters).
	DeadLetters uint64
	// FailuresUnreported counts failures the failure handler
	// (WithFailureHandler) was not told of: its queue was full.
	FailuresUnreported uint64

	Broadcast BroadcastStats // Publish/Subscribe

	Registry RegistryStats // the node's replica of the registry, and its Raft

	// Wire counts the message streams to and from each peer node, by node
	// ID. A node that is no longer a live member is forgotten after a
	// quiet while.
	Wire map[string]WireStats
}

// WireStats count the message streams between this node and one peer: the
// frames of values this node sent and received (Raft's and the registry's
// RPCs not included), their bytes, and the streams to the peer that failed
// and were reopened.
type WireStats struct {
	SentFrames, SentBytes         uint64
	ReceivedFrames, ReceivedBytes uint64
	StreamResets                  uint64
}

// RegistryStats are a node's registry figures: its Raft replica, its view
// of the cluster, and what it timed and counted since it started.
type RegistryStats struct {
	State        string // "leader", "follower", "candidate" or "shutdown"
	Leader       string // the leader's node ID; "" when none is known
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// LastContact is how long ago the leader was last heard from: 0 on
	// the leader, -1 when it never was.
	LastContact time.Duration

	Alive, Expired int // members by status
	Voters         int // live members with a vote
	Names          int // names with at least one receiver

	Elections         uint64 // elections this node started
	LeaderChanges     uint64 // leaders this node saw come or go
	HeartbeatFailures uint64 // heartbeats to a follower that failed while this node led

	// Apply is the time from a write handed to Raft on the leader to its
	// result (committed and applied there); FSMApply the time the replica
	// took to apply each batch of committed entries.
	Apply, FSMApply Histogram
}

func registryStats(m registry.Metrics) RegistryStats {
	return RegistryStats{
		State: m.State, Leader: m.Leader, Term: m.Term, LastIndex: m.LastIndex,
		CommitIndex: m.CommitIndex, AppliedIndex: m.AppliedIndex, LastContact: m.LastContact,
		Alive: m.Alive, Expired: m.Expired, Voters: m.Voters, Names: m.Names,
		Elections: m.Elections, LeaderChanges: m.LeaderChanges, HeartbeatFailures: m.HeartbeatFailures,
		Apply: histogramOf(m.Apply), FSMApply: histogramOf(m.FSMApply),
	}
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
	// FailedBy counts Failed by reason: "timeout", "canceled",
	// "no_receivers", "node_lost", "encode", "too_large", "wrong_type",
	// "gone", "closed" or "other". Nil when nothing failed.
	FailedBy map[string]uint64
	// Buffered is how many values this node's receivers of the name hold
	// that their users have not read yet (names only): in their channels
	// and mailboxes.
	Buffered uint64
}

// Histogram is a distribution of durations. Counts[i] counts those at
// most Bounds[i] (and above Bounds[i-1]); the last count, one past
// Bounds, those above every bound.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

func histogramOf(s hist.Snapshot) Histogram {
	return Histogram{Bounds: hist.Bounds, Counts: s.Counts[:], Count: s.Count, Sum: s.Sum}
}

// reason is why a value failed, as FailedBy tells them apart.
type reason uint8

const (
	reasonTimeout reason = iota
	reasonCanceled
	reasonNoReceivers
	reasonNodeLost
	reasonEncode
	reasonTooLarge
	reasonWrongType
	reasonGone
	reasonClosed
	reasonOther
	numReasons
)

var reasonNames = [numReasons]string{
	"timeout", "canceled", "no_receivers", "node_lost", "encode", "too_large", "wrong_type", "gone", "closed", "other",
}

func (r reason) String() string { return reasonNames[r] }

// reasonOf classifies a failure's error.
func reasonOf(err error) reason {
	switch {
	case errors.Is(err, ErrNoReceivers):
		return reasonNoReceivers
	case errors.Is(err, ErrNodeLost):
		return reasonNodeLost
	case errors.Is(err, ErrEncode):
		return reasonEncode
	case errors.Is(err, ErrTooLarge):
		return reasonTooLarge
	case errors.Is(err, ErrWrongType), errors.Is(err, actor.ErrRejected):
		return reasonWrongType
	case errors.Is(err, ErrGone), errors.Is(err, actor.ErrNotFound), errors.Is(err, actor.ErrStopped):
		return reasonGone
	case errors.Is(err, ErrClosed):
		return reasonClosed
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return reasonTimeout
	case errors.Is(err, context.Canceled):
		return reasonCanceled
	}
	return reasonOther
}

// counters is the live, lock-free form of Counters: the counters of one
// name, one peer, or the node. The send pump, the outcome callbacks and
// the receivers update sent, delivered and received from different
// goroutines, usually on different cores: each sits on a cache line of its
// own, so that they do not take the line from each other.
type counters struct {
	sent            atomic.Uint64
	_               [56]byte
	delivered       atomic.Uint64
	_               [56]byte
	received        atomic.Uint64
	_               [56]byte
	failed, dropped atomic.Uint64
	failedBy        [numReasons]atomic.Uint64

	// holders counts the routers and receivers that keep a pointer to
	// these counters: they are never forgotten while held. forgotten once
	// forgotten. (A count made through the map, not held, by a goroutine
	// that looked them up just before they were forgotten is lost with
	// them: they had been quiet for a minute or more.)
	holders atomic.Int32
	// seen and quiet are the sweeper's own: the activity it saw last, and
	// for how many sweeps in a row it has not changed.
	seen  uint64
	quiet int
}

func (c *counters) snapshot() Counters {
	out := Counters{
		Sent: c.sent.Load(), Delivered: c.delivered.Load(), Failed: c.failed.Load(),
		Dropped: c.dropped.Load(), Received: c.received.Load(),
	}
	if out.Failed > 0 {
		out.FailedBy = c.failedByMap()
	}
	return out
}

func (c *counters) failedByMap() map[string]uint64 {
	m := make(map[string]uint64)
	for r := range numReasons {
		if v := c.failedBy[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// activity sums every count: unchanged between two sweeps means quiet.
func (c *counters) activity() uint64 {
	return c.sent.Load() + c.delivered.Load() + c.received.Load() + c.failed.Load() + c.dropped.Load()
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
	accept   hist.Histogram
	// localGone counts values this node's receivers that were gone turned
	// away (each went to another receiver, or waited).
	localGone atomic.Uint64
}

// hold returns the counters of name for a router or receiver to keep
// (release gives them back): held counters are never forgotten.
func (s *stats) hold(name string) *counters {
	for {
		c := counterFor(&s.names, name)
		if h := c.holders.Load(); h >= 0 && c.holders.CompareAndSwap(h, h+1) {
			return c
		}
		if c.holders.Load() < 0 {
			s.names.CompareAndDelete(name, c) // forgotten: make way for new ones
		}
	}
}

func (s *stats) release(c *counters) { c.holders.Add(-1) }

func counterFor(m *sync.Map, key string) *counters {
	for {
		v, ok := m.Load(key)
		if !ok {
			v, _ = m.LoadOrStore(key, &counters{})
		}
		c := v.(*counters)
		if c.holders.Load() >= 0 {
			return c
		}
		m.CompareAndDelete(key, c) // forgotten: make way for new ones
	}
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

// confirmed counts one value confirmed accepted at now whose sender waits
// for it, since start.
func (s *stats) confirmed(name *counters, start, now time.Time) {
	s.delivered(name, 1)
	if !start.IsZero() {
		s.accept.Observe(now.Sub(start))
	}
}

// failed counts n values that failed with err; wasSent says whether they
// had been handed to a receiver (and so counted in flight).
func (s *stats) failed(name string, wasSent bool, err error, n int) {
	r := reasonOf(err)
	s.total.failed.Add(uint64(n))
	s.total.failedBy[r].Add(uint64(n))
	if wasSent {
		s.inFlight.Add(-int64(n))
	}
	c := counterFor(&s.names, name)
	c.failed.Add(uint64(n))
	c.failedBy[r].Add(uint64(n))
}

func (s *stats) dropped(name string) {
	s.total.dropped.Add(1)
	counterFor(&s.names, name).dropped.Add(1)
}

func (s *stats) received(name *counters) {
	s.total.received.Add(1)
	name.received.Add(1)
}

// forgotten is the count of users or holders of a router or counters the
// sweeper forgot: below any count, so that no one takes them up again.
const forgotten = math.MinInt32

// forgetAfter is how many sweeps in a row a name's or peer's counters must
// have been quiet, and not held, before they are forgotten.
const forgetAfter = 2

// DefaultSweepInterval is how often a node looks for names and peers gone
// quiet, to forget their counters and routers.
const DefaultSweepInterval = time.Minute

// sweep forgets the routers, and then the counters, of names gone quiet,
// and the counters of peers that are no longer live members: a program
// that uses a name per request or per client does not grow them without
// bound. It runs on one goroutine (sweepLoop).
func (n *Node) sweep() {
	n.routers.Range(func(k, v any) bool {
		r := v.(*router)
		if u := r.uses.Load(); r.users.Load() != 0 || u != r.seenUses {
			r.seenUses, r.quiet = u, 0
			return true
		}
		// Dead only if still unused: an acquire that comes after it
		// makes a new router.
		if r.quiet++; r.quiet >= forgetAfter && r.users.CompareAndSwap(0, forgotten) {
			n.routers.CompareAndDelete(k, r)
			n.stats.release(r.stats)
		}
		return true
	})
	sweepCounters(&n.stats.names, func(string) bool { return false })
	sweepCounters(&n.stats.peers, n.isLiveMember)
	n.sweepWire()
}

// sweepWire forgets the wire counters of nodes that are no longer live
// members and have been quiet for forgetAfter sweeps.
func (n *Node) sweepWire() {
	if n.wireQuiet == nil {
		n.wireQuiet = make(map[string]wireSeen)
	}
	now := n.ep.WireStats()
	for node, w := range now {
		seen := n.wireQuiet[node]
		if a := w.SentFrames + w.ReceivedFrames + w.StreamResets; a != seen.activity || n.isLiveMember(node) {
			n.wireQuiet[node] = wireSeen{activity: a}
			continue
		}
		if seen.quiet++; seen.quiet >= forgetAfter {
			n.ep.ForgetWireStats(node)
			delete(n.wireQuiet, node)
			continue
		}
		n.wireQuiet[node] = seen
	}
	for node := range n.wireQuiet {
		if _, ok := now[node]; !ok {
			delete(n.wireQuiet, node)
		}
	}
}

// wireSeen is what the sweeper saw of a peer's wire counters.
type wireSeen struct {
	activity uint64
	quiet    int
}

// sweepCounters forgets the counters in m that no one holds, that keep is
// false for, and that have not changed for forgetAfter sweeps.
func sweepCounters(m *sync.Map, keep func(key string) bool) {
	m.Range(func(k, v any) bool {
		c := v.(*counters)
		if a := c.activity(); c.holders.Load() > 0 || a != c.seen || keep(k.(string)) {
			c.seen, c.quiet = a, 0
			return true
		}
		if c.quiet++; c.quiet >= forgetAfter && c.holders.CompareAndSwap(0, forgotten) {
			m.CompareAndDelete(k, c)
		}
		return true
	})
}

func (n *Node) sweepLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.sweep()
		case <-n.ctx.Done():
			return
		}
	}
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
		InFlight:           uint64(max(s.inFlight.Load(), 0)),
		FailedBy:           s.total.failedByMap(),
		Names:              make(map[string]Counters),
		Peers:              make(map[string]Counters),
		AcceptLatency:      histogramOf(s.accept.Snapshot()),
		DeadLetters:        n.sys.DeadLetters(),
		FailuresUnreported: n.failures.unreported.Load(),

		Broadcast: bcastSnapshot(&s.bcast),
		Registry:  registryStats(n.reg.Metrics()),
		Wire:      make(map[string]WireStats),
	}
	for node, w := range n.ep.WireStats() {
		out.Wire[node] = WireStats(w)
	}
	s.names.Range(func(k, v any) bool {
		out.Names[k.(string)] = v.(*counters).snapshot()
		return true
	})
	s.peers.Range(func(k, v any) bool {
		out.Peers[k.(string)] = v.(*counters).snapshot()
		return true
	})
	n.mu.Lock()
	rs := make([]*receiver, 0, len(n.receivers))
	for r := range n.receivers {
		if !r.private {
			rs = append(rs, r)
		}
	}
	n.mu.Unlock()
	for _, r := range rs {
		c, ok := out.Names[r.name]
		if !ok {
			continue
		}
		c.Buffered += uint64(r.queued())
		if r.handing.Load() {
			c.Buffered++
		}
		if free, err := n.sys.MailboxFree(r.pid); err == nil && free < r.mailbox {
			c.Buffered += uint64(r.mailbox - free)
		}
		out.Names[r.name] = c
	}
	return out
}
