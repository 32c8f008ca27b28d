package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

var (
	// ErrBusy: a Transport's Send without wait found no credit on the link.
	ErrBusy = errors.New("gossip: link busy")
	// ErrValue marks a Transport error of the value itself (it cannot be
	// encoded, or is too large): it can never be sent, to anyone.
	ErrValue = errors.New("gossip: value cannot be sent")
	// ErrUnreachable: a send to a peer that failed a moment ago was not
	// tried; its group went to the group's next node.
	ErrUnreachable = errors.New("gossip: peer unreachable")
	// ErrClosed: the driver is closed.
	ErrClosed = errors.New("gossip: closed")
)

// Transport carries messages to other nodes' engines.
type Transport interface {
	// Send hands a message for node's engine to the network: its header
	// and, for a data message, its value. Without wait it returns an error
	// wrapping ErrBusy at once when the link has no credit; with wait, it
	// waits for credit until ctx ends. When it returns nil, done is called
	// once with the message's outcome: nil once node accepted it, else why
	// not, wrapping ErrValue when the value itself cannot be sent.
	Send(ctx context.Context, node string, header []byte, value any, wait bool, done func(error)) error
}

// Subscriber is a local subscriber.
type Subscriber interface {
	// Offer gives the subscriber a value without waiting: what it has no
	// room for, it drops.
	Offer(v any)
}

// Deps is what a Driver works with.
type Deps struct {
	Membership Membership
	Transport  Transport
	Counters   *Counters   // nil: counted, but by nobody else
	Logger     *zap.Logger // nil: silent
	// Failed, if set, is told of each published value that can never be
	// sent; it must not block.
	Failed func(Failure)
}

// Driver runs an Engine for one node: it serialises the engine's calls,
// delivers to local subscribers, queues messages per peer and sends them,
// and ticks the engine.
//
// Goroutines: one ticker, from Start until Close; one per peer with queued
// messages (it ends after outboxIdle without any, or at Close). Close
// stops them and waits.
type Driver struct {
	self  string
	cfg   Config
	mem   Membership
	tr    Transport
	stats *Counters
	log   *zap.Logger
	fail  func(Failure)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	e        *Engine
	subs     map[string][]*Subscription
	outboxes map[string]*outbox
}

// Subscription is one local subscriber of a name.
type Subscription struct {
	name  string
	s     Subscriber
	since uint64 // the registry version from which it is in publishers' views
}

// NewDriver returns the driver of node self's engine. Start it, then Close
// it.
func NewDriver(self string, cfg Config, deps Deps) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Membership == nil || deps.Transport == nil {
		return nil, errors.New("gossip: a driver needs a membership and a transport")
	}
	if deps.Counters == nil {
		deps.Counters = new(Counters)
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		self: self, cfg: cfg, mem: deps.Membership, tr: deps.Transport,
		stats: deps.Counters, log: deps.Logger, fail: deps.Failed,
		ctx: ctx, cancel: cancel,
		subs:     make(map[string][]*Subscription),
		outboxes: make(map[string]*outbox),
	}
	d.e = NewEngine(self, cfg, deps.Membership, deps.Counters, deps.Logger, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	return d, nil
}

// Start starts the anti-entropy ticker.
func (d *Driver) Start() {
	d.wg.Go(func() {
		t := time.NewTicker(d.cfg.Tick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				d.mu.Lock()
				d.e.Tick(now)
				d.applyLocked()
				d.forgetGoneOutboxesLocked()
				d.mu.Unlock()
			case <-d.ctx.Done():
				return
			}
		}
	})
}

// Close stops the ticker and the senders, fails the publishes waiting in
// queues with ErrClosed, and waits for every goroutine. From its start no
// subscriber is offered anything more: the node closes its subscribers'
// channels after it. Idempotent.
func (d *Driver) Close() {
	d.mu.Lock()
	d.cancel() // under mu: an apply in progress finishes first
	d.mu.Unlock()
	d.wg.Wait()
}

// Receive hands the engine a message from peer from (as its stream
// authenticated it). A header that does not decode is dropped, and the
// error says why.
func (d *Driver) Receive(from string, header []byte, value any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.e.Step(from, header, value, time.Now())
	d.applyLocked()
	return err
}

// applyLocked acts on what the engine produced: deliveries to the local
// subscribers (in order, under d.mu, so that each subscriber sees a
// publisher's values in order), failures, and messages queued per peer.
// d.mu is held.
func (d *Driver) applyLocked() {
	rd := d.e.Ready()
	if d.ctx.Err() != nil {
		return // closed: subscribers may be gone, and nothing is sent any more
	}
	for _, dv := range rd.Deliveries {
		for _, s := range d.subs[dv.Name] {
			if dv.View >= s.since {
				s.s.Offer(dv.Value)
			}
		}
	}
	if d.fail != nil {
		for _, f := range rd.Failed {
			d.fail(f)
		}
	}
	for _, s := range rd.Sends {
		ob := d.outboxLocked(s.To)
		if s.Tree {
			ob.push(s.m)
		} else {
			ob.offer(s.m)
		}
	}
}

