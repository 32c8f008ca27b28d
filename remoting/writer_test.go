package remoting

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// runCountingCodec is a GobCodec whose encoders count the runs they encode.
type runCountingCodec struct {
	*GobCodec
	runs *atomic.Int64
}

func (c runCountingCodec) NewEncoder() Encoder {
	return runCountingEncoder{c.GobCodec.NewEncoder().(*gobEncoder), c.runs}
}

type runCountingEncoder struct {
	*gobEncoder
	runs *atomic.Int64
}

func (e runCountingEncoder) EncodeRun(dst []byte, vs []any) ([]byte, bool, error) {
	out, ok, err := e.gobEncoder.EncodeRun(dst, vs)
	if ok {
		e.runs.Add(1)
	}
	return out, ok, err
}

// TestRunsReachTheWire streams values faster than one frame each: the
// writer sends them as runs, and every value arrives once, in order.
func TestRunsReachTheWire(t *testing.T) {
	gc, err := NewGobCodec(item{})
	require.NoError(t, err)
	var runs atomic.Int64
	nodes := startNodes(t, 2, WithCodec(runCountingCodec{gc, &runs}))
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	const n = 20_000
	for i := range n {
		require.NoError(t, nodes[0].sys.Send(context.Background(), target, item{From: "a", Seq: i + 1}))
	}
	s.waitCount(t, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Zero(t, s.disorder)
	assert.Equal(t, n, s.count)
	assert.Positive(t, runs.Load(), "no run was sent")
	t.Logf("%d values; %d runs among them", n, runs.Load())
}

// collector is an actor that keeps every value it receives, in order.
type collector struct {
	mu   sync.Mutex
	got  []any
	more chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) producer() actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(ctx *actor.Context) {
			if _, ok := ctx.Message().(actor.Started); ok {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, ctx.Message())
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		})
	}
}

func (c *collector) wait(t *testing.T, n int) []any {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		c.mu.Lock()
		got := append([]any(nil), c.got...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("collected %d of %d: %v", len(got), n, got)
		}
	}
}

// writerFixture is a live stream from node 0 to a collector on node 1, its
// link open and its type described, and an outWriter that the test drives
// itself: the items it writes come out exactly as the test lined them up.
type writerFixture struct {
	s   *outStream
	l   *outLink
	to  actor.PID
	col *collector
}

func newWriterFixture(t *testing.T, first any, opts ...Option) *writerFixture {
	t.Helper()
	nodes := startNodes(t, 2, opts...)
	col := newCollector()
	to, err := nodes[1].sys.SpawnNamed("col", col.producer())
	require.NoError(t, err)
	require.NoError(t, trackedOutcome(t, nodes[0].ep, to, first))
	col.wait(t, 1)
	p, err := nodes[0].ep.peer(nodes[1].ep.Addr())
	require.NoError(t, err)
	s, err := p.stream(context.Background())
	require.NoError(t, err)
	s.mu.Lock()
	l := s.links[to.ID]
	s.mu.Unlock()
	require.NotNil(t, l)
	return &writerFixture{s: s, l: l, to: to, col: col}
}

// write lines vs up as tracked messages to the collector, taking their
// credit, writes them with one outWriter call and returns their outcomes.
func (f *writerFixture) write(t *testing.T, vs ...any) []error {
	t.Helper()
	outcomes := make([]chan error, len(vs))
	items := make([]outMsg, len(vs))
	f.s.mu.Lock()
	for i, v := range vs {
		require.True(t, f.l.w.TryTake(), "no credit for value %d", i)
		ch := make(chan error, 1)
		outcomes[i] = ch
		items[i] = outMsg{l: f.l, to: f.to, flags: wire.FlagTracked, msg: v, done: notify{one: func(err error) { ch <- err }}}
	}
	f.s.mu.Unlock()
	w := outWriter{s: f.s, runs: f.s.enc.(RunEncoder), maxFrame: f.s.p.e.cfg.maxBatchBytes}
	require.True(t, w.write(items))
	errs := make([]error, len(vs))
	for i, ch := range outcomes {
		select {
		case errs[i] = <-ch:
		case <-time.After(waitFor):
			t.Fatalf("no outcome for value %d", i)
		}
	}
	return errs
}

