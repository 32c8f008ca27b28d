package actor_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/actor"
)

const waitFor = 10 * time.Second

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

// log is a concurrency-safe event recorder.
type log struct {
	mu     sync.Mutex
	events []any
	added  chan struct{}
}

func newLog() *log { return &log{added: make(chan struct{}, 1)} }

func (l *log) add(e any) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
}

func (l *log) all() []any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]any(nil), l.events...)
}

// waitUntil polls cond until it holds or the deadline passes.
func (l *log) waitUntil(t *testing.T, cond func([]any) bool) []any {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		ev := l.all()
		if cond(ev) {
			return ev
		}
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("condition not met; events: %v", ev)
		}
	}
}

func hasLen(n int) func([]any) bool { return func(ev []any) bool { return len(ev) >= n } }

func contains(x any) func([]any) bool {
	return func(ev []any) bool {
		for _, e := range ev {
			if e == x {
				return true
			}
		}
		return false
	}
}

type msg struct {
	Sender int
	Seq    int
}

func TestNewSystemValidatesOptions(t *testing.T) {
	_, err := actor.NewSystem(actor.WithNode(""))
	assert.ErrorIs(t, err, actor.ErrInvalidOption)
	_, err = actor.NewSystem(actor.WithLogger(nil))
	assert.ErrorIs(t, err, actor.ErrInvalidOption)
	_, err = actor.NewSystem(actor.WithTrimAfter(0))
	assert.ErrorIs(t, err, actor.ErrInvalidOption)
	s := newSystem(t)
	_, err = s.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) }, actor.WithMailboxSize(0))
	assert.ErrorIs(t, err, actor.ErrInvalidOption)
	_, err = s.Spawn(nil)
	assert.ErrorIs(t, err, actor.ErrInvalidOption)
}

func TestSendFIFOPerSender(t *testing.T) {
	const senders, each = 4, 3000
	s := newSystem(t)
	var mu sync.Mutex
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	var bad atomic.Int64
	done := make(chan struct{})
	var got int
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			m, ok := c.Message().(msg)
			if !ok {
				return
			}
			mu.Lock()
			if m.Seq != last[m.Sender]+1 {
				bad.Add(1)
			}
			last[m.Sender] = m.Seq
			got++
			if got == senders*each {
				close(done)
			}
			mu.Unlock()
		})
	}, actor.WithMailboxSize(16))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for snd := 0; snd < senders; snd++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				if !assert.NoError(t, s.Send(context.Background(), pid, msg{snd, i})) {
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("not all messages arrived")
	}
	assert.Zero(t, bad.Load(), "messages out of order within a sender")
}

func TestSendBlocksWhileMailboxFullAndResumes(t *testing.T) {
	s := newSystem(t)
	gate := make(chan struct{})
	var processed atomic.Int32
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(int); ok {
				<-gate
				processed.Add(1)
			}
		})
	}, actor.WithMailboxSize(1))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Send(ctx, pid, 1)) // taken by the actor, blocks on gate
	require.Eventually(t, func() bool { return s.Send(ctx, pid, 2) == nil }, waitFor, time.Millisecond)

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Send(short, pid, 3), context.DeadlineExceeded, "a full mailbox must block the sender")

	sent := make(chan error, 1)
	go func() { sent <- s.Send(ctx, pid, 3) }()
	gate <- struct{}{}
	require.NoError(t, <-sent)
	close(gate)
	require.Eventually(t, func() bool { return processed.Load() == 3 }, waitFor, time.Millisecond)
}

func TestLifecycleOrder(t *testing.T) {
	s := newSystem(t)
	l := newLog()
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) { l.add(c.Message()) })
	})
	require.NoError(t, err)
	require.NoError(t, s.Send(context.Background(), pid, "hello"))
	require.NoError(t, s.Stop(context.Background(), pid))
	assert.Equal(t, []any{actor.Started{}, "hello", actor.Stopping{}, actor.Stopped{}}, l.all())
}

