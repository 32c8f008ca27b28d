package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/supervisor"
)

const waitFor = 10 * time.Second

var errBoom = errors.New("boom")

type events struct {
	mu    sync.Mutex
	list  []string
	added chan struct{}
}

func newEvents() *events { return &events{added: make(chan struct{}, 1)} }

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	e.list = append(e.list, fmt.Sprintf(format, args...))
	e.mu.Unlock()
	select {
	case e.added <- struct{}{}:
	default:
	}
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

func (e *events) count(s string) int {
	n := 0
	for _, x := range e.all() {
		if x == s {
			n++
		}
	}
	return n
}

// waitCount waits until s was recorded at least n times.
func (e *events) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.After(waitFor)
	for e.count(s) < n {
		select {
		case <-e.added:
		case <-deadline:
			t.Fatalf("%q recorded %d times, want %d; events: %v", s, e.count(s), n, e.all())
		}
	}
}

func newSystem(t *testing.T, opts ...actor.Option) *actor.System {
	t.Helper()
	opts = append([]actor.Option{actor.WithLogger(zaptest.NewLogger(t))}, opts...)
	s, err := actor.NewSystem(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		assert.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// worker records lifecycle events under name and panics on "boom" messages.
func worker(ev *events, name string) actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				ev.add("%s started", name)
			case actor.Restarting:
				ev.add("%s restarting", name)
			case actor.Stopped:
				ev.add("%s stopped", name)
			case string:
				if m == "boom" {
					panic(errBoom)
				}
				ev.add("%s got %s", name, m)
			}
		})
	}
}

func must(s *supervisor.Strategy, err error) *supervisor.Strategy {
	if err != nil {
		panic(err)
	}
	return s
}

func TestRestartKeepsQueuedMessages(t *testing.T) {
	ev := newEvents()
	strategy := must(supervisor.OneForOne())
	s := newSystem(t, actor.WithGuardian(strategy))
	gate := make(chan struct{})
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				ev.add("started")
			case string:
				if m == "boom" {
					<-gate // hold the failing message until the rest is queued
					panic(errBoom)
				}
				ev.add("got %s", m)
			}
		})
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Send(ctx, pid, "boom"))
	for _, m := range []string{"a", "b", "c"} {
		require.NoError(t, s.Send(ctx, pid, m))
	}
	close(gate)
	ev.waitCount(t, "got c", 1)
	assert.Equal(t, []string{"started", "started", "got a", "got b", "got c"}, ev.all(),
		"the new instance processes the queued messages; only the failing one is lost")
}

func TestRestartLimitWithinWindowStopsActor(t *testing.T) {
	ev := newEvents()
	clock := newManualClock()
	strategy := must(supervisor.OneForOne(
		supervisor.WithMaxRestarts(3, time.Minute), supervisor.WithClock(clock)))
	s := newSystem(t, actor.WithGuardian(strategy))
	pid, err := s.Spawn(worker(ev, "w"))
	require.NoError(t, err)
	ctx := context.Background()

	// Failures spread wider than the window never hit the limit.
	for i := 0; i < 5; i++ {
		require.NoError(t, s.Send(ctx, pid, "boom"))
		ev.waitCount(t, "w restarting", i+1)
		clock.Advance(2 * time.Minute)
	}
	// Four failures within one window: the fourth stops the actor.
	for i := 0; i < 4; i++ {
		require.NoError(t, s.Send(ctx, pid, "boom"))
		if i < 3 {
			ev.waitCount(t, "w restarting", 6+i)
		}
	}
	ev.waitCount(t, "w stopped", 1)
	assert.Equal(t, 8, ev.count("w restarting"))
	require.Eventually(t, func() bool {
		return errors.Is(s.Send(ctx, pid, "x"), actor.ErrNotFound)
	}, waitFor, time.Millisecond)
}