// TestRunFailureFailsThatValueAlone: a run that fails to encode is sent
// value by value, so only the failing value fails (ErrEncode) and the
// others arrive, in order.
func TestRunFailureFailsThatValueAlone(t *testing.T) {
	codec, err := NewGobCodec(testPanicky{})
	require.NoError(t, err)
	f := newWriterFixture(t, testPanicky{A: 1}, WithCodec(codec))
	errs := f.write(t, testPanicky{A: 2}, testPanicky{A: 3}, testPanicky{A: -1}, testPanicky{A: 4}, testPanicky{A: 5})
	for i, err := range errs {
		if i == 2 {
			assert.ErrorIs(t, err, ErrEncode, "value %d", i)
		} else {
			assert.NoError(t, err, "value %d", i)
		}
	}
	// The stream goes on, runs included.
	require.Equal(t, []error{nil, nil, nil}, f.write(t, testPanicky{A: 6}, testPanicky{A: 7}, testPanicky{A: 8}))
	got := f.col.wait(t, 8)
	want := []any{testPanicky{A: 1}, testPanicky{A: 2}, testPanicky{A: 3}, testPanicky{A: 4}, testPanicky{A: 5},
		testPanicky{A: 6}, testPanicky{A: 7}, testPanicky{A: 8}}
	assert.Equal(t, want, got)
}

// TestOversizeRunGoesOneByOne: values that fit the size limit one by one
// but not together as a run still arrive.
func TestOversizeRunGoesOneByOne(t *testing.T) {
	f := newWriterFixture(t, item{From: "first"}, WithMaxMessageSize(1024))
	var vs []any
	for i := range 8 {
		vs = append(vs, item{From: strings.Repeat("x", 400), Seq: i})
	}
	for i, err := range f.write(t, vs...) {
		assert.NoError(t, err, "value %d", i)
	}
	got := f.col.wait(t, 9)
	assert.Equal(t, vs, got[1:])
}

