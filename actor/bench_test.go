package actor_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/dchan-io/dchan/actor"
)

// benchMsg is the small struct the benchmarks move.
type benchMsg struct {
	ID  int64
	Val int64
}

const benchCapacity = actor.DefaultMailboxSize

// BenchmarkActorSend: one sender goroutine sends b.N small structs to one
// actor, which counts them; the benchmark ends when the actor has processed
// all b.N. Compare with BenchmarkChanBaseline from the same run.
func BenchmarkActorSend(b *testing.B) {
	s, pid, done := countingActor(b)
	n := int64(b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := int64(0); i < n; i++ {
		if err := s.Send(ctx, pid, benchMsg{ID: i}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// countingActor starts a System with one actor that closes done once it has
// counted b.N benchMsg values. The System shuts down when b ends.
func countingActor(b *testing.B) (*actor.System, actor.PID, <-chan struct{}) {
	b.Helper()
	s, err := actor.NewSystem()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	n := int64(b.N)
	done := make(chan struct{})
	var count int64
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(benchMsg); ok {
				if count++; count == n {
					close(done)
				}
			}
		})
	}, actor.WithMailboxSize(benchCapacity))
	if err != nil {
		b.Fatal(err)
	}
	return s, pid, done
}

// BenchmarkChanBaseline is BenchmarkActorSend through a buffered Go channel
// of the same capacity, consumed by one goroutine.
func BenchmarkChanBaseline(b *testing.B) {
	n := int64(b.N)
	ch := make(chan benchMsg, benchCapacity)
	done := make(chan struct{})
	go func() {
		var count int64
		for range ch {
			if count++; count == n {
				close(done)
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := int64(0); i < n; i++ {
		ch <- benchMsg{ID: i}
	}
	<-done
	b.StopTimer()
	close(ch)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkActorSend8Senders: 8 sender goroutines share b.N messages to one
// actor.
func BenchmarkActorSend8Senders(b *testing.B) {
	const senders = 8
	s, pid, done := countingActor(b)
	n := int64(b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := int64(0); w < senders; w++ {
		wg.Go(func() {
			for i := w; i < n; i += senders {
				if err := s.Send(ctx, pid, benchMsg{ID: i}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRequest measures one Request/Respond round trip.
func BenchmarkRequest(b *testing.B) {
	s, err := actor.NewSystem()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if m, ok := c.Message().(benchMsg); ok {
				_ = c.Respond(m)
			}
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Request(ctx, pid, benchMsg{ID: int64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleActor spawns b.N actors with the default mailbox and has
// each process one message, so that each is started and idle. It reports
// the bytes allocated per actor (B/op) and those the heap still holds per
// actor afterwards (retained-B/actor): what an actor that keeps up costs
// while it lives. Its mailbox's capacity is allocated only once messages
// queue up (package mailbox, "Memory").
func BenchmarkIdleActor(b *testing.B) {
	s, err := actor.NewSystem()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	done := make(chan struct{}, 1)
	props := func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if _, ok := c.Message().(benchMsg); ok {
				done <- struct{}{}
			}
		})
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		pid, err := s.Spawn(props)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Send(ctx, pid, benchMsg{}); err != nil {
			b.Fatal(err)
		}
		<-done
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "retained-B/actor")
}
