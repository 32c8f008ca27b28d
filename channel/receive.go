package channel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/channel/internal/tally"
	"github.com/dchan-io/dchan/registry"
)

// CloseFunc ends a Receive, Send, Subscribe or Publish. It is safe to call
// more than once.
type CloseFunc func() error

// receiver is one Receive: a mailbox-actor registered under a name, whose
// Receive pumps each accepted value into the user's Go channel.
type receiver struct {
	n       *Node
	name    string
	stats   *tally.Counters // the name's
	mode    registry.Mode
	pid     actor.PID
	closing atomic.Bool // close began: never register again

	// bsub is a subscriber's place in the broadcast engine.
	bsub *gossip.Subscription
	// private: a ReceiveRef's receiver, reachable only through its Ref,
	// never registered.
	private bool

	// hand gives one value to the user, blocking until the user takes it
	// or done closes; it reports whether the user took it. try gives one
	// without blocking, if the user's channel has room, and reports whether
	// it did; it declines anything hand would drop, to let hand report it.
	// closeOut closes the user's channel. Typed receivers check the type in
	// hand and try.
	hand     func(done <-chan struct{}, v any) bool
	try      func(v any) bool
	closeOut func()
	// queued returns how many values wait in the user's channel; mailbox
	// is the mailbox's size (Stats: Buffered).
	queued  func() int
	mailbox int
	handing atomic.Bool // a value taken from the mailbox waits for room in the channel

	once sync.Once
	err  error
}

// Receive registers a receiver of name on this node and returns its channel,
// once the registration is committed cluster-wide. Each value sent to name
// anywhere in the cluster reaches one of its receivers.
//
// buf is the receiver's buffer: up to buf values (at least 1) are accepted
// into it before the user reads them. Half of it (at most 1024) is the
// returned channel's own buffer, which spares a goroutine switch per value
// while the user keeps up; the rest is the receiver's mailbox, whose free
// space (but at least 2048) is the credit a remote sender may have in
// flight, so a larger buf means more throughput across nodes.
//
// Close with the returned CloseFunc: the receiver is unregistered first,
// then accepts nothing more (values still on the wire to it fail back to
// their senders, which route them elsewhere), then the channel delivers what
// was already accepted and is closed. Nothing accepted is dropped by a clean
// close, provided the user keeps reading until the channel closes.
//
// Receive waits at most DefaultRegisterTimeout for the registration to
// commit (ReceiveContext takes a context instead).
func (n *Node) Receive(name string, buf int) (<-chan any, CloseFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRegisterTimeout)
	defer cancel()
	return n.ReceiveContext(ctx, name, buf)
}

// ReceiveContext is Receive whose registration waits until ctx ends at the
// latest: then it fails with an error wrapping ctx's error (or
// ErrUnavailable), and leaves nothing registered.
func (n *Node) ReceiveContext(ctx context.Context, name string, buf int) (<-chan any, CloseFunc, error) {
	return n.receive(ctx, name, buf, nil)
}

// receive is ReceiveContext with a filter (or nil) that refuses values
// before they are accepted.
func (n *Node) receive(ctx context.Context, name string, buf int, filter func(any) error) (<-chan any, CloseFunc, error) {
	chanBuf, mailbox := receiveBuffers(buf)
	out := make(chan any, chanBuf)
	r, err := n.startReceiver(receiverSpec{ctx: ctx, name: name, buf: buf, mailbox: mailbox, mode: registry.Queue, filter: filter,
		hand:     func(done <-chan struct{}, v any) bool { return handOff(n, name, out, v, done) },
		try:      func(v any) bool { return tryHand(out, v) },
		closeOut: func() { close(out) }, queued: func() int { return len(out) }})
	if err != nil {
		return nil, nil, err
	}
	return out, r.close, nil
}

// handOff gives v to the user of a receiver, blocking until the user takes
// it or done closes (a forced shutdown: the user stopped reading; the value
// is counted as dropped and logged, never lost silently).
func handOff[T any](n *Node, name string, out chan<- T, v T, done <-chan struct{}) bool {
	// A user already waiting takes the value without the two-way select,
	// which locks both channels.
	if tryHand(out, v) {
		return true
	}
	select {
	case out <- v:
		return true
	case <-done:
		n.stats.Dropped(name)
		n.log.Warn("value dropped: receiver stopped before the user read it", zap.String("name", name))
		return false
	}
}

// tryHand gives v to the user of a receiver if the channel has room.
func tryHand[T any](out chan<- T, v T) bool {
	select {
	case out <- v:
		return true
	default:
		return false
	}
}

// maxChanBuf caps the Go channel's share of a Receive's buffer: a Go
// channel allocates its whole buffer at once.
const maxChanBuf = 1024

