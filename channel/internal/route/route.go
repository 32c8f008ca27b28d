package route

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

// RetrySlice bounds how long a Router blocks on one busy receiver before
// it looks again for one with free credit.
const RetrySlice = 20 * time.Millisecond

// DefaultBenchFor is how long a Router passes over a receiver that turned
// a value away at once.
const DefaultBenchFor = RetrySlice

// Target is one receiver of a name as a Router hands it values.
type Target interface {
	PID() actor.PID
}

// Registry is where a Router reads the receivers of its name.
type Registry interface {
	// State returns the registry's state now: a value that stays equal
	// (==) for as long as nothing changed.
	State() any
	// Receivers returns the receivers of name in state, which State
	// returned. The Router never modifies the slice.
	Receivers(state any, name string) []registry.Receiver
	// Watch returns a channel told when the receivers of name may have
	// changed; stop ends the watch.
	Watch(name string) (changed <-chan struct{}, stop func())
}

// Config is what a Router needs.
type Config[T Target] struct {
	Name     string
	Registry Registry
	// TargetOf returns the target of the receiver at pid.
	TargetOf func(pid actor.PID) T
	// Life ends every wait of the Router with Closed once it ends: the
	// node's.
	Life context.Context
	// Closed is Hand's error once Life ended; NoReceivers is wrapped in
	// its error when ctx's deadline passes with no receiver at all.
	Closed, NoReceivers error
	// BenchFor is how long a receiver that turned a value away at once is
	// passed over; 0 is DefaultBenchFor.
	BenchFor time.Duration
}

// Router picks, for each value, one receiver of a name. Make it with New.
type Router[T Target] struct {
	cfg  Config[T]
	view atomic.Pointer[view[T]]

	benched atomic.Int32 // len(bench), read without benchM
	benchM  sync.Mutex
	bench   map[actor.PID]time.Time // a passed-over receiver → when to try it again
}

// view is the queue receivers of the name in one registry state, and
// their targets: a value is routed without looking the name up again
// until the registry changes.
type view[T Target] struct {
	state     any
	receivers []registry.Receiver
	targets   []T // one per receiver, in the same order
}

// New returns a Router of cfg.Name.
func New[T Target](cfg Config[T]) *Router[T] {
	if cfg.BenchFor <= 0 {
		cfg.BenchFor = DefaultBenchFor
	}
	return &Router[T]{cfg: cfg}
}

// current returns the queue receivers of the name in the registry's
// current state.
func (r *Router[T]) current() *view[T] {
	st := r.cfg.Registry.State()
	if v := r.view.Load(); v != nil && v.state == st {
		return v
	}
	all := r.cfg.Registry.Receivers(st, r.cfg.Name)
	queue := all // the registry's own slice, never written, unless subscribers are mixed in
	if slices.ContainsFunc(all, func(rc registry.Receiver) bool { return rc.Mode != registry.Queue }) {
		queue = slices.DeleteFunc(slices.Clone(all), func(rc registry.Receiver) bool { return rc.Mode != registry.Queue })
	}
	v := &view[T]{state: st, receivers: queue, targets: make([]T, len(queue))}
	for i, rc := range queue {
		v.targets[i] = r.cfg.TargetOf(rc.PID())
	}
	r.view.Store(v)
	return v
}

// Receivers returns the queue receivers of the name now.
func (r *Router[T]) Receivers() []registry.Receiver { return r.current().receivers }

