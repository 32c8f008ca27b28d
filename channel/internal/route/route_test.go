package route

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

var (
	errClosed      = errors.New("closed")
	errNoReceivers = errors.New("no receivers")
)

// fakeRegistry lists receivers by name; each change is a new state.
type fakeRegistry struct {
	mu       sync.Mutex
	state    *map[string][]registry.Receiver
	watchers []chan struct{}
	states   atomic.Int32 // Receivers calls: views built
}

func newFakeRegistry() *fakeRegistry {
	m := map[string][]registry.Receiver{}
	return &fakeRegistry{state: &m}
}

func (g *fakeRegistry) State() any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

func (g *fakeRegistry) Receivers(state any, name string) []registry.Receiver {
	g.states.Add(1)
	return (*state.(*map[string][]registry.Receiver))[name]
}

func (g *fakeRegistry) Watch(string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	g.mu.Lock()
	g.watchers = append(g.watchers, ch)
	g.mu.Unlock()
	return ch, func() {}
}

// set makes name's receivers ids (queue receivers on node "n", or
// "b:"-prefixed broadcast ones) in a new state.
func (g *fakeRegistry) set(name string, ids ...string) {
	var rs []registry.Receiver
	for _, id := range ids {
		mode := registry.Queue
		if len(id) > 2 && id[:2] == "b:" {
			id, mode = id[2:], registry.Broadcast
		}
		rs = append(rs, registry.Receiver{Node: "n", ActorID: id, Mode: mode})
	}
	g.mu.Lock()
	m := map[string][]registry.Receiver{}
	for k, v := range *g.state {
		m[k] = v
	}
	m[name] = rs
	g.state = &m
	ws := g.watchers
	g.watchers = nil
	g.mu.Unlock()
	for _, w := range ws {
		w <- struct{}{}
	}
}

// target is a fake receiver: try takes values while it has room, and
// fails with err (if set) otherwise.
type target struct {
	id       string
	room     atomic.Int32
	err      error
	blockErr error
	got      []int // the from of each value taken
	mu       sync.Mutex
}

func (t *target) PID() actor.PID { return actor.PID{Node: "n", ID: t.id} }

// fixture is a router over a fake registry and fake targets.
type fixture struct {
	reg     *fakeRegistry
	targets map[string]*target
	r       *Router[*target]
	turn    atomic.Uint64
	tried   []string
	total   atomic.Int32 // of the current hand
	mu      sync.Mutex
}

func newFixture(benchFor time.Duration, life context.Context) *fixture {
	f := &fixture{reg: newFakeRegistry(), targets: map[string]*target{}}
	f.r = New(Config[*target]{
		Name: "orders", Registry: f.reg, Life: life, Closed: errClosed, NoReceivers: errNoReceivers, BenchFor: benchFor,
		TargetOf: func(pid actor.PID) *target {
			f.mu.Lock()
			defer f.mu.Unlock()
			t, ok := f.targets[pid.ID]
			if !ok {
				t = &target{id: pid.ID}
				f.targets[pid.ID] = t
			}
			return t
		},
	})
	return f
}

// add makes the target of receiver id, with room for that many values,
// and err for any more (nil: busy).
func (f *fixture) add(id string, room int32, err error) *target {
	t := &target{id: id, err: err}
	t.room.Store(room)
	f.mu.Lock()
	f.targets[id] = t
	f.mu.Unlock()
	return t
}

func (f *fixture) triedOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tried {
		if t == id {
			n++
		}
	}
	return n
}

func (f *fixture) try(t *target, from int) (int, error) {
	f.mu.Lock()
	f.tried = append(f.tried, t.id)
	f.mu.Unlock()
	// As many as it has room for.
	if k := min(int(t.room.Load()), int(f.total.Load())-from); k > 0 {
		t.room.Add(-int32(k))
		t.mu.Lock()
		for i := range k {
			t.got = append(t.got, from+i)
		}
		t.mu.Unlock()
		return k, nil
	}
	if t.err != nil {
		return 0, t.err
	}
	return 0, actor.ErrFull
}