// TestEveryTrackedSendGetsOneOutcomeUnderResets sends tracked messages from
// several goroutines (half with SendTracked, half in batches with SendMany)
// while the stream is reset every few milliseconds and some values fail to
// encode on the writer: every message either fails to be queued at once
// (and its outcome is never reported) or has its outcome reported exactly
// once; nothing arrives twice; a confirmed message arrived once.
// A sender that got credit as the stream failed once queued its message on
// the dead stream, and its callback was never called.
func TestEveryTrackedSendGetsOneOutcomeUnderResets(t *testing.T) {
	nodes := startNodes(t, 2, WithMaxMessageSize(2000))
	var mu sync.Mutex
	seen := map[item]int{}
	target, err := nodes[1].sys.SpawnNamed("sink", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if it, ok := c.Message().(item); ok {
				mu.Lock()
				seen[item{From: it.From[:2], Seq: it.Seq}]++
				mu.Unlock()
			}
		})
	}, actor.WithMailboxSize(64))
	require.NoError(t, err)

	stop := make(chan struct{})
	resetterDone := make(chan struct{})
	go func() {
		defer close(resetterDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
				nodes[0].ep.ResetPeer(nodes[1].ep.Addr())
			}
		}
	}()
	const senders, per = 4, 1500
	type result struct {
		calls   atomic.Int32
		err     atomic.Value
		refused bool
	}
	results := make([][]result, senders)
	var wg sync.WaitGroup
	for sn := range senders {
		results[sn] = make([]result, per)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fromOf := func(i int) string {
				from := fmt.Sprintf("s%d", sn)
				if i%97 == 0 {
					from += strings.Repeat("x", 3000) // over the limit: fails on the writer
				}
				return from
			}
			if sn%2 == 1 { // SendMany, batches of up to 10, one Outcomes
				out := NewOutcomes(func(msgs []any, err error) {
					for _, m := range msgs {
						r := &results[sn][m.(item).Seq-1]
						r.err.Store(fmt.Sprint(err))
						r.calls.Add(1)
					}
				})
				for i := 0; i < per; {
					var msgs []any
					for j := i; j < min(i+10, per); j++ {
						msgs = append(msgs, item{From: fromOf(j), Seq: j + 1})
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					n, err := nodes[0].ep.SendMany(ctx, target, actor.PID{}, msgs, out)
					cancel()
					i += n
					if err != nil { // msgs[n] was not queued
						results[sn][i].refused = true
						i++
					}
				}
				return
			}
			for i := range per {
				r := &results[sn][i]
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := nodes[0].ep.SendTracked(ctx, target, actor.PID{}, item{From: fromOf(i), Seq: i + 1}, func(err error) {
					r.err.Store(fmt.Sprint(err))
					r.calls.Add(1)
				})
				cancel()
				r.refused = err != nil
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-resetterDone

	// Every queued send gets its outcome promptly once the resets stop.
	deadline := time.Now().Add(waitFor)
	for sn := range senders {
		for i := range per {
			r := &results[sn][i]
			for !r.refused && r.calls.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // a second call would show by now
	mu.Lock()
	defer mu.Unlock()
	confirmed := 0
	for sn := range senders {
		for i := range per {
			r := &results[sn][i]
			k := seen[item{From: fmt.Sprintf("s%d", sn), Seq: i + 1}]
			assert.LessOrEqual(t, k, 1, "s%d/%d delivered %d times", sn, i+1, k)
			switch calls := r.calls.Load(); {
			case r.refused:
				assert.Zero(t, calls, "s%d/%d: Send failed, yet its callback ran", sn, i+1)
				assert.Zero(t, k, "s%d/%d: Send failed, yet it arrived", sn, i+1)
			case calls != 1:
				t.Errorf("s%d/%d: callback called %d times", sn, i+1, calls)
			case r.err.Load() == "<nil>":
				confirmed++
				assert.Equal(t, 1, k, "s%d/%d confirmed but delivered %d times", sn, i+1, k)
			}
		}
	}
	t.Logf("%d of %d confirmed", confirmed, senders*per)
	assert.Positive(t, confirmed)
}

// TestAWriteOnAFailedStreamFailsEveryItemOnce: a writer that finds its
// stream failed at the first frame's flush fails that frame's messages and
// every message it had not encoded yet, each exactly once, with the
// stream's error, whether one callback or a shared Outcomes awaits it.
func TestAWriteOnAFailedStreamFailsEveryItemOnce(t *testing.T) {
	f := newWriterFixture(t, item{From: "first"})
	const n = 40
	var mu sync.Mutex
	got := make(map[int][]error)
	record := func(seq int, err error) {
		mu.Lock()
		got[seq] = append(got[seq], err)
		mu.Unlock()
	}
	out := NewOutcomes(func(msgs []any, err error) {
		for _, m := range msgs {
			record(m.(item).Seq, err)
		}
	})
	items := make([]outMsg, n)
	f.s.mu.Lock()
	for i := range n {
		require.True(t, f.l.w.TryTake(), "no credit for value %d", i)
		v := item{From: "x", Seq: i}
		done := notify{many: out, msg: v}
		if i%3 == 0 {
			done = notify{one: func(err error) { record(i, err) }}
		}
		// Two senders in turn: no runs, so the writer flushes after each.
		items[i] = outMsg{l: f.l, to: f.to, from: actor.PID{Node: "n", ID: fmt.Sprint(i % 2)},
			flags: wire.FlagTracked, msg: v, done: done}
	}
	f.s.mu.Unlock()
	f.s.fail(fmt.Errorf("%w: cut by the test", ErrNodeLost))
	w := outWriter{s: f.s, runs: f.s.enc.(RunEncoder), maxFrame: 1}
	require.False(t, w.write(items), "the write reports the failed stream")
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		require.Len(t, got[i], 1, "outcomes of value %d", i)
		assert.ErrorIs(t, got[i][0], ErrNodeLost, "value %d", i)
	}
}

// TestFramesAreLargeEnoughForGRPCToPool: gRPC gives a sent buffer back to
// the pool only above its pooling threshold; below it every small frame
// would cost a new buffer (see minFrameCap).
func TestFramesAreLargeEnoughForGRPCToPool(t *testing.T) {
	assert.False(t, mem.IsBelowBufferPoolingThreshold(minFrameCap),
		"gRPC's pooling threshold rose above minFrameCap (%d)", minFrameCap)
}
