package channel

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Message wraps a value with a confirmation handle. Write the *Message into
// a send channel instead of the bare value; Done closes when the outcome is
// known, and Err tells it.
//
//	m := channel.WithMessage(order, time.Minute)
//	select {
//	case orders <- m:
//	case <-m.Done(): // gave up before the channel took it
//	}
//	<-m.Done()
//	if err := m.Err(); err != nil { /* not confirmed */ }
type Message struct {
	v        any
	done     chan struct{}
	once     sync.Once
	err      error
	deadline time.Time // zero without a timeout
	timedOut bool      // set before done closes, when the timeout ended it

	mu     sync.Mutex
	timer  *time.Timer // fires the timeout; nil without one
	ended  bool
	afters map[*func()]struct{} // routeCtx.AfterFunc's, run when m ends
}

// WithMessage returns a handle for v that reports, within timeout, whether
// a receiver's buffer accepted v. A timeout ≤ 0 means no timeout.
func WithMessage(v any, timeout time.Duration) *Message {
	m := &Message{v: v, done: make(chan struct{})}
	if timeout > 0 {
		m.deadline = time.Now().Add(timeout)
		m.mu.Lock()
		m.timer = time.AfterFunc(timeout, func() { m.finishTimeout(timeout) })
		m.mu.Unlock()
	}
	return m
}

// routeCtx is the context that bounds the routing of m: done once m's
// outcome is known, which its timeout includes. It is m itself, so a
// handle costs no context of its own (a single-pointer struct in an
// interface does not allocate).
type routeCtx struct{ m *Message }

func (c routeCtx) Deadline() (time.Time, bool) { return c.m.deadline, !c.m.deadline.IsZero() }
func (c routeCtx) Done() <-chan struct{}       { return c.m.done }
func (c routeCtx) Value(any) any               { return nil }

// AfterFunc runs f in its own goroutine once m has ended. With it,
// routeCtx is what the context package calls an afterFuncer: a context
// derived from it (the router's retry slices) needs no goroutine of its
// own to watch it.
func (c routeCtx) AfterFunc(f func()) (stop func() bool) {
	m := c.m
	m.mu.Lock()
	if m.ended {
		m.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	key := &f
	if m.afters == nil {
		m.afters = make(map[*func()]struct{})
	}
	m.afters[key] = struct{}{}
	m.mu.Unlock()
	return func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		_, waiting := m.afters[key]
		delete(m.afters, key)
		return waiting
	}
}

func (c routeCtx) Err() error {
	select {
	case <-c.m.done:
		if c.m.timedOut {
			return context.DeadlineExceeded
		}
		return context.Canceled
	default:
		return nil
	}
}

// Value returns the wrapped value.
func (m *Message) Value() any { return m.v }

// Done is closed once the outcome is known: accepted, failed, or timed out.
func (m *Message) Done() <-chan struct{} { return m.done }

// Err returns nil once a receiver's buffer accepted the value, the reason it
// was not (ErrTimeout, ErrNoReceivers, ErrNodeLost, ErrEncode, ErrTooLarge,
// ErrClosed) once Done is closed, and ErrPending before that.
func (m *Message) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return ErrPending
	}
}

// finish records the outcome once; later outcomes are ignored.
func (m *Message) finish(err error) { m.end(err, false) }

// finishTimeout ends m with ErrTimeout, unless it has ended already.
func (m *Message) finishTimeout(timeout time.Duration) {
	m.end(fmt.Errorf("%w after %v: %w", ErrTimeout, timeout, context.DeadlineExceeded), true)
}

func (m *Message) end(err error, timedOut bool) {
	m.once.Do(func() {
		m.mu.Lock()
		timer, afters := m.timer, m.afters
		m.ended, m.afters = true, nil
		m.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		m.err, m.timedOut = err, timedOut
		close(m.done)
		for f := range afters {
			go (*f)()
		}
	})
}
