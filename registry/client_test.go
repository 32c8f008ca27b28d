package registry

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/faultproxy"
)

// clientOptions keep 3 replicas (3 voters): a fourth node is a client.
func clientOptions() []Option { return []Option{WithMaxVoters(3), WithMaxReplicas(3)} }

// configIDs returns the servers of leader's Raft configuration, sorted.
func configIDs(t *testing.T, leader *testNode) []string {
	t.Helper()
	cf := leader.reg.raft.GetConfiguration()
	if cf.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range cf.Configuration().Servers {
		ids = append(ids, string(s.ID))
	}
	slices.Sort(ids)
	return ids
}

// TestNodesBeyondTheReplicaLimitJoinAsClients: with a limit of 3
// replicas, nodes 4 to 6 join as clients: in the member table, not in the
// Raft configuration, following a replica. Every node's copy holds every
// node's registrations, a client's writes commit, and a Sync on a client
// makes its local read see a write that completed on a replica before it.
func TestNodesBeyondTheReplicaLimitJoinAsClients(t *testing.T) {
	nodes := startCluster(t, 6, clientOptions()...)
	leader := waitLeaderOf(t, nodes...)
	assert.Equal(t, []string{"n1", "n2", "n3"}, configIDs(t, leader))
	for _, n := range nodes {
		m, ok := leader.reg.State().Member(n.id)
		require.True(t, ok, n.id)
		client := n.id >= "n4"
		assert.Equal(t, client, m.Client, "%s's record", n.id)
		assert.Equal(t, client, n.reg.IsClient(), "%s's role", n.id)
		if client {
			assert.False(t, m.Voter)
			require.Eventually(t, func() bool { return n.reg.Metrics().Following != "" }, clusterWait, 10*time.Millisecond)
		}
	}
	assert.Equal(t, 3, leader.reg.Metrics().Clients)

	for _, n := range nodes {
		require.NoError(t, n.reg.Register(ctxWithin(t, clusterWait), "c."+n.id, "$1", Queue), n.id)
	}
	for _, n := range nodes {
		waitReceivers(t, "c."+n.id, 1, nodes...)
	}
	require.NoError(t, nodes[5].reg.Unregister(ctxWithin(t, clusterWait), "c.n6", "$1"))
	waitReceivers(t, "c.n6", 0, nodes...)

	// Linearizable reads on a client: each write completes on a replica,
	// then the client's Sync and read see it.
	for i := range 20 {
		name := fmt.Sprintf("lin.%d", i)
		require.NoError(t, nodes[i%3].reg.Register(ctxWithin(t, clusterWait), name, "$1", Queue))
		rs, err := nodes[3+i%3].reg.LookupLinearizable(ctxWithin(t, clusterWait), name)
		require.NoError(t, err)
		require.Len(t, rs, 1, "client %s after Sync", nodes[3+i%3].id)
	}
}

// TestADeadClientIsExpiredByTheReplicas: a client killed without leaving
// beats no more; the replicas stop reporting it, and the leader expires it
// and removes its receivers on every node, replicas and clients.
func TestADeadClientIsExpiredByTheReplicas(t *testing.T) {
	nodes := startCluster(t, 5, clientOptions()...)
	waitLeaderOf(t, nodes...)
	victim := nodes[4]
	require.True(t, victim.reg.IsClient())
	for i := range 10 {
		require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("d.%d", i), "$1", Queue))
	}
	waitReceivers(t, "d.9", 1, nodes...)
	killed := time.Now()
	victim.kill()
	waitReceivers(t, "d.9", 0, nodes[:4]...)
	t.Logf("a dead client's names gone on every node %v after the kill (grace 1s)", time.Since(killed).Round(time.Millisecond))
	leader := waitLeaderOf(t, nodes[:4]...)
	m, ok := leader.reg.State().Member(victim.id)
	require.True(t, ok)
	assert.Equal(t, Expired, m.Status)
	for i := range 10 {
		assert.Empty(t, nodes[3].reg.Lookup(fmt.Sprintf("d.%d", i)), "the other client's copy")
	}
	// The live client is not expired with it.
	m, _ = leader.reg.State().Member(nodes[3].id)
	assert.Equal(t, Alive, m.Status)
}

