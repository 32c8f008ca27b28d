package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
//
// A send channel's pump routes the bare values that wait in it as a batch
// (routeMany): the turn moves on once per batch, and a receiver takes as
// many of the batch as it has room or credit for, the next in turn the
// rest. So with several receivers free, consecutive values go to one of
// them in runs of up to a batch rather than alternately.
//
// A node has one router per name, shared by the name's send channels and
// SendContext calls (safe for concurrent use): they share what it passes
// over (below) and its view of the receivers. Each send channel takes
// turns of its own, so that its values rotate among the receivers whatever
// other channels of the name send; SendContext calls share one.
//
// A receiver that turns a value away at once, because its actor is gone or
// its node is lost or unknown, is passed over for benchTime: the registry
// may list it for a while yet (until its node expires, or its
// unregistration is applied), and trying it again at once, value after
// value, would spin. Only that receiver waits; the others are tried as
// before, and with every receiver passed over the router waits until the
// first may be tried again or the name's receivers change.
type router struct {
	n     *Node
	name  string
	stats *counters     // the name's
	turn  atomic.Uint64 // SendContext's round-robin; each send channel has its own
	queue atomic.Pointer[queueView]

	benchFor time.Duration // benchTime; tests lengthen it
	benched  atomic.Int32  // len(bench), read without benchM
	benchM   sync.Mutex
	bench    map[actor.PID]time.Time // a passed-over receiver → when to try it again
}

// benchTime is how long a router passes over a receiver that turned a
// value away at once.
const benchTime = retrySlice

// queueView is the queue receivers of a router's name in one registry
// State: a lone value is routed without looking the name up again until
// the registry changes.
type queueView struct {
	state     *registry.State
	receivers []registry.Receiver
}

// receivers returns the queue receivers of r's name in the registry's
// current state.
func (r *router) receivers() []registry.Receiver {
	st := r.n.reg.State()
	if v := r.queue.Load(); v != nil && v.state == st {
		return v.receivers
	}
	all := st.Receivers(r.name)
	queue := all // the State's own slice, never written, unless subscribers are mixed in
	if slices.ContainsFunc(all, func(rc registry.Receiver) bool { return rc.Mode != registry.Queue }) {
		queue = slices.DeleteFunc(slices.Clone(all), func(rc registry.Receiver) bool { return rc.Mode != registry.Queue })
	}
	r.queue.Store(&queueView{state: st, receivers: queue})
	return queue
}

// router returns the node's router for name.
func (n *Node) router(name string) *router {
	if r, ok := n.routers.Load(name); ok {
		return r.(*router)
	}
	r, _ := n.routers.LoadOrStore(name, newRouter(n, name))
	return r.(*router)
}

func newRouter(n *Node, name string) *router {
	return &router{n: n, name: name, stats: n.stats.name(name), benchFor: benchTime}
}

