package channel

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// dchan's channel-level benchmarks: nodes in one process on loopback, moving
// benchMsg values (int64 + 32-byte string, the same shape as remoting's
// testMsg). Each figure is read as a ratio to a baseline of the same run:
//
//	BenchmarkCrossNodeSend, BenchmarkCrossNodeSendWithMessage
//	        / remoting.BenchmarkRawGRPCBaseline   (msgs/s, goal ≥ 0.9)
//	BenchmarkRoundTripTwoNames
//	        / remoting.BenchmarkRawGRPCRoundTrip  (p50-us, goal ≤ 1.2)
//	BenchmarkSameNodeSend / BenchmarkSameNodeChanBaseline (msgs/s, goal ≥ 0.25)
//	BenchmarkSlowReceiverSenderMemory: heap-growth-KB, goal "flat"
//
//	go test -run '^$' -bench 'CrossNode|RoundTrip|SameNode|SlowReceiver' -benchtime 2s -count 3 ./channel/
//	go test -run '^$' -bench 'RawGRPC' -benchtime 2s -count 3 ./remoting/
//
// Cluster start, Receive registration and the first value across each link
// (dial, stream open, gob's type description) happen before the timer
// starts. allocs/op count the whole process: both nodes, gRPC on both sides.

// benchMsg is the benchmarks' value: an int64 and a 32-byte string.
type benchMsg struct {
	ID      int64
	Payload string
}

const benchPayload = "0123456789abcdef0123456789abcdef"

// benchBuf is the buffer of every Send and Receive in the benchmarks,
// except the receivers of CrossNodeSend and CrossNodeSendOf (bulkBuf) and
// of the CrossNodeSendBuffer sweep.
const benchBuf = 1024

// bulkBuf is the buffer of the receivers in the cross-node throughput
// benchmarks (CrossNodeSend, CrossNodeSendOf): a receiver sized for bulk
// traffic, as docs/operations.md advises; its mailbox's slots are
// allocated only while a backlog exists (its Go channel's share, 1024
// slots, at Receive). Its credit window, 3,072 values (about 120 KB: a
// benchMsg takes about 40 bytes in a gob run), is of the order of what
// gRPC's own flow control lets the raw baseline keep in flight: 64 KB at
// first, grown by its BDP estimator. At 1024 the window is 2048 values
// (about 80 KB), the least a link gets: CrossNodeSendBuffer shows both.
const bulkBuf = 4096

// benchWait bounds every wait, so that a bug fails a benchmark instead of
// hanging it.
const benchWait = 2 * time.Minute

// startBenchNodes starts size nodes on loopback, silent, registering
// benchMsg; node 1 bootstraps, the others join through it. They are closed
// (last first) when the benchmark ends.
func startBenchNodes(b *testing.B, size int) []*Node {
	b.Helper()
	var nodes []*Node
	b.Cleanup(func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			if err := nodes[i].Close(); err != nil {
				b.Errorf("closing node %s: %v", nodes[i].ID(), err)
			}
		}
	})
	for i := 1; i <= size; i++ {
		opts := []Option{
			WithNodeID(fmt.Sprintf("b%d", i)),
			WithLogger(zap.NewNop()),
			WithTypes(benchMsg{}),
		}
		if len(nodes) > 0 {
			opts = append(opts, WithPeers(nodes[0].Addr()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), benchWait)
		n, err := New(ctx, opts...)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// benchReceive registers a receiver and closes it when the benchmark ends
// (before the nodes: cleanups run last-registered first).
func benchReceive(b *testing.B, n *Node, name string) <-chan any {
	b.Helper()
	return benchReceiveBuf(b, n, name, benchBuf)
}

// benchReceiveBuf is benchReceive with a buffer of buf.
func benchReceiveBuf(b *testing.B, n *Node, name string, buf int) <-chan any {
	b.Helper()
	ch, closeFn, err := n.Receive(name, buf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := closeFn(); err != nil {
			b.Errorf("closing receiver %q: %v", name, err)
		}
	})
	return ch
}

// benchSend opens a send channel and closes it when the benchmark ends.
func benchSend(b *testing.B, n *Node, name string) chan<- any {
	b.Helper()
	ch, closeFn, err := n.Send(name, benchBuf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := closeFn(); err != nil {
			b.Errorf("closing sender %q: %v", name, err)
		}
	})
	return ch
}

