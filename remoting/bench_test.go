package remoting

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dchan-io/dchan/actor"
)

// dchan's own remoting benchmarks: two nodes (an actor System and an
// Endpoint each) in one process, talking over loopback TCP, moving testMsg
// values (int64 + 32-byte string) with a GobCodec that registers testMsg.
// Each is read as a ratio to the raw baseline of the same run:
//
//	BenchmarkRemoteSend        / BenchmarkRawGRPCBaseline  (msgs/s)
//	BenchmarkRemoteRequestRTT  / BenchmarkRawGRPCRoundTrip (p50, p99)
//
//	go test -run '^$' -bench 'RemoteSend|RawGRPC|RemoteRequest' -benchtime 2s -count 5 ./remoting/
//
// Stream setup (dial, Open/Grant, gob's type description) happens before the
// timer starts, as the baselines open their stream before theirs. allocs/op
// count the whole process: sender, receiver, gRPC on both sides.

// benchWait bounds every wait of the remoting benchmarks, so that a bug
// fails the benchmark instead of hanging it.
const benchWait = 5 * time.Minute

// benchNode is one node of a benchmark pair.
type benchNode struct {
	sys *actor.System
	ep  *Endpoint
}

// startBenchPair starts two nodes, "b1" and "b2", that resolve each other,
// each with the default mailbox, window and batch sizes. Both are shut down
// (endpoints first, then systems) when the benchmark ends.
func startBenchPair(b *testing.B) (n1, n2 *benchNode) {
	b.Helper()
	return startBenchPairWith(b, NewGobCodec)
}

// startBenchPairWith is startBenchPair with the codecs newCodec makes.
func startBenchPairWith(b *testing.B, newCodec func(...any) (*GobCodec, error)) (n1, n2 *benchNode) {
	b.Helper()
	resolver := StaticResolver{}
	nodes := make([]*benchNode, 2)
	for i := range nodes {
		name := fmt.Sprintf("b%d", i+1)
		sys, err := actor.NewSystem(actor.WithNode(name))
		if err != nil {
			b.Fatal(err)
		}
		codec, err := newCodec(testMsg{})
		if err != nil {
			b.Fatal(err)
		}
		ep, err := New(sys, WithResolver(resolver), WithCodec(codec))
		if err != nil {
			b.Fatal(err)
		}
		sys.SetRemote(ep)
		resolver[name] = ep.Addr()
		nodes[i] = &benchNode{sys: sys, ep: ep}
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, nd := range nodes {
			if err := nd.ep.Shutdown(ctx); err != nil {
				b.Errorf("endpoint shutdown: %v", err)
			}
		}
		for _, nd := range nodes {
			if err := nd.sys.Shutdown(ctx); err != nil {
				b.Errorf("system shutdown: %v", err)
			}
		}
	})
	for _, nd := range nodes {
		if err := nd.ep.Start(); err != nil {
			b.Fatal(err)
		}
	}
	return nodes[0], nodes[1]
}

// benchSink counts testMsg values with IDs 0, 1, 2... in order and closes
// done after the n-th. A value with a negative ID is a warm-up: it is
// signalled on warm and not counted.
type benchSink struct {
	n     int64
	count int64 // the actor's only
	done  chan struct{}
	warm  chan struct{}
	err   chan error
}

func newBenchSink(n int) *benchSink {
	return &benchSink{
		n:    int64(n),
		done: make(chan struct{}),
		warm: make(chan struct{}, 1),
		err:  make(chan error, 1),
	}
}

func (s *benchSink) producer() actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			m, ok := c.Message().(testMsg)
			if !ok {
				return
			}
			if m.ID < 0 {
				s.warm <- struct{}{}
				return
			}
			if m.ID != s.count || len(m.Payload) != len(testPayload) {
				select {
				case s.err <- fmt.Errorf("value %d: got %+v", s.count, m):
				default:
				}
			}
			if s.count++; s.count == s.n {
				close(s.done)
			}
		})
	}
}

// await waits for ch, failing the benchmark on a sink error or timeout.
func (s *benchSink) await(b *testing.B, ch <-chan struct{}, what string) {
	b.Helper()
	select {
	case <-ch:
	case err := <-s.err:
		b.Fatal(err)
	case <-time.After(benchWait):
		b.Fatalf("timed out waiting for %s", what)
	}
}