// route hands v to one receiver, taking the next turn of the
// round-robin from turn; done reports the outcome (accepted or not). route
// returns an error (and done is not called) if v could not be handed to
// any receiver before ctx ended or cannot be encoded.
func (r *router) route(ctx context.Context, turn *atomic.Uint64, v any, done func(error)) error {
	one := func(err error) (int, error) {
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	_, err := r.hand(ctx, turn, 1,
		func(rc registry.Receiver, _ int) (int, error) { return one(r.try(rc, v, done)) },
		func(ctx context.Context, rc registry.Receiver, _ int) (int, error) {
			return one(r.block(ctx, rc, v, done))
		})
	return err
}

// hand is the routing loop of route and routeMany: it hands total values,
// in order, to receivers of the name, starting at the next turn taken
// from turn. try(rc, from) hands rc as many of
// the values from the from-th on as rc takes without waiting; block does
// the same but may wait, until its ctx ends, for rc to take the first.
// hand returns how many values it handed, and if not all, why the next
// could not be (ctx ended, no receivers, or a failure of the value
// itself, such as the codec refusing it).
func (r *router) hand(ctx context.Context, turn *atomic.Uint64, total int,
	try func(rc registry.Receiver, from int) (int, error),
	block func(ctx context.Context, rc registry.Receiver, from int) (int, error)) (int, error) {
	handed := 0
	for {
		receivers := r.receivers()
		if len(receivers) == 0 {
			if err := r.awaitChange(ctx, receivers, 0); err != nil {
				return handed, err
			}
			continue
		}
		start := int(turn.Add(1))
		var first registry.Receiver // the first in turn that was not passed over
		found := false
		for i := range receivers {
			rc := receivers[(start+i)%len(receivers)]
			if r.isBenched(rc.PID()) {
				continue
			}
			n, err := try(rc, handed)
			handed += n
			if handed == total {
				return handed, nil
			}
			if err != nil && !busy(err) && !refused(err) {
				return handed, err // encode errors and the like fail the value
			}
			if n == 0 && unavailable(err) {
				r.benchReceiver(rc.PID())
				continue
			}
			if !found {
				first, found = rc, true
			}
		}
		if !found {
			// Every receiver turned values away at once: wait until one
			// may be tried again, or the name's receivers change.
			if left := r.benchLeft(receivers); left > 0 {
				if err := r.awaitChange(ctx, receivers, left); err != nil {
					return handed, err
				}
			}
			continue
		}
		// Everyone is busy: wait on one for a while, then look again.
		slice, cancel := context.WithTimeout(ctx, retrySlice)
		n, err := block(slice, first, handed)
		cancel()
		handed += n
		if n == 0 && refused(err) {
			// Only a refusal: a stream that failed while this waited
			// (ErrNodeLost) is opened again by the next try, which
			// passes the receiver over if that fails at once.
			r.benchReceiver(first.PID())
		}
		switch {
		case handed == total:
			return handed, nil
		case ctx.Err() != nil:
			return handed, fmt.Errorf("channel: send to %q: %w", r.name, ctx.Err())
		case err == nil || busy(err) || refused(err) || errors.Is(err, context.DeadlineExceeded):
			continue // some were handed, or none could be: look again
		default:
			return handed, err
		}
	}
}

// isBenched reports whether the router passes over pid for now.
func (r *router) isBenched(pid actor.PID) bool {
	if r.benched.Load() == 0 {
		return false
	}
	r.benchM.Lock()
	defer r.benchM.Unlock()
	now := time.Now()
	r.pruneLocked(now)
	until, ok := r.bench[pid]
	return ok && now.Before(until)
}

// benchReceiver passes over pid for benchTime.
func (r *router) benchReceiver(pid actor.PID) {
	r.benchM.Lock()
	defer r.benchM.Unlock()
	now := time.Now()
	if r.bench == nil {
		r.bench = make(map[actor.PID]time.Time)
	}
	r.pruneLocked(now)
	r.bench[pid] = now.Add(r.benchFor)
	r.benched.Store(int32(len(r.bench)))
}

// pruneLocked forgets the receivers whose time is up, listed or not (one
// the registry dropped is never asked about again); benchM is held.
func (r *router) pruneLocked(now time.Time) {
	for pid, until := range r.bench {
		if !now.Before(until) {
			delete(r.bench, pid)
		}
	}
	r.benched.Store(int32(len(r.bench)))
}

// benchLeft returns how long until the first of receivers — every one
// passed over — may be tried again: at most benchFor, 0 if one may be
// already.
func (r *router) benchLeft(receivers []registry.Receiver) time.Duration {
	r.benchM.Lock()
	defer r.benchM.Unlock()
	now := time.Now()
	left := r.benchFor
	for _, rc := range receivers {
		until, ok := r.bench[rc.PID()]
		if !ok {
			return 0 // its time was up already
		}
		left = min(left, until.Sub(now))
	}
	return max(left, 0)
}

// unavailable reports a receiver that turned a value away because it
// cannot take any now: its actor is gone, or its node is lost or unknown.
func unavailable(err error) bool {
	return refused(err) || errors.Is(err, remoting.ErrNodeLost) || errors.Is(err, remoting.ErrUnknownNode)
}

// busy reports a receiver that cannot take a value right now.
func busy(err error) bool {
	return errors.Is(err, actor.ErrFull) || errors.Is(err, remoting.ErrNoCredit) ||
		errors.Is(err, remoting.ErrNodeLost) || errors.Is(err, remoting.ErrUnknownNode)
}

func (r *router) try(rc registry.Receiver, v any, done func(error)) error {
	pid := rc.PID()
	if pid.Node == r.n.id {
		if err := r.n.sys.TrySendFrom(actor.PID{}, pid, v); err != nil {
			return err
		}
		r.n.stats.sent(r.stats, pid.Node, 1)
		done(nil) // accepted into the local receiver's buffer
		return nil
	}
	if err := r.n.ep.TrySendTracked(pid, actor.PID{}, v, done); err != nil {
		return err
	}
	r.n.stats.sent(r.stats, pid.Node, 1)
	return nil
}

func (r *router) block(ctx context.Context, rc registry.Receiver, v any, done func(error)) error {
	pid := rc.PID()
	if pid.Node == r.n.id {
		if err := r.n.sys.SendFrom(ctx, actor.PID{}, pid, v); err != nil {
			return err
		}
		r.n.stats.sent(r.stats, pid.Node, 1)
		done(nil)
		return nil
	}
	if err := r.n.ep.SendTracked(ctx, pid, actor.PID{}, v, done); err != nil {
		return err
	}
	r.n.stats.sent(r.stats, pid.Node, 1)
	return nil
}

// routeMany hands vals, in order, each to one receiver: route for a batch,
// with one lookup and one turn of the round-robin for the lot, and each
// receiver taking as many as it has room for. out hears every handed
// value's outcome; a remote receiver reports acceptances together, up to
// remoting.AckDelay late (nobody waits on a bare value's outcome
// promptly). routeMany returns how many of vals it handed, n, and if
// n < len(vals) why vals[n] could not be (ctx ended, or the codec refuses
// it: then the values after it may still be routed).
func (r *router) routeMany(ctx context.Context, turn *atomic.Uint64, vals []any, out *remoting.Outcomes) (int, error) {
	return r.hand(ctx, turn, len(vals),
		func(rc registry.Receiver, from int) (int, error) { return r.tryMany(rc, vals[from:], out) },
		func(ctx context.Context, rc registry.Receiver, from int) (int, error) {
			return r.blockMany(ctx, rc, vals[from:], out)
		})
}

// tryMany hands rc as many of vals as it takes without waiting.
func (r *router) tryMany(rc registry.Receiver, vals []any, out *remoting.Outcomes) (int, error) {
	pid := rc.PID()
	if pid.Node == r.n.id {
		n, err := r.n.sys.TrySendManyFrom(actor.PID{}, pid, vals)
		r.acceptedLocally(pid, vals[:n], out)
		return n, err
	}
	n, err := r.n.ep.TrySendMany(pid, actor.PID{}, vals, out)
	r.n.stats.sent(r.stats, pid.Node, n)
	return n, err
}

// blockMany hands rc the first of vals, waiting for room or credit until
// ctx ends, and as many of the rest as it then takes without waiting.
func (r *router) blockMany(ctx context.Context, rc registry.Receiver, vals []any, out *remoting.Outcomes) (int, error) {
	pid := rc.PID()
	if pid.Node == r.n.id {
		if err := r.n.sys.SendFrom(ctx, actor.PID{}, pid, vals[0]); err != nil {
			return 0, err
		}
		r.acceptedLocally(pid, vals[:1], out)
		n, _ := r.tryMany(rc, vals[1:], out) // the caller looks again for any left
		return 1 + n, nil
	}
	n, err := r.n.ep.SendMany(ctx, pid, actor.PID{}, vals, out)
	r.n.stats.sent(r.stats, pid.Node, n)
	return n, err
}

// acceptedLocally counts vals, accepted into the buffer of the local
// receiver pid, and reports their outcome.
func (r *router) acceptedLocally(pid actor.PID, vals []any, out *remoting.Outcomes) {
	if len(vals) == 0 {
		return
	}
	r.n.stats.sent(r.stats, pid.Node, len(vals))
	out.Report(vals, nil)
}

// awaitChange waits until the name's queue receivers differ from seen
// (subscribers do not count: a send never goes to them), d has passed
// (d > 0), ctx ends or the node closes. Waiting with no receiver at all
// until ctx's deadline is ErrNoReceivers.
func (r *router) awaitChange(ctx context.Context, seen []registry.Receiver, d time.Duration) error {
	ch, stop := r.n.reg.Watch(r.name)
	defer stop()
	if !slices.Equal(r.receivers(), seen) {
		return nil // changed before the watch began
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
		return nil
	case <-ctx.Done():
		if len(seen) == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
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
	r := n.router(name)
	for {
		res := make(chan error, 1)
		if err := r.route(ctx, &r.turn, v, func(err error) { res <- err }); err != nil {
			n.stats.failed(name, false, 1)
			return err
		}
		select {
		case err := <-res:
			if err == nil {
				n.stats.delivered(r.stats, 1)
				return nil
			}
			if refused(err) {
				n.stats.inFlight.Add(-1)
				continue // never accepted: another receiver may take it
			}
			n.stats.failed(name, true, 1)
			return fmt.Errorf("channel: send to %q: %w", name, err)
		case <-ctx.Done():
			return fmt.Errorf("channel: send to %q: %w", name, ctx.Err())
		}
	}
}

// sender is one Send (T is any) or SendOf: a pump from the user's Go
// channel to the router.
type sender[T any] struct {
	n      *Node
	r      *router
	in     chan T
	stop   chan struct{} // closed by close: flush and end
	ended  chan struct{} // closed when the pump has ended
	once   sync.Once
	retryM sync.Mutex
	retry  []*Message // values refused by a closing receiver, to route again
	// ctl wakes the pump for anything but a value: a value to route
	// again (retry), a close (stop), the node's end. One channel, so
	// that a pump waiting for its next value waits on two, not four.
	ctl    chan struct{}
	flight sync.WaitGroup // values handed to a receiver, outcome pending

	turn  atomic.Uint64      // this channel's round-robin among the receivers
	batch []any              // the pump's: values taken from in, to route
	plain *remoting.Outcomes // reports to plainOutcomes
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
	return startSender[any](n, name, buf)
}

// SendOf is Send for values of type T.
func SendOf[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	return startSender[T](n, name, buf)
}

// flusher is a sender of any type, for the node's shutdown.
type flusher interface {
	close(ctx context.Context) error
}

func startSender[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	s := &sender[T]{
		n:     n,
		r:     n.router(name),
		in:    make(chan T, buf),
		stop:  make(chan struct{}),
		ended: make(chan struct{}),
		ctl:   make(chan struct{}, 1),
		batch: make([]any, 0, batchFor(buf)),
	}
	s.plain = remoting.NewOutcomes(s.plainOutcomes)
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

// pumpFastRun bounds how many batches the pump takes in a row without
// looking at its control channel.
const pumpFastRun = 16

// pumpBatch bounds the values the pump takes from its channel at once and
// routes together.
const pumpBatch = 128

// batchFor returns the most values the pump of a Send with buf takes at
// once: buf, at least 1, at most pumpBatch. Writes block once buf values
// wait in the channel, as its buffer says; the pump holds at most one
// batch besides — the one value it routes, with buf 0 — so its batching
// loosens backpressure by less than buf.
func batchFor(buf int) int { return min(max(buf, 1), pumpBatch) }

func (s *sender[T]) pump() {
	defer s.n.wg.Done()
	defer close(s.ended)
	defer func() {
		s.n.mu.Lock()
		delete(s.n.senders, s)
		s.n.mu.Unlock()
	}()
	stopWatch := context.AfterFunc(s.n.ctx, s.signal)
	defer stopWatch()
	fast := 0
	for {
		if m := s.takeRetry(); m != nil {
			s.send(m)
			continue
		}
		// Values already waiting are taken without the select, which
		// locks every channel it waits on; the select still runs at
		// least every pumpFastRun batches, so a stop or the node's end
		// is seen promptly.
		if fast < pumpFastRun {
			fast++
			took, ended := s.drain(cap(s.batch))
			if ended {
				return
			}
			if took {
				continue
			}
		}
		fast = 0
		select {
		case v, ok := <-s.in:
			if !ok {
				s.finish()
				return
			}
			s.batch = append(s.batch, any(v))
			if _, ended := s.drain(cap(s.batch) - 1); ended {
				return
			}
		case <-s.ctl:
			switch {
			case s.n.ctx.Err() != nil:
				s.failPending(ErrClosed)
				return
			case s.stopping():
				s.flush()
				return
			} // else a value to route again: the loop takes it
		}
	}
}

// signal wakes the pump to look at its retries, its stop and the node.
func (s *sender[T]) signal() {
	select {
	case s.ctl <- struct{}{}:
	default:
	}
}

func (s *sender[T]) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// flush routes what was written before the close, and what comes back to
// be routed again, then ends the pump.
func (s *sender[T]) flush() {
	for {
		took, ended := s.drain(cap(s.batch))
		if ended {
			return
		}
		if took {
			continue
		}
		if m := s.takeRetry(); m != nil {
			s.send(m)
			continue
		}
		s.finish()
		return
	}
}

// drain takes up to max more values that wait in the channel and routes
// them with any already in the batch. It reports whether it took any, and
// whether the pump has ended: the channel was closed, so it finished.
func (s *sender[T]) drain(max int) (took, ended bool) {
	took, closed := s.take(max)
	s.sendBatch()
	if closed {
		s.finish()
	}
	return took, closed
}

// take appends to the batch up to max values that wait in the channel,
// without blocking. It reports whether it took any, and whether the
// channel is closed.
func (s *sender[T]) take(max int) (took, closed bool) {
	for range max {
		select {
		case v, ok := <-s.in:
			if !ok {
				return took, true
			}
			s.batch = append(s.batch, any(v))
			took = true
		default:
			return took, false
		}
	}
	return took, false
}

// sendBatch routes the values in the batch, in order, and empties it:
// each *Message with its handle, and each stretch of bare values between
// them together (sendValues).
func (s *sender[T]) sendBatch() {
	vals := s.batch
	for i := 0; i < len(vals); {
		if m, ok := vals[i].(*Message); ok {
			s.send(m)
			i++
			continue
		}
		j := i + 1
		for j < len(vals) {
			if _, ok := vals[j].(*Message); ok {
				break
			}
			j++
		}
		s.sendValues(vals[i:j])
		i = j
	}
	clear(vals)
	s.batch = vals[:0]
}

// sendValues routes bare values written to the channel, without making a
// Message for any of them unless a refusal makes it wait to be routed
// again. A value that cannot be routed (the codec refuses it, the node
// closes) is counted as failed; nobody holds a handle to tell.
func (s *sender[T]) sendValues(vals []any) {
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
		s.n.stats.failed(s.r.name, false, fail)
		vals = vals[fail:]
	}
}

// finish waits for the outcomes of values in flight (their refusals may
// need routing again) and routes any that come back.
func (s *sender[T]) finish() {
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

// plainOutcomes reports the outcome of bare values; several at a time, as
// remoting.Outcomes reports them.
func (s *sender[T]) plainOutcomes(vals []any, err error) {
	switch {
	case err == nil:
		s.n.stats.delivered(s.r.stats, len(vals))
	case refused(err) && s.n.ctx.Err() == nil:
		for _, v := range vals {
			s.outcome(&Message{v: v}, err) // routed again, as a Message
		}
		return
	default:
		s.n.stats.failed(s.r.name, true, len(vals))
	}
	s.flight.Add(-len(vals))
}

func (s *sender[T]) send(m *Message) {
	if !m.handle {
		// A bare value routed again after a refusal: it has no handle,
		// so it goes like the others (a refusal makes a new Message).
		s.sendValues([]any{m.v})
		return
	}
	if m.Err() != ErrPending {
		return // already timed out before the pump got to it
	}
	ctx := routeCtx{m} // the handle's timeout bounds the routing
	s.flight.Add(1)
	err := s.r.route(ctx, &s.turn, m.v, func(err error) { s.outcome(m, err) })
	if err != nil {
		s.flight.Done()
		s.n.stats.failed(s.r.name, false, 1)
		if ctx.Err() != nil {
			return // the handle ended first: its timeout reported it
		}
		m.finish(err)
	}
}

// outcome runs once per routed value, possibly on a stream's goroutine: it
// must not block.
func (s *sender[T]) outcome(m *Message, err error) {
	defer s.flight.Done()
	switch {
	case err == nil:
		s.n.stats.delivered(s.r.stats, 1)
		if m.handle {
			m.finish(nil)
		}
	case refused(err) && s.n.ctx.Err() == nil:
		// Never accepted: route it again (the pump picks it up).
		s.n.stats.inFlight.Add(-1)
		s.retryM.Lock()
		s.retry = append(s.retry, m)
		s.retryM.Unlock()
		s.signal()
	default:
		s.n.stats.failed(s.r.name, true, 1)
		if m.handle {
			m.finish(fmt.Errorf("channel: send to %q: %w", s.r.name, err))
		}
	}
}

func (s *sender[T]) takeRetry() *Message {
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

func (s *sender[T]) failPending(err error) {
	for m := s.takeRetry(); m != nil; m = s.takeRetry() {
		s.n.stats.failed(s.r.name, false, 1)
		if m.handle {
			m.finish(err)
		}
	}
	for {
		select {
		case v := <-s.in:
			s.n.stats.failed(s.r.name, false, 1)
			if m, ok := any(v).(*Message); ok {
				m.finish(err)
			}
		default:
			return
		}
	}
}

// close flushes and stops the pump, waiting for it within ctx.
func (s *sender[T]) close(ctx context.Context) error {
	s.once.Do(func() {
		close(s.stop)
		s.signal()
	})
	select {
	case <-s.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("channel: closing sender of %q: %w", s.r.name, ctx.Err())
	}
}