func TestStopProcessesQueuedMessagesThenStops(t *testing.T) {
	var dead atomic.Int32
	s := newSystem(t, actor.WithDeadLetterHandler(func(actor.DeadLetter) { dead.Add(1) }))
	gate := make(chan struct{})
	l := newLog()
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if v, ok := c.Message().(int); ok {
				if v == 0 {
					<-gate
				}
				l.add(v)
			}
		})
	})
	require.NoError(t, err)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		require.NoError(t, s.Send(ctx, pid, i))
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(ctx, pid) }()
	accepted := []any{0, 1, 2, 3, 4, 5}
	require.Eventually(t, func() bool {
		err := s.Send(ctx, pid, 99)
		if err == nil { // raced ahead of Stop: accepted, so it must be processed
			accepted = append(accepted, 99)
		}
		return errors.Is(err, actor.ErrStopped)
	}, waitFor, time.Millisecond, "a stopping actor must refuse new messages")
	close(gate)
	require.NoError(t, <-stopped)
	assert.Equal(t, accepted, l.all(), "graceful stop processes everything it accepted")
	assert.ErrorIs(t, s.Send(ctx, pid, 100), actor.ErrNotFound)
	assert.Positive(t, dead.Load())
}

func TestPoisonOvertakesQueuedMessages(t *testing.T) {
	var mu sync.Mutex
	var dead []any
	s := newSystem(t, actor.WithDeadLetterHandler(func(d actor.DeadLetter) {
		mu.Lock()
		dead = append(dead, d.Message)
		mu.Unlock()
	}))
	inFirst := make(chan struct{})
	gate := make(chan struct{})
	l := newLog()
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			l.add(c.Message())
			if c.Message() == 0 {
				close(inFirst)
				<-gate
			}
		})
	})
	require.NoError(t, err)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, s.Send(ctx, pid, i))
	}
	<-inFirst
	poisoned := make(chan error, 1)
	go func() { poisoned <- s.Poison(ctx, pid) }()
	require.Eventually(t, func() bool {
		return errors.Is(s.Send(ctx, pid, 99), actor.ErrStopped)
	}, waitFor, time.Millisecond)
	close(gate)
	require.NoError(t, <-poisoned)
	assert.Equal(t, []any{actor.Started{}, 0, actor.Stopping{}, actor.Stopped{}}, l.all(),
		"the stop (a system message) must overtake the queued user messages")
	mu.Lock()
	defer mu.Unlock()
	assert.Subset(t, dead, []any{1, 2, 3, 4}, "queued messages go to dead letters, not nowhere")
}

func TestRequestReturnsReply(t *testing.T) {
	s := newSystem(t)
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if n, ok := c.Message().(int); ok {
				_ = c.Respond(n * 2)
			}
		})
	})
	require.NoError(t, err)
	v, err := s.Request(context.Background(), pid, 21)
	require.NoError(t, err)
	assert.Equal(t, 42, v)
}

func TestRequestTimeoutReturnsDeadlineExceededAndLateReplyGoesToDeadLetters(t *testing.T) {
	dead := make(chan actor.DeadLetter, 4)
	s := newSystem(t, actor.WithDeadLetterHandler(func(d actor.DeadLetter) { dead <- d }))
	release := make(chan struct{})
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(string); ok {
				<-release
				_ = c.Respond("late")
			}
		})
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = s.Request(ctx, pid, "ping")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	select {
	case d := <-dead:
		assert.Equal(t, "late", d.Message)
		assert.Equal(t, pid, d.From)
		assert.ErrorIs(t, d.Reason, actor.ErrNotFound)
	case <-time.After(waitFor):
		t.Fatal("late reply did not reach dead letters")
	}
	assert.EqualValues(t, 1, s.DeadLetters())
}

func TestWatchDeliversTerminated(t *testing.T) {
	s := newSystem(t)
	target, err := s.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) })
	require.NoError(t, err)
	l := newLog()
	_, err = s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				require.NoError(t, c.Watch(target))
				l.add("watching")
			case actor.Terminated:
				l.add(m)
			}
		})
	})
	require.NoError(t, err)
	l.waitUntil(t, contains("watching"))
	require.NoError(t, s.Stop(context.Background(), target))
	l.waitUntil(t, contains(actor.Terminated{PID: target}))
}

