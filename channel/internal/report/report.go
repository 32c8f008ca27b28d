package report

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/fifo"
)

// Reporter hands each failure of type T to a handler on a goroutine of
// its own. Make it with New.
type Reporter[T any] struct {
	h     func(T)
	limit int
	log   *zap.Logger

	mu       sync.Mutex
	q        fifo.Queue[T]
	stopping bool
	lastWarn time.Time

	unreported atomic.Uint64
	wake       chan struct{} // capacity 1
	done       chan struct{} // closed when run returns
}

// New returns a Reporter that calls h (none if nil) with each failure,
// queueing at most limit (at least 1) of them; log takes its warnings.
func New[T any](h func(T), limit int, log *zap.Logger) *Reporter[T] {
	return &Reporter[T]{h: h, limit: max(limit, 1), log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Start starts the reporter's goroutine, if it has a handler.
func (r *Reporter[T]) Start() {
	if r.h == nil {
		close(r.done)
		return
	}
	go r.run()
}

// Report queues f for the handler; it never blocks. A failure past the
// queue's limit, or after Stop, is counted in Unreported instead.
func (r *Reporter[T]) Report(f T) {
	if r.h == nil {
		return
	}
	r.mu.Lock()
	if r.q.Len() >= r.limit || r.stopping {
		r.unreported.Add(1)
		warn := time.Since(r.lastWarn) >= time.Second
		if warn {
			r.lastWarn = time.Now()
		}
		r.mu.Unlock()
		if warn {
			r.log.Warn("failure handler falling behind: failures not reported",
				zap.Uint64("unreported", r.unreported.Load()))
		}
		return
	}
	r.q.Push(f)
	r.mu.Unlock()
	r.signal()
}

// Unreported returns how many failures the handler was not told of.
func (r *Reporter[T]) Unreported() uint64 { return r.unreported.Load() }

func (r *Reporter[T]) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Reporter[T]) run() {
	defer close(r.done)
	for {
		// One at a time: what waits stays in the queue, and counts
		// against its limit.
		r.mu.Lock()
		f, ok := r.q.Pop()
		stopping := r.stopping
		r.mu.Unlock()
		switch {
		case ok:
			r.call(f)
		case stopping:
			return
		default:
			<-r.wake
		}
	}
}

// call runs the handler; a panic in it is logged, not the goroutine's end.
func (r *Reporter[T]) call(f T) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("failure handler panicked", zap.Any("panic", p))
		}
	}()
	r.h(f)
}

// Stop reports what is queued and returns once the handler returned for
// the last of it, or ctx ended (a handler that blocks is then left to
// finish on its own). Failures reported after Stop are unreported.
func (r *Reporter[T]) Stop(ctx context.Context) {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	r.signal()
	select {
	case <-r.done:
	case <-ctx.Done():
		r.log.Warn("closing without waiting for the failure handler: it did not return in time")
	}
}