// benchSink drains a receive channel until it closes. Values with a
// negative ID are warm-ups, signalled on warm; the others must carry IDs
// 0, 1, 2... in order (one sender, one receiver: per-pair FIFO), and done
// closes after the target-th.
type benchSink struct {
	target  int64
	count   atomic.Int64
	warm    chan struct{}
	done    chan struct{}
	err     chan error
	ended   chan struct{}
	started bool
}

// newBenchSink makes a sink and registers the wait for its goroutine's end.
// Call it before the receiver's benchReceive, so that the wait runs after
// the receiver's close (cleanups run last-registered first), which closes
// the channel once drained.
func newBenchSink(b *testing.B, target int) *benchSink {
	s := &benchSink{
		target: int64(target),
		warm:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		err:    make(chan error, 1),
		ended:  make(chan struct{}),
	}
	b.Cleanup(func() {
		if !s.started {
			return
		}
		select {
		case <-s.ended:
		case <-time.After(benchWait):
			b.Error("receive channel not closed")
		}
		select {
		case err := <-s.err:
			b.Error(err)
		default:
		}
	})
	return s
}

// start drains ch.
func (s *benchSink) start(ch <-chan any) {
	s.started = true
	go func() {
		defer close(s.ended)
		var next int64
		for v := range ch {
			m, ok := v.(benchMsg)
			switch {
			case !ok:
				s.fail(fmt.Errorf("got a %T", v))
			case m.ID < 0:
				select {
				case s.warm <- struct{}{}:
				default:
				}
			case m.ID != next || len(m.Payload) != len(benchPayload):
				s.fail(fmt.Errorf("value %d: got %+v", next, m))
				next = m.ID + 1
			default:
				next++
				if s.count.Add(1) == s.target {
					close(s.done)
				}
			}
		}
	}()
}

func (s *benchSink) fail(err error) {
	select {
	case s.err <- err:
	default:
	}
}

// waitWarm sends one warm-up value through ch and waits for it.
func (s *benchSink) waitWarm(b *testing.B, ch chan<- any) {
	b.Helper()
	ch <- benchMsg{ID: -1, Payload: benchPayload}
	select {
	case <-s.warm:
	case err := <-s.err:
		b.Fatal(err)
	case <-time.After(benchWait):
		b.Fatal("warm-up value not received")
	}
}

// waitDone waits for the target-th value.
func (s *benchSink) waitDone(b *testing.B) {
	b.Helper()
	select {
	case <-s.done:
	case err := <-s.err:
		b.Fatal(err)
	case <-time.After(benchWait):
		b.Fatalf("received %d of %d values", s.count.Load(), s.target)
	}
}

// BenchmarkCrossNodeSend: b.N bare values from a Send on node 1 to a Receive
// of bulkBuf on node 2; it ends when all are received.
func BenchmarkCrossNodeSend(b *testing.B) { benchmarkSendReceive(b, 2, bulkBuf) }

// BenchmarkCrossNodeSendBuffer is BenchmarkCrossNodeSend with receivers of
// several buffer sizes: the mailbox's share of the buffer (half, or all
// but 1024 of a large one), but at least 2048 and at most 4096, is the
// sender's credit window, so it shows what sizing a receiver buys
// (docs/operations.md).
func BenchmarkCrossNodeSendBuffer(b *testing.B) {
	for _, buf := range []int{128, 1024, 4096, 8192} {
		b.Run(fmt.Sprintf("buf=%d", buf), func(b *testing.B) { benchmarkSendReceive(b, 2, buf) })
	}
}

// benchmarkSendReceive sends b.N bare values from a Send on the first of
// n nodes to a Receive with a buffer of buf on the last, and ends when all
// are received.
func benchmarkSendReceive(b *testing.B, n, buf int) {
	nodes := startBenchNodes(b, n)
	sink := newBenchSink(b, b.N)
	in := benchReceiveBuf(b, nodes[n-1], "bench", buf)
	out := benchSend(b, nodes[0], "bench")
	sink.start(in)
	sink.waitWarm(b, out)
	timeSends(b, sink, out, func(m benchMsg) any { return m })
}

