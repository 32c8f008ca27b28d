package channel

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/dchan-io/dchan/registry"
)

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
// Close with the returned CloseFunc: the subscriber is unregistered, then
// the channel delivers what waits in it and is closed.
func (n *Node) Subscribe(name string, buf int) (<-chan any, CloseFunc, error) {
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	out := make(chan any, max(buf, 1))
	// A subscriber never blocks: it drops the oldest value to make room.
	hand := func(v any) bool {
		if tryHand(out, v) {
			return true
		}
		// Full: make room by dropping the oldest (the user may have just
		// taken it, in which case there is room anyway).
		select {
		case <-out:
			n.stats.dropped(name)
		default:
		}
		select {
		case out <- v:
			return true
		default: // a concurrent writer (a value sent to the actor directly) took the room
			n.stats.dropped(name)
			return false
		}
	}
	closeFn, err := n.startReceiver(name, buf, max(buf, 1), registry.Broadcast,
		func(_ <-chan struct{}, v any) bool { return hand(v) },
		func(v any) bool { return tryHand(out, v) }, func() { close(out) })
	if err != nil {
		return nil, nil, err
	}
	return out, closeFn, nil
}

// offer gives a broadcast value to a subscriber without waiting. The
// gossip engine calls it directly, under its lock, for every subscriber in
// turn: a subscriber's buffer is the only queue between the network and
// its user, and a full one drops its oldest value rather than wait.
func (r *receiver) offer(v any) {
	if r.hand(nil, v) {
		r.n.stats.received(r.stats)
	}
}

// publisher is one Publish: a pump from the user's Go channel into the
// gossip engine.
type publisher struct {
	n      *Node
	name   string
	origin origin
	seq    uint64 // last sequence published; guarded by the gossip engine's mu
	in     chan any
	stop   chan struct{}
	ended  chan struct{}
	once   sync.Once

	// the participants computed from the registry entries last seen, and
	// the first sequence of each; guarded by the gossip engine's mu
	lastRS []registry.Receiver
	hops   []hop
	joined map[string]uint64
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
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	if buf < 0 {
		return nil, nil, fmt.Errorf("%w: negative buffer %d", ErrInvalidOption, buf)
	}
	p := &publisher{
		n:      n,
		name:   name,
		origin: origin{node: n.id, pub: rand.Uint64()},
		in:     make(chan any, buf),
		stop:   make(chan struct{}),
		ended:  make(chan struct{}),
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, nil, ErrClosed
	}
	n.publishers[p] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	n.gossip.addPublisher(p)
	go p.pump()
	return p.in, p.close, nil
}

func (p *publisher) pump() {
	defer p.n.wg.Done()
	defer close(p.ended)
	defer func() {
		p.n.gossip.removePublisher(p)
		p.n.mu.Lock()
		delete(p.n.publishers, p)
		p.n.mu.Unlock()
	}()
	for {
		select {
		case v := <-p.in:
			p.publish(v)
		case <-p.stop:
			for {
				select {
				case v := <-p.in:
					p.publish(v)
				default:
					return
				}
			}
		case <-p.n.ctx.Done():
			for {
				select {
				case v := <-p.in:
					if m, ok := v.(*Message); ok {
						m.finish(ErrClosed)
					}
				default:
					return
				}
			}
		}
	}
}

func (p *publisher) publish(v any) {
	ctx := p.n.ctx
	m, _ := v.(*Message)
	if m != nil {
		if m.Err() != ErrPending {
			return // timed out before the pump got to it
		}
		v, ctx = m.v, routeCtx{m}
	}
	if err := p.n.gossip.publish(ctx, p, v, newPubTrack(m)); err != nil {
		p.n.stats.failed(p.name, false, 1)
		if m != nil && !errors.Is(err, context.DeadlineExceeded) {
			m.finish(fmt.Errorf("channel: publish to %q: %w", p.name, err))
		}
	}
}

// view returns the nodes, other than this one, with subscribers of the
// name, each with the first sequence meant for it; it is recomputed only
// when the registry's entries changed. g.mu is held, and p.seq is the
// sequence being published.
func (p *publisher) view(n *Node, state *registry.State) []hop {
	rs := state.Receivers(p.name)
	if len(rs) == len(p.lastRS) && (len(rs) == 0 || &rs[0] == &p.lastRS[0]) {
		return p.hops
	}
	p.lastRS = rs
	nodes := participants(rs, n.id)
	hops := make([]hop, len(nodes))
	joined := make(map[string]uint64, len(nodes))
	for i, node := range nodes {
		first, ok := p.joined[node]
		if !ok {
			first = p.seq // a newcomer: from this value on
		}
		joined[node] = first
		hops[i] = hop{node: node, first: first}
	}
	p.joined, p.hops = joined, hops
	return hops
}

func (p *publisher) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
	defer cancel()
	return p.closeCtx(ctx)
}

// closeCtx flushes and stops the pump, waiting for it within ctx.
func (p *publisher) closeCtx(ctx context.Context) error {
	p.once.Do(func() { close(p.stop) })
	select {
	case <-p.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("channel: closing publisher of %q: %w", p.name, ctx.Err())
	}
}
