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
	"github.com/dchan-io/dchan/channel/internal/tally"
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
	stats *tally.Counters // the name's
	turn  atomic.Uint64   // SendContext's round-robin; each send channel has its own
	queue atomic.Pointer[queueView]

	benchFor time.Duration // benchTime; tests lengthen it
	benched  atomic.Int32  // len(bench), read without benchM
	benchM   sync.Mutex
	bench    map[actor.PID]time.Time // a passed-over receiver → when to try it again

	// users counts the send channels and calls using the router now;
	// no one may use it once the sweeper forgot it. uses counts every
	// acquisition. quiet is the sweeper's own (Node.sweep).
	users tally.Holders
	uses  atomic.Uint64
	quiet tally.Quiet
}

// benchTime is how long a router passes over a receiver that turned a
// value away at once.
const benchTime = retrySlice

// queueView is the queue receivers of a router's name in one registry
// State, and their targets: a value is routed without looking the name up
// again until the registry changes.
type queueView struct {
	state     *registry.State
	receivers []registry.Receiver
	targets   []target // one per receiver, in the same order
}

// view returns the queue receivers of r's name in the registry's current
// state.
func (r *router) view() *queueView {
	st := r.n.reg.State()
	if v := r.queue.Load(); v != nil && v.state == st {
		return v
	}
	all := st.Receivers(r.name)
	queue := all // the State's own slice, never written, unless subscribers are mixed in
	if slices.ContainsFunc(all, func(rc registry.Receiver) bool { return rc.Mode != registry.Queue }) {
		queue = slices.DeleteFunc(slices.Clone(all), func(rc registry.Receiver) bool { return rc.Mode != registry.Queue })
	}
	v := &queueView{state: st, receivers: queue, targets: make([]target, len(queue))}
	for i, rc := range queue {
		v.targets[i] = r.targetOf(rc.PID())
	}
	r.queue.Store(v)
	return v
}

// receivers returns the queue receivers of r's name now.
func (r *router) receivers() []registry.Receiver { return r.view().receivers }

// acquireRouter returns the node's router for name, for the caller to use
// until it calls the router's release. A router no one uses, and no one
// used for a while, is forgotten (Node.sweep), and a new one made when the
// name is used again.
func (n *Node) acquireRouter(name string) *router {
	for {
		v, ok := n.routers.Load(name)
		if !ok {
			r := newRouter(n, name)
			var loaded bool
			if v, loaded = n.routers.LoadOrStore(name, r); loaded {
				n.stats.Release(r.stats)
			}
		}
		r := v.(*router)
		if r.acquire() {
			return r
		}
		n.routers.CompareAndDelete(name, r) // forgotten: make way for a new one
	}
}

// newRouter makes a router for name, holding the name's counters.
func newRouter(n *Node, name string) *router {
	return &router{n: n, name: name, stats: n.stats.Hold(name), benchFor: benchTime}
}

// acquire counts a user of r, unless the sweeper forgot r.
func (r *router) acquire() bool {
	if !r.users.Acquire() {
		return false
	}
	r.uses.Add(1)
	return true
}

// release ends a use of r begun by acquireRouter.
func (r *router) release() { r.users.Release() }

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
		func(t target, _ int) (int, error) { return one(t.try(v, done)) },
		func(ctx context.Context, t target, _ int) (int, error) { return one(t.block(ctx, v, done)) })
	return err
}

