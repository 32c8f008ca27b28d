package channel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/registry"
)

// listGhost lists, for name, a receiver on node that has no actor: as a
// receiver looks to senders after its actor stopped and before the registry
// drops it. It waits until every node sees it.
func listGhost(t *testing.T, nodes []*Node, node *Node, name string) {
	t.Helper()
	require.NoError(t, node.reg.Register(ctxFor(t, waitFor), name, "ghost", registry.Queue))
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			for _, rc := range n.reg.State().Receivers(name) {
				if rc.ActorID == "ghost" {
					return true
				}
			}
			return false
		}, waitFor, time.Millisecond, "%s does not list the ghost", n.ID())
	}
}

// tries counts the times node was told that a receiver is gone: the dead
// letters of sends that waited on a local one (a try makes none), and
// remote links closed as Gone.
func tries(node *Node) uint64 { return node.sys.DeadLetters() + node.ep.Stats().Gone }

// A receiver listed but gone turns every value away at once. A sender
// passes over it for a while instead of asking it again in a loop, and
// hands its value to a receiver that registers later.
func TestASenderPassesOverAReceiverListedButGone(t *testing.T) {
	for _, where := range []string{"local", "remote"} {
		t.Run(where, func(t *testing.T) {
			nodes := startCluster(t, 2)
			ghostNode := nodes[0]
			if where == "remote" {
				ghostNode = nodes[1]
			}
			listGhost(t, nodes, ghostNode, "orders")
			out, closeOut, err := nodes[0].Send("orders", 0)
			require.NoError(t, err)
			defer func() { require.NoError(t, closeOut()) }()

			before := tries(nodes[0])
			out <- Order{Seq: 1} // taken by the pump, which finds only the ghost
			const watch = 500 * time.Millisecond
			time.Sleep(watch)
			// Once per benchTime (20 ms) is about 25; asking again at once
			// was 350,000 dead letters (local) or thousands of Gone links
			// (remote) in the same time.
			asked := tries(nodes[0]) - before
			t.Logf("asked the ghost %d times in %v", asked, watch)
			if where == "remote" {
				assert.Positive(t, asked, "the ghost was never asked")
			}
			assert.Less(t, asked, uint64(100), "asked the ghost %d times in %v", asked, watch)

			in, closeIn, err := nodes[1].Receive("orders", 4)
			require.NoError(t, err)
			defer func() { require.NoError(t, closeIn()) }()
			assert.Equal(t, Order{Seq: 1}, recv(t, in))
		})
	}
}

// Passing over a gone receiver holds up only that receiver: values go on
// to the live ones without waiting, and the gone one is asked rarely.
func TestASenderPassesOverOnlyTheReceiverThatIsGone(t *testing.T) {
	nodes := startCluster(t, 1)
	in, closeIn, err := nodes[0].Receive("orders", 1024)
	require.NoError(t, err)
	defer func() { require.NoError(t, closeIn()) }()
	listGhost(t, nodes, nodes[0], "orders")
	out, closeOut, err := nodes[0].Send("orders", 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, closeOut()) }()

	const values = 1000
	before := tries(nodes[0])
	msgs := make([]*Message, values)
	for i := range msgs {
		msgs[i] = WithMessage(Order{Seq: i}, waitFor)
		out <- msgs[i]
	}
	for i, m := range msgs {
		<-m.Done()
		require.NoError(t, m.Err(), "value %d", i)
		assert.Equal(t, Order{Seq: i}, recv(t, in))
	}
	// Each handle is routed alone, in turn from the next receiver: asking
	// the ghost each time it comes first was about half of them.
	asked := tries(nodes[0]) - before
	t.Logf("asked the ghost %d times for %d values", asked, values)
	assert.Less(t, asked, uint64(values/10), "asked the ghost %d times for %d values", asked, values)
}
