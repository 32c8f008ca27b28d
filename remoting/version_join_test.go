package remoting_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// TestJoinOfAnIncompatiblePeerFailsAtOnce: a node of another protocol
// version that joins a cluster is refused on its first attempt with
// ErrIncompatiblePeer, not retried until its context ends.
func TestJoinOfAnIncompatiblePeerFailsAtOnce(t *testing.T) {
	start := func(id string, peers []string, opts ...remoting.Option) (*registry.Registry, *remoting.Endpoint, error) {
		log := zaptest.NewLogger(t).Named(id)
		sys, err := actor.NewSystem(actor.WithNode(id), actor.WithLogger(log))
		require.NoError(t, err)
		t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
		var reg *registry.Registry
		ep, err := remoting.New(sys, append([]remoting.Option{remoting.WithLogger(log),
			remoting.WithResolver(resolverFunc(func(n string) (string, error) { return reg.Resolve(n) }))}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = ep.Close() })
		reg, err = registry.New(ep, registry.WithNodeID(id), registry.WithLogger(log), registry.WithPeers(peers...))
		require.NoError(t, err)
		t.Cleanup(func() { _ = reg.Close() })
		require.NoError(t, ep.Start())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return reg, ep, reg.Start(ctx)
	}
	_, first, err := start("n1", nil)
	require.NoError(t, err)
	_, _, err = start("n2", []string{first.AdvertiseAddr()}, remoting.WithProtocol(2, 2))
	require.ErrorIs(t, err, remoting.ErrIncompatiblePeer)
	require.NotErrorIs(t, err, registry.ErrUnavailable, "refused at once, not retried until the deadline")
	require.Contains(t, err.Error(), "version")
}

type resolverFunc func(string) (string, error)

func (f resolverFunc) Resolve(node string) (string, error) { return f(node) }
