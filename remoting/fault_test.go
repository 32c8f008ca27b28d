package remoting

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/faultproxy"
)

// TestPartitionFailsInFlightAndHealResumes cuts the link between two nodes
// through the fault proxy: messages in flight fail with ErrNodeLost (never
// resent), and once the link heals new messages flow again.
func TestPartitionFailsInFlightAndHealResumes(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	b := startNode(t, "b", StaticResolver{})
	a := startNode(t, "a", StaticResolver{"b": b.ep.Addr()}, WithDialer(network.Dialer("a")))

	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	defer release()
	s := newSink()
	s.gate = gate
	target, err := b.sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(2))
	require.NoError(t, err)

	results, sent := sendUntilBlocked(t, a.ep, target, 32)
	// Let the accepted ones be confirmed, so what remains is in flight.
	confirmed := 0
	for len(results) > 0 || confirmed == 0 {
		require.NoError(t, <-results)
		confirmed++
	}

	link, err := network.Link("a", b.ep.Addr())
	require.NoError(t, err)
	link.Disconnect()
	_, lost := awaitHandles(t, results, sent-confirmed, "the partition")
	assert.Positive(t, lost)
	release()

	link.Reconnect()
	before := s.snapshotCount()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := a.sys.Send(ctx, target, item{From: "a2", Seq: 1})
		if err != nil && !errors.Is(err, ErrNodeLost) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unexpected error after heal: %v", err)
		}
		return err == nil
	}, 15*time.Second, 50*time.Millisecond, "the link heals: gRPC re-dials with backoff")
	s.waitCount(t, before+1)
}

func (s *sink) snapshotCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}
