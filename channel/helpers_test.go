package channel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/registry"
)

const waitFor = 15 * time.Second

type Order struct {
	Sender string
	Seq    int
}

// fastRegistry keeps elections and expiry short for tests.
func fastRegistry() Option {
	return withRegistryOptions(registry.WithTimeouts(150*time.Millisecond, 300*time.Millisecond),
		registry.WithExpireAfter(time.Second))
}

// startCluster starts size nodes on loopback in this process.
func startCluster(t *testing.T, size int, opts ...Option) []*Node {
	t.Helper()
	var nodes []*Node
	for i := 1; i <= size; i++ {
		all := append([]Option{
			WithNodeID(fmt.Sprintf("n%d", i)),
			WithLogger(zaptest.NewLogger(t)),
			WithTypes(Order{}),
			fastRegistry(),
		}, opts...)
		if len(nodes) > 0 {
			all = append(all, WithPeers(nodes[0].Addr()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		n, err := New(ctx, all...)
		cancel()
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			_ = nodes[i].Close()
		}
	})
	return nodes
}

// recv reads one value or fails the test.
func recv(t *testing.T, ch <-chan any) any {
	t.Helper()
	select {
	case v, ok := <-ch:
		require.True(t, ok, "channel closed")
		return v
	case <-time.After(waitFor):
		t.Fatal("no value")
		return nil
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
