package mailbox

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitDispatcher starts each run on a goroutine and lets a test wait for all.
type waitDispatcher struct{ wg sync.WaitGroup }

func (d *waitDispatcher) Schedule(fn func()) {
	d.wg.Go(fn)
}

type event struct {
	system bool
	msg    any
}

// recorder records every invocation; hook, if set, runs inside InvokeUser.
type recorder struct {
	mu     sync.Mutex
	events []event
	hook   func(msg int)
	n      chan struct{}
}

func newRecorder() *recorder { return &recorder{n: make(chan struct{}, 1<<20)} }

func (r *recorder) InvokeSystem(msg any) {
	r.mu.Lock()
	r.events = append(r.events, event{system: true, msg: msg})
	r.mu.Unlock()
	r.n <- struct{}{}
}

func (r *recorder) InvokeUser(msg int) {
	if r.hook != nil {
		r.hook(msg)
	}
	r.mu.Lock()
	r.events = append(r.events, event{msg: msg})
	r.mu.Unlock()
	r.n <- struct{}{}
}

func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.n:
		case <-deadline:
			t.Fatalf("got %d of %d invocations", i, n)
		}
	}
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func start(t *testing.T, capacity int, r *recorder, opts ...Option) (*Mailbox[int], *waitDispatcher) {
	t.Helper()
	m, err := New[int](capacity, opts...)
	require.NoError(t, err)
	d := &waitDispatcher{}
	m.Start(r, d)
	t.Cleanup(d.wg.Wait)
	return m, d
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New[int](0)
	assert.Error(t, err)
	_, err = New[int](1, WithThroughput(0))
	assert.Error(t, err)
}

func TestFIFOPerSender(t *testing.T) {
	const senders, perSender = 8, 2000
	r := newRecorder()
	m, _ := start(t, 64, r, WithThroughput(7))
	pushFromEach(t, m, senders, perSender)
	r.wait(t, senders*perSender)
	requireEachInOrder(t, r.snapshot(), senders, perSender)
}

// goProduce starts n producers: producer p calls push(p*each+i) for i from
// from to to-1, in order, stopping early if push reports false. wait waits
// for them all.
func goProduce(n, each, from, to int, push func(v int) bool) (wait func()) {
	var wg sync.WaitGroup
	for p := 0; p < n; p++ {
		wg.Go(func() {
			for i := from; i < to && push(p*each+i); i++ {
			}
		})
	}
	return wg.Wait
}

// pushFromEach runs n producers that Push each values apiece to m —
// producer p pushes p*each, p*each+1, … — and waits for them.
func pushFromEach(t *testing.T, m *Mailbox[int], n, each int) {
	t.Helper()
	goProduce(n, each, 0, each, func(v int) bool {
		return assert.NoError(t, m.Push(context.Background(), v))
	})()
}

// inOrder checks, value by value, that goProduce's producers' values come
// each producer's in order, none missing.
type inOrder struct {
	each int
	last []int // per producer, the last sequence seen
}

func newInOrder(n, each int) *inOrder {
	c := &inOrder{each: each, last: make([]int, n)}
	for i := range c.last {
		c.last[i] = -1
	}
	return c
}

func (c *inOrder) see(t *testing.T, v int) {
	t.Helper()
	p, seq := v/c.each, v%c.each
	require.Equal(t, c.last[p]+1, seq, "producer %d out of order or missing values", p)
	c.last[p] = seq
}

// seenUpTo checks that every producer's values up to seq-1 were seen.
func (c *inOrder) seenUpTo(t *testing.T, seq int) {
	t.Helper()
	for p, last := range c.last {
		assert.Equal(t, seq-1, last, "producer %d lost messages", p)
	}
}

// requireEachInOrder checks that events hold every value pushFromEach's n
// producers pushed, each producer's in order.
func requireEachInOrder(t *testing.T, events []event, n, each int) {
	t.Helper()
	c := newInOrder(n, each)
	for _, e := range events {
		c.see(t, e.msg.(int))
	}
	c.seenUpTo(t, each)
}

func TestSystemMessagesOvertakeUserMessages(t *testing.T) {
	r := newRecorder()
	inFirst := make(chan struct{})
	release := make(chan struct{})
	r.hook = func(msg int) {
		if msg == 0 {
			close(inFirst)
			<-release
		}
	}
	m, _ := start(t, 16, r)
	for i := 0; i < 10; i++ {
		require.NoError(t, m.TryPush(i))
	}
	<-inFirst
	m.PushSystem("stop")
	close(release)
	r.wait(t, 11)
	ev := r.snapshot()
	require.Len(t, ev, 11)
	assert.Equal(t, event{msg: 0}, ev[0])
	assert.Equal(t, event{system: true, msg: "stop"}, ev[1], "system message must run before queued user messages")
	for i := 2; i < 11; i++ {
		assert.Equal(t, event{msg: i - 1}, ev[i])
	}
}