func TestBackoffDelaysWithinBounds(t *testing.T) {
	b := supervisor.Backoff{Min: 10 * time.Millisecond, Max: time.Second, Jitter: 0.2}
	for attempt := 1; attempt <= 20; attempt++ {
		base := min(b.Min<<(attempt-1), b.Max)
		lo := min(time.Duration(float64(base)*(1-b.Jitter)), b.Max)
		hi := min(time.Duration(float64(base)*(1+b.Jitter)), b.Max)
		for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999999} {
			d := b.Delay(attempt, r)
			assert.GreaterOrEqual(t, d, lo, "attempt %d r %v", attempt, r)
			assert.LessOrEqual(t, d, hi, "attempt %d r %v", attempt, r)
		}
	}
	assert.Equal(t, time.Second, b.Delay(1000, 0.5), "huge attempts cap at Max without overflow")
	assert.Zero(t, supervisor.Backoff{}.Delay(3, 0.5), "the zero Backoff restarts at once")
}

func TestBackoffDelaysRestartUntilClockAdvances(t *testing.T) {
	ev := newEvents()
	clock := newManualClock()
	b := supervisor.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.5}
	strategy := must(supervisor.OneForOne(
		supervisor.WithBackoff(b), supervisor.WithClock(clock), supervisor.WithMaxRestarts(0, 0)))
	s := newSystem(t, actor.WithGuardian(strategy))
	pid, err := s.Spawn(worker(ev, "w"))
	require.NoError(t, err)
	ctx := context.Background()
	for attempt := 1; attempt <= 4; attempt++ {
		require.NoError(t, s.Send(ctx, pid, "boom"))
		require.Eventually(t, func() bool { return len(clock.pending()) == 1 }, waitFor, time.Millisecond)
		d := clock.pending()[0]
		base := b.Min << (attempt - 1)
		assert.GreaterOrEqual(t, d, base/2, "attempt %d", attempt)
		assert.LessOrEqual(t, d, base*3/2, "attempt %d", attempt)
		assert.Equal(t, attempt-1, ev.count("w restarting"), "no restart before the delay elapses")
		clock.Advance(d - time.Nanosecond)
		assert.Equal(t, attempt-1, ev.count("w restarting"))
		clock.Advance(time.Nanosecond)
		ev.waitCount(t, "w restarting", attempt)
	}
}

func TestAllForOneRestartsSiblings(t *testing.T) {
	ev := newEvents()
	strategy := must(supervisor.AllForOne())
	s := newSystem(t)
	children := make(chan []actor.PID, 1)
	_, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); ok {
				var pids []actor.PID
				for _, name := range []string{"a", "b", "c"} {
					pid, err := c.SpawnNamed(name, worker(ev, name))
					require.NoError(t, err)
					pids = append(pids, pid)
				}
				children <- pids
			}
		})
	}, actor.WithSupervisor(strategy))
	require.NoError(t, err)
	pids := <-children
	require.NoError(t, s.Send(context.Background(), pids[1], "boom"))
	for _, name := range []string{"a", "b", "c"} {
		ev.waitCount(t, name+" restarting", 1)
		ev.waitCount(t, name+" started", 2)
	}
}

func TestOneForOneRestartsOnlyTheFailedChild(t *testing.T) {
	ev := newEvents()
	strategy := must(supervisor.OneForOne())
	s := newSystem(t)
	children := make(chan []actor.PID, 1)
	_, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); ok {
				a, _ := c.SpawnNamed("a", worker(ev, "a"))
				b, _ := c.SpawnNamed("b", worker(ev, "b"))
				children <- []actor.PID{a, b}
			}
		})
	}, actor.WithSupervisor(strategy))
	require.NoError(t, err)
	pids := <-children
	ctx := context.Background()
	require.NoError(t, s.Send(ctx, pids[1], "boom"))
	require.NoError(t, s.Send(ctx, pids[1], "after"))
	ev.waitCount(t, "b got after", 1)
	require.NoError(t, s.Send(ctx, pids[0], "ping"))
	ev.waitCount(t, "a got ping", 1)
	assert.Equal(t, 0, ev.count("a restarting"))
	assert.Equal(t, 1, ev.count("b restarting"))
}

type recordingStrategy struct {
	failures chan actor.Failure
}

func (r recordingStrategy) HandleFailure(s actor.Supervisor, f actor.Failure) {
	r.failures <- f
	s.StopChildren(f.Child)
}

