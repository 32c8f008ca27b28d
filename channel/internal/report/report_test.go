package report

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// handler records what it is told; gate, if not nil, holds each call
// until it is closed, and entered hears of each call.
type handler struct {
	mu      sync.Mutex
	got     []int
	gate    chan struct{}
	entered chan int
}

func (h *handler) handle(v int) {
	if h.entered != nil {
		h.entered <- v
	}
	if h.gate != nil {
		<-h.gate
	}
	if v < 0 {
		panic("a negative failure")
	}
	h.mu.Lock()
	h.got = append(h.got, v)
	h.mu.Unlock()
}

func (h *handler) all() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.got...)
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return zap.New(core), logs
}

func TestReportsEachInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []int
		want []int
	}{
		{"none", nil, nil},
		{"some", []int{1, 2, 3}, []int{1, 2, 3}},
		{"a panic does not stop the rest", []int{1, -1, 2}, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := observed()
			var h handler
			r := New(h.handle, 16, log)
			r.Start()
			for _, v := range tc.in {
				r.Report(v)
			}
			r.Stop(context.Background())
			assert.Equal(t, tc.want, h.all())
			assert.Zero(t, r.Unreported())
			assert.Equal(t, len(tc.in)-len(tc.want), logs.FilterMessage("failure handler panicked").Len())
		})
	}
}

// TestDropsPastItsLimitAndCountsThem: with the handler stuck on one, limit
// more wait; the rest are counted, with one warning a second.
func TestDropsPastItsLimitAndCountsThem(t *testing.T) {
	const limit, extra = 8, 5
	log, logs := observed()
	h := handler{gate: make(chan struct{}), entered: make(chan int, limit+extra+1)}
	r := New(h.handle, limit, log)
	r.Start()
	r.Report(0)
	require.Equal(t, 0, <-h.entered) // the handler holds it: the queue is empty
	for i := 1; i <= limit+extra; i++ {
		r.Report(i)
	}
	assert.Equal(t, uint64(extra), r.Unreported())
	assert.Equal(t, 1, logs.FilterMessage("failure handler falling behind: failures not reported").Len(),
		"one warning a second")
	close(h.gate)
	r.Stop(context.Background())
	want := make([]int, limit+1)
	for i := range want {
		want[i] = i
	}
	assert.Equal(t, want, h.all())
}

func TestAfterStopNothingIsReported(t *testing.T) {
	var h handler
	r := New(h.handle, 4, zap.NewNop())
	r.Start()
	r.Stop(context.Background())
	r.Report(1)
	assert.Empty(t, h.all())
	assert.Equal(t, uint64(1), r.Unreported())
}

// TestStopIsBoundedByItsContext: a handler that does not return does not
// hold Stop past its ctx; it is left to finish on its own.
func TestStopIsBoundedByItsContext(t *testing.T) {
	log, logs := observed()
	h := handler{gate: make(chan struct{}), entered: make(chan int, 2)}
	r := New(h.handle, 4, log)
	r.Start()
	r.Report(1)
	<-h.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Stop(ctx)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, 1, logs.FilterMessage("closing without waiting for the failure handler: it did not return in time").Len())
	close(h.gate)
	r.Stop(context.Background()) // the goroutine ends once the handler returns
	assert.Equal(t, []int{1}, h.all())
}

func TestWithoutAHandlerNothingRuns(t *testing.T) {
	r := New[int](nil, 4, zap.NewNop())
	r.Start()
	r.Report(1)
	r.Stop(context.Background())
	assert.Zero(t, r.Unreported())
}
