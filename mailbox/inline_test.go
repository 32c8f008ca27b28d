package mailbox

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startIdle is start, returning once Start's first run has ended.
func startIdle(t *testing.T, capacity int, r *recorder, opts ...Option) *Mailbox[int] {
	t.Helper()
	m, d := start(t, capacity, r, opts...)
	d.wg.Wait()
	return m
}

func TestTryInlineTakesOnTheCallersGoroutineWhenIdleAndEmpty(t *testing.T) {
	r := newRecorder()
	m := startIdle(t, 4, r)
	var took []int
	take := func(v int) bool {
		if v >= 3 {
			return false // declines: the offer ends here
		}
		took = append(took, v)
		return true
	}
	assert.Equal(t, 3, m.TryInline([]int{0, 1, 2, 3, 4}, take))
	assert.Equal(t, []int{0, 1, 2}, took)
	assert.Empty(t, r.snapshot(), "what take took never reaches the invoker")
	assert.Zero(t, m.Len())
}

func TestTryInlineDeclinesWhenAnythingIsAhead(t *testing.T) {
	never := func(int) bool { assert.Fail(t, "take called with something ahead"); return true }

	t.Run("before Start", func(t *testing.T) {
		m, err := New[int](4)
		require.NoError(t, err)
		assert.Zero(t, m.TryInline([]int{1}, never))
	})
	t.Run("a queued message", func(t *testing.T) {
		r := newRecorder()
		m := startIdle(t, 4, r)
		require.True(t, m.user.push(1)) // queued, its run not yet started
		assert.Zero(t, m.TryInline([]int{2}, never))
		m.schedule()
		r.wait(t, 1)
	})
	t.Run("a system message", func(t *testing.T) {
		r := newRecorder()
		m, err := New[int](4)
		require.NoError(t, err)
		m.PushSystem("first") // queued until Start: nothing runs it yet
		m.started.Store(true) // started, but its run not yet begun
		assert.Zero(t, m.TryInline([]int{1}, never))
		m.started.Store(false)
		d := &waitDispatcher{}
		m.Start(r, d)
		r.wait(t, 1)
		d.wg.Wait()
	})
	t.Run("a run in progress", func(t *testing.T) {
		r := newRecorder()
		inside, release := make(chan struct{}), make(chan struct{})
		r.hook = func(int) { close(inside); <-release }
		m, _ := start(t, 4, r)
		require.NoError(t, m.TryPush(1))
		<-inside // the run took 1 and the queue is empty, but it runs
		assert.Zero(t, m.TryInline([]int{2}, never))
		close(release)
		r.wait(t, 1)
	})
	t.Run("suspended", func(t *testing.T) {
		m := startIdle(t, 4, newRecorder())
		m.Suspend()
		assert.Zero(t, m.TryInline([]int{1}, never))
	})
	t.Run("closed", func(t *testing.T) {
		m := startIdle(t, 4, newRecorder())
		m.Close()
		assert.Zero(t, m.TryInline([]int{1}, never))
	})
}

func TestTryInlineLeavesNoPushStranded(t *testing.T) {
	// A push made while take runs sees the mailbox running and starts no
	// run: TryInline must start one when it is done.
	r := newRecorder()
	m := startIdle(t, 4, r)
	n := m.TryInline([]int{1}, func(int) bool {
		require.NoError(t, m.TryPush(2))
		return true
	})
	assert.Equal(t, 1, n)
	r.wait(t, 1)
	assert.Equal(t, []event{{msg: 2}}, r.snapshot())
}

func TestTryInlineReleasesTheMailboxWhenTakePanics(t *testing.T) {
	r := newRecorder()
	m := startIdle(t, 4, r)
	assert.PanicsWithValue(t, "boom", func() {
		m.TryInline([]int{1}, func(int) bool { panic("boom") })
	})
	require.NoError(t, m.TryPush(2))
	r.wait(t, 1) // a run was started: the mailbox is not left running
	assert.Equal(t, []event{{msg: 2}}, r.snapshot())
}

func TestTryInlineStopsOfferingWhenAMessageArrives(t *testing.T) {
	// Offering a batch, take sees a push land: the rest of the batch is
	// not offered, since the pushed message may belong ahead of it.
	r := newRecorder()
	m := startIdle(t, 4, r)
	var took []int
	n := m.TryInline([]int{1, 2, 3}, func(v int) bool {
		took = append(took, v)
		if v == 1 {
			require.True(t, m.user.push(9))
		}
		return true
	})
	assert.Equal(t, 1, n)
	assert.Equal(t, []int{1}, took)
	r.wait(t, 1)
}

func TestTryInlineNeverOverlapsARunAndKeepsEachPushersOrder(t *testing.T) {
	// Pushers alternate inline offers and pushes; take and the invoker
	// record into one sequence and fail if they ever overlap. Each
	// pusher's values must come out in order, each exactly once.
	const pushers, each = 4, 3000
	var busy atomic.Bool
	var mu sync.Mutex
	var order []int
	var inlined atomic.Int64
	record := func(v int) {
		assert.True(t, busy.CompareAndSwap(false, true), "take and the invoker overlapped")
		mu.Lock()
		order = append(order, v)
		mu.Unlock()
		busy.Store(false)
	}
	r := newRecorder()
	r.hook = record
	m, _ := start(t, 8, r, WithThroughput(3))
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				v := p*each + i
				if i%3 != 0 && m.TryInline([]int{v}, func(v int) bool { record(v); return true }) == 1 {
					inlined.Add(1)
					continue
				}
				if !assert.NoError(t, m.Push(context.Background(), v)) {
					return
				}
				if i%10 == 0 {
					// Let the runs catch up now and then, so that
					// offers find the mailbox idle too.
					for k := 0; k < 100 && m.Len() > 0; k++ {
						runtime.Gosched()
					}
				}
			}
		})
	}
	wg.Wait()
	r.wait(t, pushers*each-int(inlined.Load()))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, order, pushers*each)
	last := make([]int, pushers)
	for i := range last {
		last[i] = -1
	}
	for _, v := range order {
		p, seq := v/each, v%each
		require.Greater(t, seq, last[p], "pusher %d out of order", p)
		last[p] = seq
	}
	assert.Positive(t, inlined.Load(), "no offer was ever taken")
}
