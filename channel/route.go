package channel

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/route"
	"github.com/dchan-io/dchan/channel/internal/tally"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// router picks, for each value, one receiver of a name: the policy is
// package route's (round-robin, each receiver tried without waiting, a
// short wait on one when all are busy, receivers that turn values away
// passed over for a while); the router adds the node's side: its targets,
// its counters, and its life in the node's map of routers.
//
// A send channel's pump routes the bare values that wait in it as a batch
// (routeMany): the turn moves on once per batch, and a receiver takes as
// many of the batch as it has room or credit for, the next in turn the
// rest. So with several receivers free, consecutive values go to one of
// them in runs of up to a batch rather than alternately.
//
// A node has one router per name, shared by the name's send channels and
// SendContext calls (safe for concurrent use): they share what it passes
// over and its view of the receivers. Each send channel takes turns of its
// own, so that its values rotate among the receivers whatever other
// channels of the name send; SendContext calls share one.
type router struct {
	*route.Router[target]
	n     *Node
	name  string
	stats *tally.Counters // the name's
	turn  atomic.Uint64   // SendContext's round-robin; each send channel has its own

	// users counts the send channels and calls using the router now;
	// no one may use it once the sweeper forgot it. uses counts every
	// acquisition. quiet is the sweeper's own (Node.sweep).
	users tally.Holders
	uses  atomic.Uint64
	quiet tally.Quiet
}

// routeRegistry is a router's view of the node's registry replica.
type routeRegistry struct{ n *Node }

func (g routeRegistry) State() any { return g.n.reg.State() }

func (g routeRegistry) Receivers(state any, name string) []registry.Receiver {
	return state.(*registry.State).Receivers(name)
}

func (g routeRegistry) Watch(name string) (<-chan struct{}, func()) { return g.n.reg.Watch(name) }

// acquireRouter returns the node's router for name, for the caller to use
// until it calls the router's release. A router no one uses, and no one
// used for a while, is forgotten (Node.sweep), and a new one made when the
// name is used again.
func (n *Node) acquireRouter(name string) *router {
	for {
		v, ok := n.routers.Load(name)
		if !ok {
			r := newRouter(n, name, route.DefaultBenchFor)
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

// newRouter makes a router for name, holding the name's counters, that
// passes over a receiver that turned a value away for benchFor.
func newRouter(n *Node, name string, benchFor time.Duration) *router {
	r := &router{n: n, name: name, stats: n.stats.Hold(name)}
	r.Router = route.New(route.Config[target]{
		Name: name, Registry: routeRegistry{n}, TargetOf: r.targetOf,
		Life: n.ctx, Closed: ErrClosed, NoReceivers: ErrNoReceivers, BenchFor: benchFor,
	})
	return r
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
	_, err := r.Hand(ctx, turn, 1,
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
	_, err := r.Hand(ctx, turn, 1,
		func(t target, _ int) (int, error) {
			trying(t.PID())
			return t.tryMany(vals, out)
		},
		func(ctx context.Context, t target, _ int) (int, error) {
			trying(t.PID())
			return t.blockMany(ctx, vals, out)
		})
	return err
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
	return r.Hand(ctx, turn, len(vals),
		func(t target, from int) (int, error) { return t.tryMany(vals[from:], out) },
		func(ctx context.Context, t target, from int) (int, error) { return t.blockMany(ctx, vals[from:], out) })
}

// target is one receiver of a name as the router hands it values: the
// mailbox of a receiver on this node, or a receiver on another node
// through the node's stream to it. The router holds one per receiver for
// as long as the registry does not change.
type target interface {
	route.Target
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

func (t *localTarget) PID() actor.PID { return t.p }

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
	n, err := t.r.n.sys.TrySendManyFrom(actor.PID{}, t.p, payloads(vals, out))
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
	if err := t.r.n.sys.SendFrom(ctx, actor.PID{}, t.p, out.Payload(vals[0])); err != nil {
		return 0, t.refusal(err)
	}
	t.accepted(vals[:1], out)
	n, _ := t.tryMany(vals[1:], out) // the caller looks again for any left
	return 1 + n, nil
}

// payloads returns what the receiver gets for vals: vals itself, or, for
// handles, a new slice of their values.
func payloads(vals []any, out *remoting.Outcomes) []any {
	if !out.Wraps() {
		return vals
	}
	ps := make([]any, len(vals))
	for i, v := range vals {
		ps[i] = out.Payload(v)
	}
	return ps
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

func (t *remoteTarget) PID() actor.PID { return t.p }

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
