package actor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
)

// taken is how an eagerActor got a message.
type taken struct {
	inline bool // by TryReceive
	msg    any
}

// eagerActor records every message and whether TryReceive or Receive got
// it; it fails the test if the two ever overlap. accept says which ints
// TryReceive takes.
type eagerActor struct {
	t      *testing.T
	l      *log
	busy   *atomic.Bool
	accept func(int) bool
}

func (a *eagerActor) enter() {
	assert.True(a.t, a.busy.CompareAndSwap(false, true), "TryReceive overlapped Receive or itself")
}

func (a *eagerActor) Receive(c *actor.Context) {
	a.enter()
	defer a.busy.Store(false)
	a.l.add(taken{msg: c.Message()})
}

func (a *eagerActor) TryReceive(msg any, _ actor.PID) bool {
	a.enter()
	defer a.busy.Store(false)
	if v, ok := msg.(int); !ok || !a.accept(v) {
		return false
	}
	a.l.add(taken{inline: true, msg: msg})
	return true
}

func spawnEager(t *testing.T, s *actor.System, accept func(int) bool, opts ...actor.SpawnOption) (actor.PID, *log) {
	t.Helper()
	l := newLog()
	busy := new(atomic.Bool)
	pid, err := s.Spawn(func() actor.Actor { return &eagerActor{t: t, l: l, busy: busy, accept: accept} }, opts...)
	require.NoError(t, err)
	return pid, l
}

func TestEagerActorTakesMessagesOnTheSendersGoroutine(t *testing.T) {
	s := newSystem(t)
	pid, l := spawnEager(t, s, func(int) bool { return true })
	l.waitUntil(t, contains(taken{msg: actor.Started{}}))
	// Once the run that delivered Started has ended, a send finds the
	// actor idle: TryReceive has the message by the time Send returns.
	inline := false
	for i := 0; i < 1000 && !inline; i++ {
		require.NoError(t, s.Send(context.Background(), pid, i))
		ev := l.all()
		inline = ev[len(ev)-1] == taken{inline: true, msg: i}
		if !inline {
			time.Sleep(time.Millisecond)
		}
	}
	assert.True(t, inline, "no send was taken by TryReceive on the sender's goroutine")
}

func TestEagerActorKeepsEachSendersOrder(t *testing.T) {
	// TryReceive takes some values and declines others (which queue and go
	// to Receive): each sender's values still arrive once each, in order,
	// and the two methods never overlap.
	const senders, each = 4, 2000
	s := newSystem(t)
	pid, l := spawnEager(t, s, func(v int) bool { return v%3 != 0 }, actor.WithMailboxSize(16))
	var wg sync.WaitGroup
	for snd := range senders {
		wg.Go(func() {
			from := actor.PID{Node: "far", ID: "s"}
			for i := range each {
				v := snd*each + i
				var err error
				switch i % 4 {
				case 0:
					err = s.Send(context.Background(), pid, v)
				case 1:
					var n int
					n, err = s.TrySendManyFrom(from, pid, []any{v})
					if err == nil {
						assert.Equal(t, 1, n, "messages TrySendManyFrom took")
					}
				default:
					err = s.TrySendFrom(from, pid, v)
				}
				for err != nil { // full: wait for room
					time.Sleep(10 * time.Microsecond)
					err = s.TrySendFrom(from, pid, v)
				}
			}
		})
	}
	wg.Wait()
	ev := l.waitUntil(t, hasLen(1+senders*each))
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	inline := 0
	for _, e := range ev[1:] {
		tk := e.(taken)
		v := tk.msg.(int)
		snd, seq := v/each, v%each
		require.Greater(t, seq, last[snd], "sender %d out of order", snd)
		last[snd] = seq
		if tk.inline {
			inline++
			require.NotZero(t, v%3, "TryReceive took a value it declines")
		}
	}
	for snd := range last {
		assert.Equal(t, each-1, last[snd], "sender %d lost values", snd)
	}
	assert.Equal(t, taken{msg: actor.Started{}}, ev[0])
	t.Logf("%d of %d taken inline", inline, senders*each)
}

func TestEagerActorGetsStartedFirst(t *testing.T) {
	s := newSystem(t)
	pid, l := spawnEager(t, s, func(int) bool { return true })
	// Sent at once: Started is still queued, so 1 must not overtake it.
	require.NoError(t, s.Send(context.Background(), pid, 1))
	ev := l.waitUntil(t, hasLen(2))
	assert.Equal(t, taken{msg: actor.Started{}}, ev[0])
}

// panicky is Eager and panics in TryReceive on "boom"; it reports what
// Receive gets.
type panicky struct{ got chan any }

func (a *panicky) Receive(c *actor.Context) { a.got <- c.Message() }

func (a *panicky) TryReceive(msg any, _ actor.PID) bool {
	if msg == "boom" {
		panic("boom")
	}
	return false
}

func TestAPanicInTryReceiveIsSupervisedLikeOneInReceive(t *testing.T) {
	// The default supervisor restarts the actor (Restarting, Started); the
	// actor then takes messages and stops as usual, and the sender's Send
	// is not the one that panics.
	s := newSystem(t)
	a := &panicky{got: make(chan any, 64)}
	pid, err := s.Spawn(func() actor.Actor { return a })
	require.NoError(t, err)
	require.Equal(t, actor.Started{}, <-a.got)
	restarted := false
	for i := 0; i < 1000 && !restarted; i++ {
		// Offered to TryReceive only once the actor is idle.
		require.NoError(t, s.Send(context.Background(), pid, "boom"))
		select {
		case m := <-a.got:
			restarted = m == actor.Restarting{}
			if !restarted {
				require.Equal(t, "boom", m, "queued, so Receive got it")
			}
		case <-time.After(waitFor):
			t.Fatal("neither delivered nor restarted: the mailbox is stuck")
		}
	}
	require.True(t, restarted, "TryReceive was never offered boom")
	require.Equal(t, actor.Started{}, <-a.got)
	require.NoError(t, s.Send(context.Background(), pid, "after"))
	assert.Equal(t, "after", <-a.got)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, s.Stop(ctx, pid))
}
