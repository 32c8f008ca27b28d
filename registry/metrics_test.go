package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsReportTheReplicaAndWhatItTimed: a 3-node cluster's figures
// agree with what happened to it — writes timed on the leader and applied
// everywhere, an election counted after the leader is killed.
func TestMetricsReportTheReplicaAndWhatItTimed(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	for _, name := range []string{"a", "b", "c"} {
		require.NoError(t, leader.reg.Register(ctxWithin(t, clusterWait), name, "$"+name, Queue))
	}
	waitReceivers(t, "c", 1, nodes...)

	lm := leader.reg.Metrics()
	assert.Equal(t, "leader", lm.State)
	assert.Equal(t, leader.id, lm.Leader)
	assert.Positive(t, lm.Term)
	assert.GreaterOrEqual(t, lm.CommitIndex, uint64(6), "3 joins and 3 registrations at least")
	assert.GreaterOrEqual(t, lm.LastIndex, lm.CommitIndex)
	assert.Zero(t, lm.LastContact, "the leader's last contact")
	assert.Equal(t, 3, lm.Alive)
	assert.Equal(t, 3, lm.Voters)
	assert.Equal(t, 3, lm.Names)
	assert.GreaterOrEqual(t, lm.Apply.Count, uint64(3), "the leader timed its writes")
	assert.Positive(t, lm.Apply.Sum)
	for _, n := range followersOf(leader, nodes) {
		require.Eventually(t, func() bool { return n.reg.Metrics().AppliedIndex >= lm.CommitIndex }, clusterWait, 5*time.Millisecond)
		m := n.reg.Metrics()
		assert.Equal(t, "follower", m.State)
		assert.Equal(t, leader.id, m.Leader)
		assert.Equal(t, lm.Term, m.Term)
		assert.GreaterOrEqual(t, m.LastContact, time.Duration(0))
		assert.Less(t, m.LastContact, clusterWait)
		assert.Positive(t, m.FSMApply.Count, "the follower timed what it applied")
		assert.Equal(t, 3, m.Names)
	}

	leader.kill()
	rest := followersOf(leader, nodes)
	next := waitLeaderOf(t, rest...)
	require.Eventually(t, func() bool {
		m := next.reg.Metrics()
		return m.Elections >= 1 && m.LeaderChanges >= 1 && m.Term > lm.Term
	}, clusterWait, 5*time.Millisecond, "the new leader counted its election")
	require.Eventually(t, func() bool { return next.reg.Metrics().HeartbeatFailures >= 1 }, clusterWait, 5*time.Millisecond,
		"the new leader's heartbeats to the dead node fail")
}