// BenchmarkRemoteSend is BenchmarkRawGRPCBaseline through dchan: one sender
// goroutine calls System.Send b.N times to one actor (default mailbox,
// 4096) on the other node, which checks the order and counts; the benchmark
// ends when the actor has processed all b.N.
func BenchmarkRemoteSend(b *testing.B) { benchmarkRemoteSend(b, NewGobCodec) }

// BenchmarkRemoteSendPlainGob is BenchmarkRemoteSend with codecs that send
// every type through gob, flat structs included, as the raw baseline does:
// the default codec's flat path is the difference. With the default codec
// the ratio to the raw baseline is not the transport's alone.
func BenchmarkRemoteSendPlainGob(b *testing.B) { benchmarkRemoteSend(b, newPlainGobCodec) }

func benchmarkRemoteSend(b *testing.B, newCodec func(...any) (*GobCodec, error)) {
	n1, n2 := startBenchPairWith(b, newCodec)
	sink := newBenchSink(b.N)
	target, err := n2.sys.SpawnNamed("sink", sink.producer())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	if err := n1.sys.Send(ctx, target, testMsg{ID: -1, Payload: testPayload}); err != nil {
		b.Fatal(err)
	}
	sink.await(b, sink.warm, "the warm-up message")

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := n1.sys.Send(ctx, target, testMsg{ID: int64(i), Payload: testPayload}); err != nil {
			b.Fatal(err)
		}
	}
	sink.await(b, sink.done, "the actor to process every message")
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRemoteSendTracked is BenchmarkRemoteSend through
// Endpoint.SendTracked: every message carries a completion callback (one
// shared func, so the benchmark measures the tracking, not a closure per
// call), sends are pipelined, and the benchmark ends when all b.N are
// confirmed, that is accepted into the remote mailbox.
func BenchmarkRemoteSendTracked(b *testing.B) {
	n1, n2 := startBenchPair(b)
	sink := newBenchSink(b.N)
	target, err := n2.sys.SpawnNamed("sink", sink.producer())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()

	warmed := make(chan error, 1)
	if err := n1.ep.SendTracked(ctx, target, actor.PID{}, testMsg{ID: -1, Payload: testPayload},
		func(err error) { warmed <- err }); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-warmed:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(benchWait):
		b.Fatal("warm-up message not confirmed")
	}
	sink.await(b, sink.warm, "the warm-up message")

	var (
		n         = int64(b.N)
		resolved  atomic.Int64
		confirmed atomic.Int64
		failed    atomic.Int64
		firstErr  = make(chan error, 1)
		allDone   = make(chan struct{})
	)
	// done must not allocate, or the benchmark would charge its own
	// allocation to SendTracked.
	done := func(err error) {
		if err != nil {
			failed.Add(1)
			select {
			case firstErr <- err:
			default:
			}
		} else {
			confirmed.Add(1)
		}
		if resolved.Add(1) == n {
			close(allDone)
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := n1.ep.SendTracked(ctx, target, actor.PID{}, testMsg{ID: int64(i), Payload: testPayload}, done); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-allDone:
	case err := <-sink.err:
		b.Fatal(err)
	case <-time.After(benchWait):
		b.Fatalf("%d of %d confirmed after %v", confirmed.Load(), n, benchWait)
	}
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d sends failed, first: %v", f, n, <-firstErr)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	sink.await(b, sink.done, "the actor to process every message")
}

// BenchmarkRemoteRequestRTT is BenchmarkRawGRPCRoundTrip through dchan:
// System.Request to an actor on the other node that increments the ID and
// responds. It reports the p50 and p99 round trip in microseconds.
func BenchmarkRemoteRequestRTT(b *testing.B) {
	n1, n2 := startBenchPair(b)
	echo, err := n2.sys.SpawnNamed("echo", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if m, ok := c.Message().(testMsg); ok {
				m.ID++
				_ = c.Respond(m)
			}
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	// Warm up both directions: the request stream b1→b2 and the reply
	// stream b2→b1.
	if _, err := n1.sys.Request(ctx, echo, testMsg{ID: -2, Payload: testPayload}); err != nil {
		b.Fatal(err)
	}
	rtts := make([]time.Duration, b.N)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		reply, err := n1.sys.Request(ctx, echo, testMsg{ID: int64(i), Payload: testPayload})
		rtts[i] = time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if m, ok := reply.(testMsg); !ok || m.ID != int64(i)+1 {
			b.Fatalf("reply %d: got %#v", i, reply)
		}
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-us")
}