// AddPublisher starts a publisher of name on this node.
func (d *Driver) AddPublisher(name string) *Publisher {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.e.AddPublisher(name, rand.Uint64(), time.Now())
}

// ClosePublisher marks p closed: its values stay cached for repairs a
// while.
func (d *Driver) ClosePublisher(p *Publisher) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.e.ClosePublisher(p, time.Now())
}

// Publish publishes v on p: to the local subscribers, then to the first
// hops, waiting while their queues are full until ctx ends. done, if not
// nil, is called once every first hop has taken v or failed to: nil unless
// v itself could not be sent (or ctx ended first: then Publish returns the
// error and done gets it too).
func (d *Driver) Publish(ctx context.Context, p *Publisher, v any, done func(error)) error {
	d.mu.Lock()
	sends := d.e.Publish(p, v, time.Now())
	d.applyLocked() // the local subscribers
	obs := make([]*outbox, len(sends))
	for i, s := range sends {
		obs[i] = d.outboxLocked(s.To)
	}
	d.mu.Unlock()
	track := newTracker(done)
	track.add(len(sends))
	for i, s := range sends {
		s.m.track = track
		if err := obs[i].pushWait(ctx, s.m); err != nil {
			track.resolveN(len(sends)-i+1, err) // the rest and the publisher's share
			return err
		}
	}
	track.resolveN(1, nil) // the publisher's own share
	return nil
}

// Subscribe adds a local subscriber of name. It gets nothing until
// Subscribed says from which registry version on it is in publishers'
// views.
func (d *Driver) Subscribe(name string, s Subscriber) *Subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	sub := &Subscription{name: name, s: s, since: ^uint64(0)}
	d.subs[name] = append(slices.Clip(d.subs[name]), sub)
	d.e.Subscribe(name)
	return sub
}

// Subscribed sets the registry version from which sub is in publishers'
// views (the version that shows its registration): values routed by an
// older view are not its own.
func (d *Driver) Subscribed(sub *Subscription, version uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sub.since = version
}

// Unsubscribe removes a local subscriber.
func (d *Driver) Unsubscribe(sub *Subscription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	subs := slices.DeleteFunc(slices.Clone(d.subs[sub.name]), func(x *Subscription) bool { return x == sub })
	if len(subs) == len(d.subs[sub.name]) {
		return
	}
	if len(subs) == 0 {
		delete(d.subs, sub.name)
	} else {
		d.subs[sub.name] = subs
	}
	d.e.Unsubscribe(sub.name)
}

// undeliverable hands the engine a message that did not reach peer.
func (d *Driver) undeliverable(peer string, m outMsg, err error) {
	if d.ctx.Err() != nil {
		return
	}
	m.track = nil
	d.mu.Lock()
	defer d.mu.Unlock()
	d.e.Undeliverable(peer, Send{To: peer, m: m}, err)
	d.applyLocked()
}

// outboxLocked returns peer's outbox, creating it; d.mu is held.
func (d *Driver) outboxLocked(peer string) *outbox {
	ob := d.outboxes[peer]
	if ob == nil {
		ob = newOutbox(d, peer)
		d.outboxes[peer] = ob
	}
	return ob
}

// forgetGoneOutboxesLocked drops the idle outboxes of nodes that are not
// (or no longer) live members of the cluster, so that the map does not
// keep one for every node that ever left or crashed; d.mu is held.
func (d *Driver) forgetGoneOutboxesLocked() {
	for peer, ob := range d.outboxes {
		if d.mem.Member(peer) {
			continue
		}
		ob.mu.Lock()
		idle := !ob.running && ob.idleLocked()
		ob.mu.Unlock()
		if idle {
			delete(d.outboxes, peer)
		}
	}
}

// Peers returns the peers the driver keeps a queue for, sorted.
func (d *Driver) Peers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	peers := make([]string, 0, len(d.outboxes))
	for p := range d.outboxes {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	return peers
}

// OwnCached reports whether a publisher of this node still holds its
// value seq for repairs.
func (d *Driver) OwnCached(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.e.origins {
		if st.own {
			if _, ok := st.cache.vals[seq]; ok {
				return true
			}
		}
	}
	return false
}

// Dump describes the driver's state, for tests and debugging.
func (d *Driver) Dump() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	b.WriteString(d.e.Dump())
	for name, subs := range d.subs {
		for _, s := range subs {
			fmt.Fprintf(&b, "%s subscriber of %s since version %d\n", d.self, name, s.since)
		}
	}
	return b.String()
}
