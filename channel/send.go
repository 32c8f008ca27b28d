package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/fifo"
	"github.com/dchan-io/dchan/remoting"
)

// SendContext delivers v to one receiver of name and returns once a
// receiver's buffer accepted it, or with ctx's error (the value may then
// still arrive, at most once), or with the reason it failed.
func (n *Node) SendContext(ctx context.Context, name string, v any) error {
	if err := validName(name); err != nil {
		return err
	}
	if n.isClosed() {
		return ErrClosed
	}
	r := n.acquireRouter(name)
	defer r.release()
	start := time.Now()
	for {
		// The outcome is counted when it comes, also after ctx ended and
		// SendContext returned.
		res := make(chan error, 1)
		counted := func(err error) {
			switch {
			case err == nil:
				n.stats.Confirmed(r.stats, start, time.Now())
			case refused(err):
				n.stats.Refused(1)
			default:
				n.stats.failed(name, true, err, 1)
			}
			res <- err
		}
		if err := r.route(ctx, &r.turn, v, counted); err != nil {
			n.stats.failed(name, false, err, 1)
			return wrongType(err)
		}
		select {
		case err := <-res:
			if err == nil {
				return nil
			}
			if refused(err) {
				continue // never accepted: another receiver may take it
			}
			return fmt.Errorf("channel: send to %q: %w", name, wrongType(err))
		case <-ctx.Done():
			return fmt.Errorf("channel: send to %q: %w", name, ctx.Err())
		}
	}
}

// queueSink routes the values of one Send or SendOf channel: each to one
// receiver of the name, through the name's router, with its own turn of
// the round-robin.
type queueSink struct {
	n      *Node
	r      *router
	retryM sync.Mutex
	retryQ fifo.Queue[*Message] // values refused by a closing receiver, to route again
	wake   func()               // wakes the pump for a value to route again
	flight sync.WaitGroup       // values handed to a receiver, outcome pending

	turn    atomic.Uint64      // this channel's round-robin among the receivers
	plain   *remoting.Outcomes // reports to plainOutcomes
	handles *remoting.Outcomes // reports to handleOutcomes; sends each handle's value
}

// Send returns a channel whose values each go to one receiver of name,
// anywhere in the cluster, at most once. With no receiver, or none with room,
// writes block once buf values wait in the channel (buf is its buffer).
// The send channel's pump takes what waits in batches of up to buf values
// (at least 1, at most 128) and routes each batch together; while no
// receiver has room it holds one batch besides what waits — with buf 0,
// the one value it routes, as an unbuffered channel would. Values from one
// send channel that reach the same receiver arrive in send order.
// Write a *Message (WithMessage) instead of a bare value to learn whether it
// was accepted.
//
// Close with the returned CloseFunc, after the last write: the values
// already written are routed, then the pump stops. Do not write after it.
func (n *Node) Send(name string, buf int) (chan<- any, CloseFunc, error) {
	return startSender[any](n, name, buf, nil)
}

// SendOf is Send for values of type T.
func SendOf[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	return startSender[T](n, name, buf, nil)
}

// SendMessageOf is SendOf with a confirmation handle on every value: write
// WithMessageOf(v, timeout) for each T v, then wait on its Done and read
// its Err as a Message's. A T of another type than the name's receivers
// take fails its handle with ErrWrongType (ReceiveOf).
func SendMessageOf[T any](n *Node, name string, buf int) (chan<- *MessageOf[T], CloseFunc, error) {
	return startSender(n, name, buf, func(m *MessageOf[T]) any {
		if m == nil {
			return (*Message)(nil)
		}
		return &m.Message
	})
}

// startSender starts a send channel of Ts; conv turns each T into a value
// or *Message to route (nil: the T itself).
func startSender[T any](n *Node, name string, buf int, conv func(T) any) (chan<- T, CloseFunc, error) {
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	s := &queueSink{n: n, r: n.acquireRouter(name)}
	s.plain = remoting.NewOutcomes(s.plainOutcomes)
	s.handles = remoting.NewTrackedOutcomes(s.handleOutcomes, handleValue)
	p, err := startPump(n, buf, s, conv)
	if err != nil {
		s.r.release()
		return nil, nil, err
	}
	s.wake = p.Signal
	return p.In(), pumpCloseFunc(name, p), nil
}

