package channel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
//
// The timeout is armed by the first wait: a runtime timer starts only when
// someone waits on Done (or a router waits to hand the value over) while
// the outcome is still pending, and Err looks at the deadline itself. A
// handle whose outcome comes before anyone waits — most, when handles are
// pipelined — never costs a timer.
type Message struct {
	v        any
	done     chan struct{}
	once     sync.Once
	err      error
	deadline time.Time     // zero without a timeout
	timeout  time.Duration // for the timeout's error
	timedOut bool          // set before done closes, when the timeout ended it
	armed    atomic.Bool   // the timer started, or m ended: Done need not look

	mu     sync.Mutex
	timer  *time.Timer // fires the timeout once armed; nil before, or without one
	ended  bool
	afters map[*func()]struct{} // routeCtx.AfterFunc's, run when m ends
}

// WithMessage returns a handle for v that reports, within timeout, whether
// a receiver's buffer accepted v. A timeout ≤ 0 means no timeout.
func WithMessage(v any, timeout time.Duration) *Message {
	m := &Message{v: v, done: make(chan struct{})}
	if timeout > 0 {
		m.deadline, m.timeout = time.Now().Add(timeout), timeout
	} else {
		m.armed.Store(true) // nothing to arm
	}
	return m
}

// arm starts m's timeout timer, unless m has ended or it runs already;
// past the deadline, it ends m at once.
func (m *Message) arm() {
	if m.armed.Load() {
		return
	}
	m.mu.Lock()
	if m.ended || m.timer != nil {
		m.mu.Unlock()
		return
	}
	d := time.Until(m.deadline)
	if d > 0 {
		m.timer = time.AfterFunc(d, m.finishTimeout)
		m.armed.Store(true)
	}
	m.mu.Unlock()
	if d <= 0 {
		m.finishTimeout()
	}
}

// expiredIfPending ends m with its timeout if it is still pending and its
// deadline has passed.
func (m *Message) expiredIfPending() {
	if m.deadline.IsZero() {
		return
	}
	select {
	case <-m.done:
	default:
		if !time.Now().Before(m.deadline) {
			m.finishTimeout()
		}
	}
}

// routeCtx is the context that bounds the routing of m: done once m's
// outcome is known, which its timeout includes. It is m itself, so a
// handle costs no context of its own (a single-pointer struct in an
// interface does not allocate).
type routeCtx struct{ m *Message }

func (c routeCtx) Deadline() (time.Time, bool) { return c.m.deadline, !c.m.deadline.IsZero() }
func (c routeCtx) Done() <-chan struct{}       { return c.m.Done() }
func (c routeCtx) Value(any) any               { return nil }

// AfterFunc runs f in its own goroutine once m has ended. With it,
// routeCtx is what the context package calls an afterFuncer: a context
// derived from it (the router's retry slices) needs no goroutine of its
// own to watch it.
func (c routeCtx) AfterFunc(f func()) (stop func() bool) {
	m := c.m
	m.arm()
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
	c.m.expiredIfPending()
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
func (m *Message) Done() <-chan struct{} {
	m.arm()
	return m.done
}

// Err returns nil once a receiver's buffer accepted the value, the reason it
// was not (ErrTimeout, ErrNoReceivers, ErrNodeLost, ErrEncode, ErrTooLarge,
// ErrClosed) once Done is closed, and ErrPending before that.
func (m *Message) Err() error {
	m.expiredIfPending()
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
func (m *Message) finishTimeout() {
	m.end(fmt.Errorf("%w after %v: %w", ErrTimeout, m.timeout, context.DeadlineExceeded), true)
}

func (m *Message) end(err error, timedOut bool) {
	m.once.Do(func() {
		m.mu.Lock()
		timer, afters := m.timer, m.afters
		m.ended, m.afters = true, nil
		m.armed.Store(true)
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
