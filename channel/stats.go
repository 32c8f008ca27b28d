package channel

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/channel/internal/tally"
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
	Clients        int // live members outside the Raft configuration (WithMaxReplicas)
	Names          int // names with at least one receiver

	// Client: this node is a registry client (WithMaxReplicas);
	// Following: the address of the replica it follows, "" while none.
	Client    bool
	Following string

	Elections         uint64 // elections this node started
	LeaderChanges     uint64 // leaders this node saw come or go
	HeartbeatFailures uint64 // heartbeats to a follower that failed while this node led

	// Writes counts this node's registrations and unregistrations, and
	// Batches the batches they were committed in (on the leader) or
	// forwarded to it in: Writes/Batches is the batching achieved.
	Writes, Batches uint64

	// Apply is the time from a write handed to Raft on the leader to its
	// result (committed and applied there); FSMApply the time the replica
	// took to apply each batch of committed entries.
	Apply, FSMApply Histogram
}

func registryStats(m registry.Metrics) RegistryStats {
	return RegistryStats{
		State: m.State, Leader: m.Leader, Term: m.Term, LastIndex: m.LastIndex,
		CommitIndex: m.CommitIndex, AppliedIndex: m.AppliedIndex, LastContact: m.LastContact,
		Alive: m.Alive, Expired: m.Expired, Voters: m.Voters, Clients: m.Clients, Names: m.Names,
		Client: m.Client, Following: m.Following,
		Elections: m.Elections, LeaderChanges: m.LeaderChanges, HeartbeatFailures: m.HeartbeatFailures,
		Writes: m.Writes, Batches: m.Batches,
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

// reasonOf classifies a failure's error.
func reasonOf(err error) tally.Reason {
	switch {
	case errors.Is(err, ErrNoReceivers):
		return tally.NoReceivers
	case errors.Is(err, ErrNodeLost):
		return tally.NodeLost
	case errors.Is(err, ErrEncode):
		return tally.Encode
	case errors.Is(err, ErrTooLarge):
		return tally.TooLarge
	case errors.Is(err, ErrWrongType), errors.Is(err, actor.ErrRejected):
		return tally.WrongType
	case errors.Is(err, ErrGone), errors.Is(err, actor.ErrNotFound), errors.Is(err, actor.ErrStopped):
		return tally.Gone
	case errors.Is(err, ErrClosed):
		return tally.Closed
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return tally.Timeout
	case errors.Is(err, context.Canceled):
		return tally.Canceled
	}
	return tally.Other
}

// stats are a node's counters: package tally's, and broadcast's.
type stats struct {
	bcast gossip.Counters
	tally.Tally
	// localGone counts values this node's receivers that were gone turned
	// away (each went to another receiver, or waited).
	localGone atomic.Uint64
}

// failed counts n values of name that failed with err; wasSent says
// whether they had been handed to a receiver (and so counted in flight).
func (s *stats) failed(name string, wasSent bool, err error, n int) {
	s.Failed(name, wasSent, reasonOf(err), n)
}

// DefaultSweepInterval is how often a node looks for names and peers gone
// quiet, to forget their counters and routers.
const DefaultSweepInterval = time.Minute

// sweep forgets the routers, and then the counters, of names gone quiet
// (tally.ForgetAfter sweeps in a row), and the counters of peers that are
// no longer live members: a program that uses a name per request or per
// client does not grow them without bound. It runs on one goroutine
// (sweepLoop).
func (n *Node) sweep() {
	n.routers.Range(func(k, v any) bool {
		r := v.(*router)
		// Dead only if still unused: an acquire that comes after it
		// makes a new router.
		if r.quiet.Idle(r.uses.Load(), r.users.Held()) && r.users.Forget() {
			n.routers.CompareAndDelete(k, r)
			n.stats.Release(r.stats)
		}
		return true
	})
	n.stats.Sweep(n.isLiveMember)
	// The wire counters of nodes that are no longer live members.
	activity := make(map[string]uint64)
	for node, w := range n.ep.WireStats() {
		activity[node] = w.SentFrames + w.ReceivedFrames + w.StreamResets
	}
	for _, node := range n.wireQuiet.Sweep(activity, n.isLiveMember) {
		n.ep.ForgetWireStats(node)
	}
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

func countersOf(c tally.Snapshot) Counters {
	return Counters{Sent: c.Sent, Delivered: c.Delivered, Failed: c.Failed, Dropped: c.Dropped, Received: c.Received, FailedBy: c.FailedBy}
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
	t := s.Total()
	out := Stats{
		Sent: t.Sent, Delivered: t.Delivered, Failed: t.Failed, Dropped: t.Dropped, Received: t.Received,
		InFlight:           uint64(max(s.InFlight(), 0)),
		FailedBy:           t.FailedBy,
		Names:              make(map[string]Counters),
		Peers:              make(map[string]Counters),
		AcceptLatency:      histogramOf(s.AcceptLatency()),
		DeadLetters:        n.sys.DeadLetters(),
		FailuresUnreported: n.failures.Unreported(),

		Broadcast: bcastSnapshot(&s.bcast),
		Registry:  registryStats(n.reg.Metrics()),
		Wire:      make(map[string]WireStats),
	}
	for node, w := range n.ep.WireStats() {
		out.Wire[node] = WireStats(w)
	}
	for name, c := range s.Names() {
		out.Names[name] = countersOf(c)
	}
	for peer, c := range s.Peers() {
		out.Peers[peer] = countersOf(c)
	}
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
