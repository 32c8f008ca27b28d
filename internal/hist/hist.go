// Package hist is a histogram of durations with fixed buckets, safe for
// concurrent use without locks: an observation is two atomic adds.
package hist

import (
	"sync/atomic"
	"time"
)

// Bounds are the buckets' upper bounds, inclusive, from 50 µs to 10 s: a
// round trip on loopback to a Raft commit on a slow disk.
var Bounds = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

const buckets = 17 // len(Bounds)

// Histogram counts durations by bucket. The zero value is ready to use.
type Histogram struct {
	counts [buckets + 1]atomic.Uint64 // the last: above every bound
	sum    atomic.Int64               // nanoseconds
}

// Observe counts d.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < buckets && d > Bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot is a histogram's counts at one time.
type Snapshot struct {
	// Counts[i] counts the durations at most Bounds[i] and above
	// Bounds[i-1]; the last, one past Bounds, those above every bound.
	Counts [buckets + 1]uint64
	Count  uint64
	Sum    time.Duration
}

// Snapshot returns h's counts. Observations made meanwhile may be in
// Count and not yet in Sum, or the other way round.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}