// TestAClientIsPromotedWhenAReplicaDies: when a replica dies, the leader
// expires it and adds a live client to the Raft configuration in its
// place; the client stops following and Raft keeps its copy, which goes
// on taking every write.
func TestAClientIsPromotedWhenAReplicaDies(t *testing.T) {
	nodes := startCluster(t, 5, clientOptions()...)
	leader := waitLeaderOf(t, nodes...)
	var victim *testNode
	for _, n := range nodes[:3] {
		if n != leader {
			victim = n
			break
		}
	}
	victim.kill()
	var promoted *testNode
	require.Eventually(t, func() bool {
		ids := configIDs(t, leader)
		if len(ids) != 3 || slices.Contains(ids, victim.id) {
			return false
		}
		for _, n := range nodes[3:] {
			if slices.Contains(ids, n.id) {
				promoted = n
				return true
			}
		}
		return false
	}, clusterWait, 20*time.Millisecond, "a client replaces the dead replica")
	require.Eventually(t, func() bool {
		m, _ := leader.reg.State().Member(promoted.id)
		return !m.Client && !promoted.reg.IsClient()
	}, clusterWait, 20*time.Millisecond, "the promoted node's record and role")
	// The voters, short of one, promote the new non-voter as well.
	require.Eventually(t, func() bool {
		m, _ := leader.reg.State().Member(promoted.id)
		return m.Voter
	}, clusterWait, 20*time.Millisecond, "the promoted replica becomes a voter")

	live := []*testNode{}
	for _, n := range nodes {
		if n != victim {
			live = append(live, n)
		}
	}
	for i, n := range live {
		require.NoError(t, n.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("p.%d", i), "$1", Queue), n.id)
	}
	for i := range live {
		waitReceivers(t, fmt.Sprintf("p.%d", i), 1, live...)
	}
	assert.Equal(t, observe(leader.reg.State()), observe(promoted.reg.State()), "the promoted copy holds what the leader holds")
}

// TestAClientFollowsAnotherReplicaWhenItsReplicaDies: the replica a
// client follows is killed; the client resumes at another and its copy
// keeps up.
func TestAClientFollowsAnotherReplicaWhenItsReplicaDies(t *testing.T) {
	nodes := startCluster(t, 4, clientOptions()...)
	leader := waitLeaderOf(t, nodes...)
	client := nodes[3]
	var followed *testNode
	require.Eventually(t, func() bool {
		addr := client.reg.Metrics().Following
		for _, n := range nodes[:3] {
			if n.addr == addr && n != leader {
				followed = n
			}
		}
		return addr != ""
	}, clusterWait, 10*time.Millisecond)
	if followed == nil {
		// It follows the leader: kill the leader then, the harder case.
		followed = leader
	}
	followed.kill()
	live := followersOf(followed, nodes)
	waitLeaderOf(t, live...)
	require.NoError(t, live[0].reg.Register(ctxWithin(t, clusterWait), "after", "$1", Queue))
	waitReceivers(t, "after", 1, live...)
	assert.NotEqual(t, followed.addr, client.reg.Metrics().Following)
	require.NoError(t, client.reg.Register(ctxWithin(t, clusterWait), "from-client", "$1", Queue))
	waitReceivers(t, "from-client", 1, live...)
}

// TestAClientCannotKeepADeadClientAlive is the attack on the liveness
// reports: a client (any member holding the token) reports a dead client
// as heard. The leader refuses reports from nodes outside its Raft
// configuration, and the dead client is expired.
func TestAClientCannotKeepADeadClientAlive(t *testing.T) {
	nodes := startCluster(t, 5, clientOptions()...)
	leader := waitLeaderOf(t, nodes...)
	liar, victim := nodes[3], nodes[4]
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "v", "$1", Queue))
	waitReceivers(t, "v", 1, nodes...)
	victim.kill()
	w := bin.Writer{}
	w.Uvarint(1)
	w.Str(victim.id)
	stop := time.Now().Add(4 * time.Second)
	refused := 0
	for time.Now().Before(stop) && len(leader.reg.Lookup("v")) > 0 {
		// To whichever replica leads now (elections happen on a loaded
		// machine).
		leader = waitLeaderOf(t, nodes[:3]...)
		_, err := liar.reg.callReply(ctxWithin(t, time.Second), leader.addr, methodHeard, w.B)
		switch {
		case errors.Is(err, ErrPermissionDenied):
			refused++
		case err == nil:
			t.Fatal("the leader took a client's report of heard followers")
		}
		time.Sleep(50 * time.Millisecond)
	}
	assert.Positive(t, refused)
	waitReceivers(t, "v", 0, nodes[:4]...)
}

