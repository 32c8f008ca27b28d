package tally

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/internal/hist"
)

// Reason is why a value failed, as Snapshot.FailedBy tells them apart.
type Reason uint8

// The reasons, in the order of their names.
const (
	Timeout Reason = iota
	Canceled
	NoReceivers
	NodeLost
	Encode
	TooLarge
	WrongType
	Gone
	Closed
	Other
	numReasons
)

var reasonNames = [numReasons]string{
	"timeout", "canceled", "no_receivers", "node_lost", "encode", "too_large", "wrong_type", "gone", "closed", "other",
}

// String returns r's name in FailedBy: "timeout", "no_receivers"...
func (r Reason) String() string {
	if r >= numReasons {
		return reasonNames[Other]
	}
	return reasonNames[r]
}

// Snapshot is a copy of one Counters.
type Snapshot struct {
	Sent, Delivered, Failed, Dropped, Received uint64
	// FailedBy counts Failed by Reason's name; nil when nothing failed.
	FailedBy map[string]uint64
}

// Counters are the live, lock-free counters of one name, one peer, or the
// node. The send pump, the outcome callbacks and the receivers update
// sent, delivered and received from different goroutines, usually on
// different cores: each sits on a cache line of its own, so that they do
// not take the line from each other.
type Counters struct {
	sent            atomic.Uint64
	_               [56]byte
	delivered       atomic.Uint64
	_               [56]byte
	received        atomic.Uint64
	_               [56]byte
	failed, dropped atomic.Uint64
	failedBy        [numReasons]atomic.Uint64

	// holders counts the routers and receivers that keep a pointer to
	// these counters: they are never forgotten while held. (A count made
	// through the map, not held, by a goroutine that looked them up just
	// before they were forgotten is lost with them: they had been quiet
	// for ForgetAfter sweeps.)
	holders Holders
	quiet   Quiet // the sweeper's own
}

// Snapshot returns a copy of c.
func (c *Counters) Snapshot() Snapshot {
	out := Snapshot{
		Sent: c.sent.Load(), Delivered: c.delivered.Load(), Failed: c.failed.Load(),
		Dropped: c.dropped.Load(), Received: c.received.Load(),
	}
	if out.Failed > 0 {
		out.FailedBy = c.FailedBy()
	}
	return out
}

// FailedBy returns the failures by Reason's name (an empty map if none).
func (c *Counters) FailedBy() map[string]uint64 {
	m := make(map[string]uint64)
	for r := range numReasons {
		if v := c.failedBy[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// activity sums every count: unchanged between two sweeps means quiet.
func (c *Counters) activity() uint64 {
	return c.sent.Load() + c.delivered.Load() + c.received.Load() + c.failed.Load() + c.dropped.Load()
}

// Tally is a node's counters: its total, per name and per peer, the
// values in flight and the acceptance latency. The zero Tally is ready to
// use; it must not be copied.
type Tally struct {
	total    Counters
	inFlight atomic.Int64
	_        [56]byte
	names    sync.Map // string → *Counters
	peers    sync.Map // string → *Counters
	accept   hist.Histogram
}

// Hold returns the counters of name for a router or receiver to keep
// (Release gives them back): held counters are never forgotten.
func (t *Tally) Hold(name string) *Counters {
	for {
		c := counterFor(&t.names, name)
		if c.holders.Acquire() {
			return c
		}
		t.names.CompareAndDelete(name, c) // forgotten: make way for new ones
	}
}

// Release gives back counters Hold returned.
func (t *Tally) Release(c *Counters) { c.holders.Release() }

func counterFor(m *sync.Map, key string) *Counters {
	for {
		v, ok := m.Load(key)
		if !ok {
			v, _ = m.LoadOrStore(key, &Counters{})
		}
		c := v.(*Counters)
		if !c.holders.Forgotten() {
			return c
		}
		m.CompareAndDelete(key, c) // forgotten: make way for new ones
	}
}

// Sent counts n values of the name whose counters are name handed to a
// receiver on peer: they are in flight until Delivered, Failed or
// Refused.
func (t *Tally) Sent(name *Counters, peer string, n int) {
	if n == 0 {
		return
	}
	t.total.sent.Add(uint64(n))
	t.inFlight.Add(int64(n))
	name.sent.Add(uint64(n))
	counterFor(&t.peers, peer).sent.Add(uint64(n))
}

// Delivered counts n values confirmed accepted.
func (t *Tally) Delivered(name *Counters, n int) {
	t.total.delivered.Add(uint64(n))
	t.inFlight.Add(-int64(n))
	name.delivered.Add(uint64(n))
}

// Confirmed counts one value confirmed accepted at now whose sender
// waits for it since start (zero: not timed).
func (t *Tally) Confirmed(name *Counters, start, now time.Time) {
	t.Delivered(name, 1)
	if !start.IsZero() {
		t.accept.Observe(now.Sub(start))
	}
}

// Refused takes n values out of flight that a receiver refused: they are
// routed again, and counted again when sent.
func (t *Tally) Refused(n int) { t.inFlight.Add(-int64(n)) }

// Failed counts n values of name that failed for r; wasSent says whether
// they had been Sent (and so counted in flight).
func (t *Tally) Failed(name string, wasSent bool, r Reason, n int) {
	if r >= numReasons {
		r = Other
	}
	t.total.failed.Add(uint64(n))
	t.total.failedBy[r].Add(uint64(n))
	if wasSent {
		t.inFlight.Add(-int64(n))
	}
	c := counterFor(&t.names, name)
	c.failed.Add(uint64(n))
	c.failedBy[r].Add(uint64(n))
}

// Dropped counts a value of name a receiver accepted but could not hand
// to its user.
func (t *Tally) Dropped(name string) {
	t.total.dropped.Add(1)
	counterFor(&t.names, name).dropped.Add(1)
}

// Received counts a value handed to the user of a receiver of the name
// whose counters are name.
func (t *Tally) Received(name *Counters) {
	t.total.received.Add(1)
	name.received.Add(1)
}

// Total returns the node's counters.
func (t *Tally) Total() Snapshot {
	s := t.total.Snapshot()
	s.FailedBy = t.total.FailedBy()
	return s
}

// InFlight returns the values Sent and not yet Delivered, Failed or
// Refused. It may be briefly negative: an outcome can be counted before
// its send is.
func (t *Tally) InFlight() int64 { return t.inFlight.Load() }

// AcceptLatency returns the distribution of Confirmed's latencies.
func (t *Tally) AcceptLatency() hist.Snapshot { return t.accept.Snapshot() }

// Names returns a copy of every name's counters.
func (t *Tally) Names() map[string]Snapshot { return snapshots(&t.names) }

// Peers returns a copy of every peer's counters.
func (t *Tally) Peers() map[string]Snapshot { return snapshots(&t.peers) }

func snapshots(m *sync.Map) map[string]Snapshot {
	out := make(map[string]Snapshot)
	m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*Counters).Snapshot()
		return true
	})
	return out
}

