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
// A handle costs little until someone waits on it: its Done channel is
// made, and its timeout's runtime timer started, by the first wait (Done,
// or a router waiting to hand the value over) while the outcome is still
// pending; Err looks at the deadline itself, and an outcome that comes
// past the deadline is the timeout, as if the timer had run. A handle
// whose outcome comes before anyone waits — most, when handles are
// pipelined — never costs a channel or a timer.
type Message struct {
	v        any
	handle   bool          // made by WithMessage; false for a bare value routed again
	start    time.Time     // when WithMessage made it (Stats.AcceptLatency)
	deadline time.Time     // zero without a timeout
	timeout  time.Duration // for the timeout's error

	once     sync.Once
	err      error       // written before fin
	timedOut bool        // written before fin: the timeout ended it
	fin      atomic.Bool // the outcome is known

	mu     sync.Mutex
	done   chan struct{}        // made by the first wait; closedChan if that came after the end
	timer  *time.Timer          // fires the timeout once armed
	ended  bool                 // end has begun: Done needs no channel of its own
	afters map[*func()]struct{} // routeCtx.AfterFunc's, run when m ends
}

// closedChan is the Done channel of a handle first waited on after its end.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// WithMessage returns a handle for v that reports, within timeout, whether
// a receiver's buffer accepted v. A timeout ≤ 0 means no timeout.
func WithMessage(v any, timeout time.Duration) *Message {
	m := new(Message)
	m.init(v, timeout)
	return m
}

func (m *Message) init(v any, timeout time.Duration) {
	m.v, m.handle, m.start = v, true, time.Now()
	if timeout > 0 {
		m.deadline, m.timeout = m.start.Add(timeout), timeout
	}
}

// MessageOf is a Message whose value is a T: the handle SendMessageOf's
// channels take. Done and Err are its Message's.
type MessageOf[T any] struct {
	Message
}

// WithMessageOf is WithMessage for a T, for a SendMessageOf channel.
func WithMessageOf[T any](v T, timeout time.Duration) *MessageOf[T] {
	m := new(MessageOf[T])
	m.init(v, timeout)
	return m
}

// wait returns m's Done channel, making it if need be, and arms m's
// timeout: it starts its timer, or past the deadline ends m at once.
func (m *Message) wait() <-chan struct{} {
	m.mu.Lock()
	if m.done == nil {
		if m.ended {
			m.done = closedChan
		} else {
			m.done = make(chan struct{})
		}
	}
	done, late := m.done, false
	if !m.ended && m.timer == nil && !m.deadline.IsZero() {
		if d := time.Until(m.deadline); d > 0 {
			m.timer = time.AfterFunc(d, m.finishTimeout)
		} else {
			late = true
		}
	}
	m.mu.Unlock()
	if late {
		m.finishTimeout()
	}
	return done
}

// expiredIfPending ends m with its timeout if it is still pending and its
// deadline has passed.
func (m *Message) expiredIfPending() {
	if !m.fin.Load() && m.pastDeadline() {
		m.finishTimeout()
	}
}

// pastDeadline reports whether m has a timeout and its deadline has passed.
func (m *Message) pastDeadline() bool { return m.pastDeadlineAt(time.Now()) }

// pastDeadlineAt reports whether m has a timeout and now is past it.
func (m *Message) pastDeadlineAt(now time.Time) bool {
	return !m.deadline.IsZero() && !now.Before(m.deadline)
}

// accepted ends m as confirmed at now, or with its timeout if now is past
// its deadline: finish(nil) for a caller that has read the clock already.
func (m *Message) accepted(now time.Time) {
	if m.pastDeadlineAt(now) {
		m.finishTimeout()
		return
	}
	m.end(nil, false)
}

// routeCtx is the context that bounds the routing of m: done once m's
// outcome is known, which its timeout includes. It is m itself, so a
// handle costs no context of its own (a single-pointer struct in an
// interface does not allocate).
type routeCtx struct{ m *Message }

func (c routeCtx) Deadline() (time.Time, bool) { return c.m.deadline, !c.m.deadline.IsZero() }
func (c routeCtx) Done() <-chan struct{}       { return c.m.wait() }
func (c routeCtx) Value(any) any               { return nil }

// AfterFunc runs f in its own goroutine once m has ended. With it,
// routeCtx is what the context package calls an afterFuncer: a context
// derived from it (the router's retry slices) needs no goroutine of its
// own to watch it.
func (c routeCtx) AfterFunc(f func()) (stop func() bool) {
	m := c.m
	m.wait() // a context derived from c waits on m
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
	switch {
	case !c.m.settled():
		return nil
	case c.m.timedOut:
		return context.DeadlineExceeded
	default:
		return context.Canceled
	}
}

// Value returns the wrapped value.
func (m *Message) Value() any { return m.v }

// Done is closed once the outcome is known: accepted, failed, or timed out.
func (m *Message) Done() <-chan struct{} { return m.wait() }

// Err returns nil once a receiver's buffer accepted the value, the reason it
// was not (ErrTimeout, ErrNoReceivers, ErrNodeLost, ErrEncode, ErrTooLarge,
// ErrClosed) once Done is closed, and ErrPending before that.
func (m *Message) Err() error {
	m.expiredIfPending()
	if m.settled() {
		return m.err
	}
	return ErrPending
}

// settled reports whether m's outcome is known and its Done channel, if
// made, closed: once fin is set, end is running or has run, and once.Do
// returns only when it has (so Err is non-nil only once Done is closed).
func (m *Message) settled() bool {
	if !m.fin.Load() {
		return false
	}
	m.once.Do(func() {}) // waits for an end in progress; never runs
	return true
}

// finish records the outcome once; later outcomes are ignored.
// An outcome that comes past the deadline is the timeout, as if the timer
// had run (it starts only with the first wait).
func (m *Message) finish(err error) {
	if m.pastDeadline() {
		m.finishTimeout()
		return
	}
	m.end(err, false)
}

// finishTimeout ends m with ErrTimeout, unless it has ended already.
func (m *Message) finishTimeout() {
	m.end(fmt.Errorf("%w after %v: %w", ErrTimeout, m.timeout, context.DeadlineExceeded), true)
}

func (m *Message) end(err error, timedOut bool) {
	m.once.Do(func() {
		m.err, m.timedOut = err, timedOut
		m.fin.Store(true)
		m.mu.Lock()
		done, timer, afters := m.done, m.timer, m.afters
		m.ended, m.afters = true, nil
		m.mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		if done != nil {
			close(done)
		}
		for f := range afters {
			go (*f)()
		}
	})
}
