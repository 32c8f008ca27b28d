package channel

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
	"go.uber.org/zap"
)

// gossipActorName is the ID of every node's gossip actor, the one address
// broadcast traffic goes to. Actor names beginning "dchan." are the node's.
const gossipActorName = "dchan.gossip"

// startBroadcast spawns the node's gossip actor, which hands what arrives
// to the broadcast engine (package gossip), and starts the engine's
// driver.
func (n *Node) startBroadcast() error {
	pid, err := n.sys.SpawnNamed(gossipActorName, func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			t, ok := c.Message().(remoting.Tagged)
			if !ok {
				return // lifecycle messages
			}
			// The sender's node is the one its stream authenticated.
			if err := n.bcast.Receive(c.Sender().Node, t.Tag, t.Value); err != nil {
				n.log.Warn("dropped a gossip message", zap.String("from", c.Sender().Node), zap.Error(err))
			}
		})
	}, actor.WithMailboxSize(4096))
	if err != nil {
		return err
	}
	n.bcastPID = pid
	n.bcast.Start()
	return nil
}

// bcastMembership is the broadcast engine's view of the cluster: the
// node's registry replica.
type bcastMembership struct{ n *Node }

func (m bcastMembership) Version() uint64 { return m.n.reg.State().Version() }

func (m bcastMembership) Subscribers(name string) []string {
	rs := m.n.reg.Lookup(name)
	nodes := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.Mode == registry.Broadcast && r.Node != m.n.id {
			nodes = append(nodes, r.Node)
		}
	}
	slices.Sort(nodes)
	return slices.Compact(nodes)
}

func (m bcastMembership) Member(node string) bool {
	mm, ok := m.n.reg.State().Member(node)
	return ok && mm.Status == registry.Alive
}

// bcastTransport sends the engine's messages to other nodes' gossip
// actors, on the node's streams.
type bcastTransport struct{ n *Node }

func (t bcastTransport) Send(ctx context.Context, node string, header []byte, value any, wait bool, done func(error)) error {
	to := actor.PID{Node: node, ID: gossipActorName}
	msg := remoting.Tagged{Tag: header, Value: value}
	report := func(err error) { done(classifyBcast(err)) }
	var err error
	if wait {
		err = t.n.ep.SendTracked(ctx, to, t.n.bcastPID, msg, report)
	} else {
		err = t.n.ep.TrySendTracked(to, t.n.bcastPID, msg, report)
	}
	return classifyBcast(err)
}

// classifyBcast marks remoting's errors with the engine's kinds.
func classifyBcast(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, remoting.ErrNoCredit):
		return fmt.Errorf("%w: %w", gossip.ErrBusy, err)
	case errors.Is(err, remoting.ErrEncode), errors.Is(err, remoting.ErrTooLarge):
		return fmt.Errorf("%w: %w", gossip.ErrValue, err)
	}
	return err
}

// Subscribe registers a subscriber of name on this node and returns its
// channel, once the registration is committed cluster-wide. Every value
// published to name anywhere in the cluster after that reaches every
// subscriber, at most once, and the values of one Publish channel arrive in
// publish order (one may be missing after a fault, none reordered).
//
// buf (at least 1) values wait in the channel for the user. A subscriber
// that falls further behind loses the oldest waiting values, counted in
// Stats (Dropped, and per name): a slow subscriber never slows publishers or
// other subscribers.
//
// Subscribe waits at most DefaultRegisterTimeout for the registration to
// commit (SubscribeContext takes a context instead).
//
// Close with the returned CloseFunc: the subscriber is unregistered, then
// the channel delivers what waits in it and is closed.
func (n *Node) Subscribe(name string, buf int) (<-chan any, CloseFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRegisterTimeout)
	defer cancel()
	return subscribe[any](ctx, n, name, buf)
}

// SubscribeContext is Subscribe whose registration waits until ctx ends
// at the latest: then it fails with an error wrapping ctx's error (or
// ErrUnavailable), and leaves nothing registered.
func (n *Node) SubscribeContext(ctx context.Context, name string, buf int) (<-chan any, CloseFunc, error) {
	return subscribe[any](ctx, n, name, buf)
}

// SubscribeOf is Subscribe for values of type T. A published value of
// another type is dropped for this subscriber (counted as Dropped, logged).
func SubscribeOf[T any](n *Node, name string, buf int) (<-chan T, CloseFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRegisterTimeout)
	defer cancel()
	return subscribe[T](ctx, n, name, buf)
}