func TestWatchOfStoppedActorDeliversTerminatedAtOnce(t *testing.T) {
	s := newSystem(t)
	gone := actor.PID{Node: s.Node(), ID: "never-was"}
	l := newLog()
	_, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				_ = c.Watch(gone)
			case actor.Terminated:
				l.add(m)
			}
		})
	})
	require.NoError(t, err)
	l.waitUntil(t, contains(actor.Terminated{PID: gone}))
}

func TestShutdownStopsChildrenBeforeParents(t *testing.T) {
	s, err := actor.NewSystem(actor.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	l := newLog()
	recorder := func(name string, children int) actor.Producer {
		return func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context) {
				switch c.Message().(type) {
				case actor.Started:
					for i := 0; i < children; i++ {
						_, err := c.SpawnNamed(name+string(rune('a'+i)), func() actor.Actor {
							return actor.ReceiveFunc(func(c *actor.Context) {
								if _, ok := c.Message().(actor.Stopped); ok {
									l.add("child stopped")
								}
							})
						})
						require.NoError(t, err)
					}
					l.add("started")
				case actor.Stopped:
					l.add("parent stopped")
				}
			})
		}
	}
	_, err = s.SpawnNamed("p1", recorder("p1", 3))
	require.NoError(t, err)
	l.waitUntil(t, contains("started"))
	require.NoError(t, s.Shutdown(context.Background()))
	ev := l.all()
	require.Len(t, ev, 5)
	assert.Equal(t, "parent stopped", ev[4], "children must stop before their parent: %v", ev)
}

func TestShutdownTwiceIsSafeAndLeakFree(t *testing.T) {
	s, err := actor.NewSystem()
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		_, err := s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context) {
				if _, ok := c.Message().(actor.Started); ok {
					_, _ = c.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) })
				}
			})
		})
		require.NoError(t, err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Go(func() {
			assert.NoError(t, s.Shutdown(ctx))
		})
	}
	wg.Wait()
	assert.NoError(t, s.Shutdown(ctx))
	_, err = s.Spawn(func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) })
	assert.ErrorIs(t, err, actor.ErrShutdown)
	// goleak.VerifyTestMain checks that no goroutine outlives the test.
}

func TestShutdownRespectsContextWithStuckActor(t *testing.T) {
	s, err := actor.NewSystem()
	require.NoError(t, err)
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(string); ok {
				<-c.Context().Done() // honours its context, as blocking work should
			}
		})
	})
	require.NoError(t, err)
	require.NoError(t, s.Send(context.Background(), pid, "block"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The forced phase cancelled the actor's context: a second call completes.
	require.NoError(t, s.Shutdown(context.Background()))
}

func TestSendToUnknownPIDGoesToDeadLetters(t *testing.T) {
	s := newSystem(t)
	err := s.Send(context.Background(), actor.PID{Node: s.Node(), ID: "nobody"}, "x")
	assert.ErrorIs(t, err, actor.ErrNotFound)
	assert.EqualValues(t, 1, s.DeadLetters())
}

func TestSpawnNamedRejectsDuplicateAndInvalidNames(t *testing.T) {
	s := newSystem(t)
	noop := func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) }
	pid, err := s.SpawnNamed("orders", noop)
	require.NoError(t, err)
	assert.Equal(t, actor.PID{Node: "local", ID: "orders"}, pid)
	_, err = s.SpawnNamed("orders", noop)
	assert.ErrorIs(t, err, actor.ErrNameTaken)
	for _, bad := range []string{"", "$x", "a/b"} {
		_, err = s.SpawnNamed(bad, noop)
		assert.ErrorIs(t, err, actor.ErrInvalidName, "%q", bad)
	}
	require.NoError(t, s.Stop(context.Background(), pid))
	_, err = s.SpawnNamed("orders", noop)
	assert.NoError(t, err, "a name is free again once its actor stopped")
}