// receiveBuffers splits a Receive's buf between the Go channel's buffer
// and the receiver's mailbox (the rest, at least 1): together they hold
// buf values, as Receive documents. The channel takes half (at most
// maxChanBuf). A value that finds the channel full waits in the mailbox
// and is handed on by the receiver's actor, a goroutine switch per value,
// while the user catches up: on two cores shared with the sending process
// the user is descheduled often enough for that to cost. Across processes
// (bench/, 10 alternated runs of -shapes oneway-1024), half rather than
// an eighth made one-way at buf 1024 0.86-1.03x raw gRPC + gob (median
// 0.905x), from 0.81-1.03x (median 0.87x), faster in 8 of the 10 pairs.
func receiveBuffers(buf int) (chanBuf, mailbox int) {
	buf = max(buf, 0)
	chanBuf = min(buf/2, maxChanBuf)
	return chanBuf, max(buf-chanBuf, 1)
}

// receiverSpec describes a receiver to start.
type receiverSpec struct {
	ctx     context.Context // bounds the registration
	name    string          // the name it registers under, unless private
	private bool            // a ReceiveRef's: reachable only through its Ref, never registered
	buf     int             // the caller's buffer, validated here
	mailbox int             // the mailbox's share of it
	mode    registry.Mode
	filter  func(v any) error // refuses values before they are accepted (typed receivers)

	// hand, try, closeOut and queued: see receiver.
	hand     func(done <-chan struct{}, v any) bool
	try      func(v any) bool
	closeOut func()
	queued   func() int
}

// DefaultRegisterTimeout bounds the registration of Receive and Subscribe:
// on the minority side of a partition no registration can commit, and
// they fail with ErrUnavailable instead of waiting for the heal.
const DefaultRegisterTimeout = 30 * time.Second

// startReceiver spawns a receiver actor and registers it under spec.name
// (unless the receiver is private), within spec.ctx and the node's life.
// If the registration fails, the receiver is stopped and nothing stays
// registered.
func (n *Node) startReceiver(spec receiverSpec) (*receiver, error) {
	if !spec.private {
		if err := validName(spec.name); err != nil {
			return nil, err
		}
	}
	if spec.buf < 0 {
		return nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, spec.buf)
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	// The counters are held while the receiver is known (forget releases
	// them).
	r := &receiver{n: n, name: spec.name, stats: n.stats.Hold(spec.name), mode: spec.mode, private: spec.private,
		hand: spec.hand, try: spec.try, closeOut: spec.closeOut, queued: spec.queued, mailbox: spec.mailbox}
	opts := []actor.SpawnOption{actor.WithMailboxSize(spec.mailbox)}
	if spec.filter != nil {
		opts = append(opts, actor.WithFilter(spec.filter))
	}
	var pid actor.PID
	var err error
	if r.private {
		// Reachable only through its Ref: an ID no other run of any node
		// will have, so a stale Ref never reaches a stranger.
		pid, err = n.sys.SpawnNamed(refActorPrefix+randomHex(), func() actor.Actor { return r }, opts...)
	} else {
		pid, err = n.sys.Spawn(func() actor.Actor { return r }, opts...)
	}
	if err != nil {
		n.stats.Release(r.stats)
		return nil, fmt.Errorf("channel: receive %q: %w", spec.name, err)
	}
	r.pid = pid
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.stats.Release(r.stats)
		_ = n.sys.Poison(context.Background(), pid)
		return nil, ErrClosed
	}
	n.receivers[r] = struct{}{}
	n.mu.Unlock()
	if r.private {
		return r, nil
	}
	if spec.mode == registry.Broadcast {
		r.bsub = n.bcast.Subscribe(spec.name, r)
	}
	ctx, cancel := context.WithCancel(spec.ctx)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel) // the node's close ends the wait too
	defer stop()
	err = n.reg.Register(ctx, spec.name, pid.ID, spec.mode)
	if err == nil && spec.mode == registry.Broadcast {
		err = n.subscribed(ctx, r)
	}
	if err != nil {
		// Closing first: a concurrent re-registration after a rejoin
		// (reregister) skips it, and does not register a dead actor.
		r.closing.Store(true)
		n.forget(r)
		if spec.mode == registry.Broadcast {
			n.bcast.Unsubscribe(r.bsub)
		}
		_ = n.sys.Poison(context.Background(), pid)
		n.unregisterLater(spec.name, pid.ID)
		if n.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("channel: receive %q: %w", spec.name, err)
	}
	return r, nil
}

// unregisterLater removes a registration whose commit is in doubt (its
// write failed when its context ended, yet may have committed), so that
// a receiver whose Receive failed leaves nothing registered. It tries in
// the background, for at most DefaultDrainTimeout; a node that closes
// meanwhile leaves the cluster, which removes it anyway.
func (n *Node) unregisterLater(name, actorID string) {
	n.wg.Go(func() {
		ctx, cancel := context.WithTimeout(n.ctx, DefaultDrainTimeout)
		defer cancel()
		if err := n.reg.Unregister(ctx, name, actorID); err != nil && n.ctx.Err() == nil {
			n.log.Warn("a receiver whose registration failed may stay registered until it expires",
				zap.String("name", name), zap.Error(err))
		}
	})
}

