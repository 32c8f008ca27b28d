package gossip

import (
	"sync"
	"sync/atomic"
)

// tracker completes a publish once every first hop has taken the value (or
// failed to): with nil unless the value itself could not be sent.
type tracker struct {
	done    func(error)
	pending atomic.Int64
	mu      sync.Mutex
	err     error
}

// newTracker returns a tracker that calls done, or nil for none.
func newTracker(done func(error)) *tracker {
	if done == nil {
		return nil
	}
	t := &tracker{done: done}
	t.pending.Store(1) // the publisher's own share, resolved after queueing
	return t
}

func (t *tracker) add(n int) {
	if t != nil {
		t.pending.Add(int64(n))
	}
}

func (t *tracker) resolve(err error) { t.resolveN(1, err) }

func (t *tracker) resolveN(n int, err error) {
	if t == nil {
		return
	}
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
	}
	if t.pending.Add(-int64(n)) == 0 {
		t.mu.Lock()
		err := t.err
		t.mu.Unlock()
		t.done(err)
	}
}