// TestTheReplicaLimitCountsTheVoters: a limit below the voters counts as
// the voters; 0 makes every member a replica.
func TestTheReplicaLimitCountsTheVoters(t *testing.T) {
	c := defaultConfig()
	assert.Equal(t, 9, c.replicaLimit())
	c.maxReplicas = 2
	assert.Equal(t, 5, c.replicaLimit())
	c.maxReplicas = 0
	assert.Equal(t, 0, c.replicaLimit())
	c.nodeID, c.maxReplicas = "n1", -1
	assert.ErrorIs(t, c.validate(), ErrInvalidOption)

	nodes := startCluster(t, 4, WithMaxVoters(3), WithMaxReplicas(0))
	leader := waitLeaderOf(t, nodes...)
	assert.Len(t, configIDs(t, leader), 4)
	for _, n := range nodes {
		assert.False(t, n.reg.IsClient())
	}
}

// TestACutOffClientIsExpiredAndRejoinsAfterTheHeal: a client whose every
// link is cut beats no more and hears no replica; the leader expires it,
// and after the heal it sees its expiry, rejoins under a new incarnation
// (OnRejoin), and a registration it made while expired commits then.
func TestACutOffClientIsExpiredAndRejoinsAfterTheHeal(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	var nodes []*testNode
	for i := 1; i <= 4; i++ {
		var peers []string
		if i > 1 {
			peers = []string{nodes[0].addr}
		}
		n, err := tryStartTestNodeVia(t, network, fmt.Sprintf("n%d", i), "", "", peers, clientOptions()...)
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	leader := waitLeaderOf(t, nodes...)
	victim := nodes[3]
	require.True(t, victim.reg.IsClient())
	rejoined := make(chan struct{}, 1)
	victim.reg.OnRejoin(func() { rejoined <- struct{}{} })
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))
	waitReceivers(t, "svc", 1, nodes...)
	oldInc := victim.reg.Incarnation()

	cutUntilExpiredThenHeal(t, network, nodes, leader, victim, rejoined)
	m, ok := leader.reg.State().Member(victim.id)
	require.True(t, ok)
	assert.Equal(t, Alive, m.Status)
	assert.Greater(t, m.Incarnation, oldInc)
	assert.True(t, m.Client, "it rejoined as a client: the replicas are full")
	require.NoError(t, victim.reg.Sync(ctxWithin(t, clusterWait)))
	assert.Len(t, victim.reg.Lookup("during"), 1, "its own copy after a Sync")
}

// TestAClientWritesAndSyncsThroughANewLeader: the leader a client sends
// its writes to dies; the client finds the new one (through the replica
// it follows) and its writes and Syncs go on.
func TestAClientWritesAndSyncsThroughANewLeader(t *testing.T) {
	nodes := startCluster(t, 4, clientOptions()...)
	leader := waitLeaderOf(t, nodes...)
	client := nodes[3]
	require.NoError(t, client.reg.Register(ctxWithin(t, clusterWait), "before", "$1", Queue))
	leader.kill()
	killed := time.Now()
	live := followersOf(leader, nodes)
	require.NoError(t, client.reg.Register(ctxWithin(t, clusterWait), "after", "$1", Queue))
	t.Logf("a client's write committed %v after its leader was killed", time.Since(killed).Round(time.Millisecond))
	next := waitLeaderOf(t, live...)
	require.NoError(t, next.reg.Register(ctxWithin(t, clusterWait), "on-new-leader", "$1", Queue))
	require.NoError(t, client.reg.Sync(ctxWithin(t, clusterWait)))
	assert.Len(t, client.reg.Lookup("on-new-leader"), 1, "a Sync'd read on the client")
	waitReceivers(t, "after", 1, live...)
}