func TestPushBlocksWhenFullAndResumesWhenConsumed(t *testing.T) {
	r := newRecorder()
	gate := make(chan struct{})
	r.hook = func(int) { <-gate }
	m, _ := start(t, 2, r)

	require.NoError(t, m.Push(context.Background(), 0)) // taken by the run, blocked in hook
	require.Eventually(t, func() bool { return m.Len() == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, m.Push(context.Background(), 1))
	require.NoError(t, m.Push(context.Background(), 2))
	assert.Equal(t, 0, m.Free())

	pushed := make(chan error, 1)
	go func() { pushed <- m.Push(context.Background(), 3) }()
	select {
	case err := <-pushed:
		t.Fatalf("Push returned %v on a full mailbox", err)
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{} // actor consumes message 0 and takes 1: a slot frees
	select {
	case err := <-pushed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Push did not resume after the actor consumed")
	}
	close(gate)
	r.wait(t, 4)
}

func TestPushHonoursContext(t *testing.T) {
	m, err := New[int](1)
	require.NoError(t, err)
	require.NoError(t, m.TryPush(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, m.Push(ctx, 2), context.DeadlineExceeded)
}

func TestTryPushReportsFull(t *testing.T) {
	m, err := New[int](3)
	require.NoError(t, err) // not started: nothing consumes
	for i := 0; i < 3; i++ {
		require.NoError(t, m.TryPush(i))
	}
	assert.ErrorIs(t, m.TryPush(3), ErrFull)
	assert.Equal(t, 3, m.Len())
	assert.Equal(t, 3, m.Cap())
	assert.Equal(t, 0, m.Free())
}

func TestTryPushManyTakesWhatFitsInOrder(t *testing.T) {
	m, err := New[int](5)
	require.NoError(t, err)
	require.NoError(t, m.TryPush(0))
	n, err := m.TryPushMany([]int{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	n, err = m.TryPushMany([]int{4, 5, 6})
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, 1, n, "only one slot was left")
	n, err = m.TryPushMany(nil)
	assert.NoError(t, err)
	assert.Zero(t, n)

	r := newRecorder()
	d := &waitDispatcher{}
	m.Start(r, d)
	r.wait(t, 5)
	d.wg.Wait()
	assert.Equal(t, []event{{msg: 0}, {msg: 1}, {msg: 2}, {msg: 3}, {msg: 4}}, r.snapshot())

	m.Close()
	n, err = m.TryPushMany([]int{7})
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, n)
}

func TestMessagesPushedBeforeStartAreDelivered(t *testing.T) {
	m, err := New[int](4)
	require.NoError(t, err)
	require.NoError(t, m.TryPush(1))
	m.PushSystem("sys")
	r := newRecorder()
	d := &waitDispatcher{}
	m.Start(r, d)
	r.wait(t, 2)
	d.wg.Wait()
	assert.Equal(t, []event{{system: true, msg: "sys"}, {msg: 1}}, r.snapshot())
}

func TestSuspendHoldsUserMessagesButNotSystemMessages(t *testing.T) {
	r := newRecorder()
	m, d := start(t, 8, r)
	d.wg.Wait() // Start's run is over: none can be taking a message as Suspend returns
	m.Suspend()
	require.NoError(t, m.TryPush(1))
	m.PushSystem("sys")
	r.wait(t, 1)
	d.wg.Wait()
	assert.Equal(t, []event{{system: true, msg: "sys"}}, r.snapshot())
	assert.Equal(t, 1, m.Len())
	m.Resume()
	r.wait(t, 1)
	assert.Equal(t, event{msg: 1}, r.snapshot()[1])
}

func TestCloseRejectsPushesAndWakesBlockedPushers(t *testing.T) {
	m, err := New[int](1)
	require.NoError(t, err)
	require.NoError(t, m.TryPush(1))
	blocked := make(chan error, 1)
	go func() { blocked <- m.Push(context.Background(), 2) }()
	m.Close()
	m.Close() // idempotent
	select {
	case err := <-blocked:
		assert.ErrorIs(t, err, ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked pusher")
	}
	assert.ErrorIs(t, m.TryPush(3), ErrClosed)
	assert.ErrorIs(t, m.Push(context.Background(), 3), ErrClosed)
	v, ok := m.Pop()
	assert.True(t, ok, "queued messages stay readable after Close")
	assert.Equal(t, 1, v)
	_, ok = m.Pop()
	assert.False(t, ok)
	assert.True(t, m.Closed())
}

func TestNoMessageStrandedUnderConcurrentPushes(t *testing.T) {
	// Many producers racing with runs going idle: every message is invoked
	// exactly once, which exercises the idle/running re-check in run.
	const producers, each = 4, 5000
	r := newRecorder()
	m, _ := start(t, 8, r, WithThroughput(3))
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				err := m.TryPush(p*each + i)
				if errors.Is(err, ErrFull) {
					err = m.Push(context.Background(), p*each+i)
				}
				if !assert.NoError(t, err) {
					return
				}
				if i%97 == 0 {
					m.PushSystem(i)
				}
			}
		})
	}
	wg.Wait()
	sys := producers * ((each + 96) / 97)
	r.wait(t, producers*each+sys)
	seen := make(map[int]bool, producers*each)
	for _, e := range r.snapshot() {
		if e.system {
			continue
		}
		v := e.msg.(int)
		require.False(t, seen[v], "message %d delivered twice", v)
		seen[v] = true
	}
	assert.Len(t, seen, producers*each)
}

func TestNothingLandsAfterClose(t *testing.T) {
	// Pushers racing with Close: every push that reported success is in the
	// queue when Close returns, and nothing arrives after.
	for round := 0; round < 200; round++ {
		m, err := New[int](1024)
		require.NoError(t, err)
		var accepted atomic.Int64
		var wg sync.WaitGroup
		for p := 0; p < 4; p++ {
			wg.Go(func() {
				for i := 0; i < 100; i++ {
					if m.TryPush(i) == nil {
						accepted.Add(1)
					}
				}
			})
		}
		m.Close()
		n := m.Len()
		wg.Wait()
		require.Equal(t, n, m.Len(), "a push landed after Close returned")
		require.EqualValues(t, accepted.Load(), m.Len())
	}
}
