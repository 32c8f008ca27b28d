package channel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/fifo"
)

// maxFailureQueue bounds the failures waiting for the failure handler.
const maxFailureQueue = 4096

// failure is one failed value for the failure handler; a dead letter
// names its target actor instead of a name (resolved when reported).
type failure struct {
	name  string
	value any
	err   error
	to    *actor.PID
}

// failureReporter tells the failure handler (WithFailureHandler) of each
// failure on a goroutine of its own, so that the value path never waits
// for it: failures queue (up to maxFailureQueue; past that they are
// counted in Stats.FailuresUnreported and logged).
type failureReporter struct {
	h    func(name string, value any, err error)
	log  *zap.Logger
	name func(actor.PID) string // a receiver's name, for dead letters

	mu       sync.Mutex
	q        fifo.Queue[failure]
	stopping bool
	lastWarn time.Time

	unreported atomic.Uint64
	wake       chan struct{} // capacity 1
	done       chan struct{} // closed when run returns
}

func newFailureReporter(h func(string, any, error), log *zap.Logger) *failureReporter {
	return &failureReporter{h: h, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// start runs the reporter, if there is a handler, until stop.
func (f *failureReporter) start(name func(actor.PID) string) {
	f.name = name
	if f.h == nil {
		close(f.done)
		return
	}
	go f.run()
}

// report queues a failure; it never blocks.
func (f *failureReporter) report(fl failure) {
	if f.h == nil {
		return
	}
	f.mu.Lock()
	if f.q.Len() >= maxFailureQueue || f.stopping {
		f.unreported.Add(1)
		warn := time.Since(f.lastWarn) >= time.Second
		if warn {
			f.lastWarn = time.Now()
		}
		f.mu.Unlock()
		if warn {
			f.log.Warn("failure handler falling behind: failures not reported",
				zap.Uint64("unreported", f.unreported.Load()))
		}
		return
	}
	f.q.Push(fl)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// values reports each of vals, bare values that failed with err.
func (f *failureReporter) values(name string, vals []any, err error) {
	for _, v := range vals {
		f.report(failure{name: name, value: v, err: err})
	}
}

func (f *failureReporter) deadLetter(dl actor.DeadLetter) {
	to := dl.To
	f.report(failure{value: dl.Message, to: &to,
		err: fmt.Errorf("%w: a dead letter to %v: %w", ErrGone, dl.To, dl.Reason)})
}

func (f *failureReporter) run() {
	defer close(f.done)
	for {
		// One at a time: what waits stays in the queue, and counts
		// against its bound.
		f.mu.Lock()
		fl, ok := f.q.Pop()
		stopping := f.stopping
		f.mu.Unlock()
		switch {
		case ok:
			if fl.to != nil {
				fl.name = f.name(*fl.to)
			}
			f.call(fl)
		case stopping:
			return
		default:
			<-f.wake
		}
	}
}

// call runs the handler; a panic in it is logged, not the node's end.
func (f *failureReporter) call(fl failure) {
	defer func() {
		if r := recover(); r != nil {
			f.log.Error("failure handler panicked", zap.Any("panic", r), zap.String("name", fl.name))
		}
	}()
	f.h(fl.name, fl.value, fl.err)
}

// stop reports what is queued and returns once the handler returned for
// the last of it, or ctx ended (a handler that blocks is then left to
// finish on its own); failures after stop are counted as unreported.
func (f *failureReporter) stop(ctx context.Context) {
	f.mu.Lock()
	f.stopping = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		f.log.Warn("closing without waiting for the failure handler: it did not return in time")
	}
}

// receiverName returns the name of this node's receiver with actor pid,
// or "".
func (n *Node) receiverName(pid actor.PID) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for r := range n.receivers {
		if r.pid == pid {
			return r.name
		}
	}
	return ""
}