// routeOne hands v to one receiver, as route does, but as a value of a
// batch: out hears its outcome (an acceptance up to remoting.AckDelay
// late, a refusal at once), and trying learns of each receiver before v
// is offered to it: the last one it learns of is the one that took v (its
// answer may come before routeOne returns). For a sender that waits for
// something else than the acceptance (Request waits for the answer).
func (r *router) routeOne(ctx context.Context, turn *atomic.Uint64, v any, out *remoting.Outcomes, trying func(actor.PID)) error {
	vals := []any{v}
	_, err := r.hand(ctx, turn, 1,
		func(t target, _ int) (int, error) {
			trying(t.pid())
			return t.tryMany(vals, out)
		},
		func(ctx context.Context, t target, _ int) (int, error) {
			trying(t.pid())
			return t.blockMany(ctx, vals, out)
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
	try func(t target, from int) (int, error),
	block func(ctx context.Context, t target, from int) (int, error)) (int, error) {
	handed := 0
	for {
		view := r.view()
		receivers, targets := view.receivers, view.targets
		if len(receivers) == 0 {
			if err := r.awaitChange(ctx, receivers, 0); err != nil {
				return handed, err
			}
			continue
		}
		start := int(turn.Add(1))
		var first target // the first in turn that was not passed over
		for i := range targets {
			t := targets[(start+i)%len(targets)]
			if r.isBenched(t.pid()) {
				continue
			}
			n, err := try(t, handed)
			handed += n
			if handed == total {
				return handed, nil
			}
			if err != nil && !busy(err) && !refused(err) {
				return handed, err // encode errors and the like fail the value
			}
			if n == 0 && unavailable(err) {
				r.benchReceiver(t.pid())
				continue
			}
			if first == nil {
				first = t
			}
		}
		if first == nil {
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
			r.benchReceiver(first.pid())
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
		func(t target, from int) (int, error) { return t.tryMany(vals[from:], out) },
		func(ctx context.Context, t target, from int) (int, error) { return t.blockMany(ctx, vals[from:], out) })
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

// target is one receiver of a name as the router hands it values: the
// mailbox of a receiver on this node, or a receiver on another node
// through the node's stream to it. The router holds one per receiver for
// as long as the registry does not change.
type target interface {
	pid() actor.PID
	// try hands v without waiting; done reports whether the receiver's
	// buffer accepted it (if try returns nil).
	try(v any, done func(error)) error
	// block is try that may wait, until ctx ends, for room or credit.
	block(ctx context.Context, v any, done func(error)) error
	// tryMany hands as many of vals as the receiver takes without
	// waiting; out hears their outcomes.
	tryMany(vals []any, out *remoting.Outcomes) (int, error)
	// blockMany hands the first of vals, waiting for room or credit until
	// ctx ends, and as many of the rest as the receiver then takes
	// without waiting.
	blockMany(ctx context.Context, vals []any, out *remoting.Outcomes) (int, error)
}

// targetOf returns the target of the receiver at p.
func (r *router) targetOf(p actor.PID) target {
	if p.Node == r.n.id {
		return &localTarget{r: r, p: p}
	}
	return &remoteTarget{r: r, p: p}
}

// localTarget is a receiver on this node: values go into its mailbox, and
// are accepted once there.
type localTarget struct {
	r *router
	p actor.PID
}

func (t *localTarget) pid() actor.PID { return t.p }

// try and block refuse a value for a receiver that is gone without making
// it a dead letter (TrySendManyFrom makes none): it goes to another
// receiver. Only a receiver that stops while block waits for room makes
// one.
func (t *localTarget) try(v any, done func(error)) error {
	if _, err := t.r.n.sys.TrySendManyFrom(actor.PID{}, t.p, []any{v}); err != nil {
		return t.refusal(err)
	}
	t.r.n.stats.Sent(t.r.stats, t.p.Node, 1)
	done(nil) // accepted into the local receiver's buffer
	return nil
}

func (t *localTarget) block(ctx context.Context, v any, done func(error)) error {
	if _, err := t.r.n.sys.TrySendManyFrom(actor.PID{}, t.p, []any{v}); err != nil {
		if !errors.Is(err, actor.ErrFull) {
			return t.refusal(err)
		}
		if err := t.r.n.sys.SendFrom(ctx, actor.PID{}, t.p, v); err != nil {
			return t.refusal(err)
		}
	}
	t.r.n.stats.Sent(t.r.stats, t.p.Node, 1)
	done(nil)
	return nil
}

func (t *localTarget) tryMany(vals []any, out *remoting.Outcomes) (int, error) {
	n, err := t.r.n.sys.TrySendManyFrom(actor.PID{}, t.p, vals)
	t.accepted(vals[:n], out)
	if err != nil {
		err = t.refusal(err)
	}
	return n, err
}

// refusal counts err if it is a gone receiver's refusal, and returns it.
func (t *localTarget) refusal(err error) error {
	if refused(err) {
		t.r.n.stats.localGone.Add(1)
	}
	return err
}

func (t *localTarget) blockMany(ctx context.Context, vals []any, out *remoting.Outcomes) (int, error) {
	if n, err := t.tryMany(vals, out); n > 0 || !errors.Is(err, actor.ErrFull) {
		return n, err
	}
	if err := t.r.n.sys.SendFrom(ctx, actor.PID{}, t.p, vals[0]); err != nil {
		return 0, t.refusal(err)
	}
	t.accepted(vals[:1], out)
	n, _ := t.tryMany(vals[1:], out) // the caller looks again for any left
	return 1 + n, nil
}

// accepted counts vals, accepted into the receiver's buffer, and reports
// their outcome.
func (t *localTarget) accepted(vals []any, out *remoting.Outcomes) {
	if len(vals) == 0 {
		return
	}
	t.r.n.stats.Sent(t.r.stats, t.p.Node, len(vals))
	out.Report(vals, nil)
}

// remoteTarget is a receiver on another node: values go on the node's
// stream to it, within the link's credit, and its node reports whether its
// buffer accepted them.
type remoteTarget struct {
	r *router
	p actor.PID
}

func (t *remoteTarget) pid() actor.PID { return t.p }

func (t *remoteTarget) try(v any, done func(error)) error {
	if err := t.r.n.ep.TrySendTracked(t.p, actor.PID{}, v, done); err != nil {
		return err
	}
	t.r.n.stats.Sent(t.r.stats, t.p.Node, 1)
	return nil
}

func (t *remoteTarget) block(ctx context.Context, v any, done func(error)) error {
	if err := t.r.n.ep.SendTracked(ctx, t.p, actor.PID{}, v, done); err != nil {
		return err
	}
	t.r.n.stats.Sent(t.r.stats, t.p.Node, 1)
	return nil
}

func (t *remoteTarget) tryMany(vals []any, out *remoting.Outcomes) (int, error) {
	n, err := t.r.n.ep.TrySendMany(t.p, actor.PID{}, vals, out)
	t.r.n.stats.Sent(t.r.stats, t.p.Node, n)
	return n, err
}

func (t *remoteTarget) blockMany(ctx context.Context, vals []any, out *remoting.Outcomes) (int, error) {
	n, err := t.r.n.ep.SendMany(ctx, t.p, actor.PID{}, vals, out)
	t.r.n.stats.Sent(t.r.stats, t.p.Node, n)
	return n, err
}