func subscribe[T any](ctx context.Context, n *Node, name string, buf int) (<-chan T, CloseFunc, error) {
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	out := make(chan T, max(buf, 1))
	// A subscriber never blocks: it drops the oldest value to make room.
	hand := func(v any) bool {
		t, ok := v.(T)
		if !ok {
			n.stats.Dropped(name)
			n.log.Warn("dropped a broadcast value of the wrong type", zap.String("name", name),
				zap.String("type", fmt.Sprintf("%T", v)), zap.Error(ErrWrongType))
			return false
		}
		if tryHand(out, t) {
			return true
		}
		// Full: make room by dropping the oldest (the user may have just
		// taken it, in which case there is room anyway).
		select {
		case <-out:
			n.stats.Dropped(name)
		default:
		}
		select {
		case out <- t:
			return true
		default: // a concurrent writer (a value sent to the actor directly) took the room
			n.stats.Dropped(name)
			return false
		}
	}
	r, err := n.startReceiver(receiverSpec{ctx: ctx, name: name, buf: buf, mailbox: max(buf, 1), mode: registry.Broadcast,
		hand: func(_ <-chan struct{}, v any) bool { return hand(v) },
		try: func(v any) bool {
			t, ok := v.(T)
			return ok && tryHand(out, t)
		},
		closeOut: func() { close(out) }, queued: func() int { return len(out) }})
	if err != nil {
		return nil, nil, err
	}
	return out, r.close, nil
}

// Offer gives a broadcast value to a subscriber without waiting. The
// broadcast engine's driver calls it directly, under its lock, for every
// subscriber in turn: a subscriber's buffer is the only queue between the
// network and its user, and a full one drops its oldest value rather than
// wait.
func (r *receiver) Offer(v any) {
	if r.hand(nil, v) {
		r.n.stats.Received(r.stats)
	}
}

// bcastSink publishes the values of one Publish channel through the
// node's broadcast engine.
type bcastSink struct {
	n  *Node
	gp *gossip.Publisher
}

// Publish returns a channel whose values each go to every subscriber of
// name in the cluster (see Subscribe). Writes block once buf values wait
// and the first hops' queues are full; they never wait for a subscriber.
//
// A *Message (WithMessage) written instead of a bare value reports nil once
// the value has left this node for every first hop (or there was none), or
// the reason it could not be sent (ErrEncode, ErrTooLarge, ErrClosed, its
// timeout). Broadcast has no delivery confirmation.
//
// Close with the returned CloseFunc, after the last write: the values
// already written are published, then the pump stops.
func (n *Node) Publish(name string, buf int) (chan<- any, CloseFunc, error) {
	return publish[any](n, name, buf)
}

// PublishOf is Publish for values of type T.
func PublishOf[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	return publish[T](n, name, buf)
}

func publish[T any](n *Node, name string, buf int) (chan<- T, CloseFunc, error) {
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	if n.isClosed() {
		return nil, nil, ErrClosed
	}
	s := &bcastSink{n: n, gp: n.bcast.AddPublisher(name)}
	p, err := startPump[T](n, buf, s, nil)
	if err != nil {
		n.bcast.ClosePublisher(s.gp)
		return nil, nil, err
	}
	stop := pumpCloseFunc(name, p)
	return p.In(), func() error {
		err := stop()
		n.bcast.ClosePublisher(s.gp) // its values stay cached for repairs a while
		return err
	}, nil
}

func (s *bcastSink) Route(vals []any) {
	for _, v := range vals {
		s.publish(v)
	}
}

func (s *bcastSink) publish(v any) {
	ctx := s.n.ctx
	m, _ := v.(*Message)
	var done func(error)
	if m != nil {
		if m.Err() != ErrPending {
			return // timed out before the pump got to it
		}
		v, ctx, done = m.v, routeCtx{m}, m.finish
	}
	if err := s.n.bcast.Publish(ctx, s.gp, v, done); err != nil {
		s.n.stats.failed(s.gp.Name(), false, err, 1)
		err = fmt.Errorf("channel: publish to %q: %w", s.gp.Name(), err)
		switch {
		case m == nil:
			s.n.failures.Report(failure{name: s.gp.Name(), value: v, err: err})
		case !errors.Is(err, context.DeadlineExceeded):
			m.finish(err)
		}
	}
}

func (s *bcastSink) Done() {}

// Broadcast has no outcomes to wait for, and nothing comes back.
func (s *bcastSink) Retry() (any, bool)  { return nil, false }
func (s *bcastSink) Settle() (any, bool) { return nil, false }

func (s *bcastSink) Fail(v any, err error) {
	s.n.stats.failed(s.gp.Name(), false, err, 1)
	m, ok := v.(*Message)
	switch {
	case ok && m != nil && m.handle:
		m.finish(err)
		return
	case ok && m != nil:
		v = m.v
	case ok:
		v, err = nil, errNilMessage
	}
	s.n.failures.Report(failure{name: s.gp.Name(), value: v, err: fmt.Errorf("channel: publish to %q: %w", s.gp.Name(), err)})
}
