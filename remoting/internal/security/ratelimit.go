package security

import "sync/atomic"

// logLimiter lets at most one log entry through per interval and counts
// the ones it held back, so that a peer hammering the node with refused
// connections costs one atomic load per attempt and floods no log. It is
// lock-free, allocation-free and driven by the caller's clock reading
// (Unix nanoseconds), which keeps it a pure, table-testable type.
type logLimiter struct {
	interval   int64         // nanoseconds between entries
	next       atomic.Int64  // earliest time of the next entry
	suppressed atomic.Uint64 // entries held back since the last one
}

// allow reports whether an entry at time now may be logged and, if so, how
// many entries were held back since the previous one.
func (l *logLimiter) allow(now int64) (ok bool, suppressed uint64) {
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+l.interval) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
