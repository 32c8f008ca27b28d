package registry

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchCluster starts 3 nodes with BoltDB logs on disk and default timings.
func benchCluster(b *testing.B) []*testNode {
	b.Helper()
	n1 := startTestNode(b, "n1", "", b.TempDir(), nil)
	n2 := startTestNode(b, "n2", "", b.TempDir(), []string{n1.addr})
	n3 := startTestNode(b, "n3", "", b.TempDir(), []string{n1.addr})
	return []*testNode{n1, n2, n3}
}

// BenchmarkRegister measures committed registrations on 3 nodes with BoltDB
// on disk, from 1 and from 16 concurrent clients spread over the nodes
// (followers forward to the leader). It reports registrations per second and
// the commit latency percentiles seen by the clients.
func BenchmarkRegister(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			nodes := benchCluster(b)
			var (
				mu   sync.Mutex
				lats []time.Duration
				wg   sync.WaitGroup
			)
			ctx := context.Background()
			b.ResetTimer()
			per := (b.N + clients - 1) / clients
			for c := 0; c < clients; c++ {
				n := nodes[c%len(nodes)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					local := make([]time.Duration, 0, per)
					for i := 0; i < per; i++ {
						start := time.Now()
						if err := n.reg.Register(ctx, fmt.Sprintf("bench.%d.%d", c, i), "$1", Queue); err != nil {
							b.Error(err)
							return
						}
						local = append(local, time.Since(start))
					}
					mu.Lock()
					lats = append(lats, local...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lats)
			if len(lats) > 0 {
				b.ReportMetric(float64(len(lats))/b.Elapsed().Seconds(), "regs/s")
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkLookupLocal reads the local replica through the Registry.
func BenchmarkLookupLocal(b *testing.B) {
	nodes := benchCluster(b)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if err := nodes[0].reg.Register(ctx, fmt.Sprintf("name.%d", i), "$1", Queue); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if len(nodes[1].reg.Lookup("name.500")) == 0 {
			i++
		}
	}
	_ = i
}