// timeSends writes b.N benchMsg values to out, as the element type of out
// (conv), timed, and reports msgs/s once sink has received them all.
func timeSends[T any](b *testing.B, sink *benchSink, out chan<- T, conv func(benchMsg) T) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out <- conv(benchMsg{ID: int64(i), Payload: benchPayload})
	}
	sink.waitDone(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkCrossNodeSendWithMessage is BenchmarkCrossNodeSend with a
// WithMessage handle on every value, and a receiver of benchBuf. The writer does not wait per value: a
// checker goroutine waits for the handles in order, and the benchmark ends
// when all are Done (each Err nil) and all values are received.
func BenchmarkCrossNodeSendWithMessage(b *testing.B) {
	nodes := startBenchNodes(b, 2)
	sink := newBenchSink(b, b.N)
	in := benchReceive(b, nodes[1], "bench")
	out := benchSend(b, nodes[0], "bench")
	sink.start(in)
	sink.waitWarm(b, out)

	handles := make(chan *Message, 1<<16)
	checked := make(chan error, 1)
	b.ReportAllocs()

	b.ResetTimer()
	go func() {
		// One deadline for all the handles: a timer per handle would
		// charge the checker's own cost (a tenth of the CPU) to the
		// handles.
		var first error
		deadline := time.NewTimer(benchWait)
		defer deadline.Stop()
		for m := range handles {
			select {
			case <-m.Done():
			case <-deadline.C:
				if first == nil {
					first = fmt.Errorf("handles not done after %v", benchWait)
				}
				continue
			}
			if err := m.Err(); err != nil && first == nil {
				first = err
			}
		}
		checked <- first
	}()
	for i := range b.N {
		m := WithMessage(benchMsg{ID: int64(i), Payload: benchPayload}, time.Minute)
		out <- m
		handles <- m
	}
	close(handles)
	if err := <-checked; err != nil {
		b.Fatalf("a handle failed: %v", err)
	}
	sink.waitDone(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRoundTripTwoNames: node 1 sends to "req" (received on node 2),
// node 2 echoes each value on "resp" (received on node 1); one value in
// flight. It reports the p50 and p99 round trip in microseconds.
func BenchmarkRoundTripTwoNames(b *testing.B) {
	nodes := startBenchNodes(b, 2)
	// Cleanups run in reverse: req sender, req receiver (its channel closes,
	// the echo ends), resp receiver, the wait for the echo, resp sender
	// (after the echo's last write), nodes.
	respOut := benchSend(b, nodes[1], "resp")
	echoEnded := make(chan struct{})
	started := false
	b.Cleanup(func() {
		if !started {
			return
		}
		select {
		case <-echoEnded:
		case <-time.After(benchWait):
			b.Error("echo goroutine did not end")
		}
	})
	respIn := benchReceive(b, nodes[0], "resp")
	reqIn := benchReceive(b, nodes[1], "req")
	reqOut := benchSend(b, nodes[0], "req")
	started = true
	go func() {
		defer close(echoEnded)
		for v := range reqIn {
			respOut <- v
		}
	}()
	// No timer guards a round trip: the raw round trip it is compared
	// with has none, and one per round trip (a time.After in a select)
	// cost it about a microsecond of timer-heap work. A reply that never
	// comes ends the run at go test's -timeout, with every stack.
	roundTrip := func(id int64) time.Duration {
		start := time.Now()
		reqOut <- benchMsg{ID: id, Payload: benchPayload}
		v, ok := <-respIn
		d := time.Since(start)
		if m, isMsg := v.(benchMsg); !ok || !isMsg || m.ID != id {
			b.Fatalf("reply to %d: got %#v (channel open: %v)", id, v, ok)
		}
		return d
	}
	for i := range 100 { // warm up both links
		roundTrip(-1 - int64(i))
	}
	rtts := make([]time.Duration, b.N)
	b.ReportAllocs()

	b.ResetTimer()
	for i := range b.N {
		rtts[i] = roundTrip(int64(i))
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-us")
}

// BenchmarkSameNodeSend: b.N values from a Send to a Receive on the same
// node; it ends when all are received. Compare with
// BenchmarkSameNodeChanBaseline.
func BenchmarkSameNodeSend(b *testing.B) { benchmarkSendReceive(b, 1, benchBuf) }

// BenchmarkSameNodeChanBaseline is BenchmarkSameNodeSend's baseline: a Go
// channel of any with the same buffer and one consumer goroutine doing the
// same checks.
func BenchmarkSameNodeChanBaseline(b *testing.B) {
	ch := make(chan any, benchBuf)
	sink := newBenchSink(b, b.N)
	b.Cleanup(func() { close(ch) }) // runs before the sink's wait
	sink.start(ch)
	sink.waitWarm(b, ch)
	b.ReportAllocs()

	b.ResetTimer()
	for i := range b.N {
		ch <- benchMsg{ID: int64(i), Payload: benchPayload}
	}
	sink.waitDone(b)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// Slow-receiver parameters: the reader takes one value per slowPace; the
// writer offers as fast as the send channel takes them, each wrapped in a
// handle that gives up after slowTimeout, for slowRun of wall time.
const (
	slowRun     = 2 * time.Second
	slowPace    = 100 * time.Microsecond
	slowTimeout = 20 * time.Millisecond
)

// BenchmarkSlowReceiverSenderMemory: a Send on node 1 offers values as fast
// as it can to a Receive on node 2 whose reader takes one per 100 µs, for
// 2 s of wall time per iteration (b.N only repeats it). It reports the
// process's live-heap growth over the run (HeapInuse after runtime.GC, at
// the end of the run with the backlog still in place, minus before), its
// growth over the second half alone, the values delivered and the values
// offered per run. Both nodes live in this process: the growth counts the
// receiver's side too. The goal is "flat": this reports, it does not
// assert.
func BenchmarkSlowReceiverSenderMemory(b *testing.B) {
	nodes := startBenchNodes(b, 2)
	// Cleanups run in reverse: pacing off (the closes drain the backlog at
	// full speed), sender, receiver (its channel closes), the wait for the
	// reader, nodes.
	readerEnd := make(chan struct{})
	started := false
	b.Cleanup(func() {
		if !started {
			return
		}
		select {
		case <-readerEnd:
		case <-time.After(benchWait):
			b.Error("receive channel not closed")
		}
	})
	in := benchReceive(b, nodes[1], "bench")
	out := benchSend(b, nodes[0], "bench")
	var pacing atomic.Bool
	b.Cleanup(func() { pacing.Store(false) })

	// The paced reader: one value per slowPace on a fixed schedule (not a
	// sleep per value, whose overshoot would slow it further).
	var delivered atomic.Int64
	started = true
	go func() {
		defer close(readerEnd)
		var next time.Time
		for v := range in {
			if m, ok := v.(benchMsg); ok && m.ID >= 0 {
				delivered.Add(1)
			}
			if !pacing.Load() {
				next = time.Time{}
				continue
			}
			if next.IsZero() {
				next = time.Now()
			}
			next = next.Add(slowPace)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	warm := WithMessage(benchMsg{ID: -1, Payload: benchPayload}, benchWait)
	out <- warm
	<-warm.Done()
	if err := warm.Err(); err != nil {
		b.Fatal(err)
	}

	heapInuse := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse)
	}
	var growth, growth2, offered, got, gaveUp float64
	b.ResetTimer()
	for range b.N {
		pacing.Store(true)
		before := delivered.Load()
		base := heapInuse()
		var mid, id, offers, timeouts int64
		half := false
		start := time.Now()
		for {
			el := time.Since(start)
			if el >= slowRun {
				break
			}
			if !half && el >= slowRun/2 {
				mid, half = heapInuse(), true
			}
			m := WithMessage(benchMsg{ID: id, Payload: benchPayload}, slowTimeout)
			id++
			offers++
			select {
			case out <- m:
			case <-m.Done(): // gave up before the channel took it
				timeouts++
			}
		}
		end := heapInuse() // the backlog is still in place
		growth += float64(end-base) / 1024
		growth2 += float64(end-mid) / 1024
		offered += float64(offers)
		gaveUp += float64(timeouts)
		got += float64(delivered.Load() - before)
		// Let the backlog drain (or time out) before the next run.
		pacing.Store(false)
		time.Sleep(5 * slowTimeout)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(growth/n, "heap-growth-KB")
	b.ReportMetric(growth2/n, "heap-growth-2nd-half-KB")
	b.ReportMetric(got/n, "delivered/run")
	b.ReportMetric(offered/n, "offered/run")
	b.ReportMetric(gaveUp/n, "gave-up/run")
}

// BenchmarkCrossNodeSendOf is BenchmarkCrossNodeSend through a typed send
// channel (SendOf[benchMsg]).
func BenchmarkCrossNodeSendOf(b *testing.B) {
	nodes := startBenchNodes(b, 2)
	sink := newBenchSink(b, b.N)
	in := benchReceiveBuf(b, nodes[1], "bench", bulkBuf)
	out, closeFn, err := SendOf[benchMsg](nodes[0], "bench", benchBuf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := closeFn(); err != nil {
			b.Errorf("closing sender: %v", err)
		}
	})
	sink.start(in)
	out <- benchMsg{ID: -1, Payload: benchPayload}
	select {
	case <-sink.warm:
	case <-time.After(benchWait):
		b.Fatal("warm-up value not received")
	}
	timeSends(b, sink, out, func(m benchMsg) benchMsg { return m })
}