// Route routes the values of a batch, in order: each stretch of handles
// (WithMessage) together (sendHandles), each stretch of bare values
// between them together (sendValues), and anything else (a nil *Message,
// a bare value routed again) alone.
func (s *queueSink) Route(vals []any) {
	for i := 0; i < len(vals); {
		j := i + 1
		switch {
		case isHandle(vals[i]):
			for j < len(vals) && isHandle(vals[j]) {
				j++
			}
			s.sendHandles(vals[i:j])
		case isMessage(vals[i]):
			s.send(vals[i].(*Message))
		default:
			for j < len(vals) && !isMessage(vals[j]) {
				j++
			}
			s.sendValues(vals[i:j])
		}
		i = j
	}
}

func isMessage(v any) bool { _, ok := v.(*Message); return ok }

// isHandle reports whether v is a handle made by WithMessage.
func isHandle(v any) bool {
	m, ok := v.(*Message)
	return ok && m != nil && m.handle
}

// handleValue is what goes to a receiver for a handle: its value.
func handleValue(v any) any { return v.(*Message).v }

// sendHandles routes a stretch of handles together, as sendValues routes
// bare values: one lookup and one turn of the round-robin for the lot,
// each receiver taking as many as it has room for, and their outcomes
// reported together (handleOutcomes), each frame's at once. The routing
// waits for a receiver no longer than the deadline of the first handle
// not yet handed; a handle whose deadline has passed when the routing of
// its run starts is not sent: the run ends before it, and its timeout
// reports it.
func (s *queueSink) sendHandles(ms []any) {
	for len(ms) > 0 {
		m := ms[0].(*Message)
		if err := m.Err(); err != ErrPending {
			s.expiredUnsent(err)
			ms = ms[1:]
			continue
		}
		k := unexpired(ms)
		ctx, cancel := s.n.ctx, context.CancelFunc(func() {})
		if !m.deadline.IsZero() {
			ctx, cancel = context.WithDeadline(s.n.ctx, m.deadline)
		}
		s.flight.Add(k)
		n, err := s.r.routeMany(ctx, &s.turn, ms[:k], s.handles)
		waitEnded := ctx.Err() != nil
		cancel()
		s.flight.Add(n - k)
		ms = ms[n:]
		if err == nil {
			continue // n == k: on to the handle that expired, if any
		}
		m = ms[0].(*Message)
		switch {
		case s.n.ctx.Err() != nil:
			for _, v := range ms {
				s.n.stats.failed(s.r.name, false, err, 1)
				v.(*Message).finish(err)
			}
			return
		case m.Err() != ErrPending:
			// Its deadline passed while it waited for a receiver: its
			// timeout has reported it.
			s.n.stats.failed(s.r.name, false, err, 1)
		case waitEnded:
			continue // the first handle's deadline, not this one's
		default:
			s.n.stats.failed(s.r.name, false, err, 1)
			m.finish(err) // the codec refused its value
		}
		ms = ms[1:]
	}
}

// expiredUnsent counts, as failed by its timeout, a handle the pump found
// ended with err before routing it: its timeout passed while it waited in
// the send channel. (A handle written again after another end is not
// counted.)
func (s *queueSink) expiredUnsent(err error) {
	if errors.Is(err, ErrTimeout) {
		s.n.stats.failed(s.r.name, false, err, 1)
	}
}

// unexpired returns how many of ms, from the first, are not past their
// deadlines now; the first is counted whatever its deadline (the caller
// has found it pending).
func unexpired(ms []any) int {
	now := time.Now()
	k := 1
	for k < len(ms) && !ms[k].(*Message).pastDeadlineAt(now) {
		k++
	}
	return k
}

// handleOutcomes reports the outcomes of handles sent together; it runs
// on a stream's goroutine or the pump's and must not block.
func (s *queueSink) handleOutcomes(ms []any, err error) {
	if err != nil {
		for _, v := range ms {
			s.outcome(v.(*Message), err)
		}
		return
	}
	now := time.Now() // one reading for the latencies and the deadlines
	for _, v := range ms {
		m := v.(*Message)
		s.n.stats.Confirmed(s.r.stats, m.start, now)
		m.accepted(now)
	}
	s.flight.Add(-len(ms))
}

