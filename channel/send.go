package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// retrySlice bounds how long a router blocks on one busy receiver before it
// looks again for one with free credit.
const retrySlice = 20 * time.Millisecond

// router picks, for each value, one receiver of a name.
//
// Policy: receivers are tried round-robin, each without waiting — a local
// receiver if its buffer has room, a remote one if its link has credit — and
// the first that takes the value wins. If none can take it now, the router
// waits on the next one in turn for up to retrySlice, then looks again; with
// no receiver at all it waits for one to register. There is no preference
// for local receivers beyond their being tried in turn like the others.
type router struct {
	n     *Node
	name  string
	stats *counters // the name's
	rr    atomic.Uint64
}

func newRouter(n *Node, name string) *router {
	return &router{n: n, name: name, stats: n.stats.name(name)}
}

// route hands v to one receiver; done reports the outcome (accepted or
// not). route returns an error (and done is not called) if v could not be
// handed to any receiver before ctx ended or cannot be encoded.
//
// lazy says nobody waits on v's outcome promptly (a bare value): a remote
// receiver may then report its acceptance up to remoting.AckDelay late,
// together with others, instead of with the frame v arrived in.
func (r *router) route(ctx context.Context, v any, done func(error), lazy bool) error {
	for {
		receivers := r.n.reg.Lookup(r.name)
		queue := 0
		for _, rc := range receivers {
			if rc.Mode == registry.Queue {
				queue++
			}
		}
		if queue == 0 {
			if err := r.waitForReceiver(ctx); err != nil {
				return err
			}
			continue
		}
		start := int(r.rr.Add(1))
		var first registry.Receiver
		found := false
		for i := range receivers {
			rc := receivers[(start+i)%len(receivers)]
			if rc.Mode != registry.Queue {
				continue
			}
			if !found {
				first, found = rc, true
			}
			err := r.try(rc, v, done, lazy)
			if err == nil {
				return nil
			}
			if !busy(err) && !refused(err) {
				return err // encode errors and the like fail the value
			}
		}
		// Everyone is busy: wait on one for a while, then look again.
		slice, cancel := context.WithTimeout(ctx, retrySlice)
		err := r.block(slice, first, v, done, lazy)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("channel: send to %q: %w", r.name, ctx.Err())
		case busy(err) || refused(err) || errors.Is(err, context.DeadlineExceeded):
			continue
		default:
			return err
		}
	}
}

// busy reports a receiver that cannot take a value right now.
func busy(err error) bool {
	return errors.Is(err, actor.ErrFull) || errors.Is(err, remoting.ErrNoCredit) ||
		errors.Is(err, remoting.ErrNodeLost) || errors.Is(err, remoting.ErrUnknownNode)
}

func (r *router) try(rc registry.Receiver, v any, done func(error), lazy bool) error {
	pid := rc.PID()
	if pid.Node == r.n.id {
		if err := r.n.sys.TrySendFrom(actor.PID{}, pid, v); err != nil {
			return err
		}
		r.n.stats.sent(r.stats, pid.Node)
		done(nil) // accepted into the local receiver's buffer
		return nil
	}
	try := r.n.ep.TrySendTracked
	if lazy {
		try = r.n.ep.TrySendTrackedLazy
	}
	if err := try(pid, actor.PID{}, v, done); err != nil {
		return err
	}
	r.n.stats.sent(r.stats, pid.Node)
	return nil
}

func (r *router) block(ctx context.Context, rc registry.Receiver, v any, done func(error), lazy bool) error {
	pid := rc.PID()
	if pid.Node == r.n.id {
		if err := r.n.sys.SendFrom(ctx, actor.PID{}, pid, v); err != nil {
			return err
		}
		r.n.stats.sent(r.stats, pid.Node)
		done(nil)
		return nil
	}
	send := r.n.ep.SendTracked
	if lazy {
		send = r.n.ep.SendTrackedLazy
	}
	if err := send(ctx, pid, actor.PID{}, v, done); err != nil {
		return err
	}
	r.n.stats.sent(r.stats, pid.Node)
	return nil
}

