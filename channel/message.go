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
	v      any
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error

	mu        sync.Mutex
	stopTimer func() bool // cancels the timeout callback; nil without timeout
}

// WithMessage returns a handle for v that reports, within timeout, whether
// a receiver's buffer accepted v. A timeout ≤ 0 means no timeout.
func WithMessage(v any, timeout time.Duration) *Message {
	m := &Message{v: v, done: make(chan struct{})}
	if timeout > 0 {
		m.ctx, m.cancel = context.WithTimeout(context.Background(), timeout)
		m.mu.Lock()
		m.stopTimer = context.AfterFunc(m.ctx, func() {
			m.finish(fmt.Errorf("%w after %v: %w", ErrTimeout, timeout, context.DeadlineExceeded))
		})
		m.mu.Unlock()
	} else {
		m.ctx, m.cancel = context.WithCancel(context.Background())
	}
	return m
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
func (m *Message) finish(err error) {
	m.once.Do(func() {
		m.mu.Lock()
		stop := m.stopTimer
		m.mu.Unlock()
		if stop != nil {
			stop()
		}
		m.err = err
		close(m.done)
		m.cancel()
	})
}