// sendValues routes bare values written to the channel, without making a
// Message for any of them unless a refusal makes it wait to be routed
// again. A value that cannot be routed (the codec refuses it, the node
// closes) is counted as failed; nobody holds a handle to tell.
func (s *queueSink) sendValues(vals []any) {
	s.flight.Add(len(vals))
	for len(vals) > 0 {
		n, err := s.r.routeMany(s.n.ctx, &s.turn, vals, s.plain)
		vals = vals[n:]
		if err == nil {
			return
		}
		fail := 1 // vals[0]; the others are routed on their own merits
		if s.n.ctx.Err() != nil {
			fail = len(vals)
		}
		s.flight.Add(-fail)
		s.failValues(vals[:fail], false, err)
		vals = vals[fail:]
	}
}

// Settle waits for the outcomes of values in flight (their refusals may
// need routing again) and returns one to route again, if any.
func (s *queueSink) Settle() (any, bool) {
	done := make(chan struct{})
	go func() { s.flight.Wait(); close(done) }()
	select {
	case <-done:
	case <-s.n.ctx.Done():
		<-done // in-flight outcomes arrive promptly once the node stops
		return nil, false
	}
	return s.Retry()
}

// plainOutcomes reports the outcome of bare values; several at a time, as
// remoting.Outcomes reports them.
func (s *queueSink) plainOutcomes(vals []any, err error) {
	switch {
	case err == nil:
		s.n.stats.Delivered(s.r.stats, len(vals))
	case refused(err) && s.n.ctx.Err() == nil:
		for _, v := range vals {
			s.outcome(&Message{v: v}, err) // routed again, as a Message
		}
		return
	default:
		s.failValues(vals, true, err)
	}
	s.flight.Add(-len(vals))
}

// failValues counts bare values that failed with err, and reports them to
// the failure handler.
func (s *queueSink) failValues(vals []any, wasSent bool, err error) {
	s.n.stats.failed(s.r.name, wasSent, err, len(vals))
	s.n.reportValues(s.r.name, vals, fmt.Errorf("channel: send to %q: %w", s.r.name, wrongType(err)))
}

// Done ends the sink's use of its router, when its pump ends.
func (s *queueSink) Done() { s.r.release() }

func (s *queueSink) send(m *Message) {
	if m == nil {
		s.failValues([]any{nil}, false, errNilMessage)
		s.n.log.Warn("dropped a nil *Message written to a send channel", zap.String("name", s.r.name))
		return
	}
	if !m.handle {
		// A bare value routed again after a refusal: it has no handle,
		// so it goes like the others (a refusal makes a new Message).
		s.sendValues([]any{m.v})
		return
	}
	if err := m.Err(); err != ErrPending {
		s.expiredUnsent(err)
		return
	}
	ctx := routeCtx{m} // the handle's timeout bounds the routing
	s.flight.Add(1)
	err := s.r.route(ctx, &s.turn, m.v, func(err error) { s.outcome(m, err) })
	if err != nil {
		s.flight.Done()
		s.n.stats.failed(s.r.name, false, err, 1)
		if ctx.Err() != nil {
			return // the handle ended first: its timeout reported it
		}
		m.finish(err)
	}
}

// outcome runs once per routed value, possibly on a stream's goroutine: it
// must not block.
func (s *queueSink) outcome(m *Message, err error) {
	defer s.flight.Done()
	switch {
	case err == nil:
		if m.handle {
			now := time.Now() // one reading for the latency and the deadline
			s.n.stats.Confirmed(s.r.stats, m.start, now)
			m.accepted(now)
		} else {
			s.n.stats.Delivered(s.r.stats, 1)
		}
	case refused(err) && s.n.ctx.Err() == nil:
		// Never accepted: route it again (the pump picks it up).
		s.n.stats.Refused(1)
		s.retryM.Lock()
		s.retryQ.Push(m)
		s.retryM.Unlock()
		s.wake()
	default:
		if m.handle {
			s.n.stats.failed(s.r.name, true, err, 1)
			m.finish(fmt.Errorf("channel: send to %q: %w", s.r.name, wrongType(err)))
		} else {
			s.failValues([]any{m.v}, true, err)
		}
	}
}

func (s *queueSink) Retry() (any, bool) {
	s.retryM.Lock()
	defer s.retryM.Unlock()
	return s.retryQ.Pop()
}

func (s *queueSink) Fail(v any, err error) {
	m, ok := v.(*Message)
	switch {
	case ok && m == nil:
		s.failValues([]any{nil}, false, errNilMessage)
	case ok && m.handle:
		s.n.stats.failed(s.r.name, false, err, 1)
		m.finish(err)
	case ok:
		s.failValues([]any{m.v}, false, err)
	default:
		s.failValues([]any{v}, false, err)
	}
}