func (r *router) waitForReceiver(ctx context.Context) error {
	ch, stop := r.n.reg.Watch(r.name)
	defer stop()
	if len(r.n.reg.Lookup(r.name)) > 0 {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("channel: send to %q: %w: %w", r.name, ErrNoReceivers, ctx.Err())
		}
		return fmt.Errorf("channel: send to %q: %w", r.name, ctx.Err())
	case <-r.n.ctx.Done():
		return ErrClosed
	}
}

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
	r := newRouter(n, name)
	for {
		res := make(chan error, 1)
		if err := r.route(ctx, v, func(err error) { res <- err }, false); err != nil {
			n.stats.failed(name, false)
			return err
		}
		select {
		case err := <-res:
			if err == nil {
				n.stats.delivered(r.stats)
				return nil
			}
			if refused(err) {
				n.stats.inFlight.Add(-1)
				continue // never accepted: another receiver may take it
			}
			n.stats.failed(name, true)
			return fmt.Errorf("channel: send to %q: %w", name, err)
		case <-ctx.Done():
			return fmt.Errorf("channel: send to %q: %w", name, ctx.Err())
		}
	}
}

// sender is one Send: a pump from the user's Go channel to the router.
type sender struct {
	n      *Node
	r      *router
	in     chan any
	stop   chan struct{} // closed by close: flush and end
	ended  chan struct{} // closed when the pump has ended
	once   sync.Once
	retryM sync.Mutex
	retry  []*Message // values refused by a closing receiver, to route again
	wake   chan struct{}
	flight sync.WaitGroup // values handed to a receiver, outcome pending
}

// Send returns a channel whose values each go to one receiver of name,
// anywhere in the cluster, at most once. With no receiver, or none with room,
// writes block once buf values wait (buf is the channel's buffer). Values
// from one send channel that reach the same receiver arrive in send order.
// Write a *Message (WithMessage) instead of a bare value to learn whether it
// was accepted.
//
// Close with the returned CloseFunc, after the last write: the values
// already written are routed, then the pump stops. Do not write after it.
func (n *Node) Send(name string, buf int) (chan<- any, CloseFunc, error) {
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	s := &sender{
		n:     n,
		r:     newRouter(n, name),
		in:    make(chan any, buf),
		stop:  make(chan struct{}),
		ended: make(chan struct{}),
		wake:  make(chan struct{}, 1),
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, nil, ErrClosed
	}
	n.senders[s] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go s.pump()
	return s.in, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
		defer cancel()
		return s.close(ctx)
	}, nil
}

// pumpFastRun bounds how many values the pump takes in a row without
// looking at its stop, wake and node channels.
const pumpFastRun = 64

func (s *sender) pump() {
	defer s.n.wg.Done()
	defer close(s.ended)
	defer func() {
		s.n.mu.Lock()
		delete(s.n.senders, s)
		s.n.mu.Unlock()
	}()
	fast := 0
	for {
		if m := s.takeRetry(); m != nil {
			s.send(m)
			continue
		}
		// A value already waiting is taken without the four-way select,
		// which locks every channel it waits on; the full select still
		// runs at least every pumpFastRun values, so a stop or the node's
		// end is seen promptly.
		if fast < pumpFastRun {
			select {
			case v, ok := <-s.in:
				if !ok {
					s.finish()
					return
				}
				fast++
				s.sendValue(v)
				continue
			default:
			}
		}
		fast = 0
		select {
		case v, ok := <-s.in:
			if !ok {
				s.finish()
				return
			}
			s.sendValue(v)
		case <-s.wake:
		case <-s.stop:
			// Flush what was written before the close, then end.
			for {
				select {
				case v, ok := <-s.in:
					if !ok {
						s.finish()
						return
					}
					s.sendValue(v)
					continue
				default:
				}
				if m := s.takeRetry(); m != nil {
					s.send(m)
					continue
				}
				s.finish()
				return
			}
		case <-s.n.ctx.Done():
			s.failPending(ErrClosed)
			return
		}
	}
}

// finish waits for the outcomes of values in flight (their refusals may
// need routing again) and routes any that come back.
func (s *sender) finish() {
	for {
		done := make(chan struct{})
		go func() { s.flight.Wait(); close(done) }()
		select {
		case <-done:
		case <-s.n.ctx.Done():
			<-done // in-flight outcomes arrive promptly once the node stops
			s.failPending(ErrClosed)
			return
		}
		m := s.takeRetry()
		if m == nil {
			return
		}
		s.send(m)
	}
}