func TestTwoSystemsAreIndependent(t *testing.T) {
	a := newSystem(t, actor.WithNode("a"))
	b := newSystem(t, actor.WithNode("b"))
	noop := func() actor.Actor { return actor.ReceiveFunc(func(*actor.Context) {}) }
	pa, err := a.SpawnNamed("x", noop)
	require.NoError(t, err)
	pb, err := b.SpawnNamed("x", noop)
	require.NoError(t, err)
	assert.NotEqual(t, pa, pb)
	assert.ErrorIs(t, a.Send(context.Background(), pb, 1), actor.ErrNoRemote)
	require.NoError(t, a.Shutdown(context.Background()))
	assert.NoError(t, b.Send(context.Background(), pb, 1), "shutting a down must not touch b")
}

type recordingRemote struct {
	mu   sync.Mutex
	sent []actor.PID
}

func (r *recordingRemote) Send(_ context.Context, to, _ actor.PID, _ any) error {
	r.mu.Lock()
	r.sent = append(r.sent, to)
	r.mu.Unlock()
	return nil
}

func TestSendToOtherNodeGoesThroughRemote(t *testing.T) {
	s := newSystem(t, actor.WithNode("n1"))
	r := &recordingRemote{}
	s.SetRemote(r)
	far := actor.PID{Node: "n2", ID: "orders"}
	require.NoError(t, s.Send(context.Background(), far, "hi"))
	assert.Equal(t, []actor.PID{far}, r.sent)
}

func TestPanicIsRecoveredAndActorRestartedByDefault(t *testing.T) {
	s := newSystem(t)
	l := newLog()
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started, actor.Restarting:
				l.add(m)
			case string:
				if m == "boom" {
					panic("boom")
				}
				l.add(m)
			}
		})
	})
	require.NoError(t, err)
	require.NoError(t, s.Send(context.Background(), pid, "boom"))
	require.NoError(t, s.Send(context.Background(), pid, "after"))
	ev := l.waitUntil(t, contains("after"))
	assert.Equal(t, []any{actor.Started{}, actor.Restarting{}, actor.Started{}, "after"}, ev)
}

