package channel

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/registry"
)

// threeReplicas keeps 3 registry replicas (3 voters): nodes 4 and on are
// registry clients.
func threeReplicas() Option {
	return withRegistryOptions(registry.WithMaxVoters(3), registry.WithMaxReplicas(3))
}

// TestRegistryClientsSendAndReceive: with 3 replicas and 2 clients, values
// go between every pair of nodes, clients included, and Cluster and Stats
// say which nodes are clients.
func TestRegistryClientsSendAndReceive(t *testing.T) {
	nodes := startCluster(t, 5, threeReplicas())
	for _, n := range nodes {
		require.NoError(t, n.Sync(ctxFor(t, 5*time.Second)))
		c := n.Cluster()
		clients := 0
		for _, m := range c.Members {
			if m.Client {
				clients++
				assert.False(t, m.Voter)
			}
		}
		assert.Equal(t, 2, clients, "%s's view", n.ID())
	}
	assert.True(t, nodes[4].Stats().Registry.Client)
	assert.False(t, nodes[0].Stats().Registry.Client)
	assert.Equal(t, 2, nodes[0].Stats().Registry.Clients)

	for _, to := range nodes {
		in, closeIn, err := to.Receive("to."+to.ID(), 16)
		require.NoError(t, err)
		defer closeIn()
		for _, from := range nodes {
			out, closeOut, err := from.Send("to."+to.ID(), 16)
			require.NoError(t, err)
			m := WithMessage(Order{Sender: from.ID(), Seq: 1}, waitFor)
			out <- m
			assert.Equal(t, Order{Sender: from.ID(), Seq: 1}, recv(t, in), "%s to %s", from.ID(), to.ID())
			<-m.Done()
			require.NoError(t, m.Err(), "%s to %s", from.ID(), to.ID())
			closeOut()
		}
	}
}

// TestGuarantee7_OnRegistryClients: a registry client that dies has its
// receivers removed on every node, replicas and clients, after failure
// detection by the replicas it followed, and values in flight to it fail
// promptly.
func TestGuarantee7_OnRegistryClients(t *testing.T) {
	nodes := startCluster(t, 5, threeReplicas())
	victim := nodes[4]
	require.True(t, victim.reg.IsClient())
	_, _, err := victim.Receive("doomed", 4) // its user never reads
	require.NoError(t, err)
	out, closeOut, err := nodes[3].Send("doomed", 0)
	require.NoError(t, err)
	defer closeOut()
	handles := make([]*Message, 5+linkWindow(4))
	for i := range handles {
		handles[i] = WithMessage(Order{Seq: i}, time.Minute)
	}
	go func() {
		for _, m := range handles {
			select {
			case out <- m:
			case <-m.Done():
			}
		}
	}()
	for _, m := range handles[:5] {
		<-m.Done()
		require.NoError(t, m.Err(), "accepted into the buffer")
	}
	require.Eventually(t, func() bool { return nodes[3].Stats().Sent >= uint64(len(handles)) }, waitFor, time.Millisecond)

	killed := time.Now()
	kill(victim)
	for _, m := range handles[5:] {
		select {
		case <-m.Done():
			assert.ErrorIs(t, m.Err(), ErrNodeLost, "%v", m.Value())
		case <-time.After(2 * time.Second):
			t.Fatalf("in-flight value %v still pending 2s after its receiver's node died", m.Value())
		}
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes[:4] {
			if len(n.reg.Lookup("doomed")) != 0 {
				return false
			}
		}
		return true
	}, waitFor, 20*time.Millisecond, "the dead client's receiver is removed on every node")
	t.Logf("a dead client's receiver removed everywhere %v after the kill (grace 1s)", time.Since(killed).Round(time.Millisecond))
}

// TestGuarantee8_OnRegistryClients: a Receive that returned on one client
// is seen by a linearizable read (Sync, then the local copy) on another
// client, and by its local reads soon after without a round trip.
func TestGuarantee8_OnRegistryClients(t *testing.T) {
	nodes := startCluster(t, 5, threeReplicas())
	for i := range 10 {
		name := fmt.Sprintf("seen.%d", i)
		_, closeIn, err := nodes[3+i%2].Receive(name, 1)
		require.NoError(t, err)
		defer closeIn()
		other := nodes[4-i%2]
		require.NoError(t, other.Sync(ctxFor(t, 5*time.Second)))
		assert.Equal(t, 1, other.Cluster().Names[name], "%s after Sync", other.ID())
	}
	require.Eventually(t, func() bool { return nodes[0].Cluster().Names["seen.9"] == 1 }, waitFor, time.Millisecond)
}
