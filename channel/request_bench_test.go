package channel

import (
	"context"
	"sync"
	"testing"
)

// BenchmarkRequest measures Request's round trip across two nodes in one
// process, with 1 and 16 requests in flight.
func BenchmarkRequest(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(map[int]string{1: "inflight-1", 16: "inflight-16"}[inflight], func(b *testing.B) {
			nodes := startBenchNodes(b, 2)
			stop, err := Serve(nodes[1], "echo", 1024, func(_ context.Context, x int) (int, error) { return x, nil })
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			for len(nodes[0].reg.Lookup("echo")) == 0 {
				b.StopTimer()
			}
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / inflight
			for range inflight {
				wg.Go(func() {
					for i := range per {
						if _, err := Request[int](ctx, nodes[0], "echo", i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