// Hand hands total values, in order, to receivers of the name, starting at
// the next turn taken from turn. try(t, from) hands t as many of the
// values from the from-th on as t takes without waiting; block does the
// same but may wait, until its ctx ends, for t to take the first. Hand
// returns how many values it handed, and if not all, why the next could
// not be (ctx ended, no receivers, or a failure of the value itself, such
// as the codec refusing it).
func (r *Router[T]) Hand(ctx context.Context, turn *atomic.Uint64, total int,
	try func(t T, from int) (int, error),
	block func(ctx context.Context, t T, from int) (int, error)) (int, error) {
	handed := 0
	for {
		view := r.current()
		receivers, targets := view.receivers, view.targets
		if len(receivers) == 0 {
			if err := r.awaitChange(ctx, receivers, 0); err != nil {
				return handed, err
			}
			continue
		}
		start := int(turn.Add(1))
		first, found := *new(T), false // the first in turn that was not passed over
		for i := range targets {
			t := targets[(start+i)%len(targets)]
			if r.IsBenched(t.PID()) {
				continue
			}
			n, err := try(t, handed)
			handed += n
			if handed == total {
				return handed, nil
			}
			if err != nil && !busy(err) && !Refused(err) {
				return handed, err // encode errors and the like fail the value
			}
			if n == 0 && unavailable(err) {
				r.Bench(t.PID())
				continue
			}
			if !found {
				first, found = t, true
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
		slice, cancel := context.WithTimeout(ctx, RetrySlice)
		n, err := block(slice, first, handed)
		cancel()
		handed += n
		if n == 0 && Refused(err) {
			// Only a refusal: a stream that failed while this waited
			// (ErrNodeLost) is opened again by the next try, which
			// passes the receiver over if that fails at once.
			r.Bench(first.PID())
		}
		switch {
		case handed == total:
			return handed, nil
		case ctx.Err() != nil:
			return handed, fmt.Errorf("channel: send to %q: %w", r.cfg.Name, ctx.Err())
		case err == nil || busy(err) || Refused(err) || errors.Is(err, context.DeadlineExceeded):
			continue // some were handed, or none could be: look again
		default:
			return handed, err
		}
	}
}

// IsBenched reports whether the Router passes over pid for now.
func (r *Router[T]) IsBenched(pid actor.PID) bool {
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

// Bench passes over pid for Config.BenchFor.
func (r *Router[T]) Bench(pid actor.PID) {
	r.benchM.Lock()
	defer r.benchM.Unlock()
	now := time.Now()
	if r.bench == nil {
		r.bench = make(map[actor.PID]time.Time)
	}
	r.pruneLocked(now)
	r.bench[pid] = now.Add(r.cfg.BenchFor)
	r.benched.Store(int32(len(r.bench)))
}

// pruneLocked forgets the receivers whose time is up, listed or not (one
// the registry dropped is never asked about again); benchM is held.
func (r *Router[T]) pruneLocked(now time.Time) {
	for pid, until := range r.bench {
		if !now.Before(until) {
			delete(r.bench, pid)
		}
	}
	r.benched.Store(int32(len(r.bench)))
}

// benchLeft returns how long until the first of receivers — every one
// passed over — may be tried again: at most BenchFor, 0 if one may be
// already.
func (r *Router[T]) benchLeft(receivers []registry.Receiver) time.Duration {
	r.benchM.Lock()
	defer r.benchM.Unlock()
	now := time.Now()
	left := r.cfg.BenchFor
	for _, rc := range receivers {
		until, ok := r.bench[rc.PID()]
		if !ok {
			return 0 // its time was up already
		}
		left = min(left, until.Sub(now))
	}
	return max(left, 0)
}

// awaitChange waits until the name's queue receivers differ from seen
// (subscribers do not count: a send never goes to them), d has passed
// (d > 0), ctx ends or Life ends. Waiting with no receiver at all until
// ctx's deadline is NoReceivers.
func (r *Router[T]) awaitChange(ctx context.Context, seen []registry.Receiver, d time.Duration) error {
	ch, stop := r.cfg.Registry.Watch(r.cfg.Name)
	defer stop()
	if !slices.Equal(r.Receivers(), seen) {
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
			return fmt.Errorf("channel: send to %q: %w: %w", r.cfg.Name, r.cfg.NoReceivers, ctx.Err())
		}
		return fmt.Errorf("channel: send to %q: %w", r.cfg.Name, ctx.Err())
	case <-r.cfg.Life.Done():
		return r.cfg.Closed
	}
}

// Refused reports an error that proves the value was not accepted (the
// receiver had gone or was stopping), so it may go to another receiver
// without risking a duplicate.
func Refused(err error) bool {
	return errors.Is(err, actor.ErrNotFound) || errors.Is(err, actor.ErrStopped)
}

// unavailable reports a receiver that turned a value away because it
// cannot take any now: its actor is gone, or its node is lost or unknown.
func unavailable(err error) bool {
	return Refused(err) || errors.Is(err, remoting.ErrNodeLost) || errors.Is(err, remoting.ErrUnknownNode)
}

// busy reports a receiver that cannot take a value right now.
func busy(err error) bool {
	return errors.Is(err, actor.ErrFull) || errors.Is(err, remoting.ErrNoCredit) ||
		errors.Is(err, remoting.ErrNodeLost) || errors.Is(err, remoting.ErrUnknownNode)
}