// Receive is the receiver actor: it hands each value to the user, blocking
// until the user takes it (or the node stops hard).
func (r *receiver) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started, actor.Stopping, actor.Restarting, actor.Terminated:
	case actor.Stopped:
		r.closeOut()
		r.n.forget(r)
	default:
		v := asCall(m)
		if r.try(v) { // the user's channel has room: no wait to flag
			r.n.stats.Received(r.stats)
			return
		}
		r.handing.Store(true)
		if r.hand(c.Context().Done(), v) {
			r.n.stats.Received(r.stats)
		}
		r.handing.Store(false)
	}
}

// TryReceive makes the receiver actor Eager: a value that finds the actor
// idle and the user's channel with room goes into the channel on the
// delivering goroutine (a stream's reader, a send pump), without a
// mailbox run.
func (r *receiver) TryReceive(v any, _ actor.PID) bool {
	if !r.try(asCall(v)) {
		return false
	}
	r.n.stats.Received(r.stats)
	return true
}

var _ actor.Eager = (*receiver)(nil)

func (r *receiver) close() error {
	r.once.Do(func() {
		r.closing.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
		defer cancel()
		// Unregister first: no new sender picks this receiver.
		if !r.private {
			if err := r.n.reg.Unregister(ctx, r.name, r.pid.ID); err != nil {
				r.err = fmt.Errorf("channel: close receiver %q: %w", r.name, err)
			}
		}
		r.stop()
	})
	return r.err
}

// stop refuses new values and lets the user drain the accepted ones; the
// channel closes after the last (see receive).
func (r *receiver) stop() {
	if r.mode == registry.Broadcast {
		r.n.bcast.Unsubscribe(r.bsub)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // begin the graceful stop without waiting for the user to drain
	_ = r.n.sys.Stop(done, r.pid)
}

// subscribed waits until this node's replica shows r's registration and
// tells the broadcast engine that version: publishers route by views at
// least that new only once they know r.
func (n *Node) subscribed(ctx context.Context, r *receiver) error {
	for {
		changed, stop := n.reg.Watch(r.name)
		state := n.reg.State()
		for _, rc := range state.Receivers(r.name) {
			if rc.Node == n.id && rc.ActorID == r.pid.ID {
				stop()
				n.bcast.Subscribed(r.bsub, state.Version())
				return nil
			}
		}
		select {
		case <-changed:
			stop()
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

// reregister registers every live receiver again: the registry calls it
// after this node, expired while cut off from the cluster, rejoined under a
// new incarnation (which removed its previous registrations).
func (n *Node) reregister() {
	n.mu.Lock()
	receivers := make([]*receiver, 0, len(n.receivers))
	for r := range n.receivers {
		receivers = append(receivers, r)
	}
	n.mu.Unlock()
	defer n.log.Info("registered receivers again after rejoining", zap.Int("receivers", len(receivers)))
	for _, r := range receivers {
		if r.closing.Load() || r.private {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, DefaultDrainTimeout)
		err := n.reg.Register(ctx, r.name, r.pid.ID, r.mode)
		if err == nil && r.closing.Load() {
			// Closed since the check above: its Unregister may have
			// committed before this Register did.
			err = n.reg.Unregister(ctx, r.name, r.pid.ID)
		}
		cancel()
		if err != nil {
			n.log.Warn("registering a receiver again after rejoining failed", zap.String("name", r.name), zap.Error(err))
		}
	}
}

func (n *Node) forget(r *receiver) {
	n.mu.Lock()
	_, known := n.receivers[r]
	delete(n.receivers, r)
	n.mu.Unlock()
	if known {
		n.stats.Release(r.stats)
	}
}

// ReceiveOf is Receive for values of type T. A value of another type is
// refused before it is accepted: its sender's handle fails with an error
// wrapping ErrWrongType (a bare value counts as failed); it never panics.
func ReceiveOf[T any](n *Node, name string, buf int) (<-chan T, CloseFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRegisterTimeout)
	defer cancel()
	return ReceiveOfContext[T](ctx, n, name, buf)
}

// ReceiveOfContext is ReceiveOf with ReceiveContext's bound.
func ReceiveOfContext[T any](ctx context.Context, n *Node, name string, buf int) (<-chan T, CloseFunc, error) {
	chanBuf, mailbox := receiveBuffers(buf)
	out := make(chan T, chanBuf)
	r, err := n.startReceiver(receiverSpec{ctx: ctx, name: name, buf: buf, mailbox: mailbox, mode: registry.Queue,
		filter: typeFilter[T],
		// The filter let only T in; a T that is an interface type may hold
		// nil, which the filter lets in as well.
		hand:     func(done <-chan struct{}, v any) bool { t, _ := v.(T); return handOff(n, name, out, t, done) },
		try:      func(v any) bool { t, _ := v.(T); return tryHand(out, t) },
		closeOut: func() { close(out) }, queued: func() int { return len(out) }})
	if err != nil {
		return nil, nil, err
	}
	return out, r.close, nil
}

// typeFilter refuses a value that is not a T (a request is a Call).
func typeFilter[T any](v any) error {
	v = asCall(v)
	if _, ok := v.(T); ok {
		return nil
	}
	var zero T
	return fmt.Errorf("%w: got %T, want %T", ErrWrongType, v, zero)
}
