package channel

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dchan-io/dchan/channel/internal/gossip"
)

// Broadcast benchmarks: N nodes in one process, one subscriber on each, one
// publisher on the first node.
//
//	go test -run '^$' -bench 'Broadcast' -benchtime 5000x -count 3 ./channel/
//
// BenchmarkBroadcastThroughput publishes b.N benchMsg values as fast as the
// publisher is let, and stops the clock when every subscriber has them
// all: msgs/s is the publish rate at full coverage. It also reports
// network value messages per remote delivery (msgs/delivery; the tree's
// ideal is 1), anti-entropy messages per value, the hops of the longest
// path, and any value given up (lost; 0 expected).
//
// BenchmarkBroadcastCoverage publishes one value at a time and waits for it
// to reach every subscriber: the p50/p99 time to full coverage.

// benchSubscribers subscribes on every node and counts what arrives.
func benchSubscribers(b *testing.B, nodes []*Node, name string, each func(i int, v benchMsg)) {
	b.Helper()
	for i, n := range nodes {
		ch, closeFn, err := n.Subscribe(name, 1<<16)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for v := range ch {
				each(i, v.(benchMsg))
			}
		}()
		b.Cleanup(func() {
			_ = closeFn()
			<-done
		})
	}
	deadline := time.Now().Add(benchWait)
	for _, n := range nodes {
		for len(gossip.Participants(bcastMembership{n}, name, n.ID())) < len(nodes)-1 {
			if time.Now().After(deadline) {
				b.Fatal("subscriptions not visible")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func BenchmarkBroadcastThroughput(b *testing.B) {
	for _, size := range []int{5, 10, 30} {
		b.Run(fmt.Sprintf("N=%d", size), func(b *testing.B) {
			nodes := startBenchNodes(b, size)
			counts := make([]atomic.Int64, size)
			benchSubscribers(b, nodes, "bcast", func(i int, _ benchMsg) { counts[i].Add(1) })
			out, closeOut, err := nodes[0].Publish("bcast", benchBuf)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = closeOut() })
			// Warm up every link (dial, stream, gob's type description).
			out <- benchMsg{ID: -1, Payload: benchPayload}
			waitCounts(b, nodes, counts, 1)
			before := broadcastCounters(nodes)

			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out <- benchMsg{ID: int64(i), Payload: benchPayload}
			}
			waitCounts(b, nodes, counts, int64(b.N)+1)
			b.StopTimer()

			after := broadcastCounters(nodes)
			deliveries := float64(b.N) * float64(size-1)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(after.Sent-before.Sent)/deliveries, "msgs/delivery")
			b.ReportMetric(float64(after.Digests+after.Grafts-before.Digests-before.Grafts)/float64(b.N), "repair-msgs/value")
			b.ReportMetric(float64(after.MaxHops), "hops")
			b.ReportMetric(float64(after.Lost-before.Lost), "lost")
		})
	}
}

func BenchmarkBroadcastCoverage(b *testing.B) {
	for _, size := range []int{5, 10, 30} {
		b.Run(fmt.Sprintf("N=%d", size), func(b *testing.B) {
			nodes := startBenchNodes(b, size)
			counts := make([]atomic.Int64, size)
			benchSubscribers(b, nodes, "cover", func(i int, _ benchMsg) { counts[i].Add(1) })
			out, closeOut, err := nodes[0].Publish("cover", 1)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = closeOut() })
			out <- benchMsg{ID: -1, Payload: benchPayload}
			waitCounts(b, nodes, counts, 1)

			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				out <- benchMsg{ID: int64(i), Payload: benchPayload}
				waitCounts(b, nodes, counts, int64(i)+2)
				times = append(times, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "p50-us")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-us")
			b.ReportMetric(float64(broadcastCounters(nodes).MaxHops), "hops")
		})
	}
}

// waitCounts waits until every subscriber has counted want values.
func waitCounts(b *testing.B, nodes []*Node, counts []atomic.Int64, want int64) {
	deadline := time.Now().Add(benchWait)
	for i := range counts {
		for spins := 0; counts[i].Load() < want; spins++ {
			if time.Now().After(deadline) {
				b.Fatalf("subscriber %d has %d of %d values; %+v", i, counts[i].Load(), want, nodes[i].Stats().Broadcast)
			}
			if spins < 100 {
				continue // a coverage time in microseconds: spin briefly first
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// broadcastCounters sums the nodes' broadcast counters (MaxHops: the max).
func broadcastCounters(nodes []*Node) BroadcastStats {
	var t BroadcastStats
	for _, n := range nodes {
		s := n.Stats().Broadcast
		t.Sent += s.Sent
		t.Digests += s.Digests
		t.Grafts += s.Grafts
		t.Lost += s.Lost
		t.QueueDropped += s.QueueDropped
		t.MaxHops = max(t.MaxHops, s.MaxHops)
	}
	return t
}