func TestThousandActorsThousandMessagesNoLossNoDuplicate(t *testing.T) {
	const actors, perActor, senders = 1000, 1000, 4
	s := newSystem(t)
	type counter struct {
		seen [perActor]bool
		n    int
		dup  int
	}
	counters := make([]*counter, actors)
	pids := make([]actor.PID, actors)
	var finished sync.WaitGroup
	finished.Add(actors)
	for i := range pids {
		c := &counter{}
		counters[i] = c
		var err error
		pids[i], err = s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(ctx *actor.Context) {
				v, ok := ctx.Message().(int)
				if !ok {
					return
				}
				if c.seen[v] {
					c.dup++
				}
				c.seen[v] = true
				if c.n++; c.n == perActor {
					finished.Done()
				}
			})
		}, actor.WithMailboxSize(64))
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for snd := 0; snd < senders; snd++ {
		wg.Go(func() {
			for v := snd; v < perActor; v += senders {
				for _, pid := range pids {
					if !assert.NoError(t, s.Send(context.Background(), pid, v)) {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { finished.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("not every actor received all its messages")
	}
	ctx := context.Background()
	for i, pid := range pids {
		require.NoError(t, s.Stop(ctx, pid)) // happens-before for reading counters
		c := counters[i]
		require.Equal(t, perActor, c.n, "actor %d", i)
		require.Zero(t, c.dup, "actor %d saw duplicates", i)
	}
	assert.Zero(t, s.DeadLetters())
}

func TestTrySendFromReportsFullWithoutBlocking(t *testing.T) {
	s := newSystem(t)
	gate := make(chan struct{})
	defer close(gate)
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(int); ok {
				<-gate
			}
		})
	}, actor.WithMailboxSize(2))
	require.NoError(t, err)
	from := actor.PID{Node: "far", ID: "sender"}
	free, err := s.MailboxFree(pid)
	require.NoError(t, err)
	assert.Equal(t, 2, free)
	require.NoError(t, s.TrySendFrom(from, pid, 1)) // taken by the actor, which blocks
	require.Eventually(t, func() bool { f, _ := s.MailboxFree(pid); return f == 2 }, waitFor, time.Millisecond)
	require.NoError(t, s.TrySendFrom(from, pid, 2))
	require.NoError(t, s.TrySendFrom(from, pid, 3))
	assert.ErrorIs(t, s.TrySendFrom(from, pid, 4), actor.ErrFull)
	assert.Zero(t, s.DeadLetters(), "a full mailbox is not a dead letter")
	assert.ErrorIs(t, s.TrySendFrom(from, actor.PID{Node: s.Node(), ID: "nobody"}, 5), actor.ErrNotFound)
	assert.ErrorIs(t, s.TrySendFrom(from, actor.PID{Node: "far", ID: "x"}, 5), actor.ErrNotLocal)
	_, err = s.MailboxFree(actor.PID{Node: s.Node(), ID: "nobody"})
	assert.ErrorIs(t, err, actor.ErrNotFound)
}

func TestTrySendManyFromQueuesWhatFitsInOrder(t *testing.T) {
	s := newSystem(t)
	var mu sync.Mutex
	var got []any
	var senders []actor.PID
	gate := make(chan struct{})
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(int); !ok {
				return
			}
			<-gate
			mu.Lock()
			got = append(got, c.Message())
			senders = append(senders, c.Sender())
			mu.Unlock()
		})
	}, actor.WithMailboxSize(100))
	require.NoError(t, err)
	from := actor.PID{Node: "far", ID: "sender"}
	msgs := make([]any, 150) // more than a 64-message chunk, more than fits
	for i := range msgs {
		msgs[i] = i
	}
	n, err := s.TrySendManyFrom(from, pid, msgs)
	// The actor may have taken the first before the rest were queued.
	require.ErrorIs(t, err, actor.ErrFull)
	require.True(t, n == 100 || n == 101, "queued %d", n)
	close(gate)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n }, waitFor, time.Millisecond)
	mu.Lock()
	assert.Equal(t, msgs[:n], got)
	for _, snd := range senders {
		assert.Equal(t, from, snd)
	}
	mu.Unlock()
	assert.Zero(t, s.DeadLetters(), "a full mailbox is not a dead letter")

	n, err = s.TrySendManyFrom(from, actor.PID{Node: s.Node(), ID: "nobody"}, msgs)
	assert.ErrorIs(t, err, actor.ErrNotFound)
	assert.Zero(t, n)
	n, err = s.TrySendManyFrom(from, actor.PID{Node: "far", ID: "x"}, msgs)
	assert.ErrorIs(t, err, actor.ErrNotLocal)
	assert.Zero(t, n)
	assert.Zero(t, s.DeadLetters())
}

func TestIdleActorsOwnNoGoroutine(t *testing.T) {
	s := newSystem(t)
	before := runtime.NumGoroutine()
	var handled sync.WaitGroup
	const actors = 2000
	handled.Add(actors)
	pids := make([]actor.PID, actors)
	for i := range pids {
		var err error
		pids[i], err = s.Spawn(func() actor.Actor {
			return actor.ReceiveFunc(func(c *actor.Context) {
				if _, ok := c.Message().(int); ok {
					handled.Done()
				}
			})
		})
		require.NoError(t, err)
	}
	for _, pid := range pids {
		require.NoError(t, s.Send(context.Background(), pid, 1))
	}
	handled.Wait()
	// Runs end when mailboxes empty; what may remain is the System's few
	// idle workers, never one goroutine per actor.
	require.Eventually(t, func() bool {
		return runtime.NumGoroutine()-before <= runtime.GOMAXPROCS(0)+4
	}, waitFor, 10*time.Millisecond, "goroutines: %d before, %d after", before, runtime.NumGoroutine())
}