// Sweep forgets the counters of names that no one holds and that have
// been quiet for ForgetAfter sweeps, and those of peers that have been
// quiet as long and that live is false for. One goroutine at a time.
func (t *Tally) Sweep(live func(peer string) bool) {
	sweep(&t.names, func(string) bool { return false })
	sweep(&t.peers, live)
}

// sweep forgets the counters in m that no one holds, that keep is false
// for, and that have not changed for ForgetAfter sweeps.
func sweep(m *sync.Map, keep func(key string) bool) {
	m.Range(func(k, v any) bool {
		c := v.(*Counters)
		if c.quiet.Idle(c.activity(), c.holders.Held() || keep(k.(string))) && c.holders.Forget() {
			m.CompareAndDelete(k, c)
		}
		return true
	})
}

// ForgetAfter is how many sweeps in a row something must have been quiet,
// and not held, before it is forgotten.
const ForgetAfter = 2

// forgotten is the count of Holders once forgotten: below any count, so
// that no one takes them up again.
const forgotten = math.MinInt32

// Holders counts who holds something a sweeper may forget; once forgotten
// it can be held no more. The zero Holders is held by no one.
type Holders struct{ n atomic.Int32 }

// Acquire counts a holder, unless forgotten: then it reports false.
func (h *Holders) Acquire() bool {
	for {
		u := h.n.Load()
		if u < 0 {
			return false
		}
		if h.n.CompareAndSwap(u, u+1) {
			return true
		}
	}
}

// Release ends a hold begun by Acquire.
func (h *Holders) Release() { h.n.Add(-1) }

// Held reports whether anyone holds it now.
func (h *Holders) Held() bool { return h.n.Load() > 0 }

// Forget marks it forgotten if no one holds it, and reports whether it
// did: Acquire fails from then on.
func (h *Holders) Forget() bool { return h.n.CompareAndSwap(0, forgotten) }

// Forgotten reports whether Forget marked it.
func (h *Holders) Forgotten() bool { return h.n.Load() < 0 }

// Quiet is a sweeper's note of how long something has been quiet. The
// zero Quiet has seen no activity yet.
type Quiet struct {
	seen  uint64
	sweep int
}

// Idle notes a sweep that saw activity (a count that grows with use) and
// whether the thing is busy (held, or to be kept). It reports true once
// ForgetAfter sweeps in a row saw the same activity and never busy.
func (q *Quiet) Idle(activity uint64, busy bool) bool {
	if busy || activity != q.seen {
		q.seen, q.sweep = activity, 0
		return false
	}
	q.sweep++
	return q.sweep >= ForgetAfter
}

// QuietSet tracks the quiet of things the caller forgets by key (a
// peer's wire counters, say). The zero QuietSet is ready to use.
type QuietSet struct{ m map[string]Quiet }

// Sweep notes the activity of every key, and returns the keys that keep
// is false for and that have been quiet for ForgetAfter sweeps: the
// caller forgets them (they are forgotten here). Keys absent from
// activity are dropped.
func (s *QuietSet) Sweep(activity map[string]uint64, keep func(key string) bool) (forget []string) {
	if s.m == nil {
		s.m = make(map[string]Quiet)
	}
	for k, a := range activity {
		q := s.m[k]
		if q.Idle(a, keep(k)) {
			forget = append(forget, k)
			delete(s.m, k)
			continue
		}
		s.m[k] = q
	}
	for k := range s.m {
		if _, ok := activity[k]; !ok {
			delete(s.m, k)
		}
	}
	return forget
}
