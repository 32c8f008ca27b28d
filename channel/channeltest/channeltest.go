// Package channeltest starts in-process dchan clusters for tests: real
// nodes on loopback, with timings short enough for a test (elections in
// a few hundred milliseconds, dead nodes expired after a second).
//
//	func TestOrders(t *testing.T) {
//	    nodes := channeltest.Cluster(t, 3, channel.WithTypes(Order{}))
//	    in, closeIn, _ := nodes[1].Receive("orders", 16)
//	    ...
//	}
//
// Nodes are closed when the test ends. The package starts no goroutine of
// its own beyond the nodes'.
package channeltest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/channel"
)

// Cluster starts size nodes named n1…nsize on 127.0.0.1 (free ports), the
// first bootstrapping and the others joining through it, and closes them
// when t ends. opts apply to every node after the test defaults (a zaptest
// logger, short Raft timeouts, a one-second expiry).
func Cluster(t testing.TB, size int, opts ...channel.Option) []*channel.Node {
	t.Helper()
	if size < 1 {
		t.Fatalf("channeltest: cluster size %d", size)
	}
	nodes := make([]*channel.Node, 0, size)
	t.Cleanup(func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			if err := nodes[i].Close(); err != nil {
				t.Logf("channeltest: closing %s: %v", nodes[i].ID(), err)
			}
		}
	})
	for i := 1; i <= size; i++ {
		all := []channel.Option{
			channel.WithNodeID(fmt.Sprintf("n%d", i)),
			channel.WithListenAddr("127.0.0.1:0"),
			channel.WithLogger(zaptest.NewLogger(t)),
			channel.WithRaftTimeouts(150*time.Millisecond, 300*time.Millisecond),
			channel.WithExpireAfter(time.Second),
		}
		if len(nodes) > 0 {
			all = append(all, channel.WithPeers(nodes[0].Addr()))
		}
		all = append(all, opts...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := channel.New(ctx, all...)
		cancel()
		if err != nil {
			t.Fatalf("channeltest: starting node %d: %v", i, err)
		}
		nodes = append(nodes, n)
	}
	return nodes
}
