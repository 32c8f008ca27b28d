package pump

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errClosed = errors.New("closed")

// sink records what a pump does with its values. gate, if not nil, holds
// each Route until it is closed.
type sink struct {
	mu      sync.Mutex
	batches [][]any
	retries []any // Retry's, in order
	hide    bool  // Retry returns nothing
	calls   int   // of Retry
	settle  []any // Settle's, in order
	settled int
	failed  map[any]error
	done    int
	gate    chan struct{}
	routing chan struct{} // hears of each Route, if not nil
}

func newSink() *sink { return &sink{failed: map[any]error{}} }

func (s *sink) Route(batch []any) {
	if s.routing != nil {
		s.routing <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, slices.Clone(batch))
}

func (s *sink) Retry() (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.hide {
		return nil, false
	}
	return pop(&s.retries)
}

func (s *sink) Settle() (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settled++
	return pop(&s.settle)
}

func pop(q *[]any) (any, bool) {
	if len(*q) == 0 {
		return nil, false
	}
	v := (*q)[0]
	*q = (*q)[1:]
	return v, true
}

func (s *sink) Fail(v any, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[v] = err
}

func (s *sink) Done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done++
}

func (s *sink) routed() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Concat(s.batches...)
}

func ints(from, to int) []any {
	var out []any
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// run starts p's goroutine and returns a wait for its end.
func run[T any](p *Pump[T]) (wait func()) {
	done := make(chan struct{})
	go func() { p.Run(); close(done) }()
	return func() { <-done }
}

// TestBatchesWhatWaits: values that wait when the pump looks go to the
// sink together, up to BatchFor(buf) at a time, in order.
func TestBatchesWhatWaits(t *testing.T) {
	for _, tc := range []struct {
		buf, write int
		want       []int // batch sizes
	}{
		{buf: 1, write: 1, want: []int{1}},
		{buf: 8, write: 5, want: []int{5}},
		{buf: 8, write: 8, want: []int{8}},
		{buf: 300, write: 300, want: []int{128, 128, 44}},
	} {
		s := newSink()
		p := New[int](context.Background(), errClosed, tc.buf, s, nil)
		for i := range tc.write {
			p.In() <- i
		}
		wait := run(p)
		require.NoError(t, p.Close(context.Background()))
		wait()
		var sizes []int
		for _, b := range s.batches {
			sizes = append(sizes, len(b))
		}
		assert.Equal(t, tc.want, sizes, "buf %d, %d waiting", tc.buf, tc.write)
		assert.Equal(t, ints(0, tc.write), s.routed())
		assert.Equal(t, 1, s.settled, "Close settles once")
		assert.Equal(t, 1, s.done)
	}
}

func TestBatchFor(t *testing.T) {
	for buf, want := range map[int]int{-1: 1, 0: 1, 1: 1, 64: 64, 128: 128, 4096: 128} {
		assert.Equal(t, want, BatchFor(buf), "buf %d", buf)
	}
}

// TestRetriesGoFirst: a value the sink wants routed again goes before the
// values that wait.
func TestRetriesGoFirst(t *testing.T) {
	s := newSink()
	s.retries = []any{"again"}
	p := New[int](context.Background(), errClosed, 4, s, nil)
	p.In() <- 1
	p.In() <- 2
	wait := run(p)
	require.NoError(t, p.Close(context.Background()))
	wait()
	assert.Equal(t, []any{"again", 1, 2}, s.routed())
	assert.Equal(t, []any{"again"}, s.batches[0], "alone")
}

// TestSignalRoutesARetry: a retry that comes while the pump waits for
// values is routed once Signal wakes it.
func TestSignalRoutesARetry(t *testing.T) {
	s := newSink()
	s.routing = make(chan struct{}, 4)
	p := New[int](context.Background(), errClosed, 0, s, nil)
	wait := run(p)
	s.mu.Lock()
	s.retries = append(s.retries, "again")
	s.mu.Unlock()
	p.Signal()
	select {
	case <-s.routing:
	case <-time.After(5 * time.Second):
		t.Fatal("the retry was not routed")
	}
	require.NoError(t, p.Close(context.Background()))
	wait()
	assert.Equal(t, []any{"again"}, s.routed())
}

// TestCloseRoutesWhatSettleReturns: values refused while the close
// settles are routed again before the pump ends.
func TestCloseRoutesWhatSettleReturns(t *testing.T) {
	s := newSink()
	s.settle = []any{"refused"}
	p := New[int](context.Background(), errClosed, 2, s, func(v int) any { return v * 10 })
	p.In() <- 1
	wait := run(p)
	require.NoError(t, p.Close(context.Background()))
	require.NoError(t, p.Close(context.Background()), "twice")
	wait()
	assert.Equal(t, []any{10, "refused"}, s.routed())
	assert.Equal(t, 2, s.settled)
}

// TestUserCloseFinishes: closing the channel ends the pump once what was
// written is routed and settled.
func TestUserCloseFinishes(t *testing.T) {
	s := newSink()
	p := New[int](context.Background(), errClosed, 2, s, nil)
	p.In() <- 1
	close(p.in)
	wait := run(p)
	wait()
	assert.Equal(t, []any{1}, s.routed())
	assert.Equal(t, 1, s.settled)
	assert.Equal(t, 1, s.done)
}

// TestEndOfLifeFailsWhatWaits: once life ends, what waits to be routed
// again fails with the pump's error.
func TestEndOfLifeFailsWhatWaits(t *testing.T) {
	s := newSink()
	s.hide = true
	life, end := context.WithCancel(context.Background())
	p := New[int](life, errClosed, 4, s, nil)
	wait := run(p)
	// Once it looked for a retry and found no value, the pump goes to
	// wait in its select: the retries can only be seen through the end of
	// life.
	require.Eventually(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.calls > 0 }, 5*time.Second, time.Millisecond)
	s.mu.Lock()
	s.retries, s.hide = []any{"r1", "r2"}, false
	s.mu.Unlock()
	end()
	wait()
	assert.Equal(t, map[any]error{"r1": errClosed, "r2": errClosed}, s.failed)
	assert.Empty(t, s.routed())
	require.NoError(t, p.Close(context.Background()), "an ended pump closes at once")
}

// TestEndOfLifeWhileSettling: life ending during the close's settle fails
// what came back, and a channel the user closed is not read forever.
func TestEndOfLifeWhileSettling(t *testing.T) {
	s := newSink()
	life, end := context.WithCancel(context.Background())
	end()
	s.settle = []any{"refused"}
	p := New[int](life, errClosed, 2, s, nil)
	p.In() <- 1
	close(p.in)
	wait := run(p)
	wait()
	assert.Equal(t, map[any]error{"refused": errClosed}, s.failed)
}

// TestCloseIsBoundedByItsContext: a sink that does not return does not
// hold Close past its ctx.
func TestCloseIsBoundedByItsContext(t *testing.T) {
	s := newSink()
	s.gate = make(chan struct{})
	s.routing = make(chan struct{}, 1)
	p := New[int](context.Background(), errClosed, 1, s, nil)
	wait := run(p)
	p.In() <- 1
	<-s.routing
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, p.Close(ctx), context.DeadlineExceeded)
	close(s.gate)
	require.NoError(t, p.Close(context.Background()))
	wait()
	assert.Equal(t, []any{1}, s.routed())
}
