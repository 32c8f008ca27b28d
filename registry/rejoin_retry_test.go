package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/internal/faultproxy"
)

// The health watcher tries a rejoin again when its join failed on this side
// (the reply was lost, or took longer than the grace) and the leader it
// asks next does not show that join yet. The join may land meanwhile, and
// registrations under its incarnation commit (Register retries with the
// current incarnation): a join under yet another incarnation would drop
// them, while their Register calls have returned.
func TestRejoinTriedAgainKeepsRegistrationsOfItsLandedJoin(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	rejoined := make(chan struct{}, 4)
	nodes := startClusterVia(t, network)
	leader := waitLeaderOf(t, nodes...)
	victim := followersOf(leader, nodes)[0]
	victim.reg.OnRejoin(func() { rejoined <- struct{}{} })
	cutOff, others := isolate(t, network, nodes, victim)
	oldInc := victim.reg.Incarnation()
	require.NoError(t, network.Partition(cutOff, others))
	require.Eventually(t, func() bool {
		m, ok := leader.reg.State().Member(victim.id)
		return !ok || m.Status == Expired
	}, clusterWait, 20*time.Millisecond, "the cut-off node is expired")
	require.NoError(t, network.Reconnect(cutOff, others))
	select {
	case <-rejoined:
	case <-time.After(clusterWait):
		t.Fatal("the node never rejoined")
	}
	inc := victim.reg.Incarnation()
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))

	// What the health watcher does when the join's reply was lost and the
	// leader it asks next does not show the join yet: rejoin again.
	victim.reg.rejoining.Store(true)
	require.NoError(t, victim.reg.rejoin(ctxWithin(t, clusterWait), memberView{present: true, incarnation: oldInc, status: Expired}))

	l := waitLeaderOf(t, followersOf(victim, nodes)...)
	require.NoError(t, l.reg.Sync(ctxWithin(t, clusterWait)))
	assert.Len(t, l.reg.Lookup("svc"), 1, "a registration that committed under the landed join's incarnation was dropped")
	assert.Equal(t, inc, victim.reg.Incarnation(), "the rejoin tried again took another incarnation")
}
