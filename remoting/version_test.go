package remoting

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIncompatiblePeerIsRefusedAtOnce: a node of another protocol version
// is refused on its first stream, both ways, with ErrIncompatiblePeer
// naming both versions, and the refusal holds for later sends without a
// stream being opened again for each.
func TestIncompatiblePeerIsRefusedAtOnce(t *testing.T) {
	b := startNode(t, "b", StaticResolver{})
	bSink := newSink()
	bTarget, err := b.sys.SpawnNamed("sink", bSink.producer())
	require.NoError(t, err)
	x := startNode(t, "x", StaticResolver{"b": b.ep.Addr()}, withProtocol(2, 2))
	xSink := newSink()
	xTarget, err := x.sys.SpawnNamed("sink", xSink.producer())
	require.NoError(t, err)
	b.ep.cfg.resolver = StaticResolver{"x": x.ep.Addr()}

	for _, tc := range []struct {
		from   *node
		target interface{ String() string }
		send   func(ctx context.Context) error
	}{
		{x, bTarget, func(ctx context.Context) error { return x.sys.Send(ctx, bTarget, item{From: "x", Seq: 1}) }},
		{b, xTarget, func(ctx context.Context) error { return b.sys.Send(ctx, xTarget, item{From: "b", Seq: 1}) }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tc.send(ctx)
		require.ErrorIs(t, err, ErrIncompatiblePeer, "send from %s to %s", tc.from.name, tc.target)
		require.Contains(t, err.Error(), "version")
		err = tc.send(ctx)
		require.ErrorIs(t, err, ErrIncompatiblePeer, "a second send is refused the same way")
		cancel()
	}
	require.Zero(t, bSink.count)
	require.Zero(t, xSink.count)
	require.False(t, errors.Is(ErrIncompatiblePeer, ErrNodeLost))
}