// block is try that waits for room, or returns blockErr if set.
func (f *fixture) block(ctx context.Context, t *target, from int) (int, error) {
	if n, err := f.try(t, from); n > 0 || !errors.Is(err, actor.ErrFull) {
		return n, err
	}
	if t.blockErr != nil {
		return 0, t.blockErr
	}
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if n, err := f.try(t, from); n > 0 {
			return n, err
		}
	}
}

func (f *fixture) hand(ctx context.Context, total int) (int, error) {
	f.total.Store(int32(total))
	return f.r.Hand(ctx, &f.turn, total, f.try, f.block)
}

func (t *target) taken() []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int(nil), t.got...)
}

func TestRoundRobin(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	for _, id := range []string{"a", "b", "c"} {
		f.add(id, 100, nil)
	}
	f.reg.set("orders", "a", "b", "c")
	for range 6 {
		n, err := f.hand(context.Background(), 1)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	for _, id := range []string{"a", "b", "c"} {
		assert.Len(t, f.targets[id].taken(), 2, id)
	}
}

// TestABatchSpillsToTheNextInTurn: a receiver takes as many of a batch as
// it has room for, the next in turn the rest, in order.
func TestABatchSpillsToTheNextInTurn(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	a, b := f.add("a", 2, nil), f.add("b", 10, nil)
	f.reg.set("orders", "a", "b")
	f.turn.Store(1) // the next turn starts at a
	n, err := f.hand(context.Background(), 5)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.Equal(t, []int{0, 1}, a.taken())
	assert.Equal(t, []int{2, 3, 4}, b.taken())
}

// TestAReceiverThatTurnsValuesAwayIsPassedOver: a gone receiver is asked
// once, not once per value, while it is benched.
func TestAReceiverThatTurnsValuesAwayIsPassedOver(t *testing.T) {
	for _, err := range []error{actor.ErrNotFound, actor.ErrStopped, remoting.ErrNodeLost, remoting.ErrUnknownNode} {
		t.Run(err.Error(), func(t *testing.T) {
			f := newFixture(time.Minute, context.Background())
			f.add("ghost", 0, fmt.Errorf("test: %w", err))
			live := f.add("live", 100, nil)
			f.reg.set("orders", "ghost", "live")
			for range 100 {
				_, err := f.hand(context.Background(), 1)
				require.NoError(t, err)
			}
			assert.Len(t, live.taken(), 100)
			assert.Equal(t, 1, f.triedOf("ghost"))
			assert.True(t, f.r.IsBenched(actor.PID{Node: "n", ID: "ghost"}))
		})
	}
}

// TestWithEveryReceiverBenchedItWaitsForAChange: a receiver that
// registers meanwhile takes the value at once, without waiting out the
// bench.
func TestWithEveryReceiverBenchedItWaitsForAChange(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	f.add("ghost", 0, actor.ErrNotFound)
	live := f.add("live", 1, nil)
	f.reg.set("orders", "ghost")
	done := make(chan error, 1)
	go func() {
		_, err := f.hand(context.Background(), 1)
		done <- err
	}()
	require.Eventually(t, func() bool { return f.triedOf("ghost") == 1 }, 5*time.Second, time.Millisecond)
	f.reg.set("orders", "ghost", "live")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the router waited out the bench (a minute)")
	}
	assert.Equal(t, []int{0}, live.taken())
	assert.Equal(t, 1, f.triedOf("ghost"))
}