// sendValue routes a value written to the channel: a *Message with its
// handle; a bare value without one, and without making a Message for it
// unless a refusal makes it wait to be routed again.
func (s *sender) sendValue(v any) {
	if m, ok := v.(*Message); ok {
		s.send(m)
		return
	}
	s.flight.Add(1)
	if err := s.r.route(s.n.ctx, v, func(err error) { s.plainOutcome(v, err) }, true); err != nil {
		s.flight.Done()
		s.n.stats.failed(s.r.name, false)
	}
}

// plainOutcome is outcome for a bare value.
func (s *sender) plainOutcome(v any, err error) {
	if refused(err) && s.n.ctx.Err() == nil {
		s.outcome(&Message{v: v}, err) // routed again, as a Message
		return
	}
	defer s.flight.Done()
	if err == nil {
		s.n.stats.delivered(s.r.stats)
		return
	}
	s.n.stats.failed(s.r.name, true)
}

func (s *sender) send(m *Message) {
	ctx := s.n.ctx
	if m.done != nil { // a user handle: its timeout bounds the routing
		if m.Err() != ErrPending {
			return // already timed out before the pump got to it
		}
		ctx = routeCtx{m}
	}
	s.flight.Add(1)
	// A bare value routed again after a refusal has no handle: its
	// acceptance may be reported lazily too.
	err := s.r.route(ctx, m.v, func(err error) { s.outcome(m, err) }, m.done == nil)
	if err != nil {
		s.flight.Done()
		s.n.stats.failed(s.r.name, false)
		if m.done != nil {
			if ctx.Err() != nil {
				return // the handle ended first: its timeout reported it
			}
			m.finish(err)
		}
	}
}

// outcome runs once per routed value, possibly on a stream's goroutine: it
// must not block.
func (s *sender) outcome(m *Message, err error) {
	defer s.flight.Done()
	switch {
	case err == nil:
		s.n.stats.delivered(s.r.stats)
		if m.done != nil {
			m.finish(nil)
		}
	case refused(err) && s.n.ctx.Err() == nil:
		// Never accepted: route it again (the pump picks it up).
		s.n.stats.inFlight.Add(-1)
		s.retryM.Lock()
		s.retry = append(s.retry, m)
		s.retryM.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	default:
		s.n.stats.failed(s.r.name, true)
		if m.done != nil {
			m.finish(fmt.Errorf("channel: send to %q: %w", s.r.name, err))
		}
	}
}

func (s *sender) takeRetry() *Message {
	s.retryM.Lock()
	defer s.retryM.Unlock()
	if len(s.retry) == 0 {
		return nil
	}
	m := s.retry[0]
	s.retry[0] = nil
	s.retry = s.retry[1:]
	return m
}

func (s *sender) failPending(err error) {
	for m := s.takeRetry(); m != nil; m = s.takeRetry() {
		s.n.stats.failed(s.r.name, false)
		if m.done != nil {
			m.finish(err)
		}
	}
	for {
		select {
		case v := <-s.in:
			s.n.stats.failed(s.r.name, false)
			if m, ok := v.(*Message); ok {
				m.finish(err)
			}
		default:
			return
		}
	}
}

// close flushes and stops the pump, waiting for it within ctx.
func (s *sender) close(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("channel: closing sender of %q: %w", s.r.name, ctx.Err())
	}
}

// SendOf is Send for values of type T.
func SendOf[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	inner, innerClose, err := n.Send(name, 0)
	if err != nil {
		return nil, nil, err
	}
	in := make(chan T, buf)
	stop := make(chan struct{})
	ended := make(chan struct{})
	forward := func(v T) bool {
		select {
		case inner <- v:
			return true
		case <-n.ctx.Done():
			return false
		}
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(ended)
		for {
			select {
			case v := <-in:
				if !forward(v) {
					return
				}
			case <-stop:
				for {
					select {
					case v := <-in:
						if !forward(v) {
							return
						}
					default:
						return
					}
				}
			case <-n.ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	return in, func() error {
		once.Do(func() { close(stop) })
		select {
		case <-ended:
		case <-time.After(DefaultDrainTimeout):
			return fmt.Errorf("channel: closing sender of %q: values still waiting for a receiver", name)
		}
		return innerClose()
	}, nil
}
