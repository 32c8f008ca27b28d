package remoting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWireStatsCountAgainAfterTheyWereForgotten: after ForgetWireStats
// (the sweeper, for a node that left), the same node at the same address
// comes back: its frames are counted again (the peer used to keep
// counting into the forgotten counters).
func TestWireStatsCountAgainAfterTheyWereForgotten(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 1}))
	s.waitCount(t, 1)
	nodes[0].ep.ForgetWireStats("n2")
	for i := 2; i <= 100; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	s.waitCount(t, 100)
	time.Sleep(100 * time.Millisecond)
	t.Logf("n1's Wire after forgetting n2 and sending 99 more: %+v", nodes[0].ep.WireStats())
	require.NotZero(t, nodes[0].ep.WireStats()["n2"].SentFrames, "frames sent after the forget are counted")
}