func TestWaitsEnd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		receivers []string
		endLife   bool
		want      []error
	}{
		{name: "no receivers until the deadline", want: []error{errNoReceivers, context.DeadlineExceeded}},
		{name: "only a gone one until the deadline", receivers: []string{"ghost"}, want: []error{context.DeadlineExceeded}},
		{name: "the life ends", endLife: true, want: []error{errClosed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			life, end := context.WithCancel(context.Background())
			defer end()
			f := newFixture(time.Minute, life)
			f.add("ghost", 0, actor.ErrNotFound)
			f.reg.set("orders", tc.receivers...)
			timeout := 30 * time.Millisecond
			if tc.endLife {
				timeout = time.Minute
				time.AfterFunc(10*time.Millisecond, end)
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			n, err := f.hand(ctx, 1)
			assert.Zero(t, n)
			for _, w := range tc.want {
				assert.ErrorIs(t, err, w)
			}
			if !tc.endLife {
				assert.ErrorContains(t, err, `channel: send to "orders"`)
			}
		})
	}
}

// TestAValueThatCannotGoFailsAlone: an error of the value itself (not of
// the receiver) ends Hand, and benches no one.
func TestAValueThatCannotGoFailsAlone(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	f.add("a", 0, remoting.ErrEncode)
	f.reg.set("orders", "a")
	n, err := f.hand(context.Background(), 3)
	assert.Zero(t, n)
	assert.ErrorIs(t, err, remoting.ErrEncode)
	assert.False(t, f.r.IsBenched(actor.PID{Node: "n", ID: "a"}))
}

// TestBlockBenchesOnlyOnARefusal: a receiver that refuses while the
// router waits on it is passed over; one whose stream failed meanwhile is
// tried again at once.
func TestBlockBenchesOnlyOnARefusal(t *testing.T) {
	for _, tc := range []struct {
		err     error
		benched bool
	}{
		{actor.ErrNotFound, true},
		{actor.ErrStopped, true},
		{remoting.ErrNodeLost, false},
		{context.DeadlineExceeded, false},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			f := newFixture(time.Minute, context.Background())
			a := f.add("a", 0, nil)
			a.blockErr = tc.err
			f.reg.set("orders", "a")
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, _ = f.hand(ctx, 1)
			assert.Equal(t, tc.benched, f.r.IsBenched(a.PID()))
		})
	}
}

// TestABusyReceiverIsWaitedOnThenLookedAtAgain: with everyone busy, the
// router waits on one and hands the value once it has room.
func TestABusyReceiverIsWaitedOn(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	a := f.add("a", 0, nil)
	f.reg.set("orders", "a")
	time.AfterFunc(2*RetrySlice, func() { a.room.Store(1) })
	n, err := f.hand(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.False(t, f.r.IsBenched(a.PID()))
}

func TestSubscribersAreNoQueueReceivers(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	f.reg.set("orders", "b:sub", "q1", "b:sub2", "q2")
	var ids []string
	for _, rc := range f.r.Receivers() {
		ids = append(ids, rc.ActorID)
	}
	assert.Equal(t, []string{"q1", "q2"}, ids)
}

// TestTheViewIsKeptUntilTheRegistryChanges: the name is looked up once
// per registry state, not per value.
func TestTheViewIsKeptUntilTheRegistryChanges(t *testing.T) {
	f := newFixture(time.Minute, context.Background())
	f.add("a", 100, nil)
	f.reg.set("orders", "a")
	for range 10 {
		_, err := f.hand(context.Background(), 1)
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), f.reg.states.Load())
	f.reg.set("orders", "a")
	_, err := f.hand(context.Background(), 1)
	require.NoError(t, err)
	assert.Equal(t, int32(2), f.reg.states.Load())
}

func TestABenchRunsOut(t *testing.T) {
	f := newFixture(20*time.Millisecond, context.Background())
	pid := actor.PID{Node: "n", ID: "a"}
	assert.False(t, f.r.IsBenched(pid))
	f.r.Bench(pid)
	assert.True(t, f.r.IsBenched(pid))
	require.Eventually(t, func() bool { return !f.r.IsBenched(pid) }, 5*time.Second, time.Millisecond)
	f.reg.set("orders", "a")
	f.r.Bench(pid)
	assert.Positive(t, f.r.benchLeft(f.r.Receivers()))
	assert.LessOrEqual(t, f.r.benchLeft(f.r.Receivers()), 20*time.Millisecond)
}