func TestEscalateReachesTheParent(t *testing.T) {
	ev := newEvents()
	top := recordingStrategy{failures: make(chan actor.Failure, 1)}
	escalate := must(supervisor.OneForOne(supervisor.WithDecider(func(error) supervisor.Directive {
		return supervisor.Escalate
	})))
	s := newSystem(t)
	childPID := make(chan actor.PID, 1)
	parentPID := make(chan actor.PID, 1)
	// grandparent (strategy: record) → parent (strategy: escalate) → child.
	_, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(actor.Started); !ok {
				return
			}
			p, err := c.SpawnNamed("parent", func() actor.Actor {
				return actor.ReceiveFunc(func(c *actor.Context) {
					if _, ok := c.Message().(actor.Started); ok {
						ch, err := c.SpawnNamed("child", worker(ev, "child"))
						require.NoError(t, err)
						childPID <- ch
					}
				})
			}, actor.WithSupervisor(escalate))
			require.NoError(t, err)
			parentPID <- p
		})
	}, actor.WithSupervisor(top))
	require.NoError(t, err)
	parent, child := <-parentPID, <-childPID
	require.NoError(t, s.Send(context.Background(), child, "boom"))
	select {
	case f := <-top.failures:
		assert.Equal(t, parent, f.Child, "the grandparent sees its child, the parent, fail")
		assert.ErrorIs(t, f.Reason, errBoom, "with the original reason")
	case <-time.After(waitFor):
		t.Fatal("the escalated failure never reached the grandparent")
	}
	ev.waitCount(t, "child stopped", 1)
}

func TestResumeKeepsInstanceState(t *testing.T) {
	strategy := must(supervisor.OneForOne(supervisor.WithDecider(func(error) supervisor.Directive {
		return supervisor.Resume
	})))
	s := newSystem(t, actor.WithGuardian(strategy))
	type counter struct{ n int }
	pid, err := s.Spawn(func() actor.Actor {
		st := &counter{}
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch c.Message() {
			case "inc":
				st.n++
			case "boom":
				panic("boom")
			case "get":
				_ = c.Respond(st.n)
			}
		})
	})
	require.NoError(t, err)
	ctx := context.Background()
	for _, m := range []string{"inc", "inc", "boom", "inc"} {
		require.NoError(t, s.Send(ctx, pid, m))
	}
	v, err := s.Request(ctx, pid, "get")
	require.NoError(t, err)
	assert.Equal(t, 3, v, "resume keeps the instance and its state")
}

func TestStopDirectiveStopsTheChild(t *testing.T) {
	ev := newEvents()
	strategy := must(supervisor.OneForOne(supervisor.WithDecider(func(reason error) supervisor.Directive {
		if errors.Is(reason, errBoom) {
			return supervisor.Stop
		}
		return supervisor.Restart
	})))
	s := newSystem(t, actor.WithGuardian(strategy))
	pid, err := s.Spawn(worker(ev, "w"))
	require.NoError(t, err)
	require.NoError(t, s.Send(context.Background(), pid, "boom"))
	ev.waitCount(t, "w stopped", 1)
	assert.Zero(t, ev.count("w restarting"))
}

func TestStrategyValidatesOptions(t *testing.T) {
	for name, opts := range map[string][]supervisor.Option{
		"nil decider":      {supervisor.WithDecider(nil)},
		"nil clock":        {supervisor.WithClock(nil)},
		"negative max":     {supervisor.WithMaxRestarts(-1, time.Second)},
		"zero window":      {supervisor.WithMaxRestarts(3, 0)},
		"max below min":    {supervisor.WithBackoff(supervisor.Backoff{Min: time.Second, Max: time.Millisecond})},
		"jitter above one": {supervisor.WithBackoff(supervisor.Backoff{Min: 1, Max: 2, Jitter: 1.5})},
	} {
		_, err := supervisor.OneForOne(opts...)
		assert.ErrorIs(t, err, supervisor.ErrInvalidOption, name)
	}
}

func TestDirectiveString(t *testing.T) {
	assert.Equal(t, "restart", supervisor.Restart.String())
	assert.Equal(t, "escalate", supervisor.Escalate.String())
	assert.Equal(t, "directive(9)", supervisor.Directive(9).String())
}
