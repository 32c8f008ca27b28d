package remoting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWireStatsCountFramesBothWaysAndResets: what one node's streams send
// to a peer, by node ID, is what the peer counts as received from it; a
// stream that fails and is reopened is counted as a reset; counters
// forgotten count again.
func TestWireStatsCountFramesBothWaysAndResets(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	const n = 5000
	for i := 1; i <= n; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	s.waitCount(t, n)

	var out, in WireStats
	require.Eventually(t, func() bool {
		out, in = nodes[0].ep.WireStats()["n2"], nodes[1].ep.WireStats()["n1"]
		return out.SentFrames > 0 && in.ReceivedFrames == out.SentFrames
	}, waitFor, 5*time.Millisecond, "n2 received every frame n1 sent")
	assert.Equal(t, out.SentBytes, in.ReceivedBytes)
	assert.Greater(t, out.SentBytes, uint64(n), "at least a byte a message")
	assert.Less(t, out.SentFrames, uint64(n), "messages go several to a frame")
	assert.Zero(t, out.StreamResets)

	nodes[0].ep.ResetPeer(nodes[1].ep.Addr())
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: n + 1}))
	s.waitCount(t, n+1)
	assert.Equal(t, uint64(1), nodes[0].ep.WireStats()["n2"].StreamResets)

	// Forgotten (the sweeper, for a node that left), then the node sends
	// to again: counted afresh (the peer used to keep counting into the
	// forgotten counters).
	nodes[0].ep.ForgetWireStats("n2")
	_, ok := nodes[0].ep.WireStats()["n2"]
	assert.False(t, ok)
	for i := n + 2; i <= n+100; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	s.waitCount(t, n+100)
	require.Eventually(t, func() bool { return nodes[0].ep.WireStats()["n2"].SentFrames > 0 }, waitFor, 5*time.Millisecond,
		"frames sent after the forget are counted")
}
