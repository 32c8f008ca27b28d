package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/remoting"
)

// prepareNodes creates n nodes' endpoints, listening and serving, with
// registries configured by opts(i, addrs) but not started: their
// addresses are known before any of them starts.
func prepareNodes(t *testing.T, n int, opts func(i int, addrs []string) []Option) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	addrs := make([]string, n)
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		log := zaptest.NewLogger(t).Named(id)
		sys, err := actor.NewSystem(actor.WithNode(id), actor.WithLogger(log))
		require.NoError(t, err)
		node := &testNode{id: id, sys: sys}
		ep, err := remoting.New(sys, remoting.WithLogger(log),
			remoting.WithResolver(resolverFunc(func(id string) (string, error) { return node.reg.Resolve(id) })))
		require.NoError(t, err)
		node.ep, node.addr = ep, ep.Addr()
		nodes[i], addrs[i] = node, ep.Addr()
	}
	for i, node := range nodes {
		log := zaptest.NewLogger(t).Named(node.id)
		all := append([]Option{WithNodeID(node.id), WithLogger(log)}, fastOptions()...)
		reg, err := New(node.ep, append(all, opts(i, addrs)...)...)
		require.NoError(t, err)
		node.reg = reg
		require.NoError(t, node.ep.Start())
		t.Cleanup(node.kill)
	}
	return nodes
}

// startAll starts every node's registry at the same instant and returns
// each Start's error.
func startAll(ctx context.Context, nodes []*testNode) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, n := range nodes {
		wg.Go(func() {
			<-gate
			errs[i] = n.reg.Start(ctx)
		})
	}
	close(gate)
	wg.Wait()
	return errs
}

// requireOneCluster checks that nodes form one cluster: one leader, every
// node's Raft configuration the same and holding all of them, every
// replica listing all of them as members.
func requireOneCluster(t *testing.T, nodes []*testNode) {
	t.Helper()
	leader := waitLeaderOf(t, nodes...)
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.reg.State().Members()) != len(nodes) {
				return false
			}
		}
		return true
	}, clusterWait, 10*time.Millisecond, "every replica lists every member")
	want := leader.reg.raft.GetConfiguration().Configuration().Servers
	require.Len(t, want, len(nodes))
	leaders := 0
	for _, n := range nodes {
		if n.reg.raft.State() == raft.Leader {
			leaders++
		}
		require.Eventually(t, func() bool {
			got := n.reg.raft.GetConfiguration().Configuration().Servers
			return assert.ObjectsAreEqual(want, got)
		}, clusterWait, 10*time.Millisecond, "%s has the leader's configuration", n.id)
		_, leaderID := n.reg.raft.LeaderWithID()
		assert.Equal(t, raft.ServerID(leader.id), leaderID, "%s follows the one leader", n.id)
	}
	assert.Equal(t, 1, leaders, "one leader")
}

// TestBootstrapExpectFormsOneCluster: 3 and 5 nodes with identical
// configuration (every node lists every address, none has state), started
// at the same instant, form exactly one cluster, 20 times each.
func TestBootstrapExpectFormsOneCluster(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			for round := range rounds {
				t.Run(fmt.Sprint(round), func(t *testing.T) {
					nodes := prepareNodes(t, size, func(_ int, addrs []string) []Option {
						return []Option{WithPeers(addrs...), WithBootstrapExpect(size)}
					})
					start := time.Now()
					for i, err := range startAll(ctxWithin(t, clusterWait), nodes) {
						require.NoError(t, err, "node %s", nodes[i].id)
					}
					t.Logf("formed in %v", time.Since(start))
					requireOneCluster(t, nodes)
				})
			}
		})
	}
}

// TestBootstrapExpectBeyondTheReplicaLimitMakesClients: 6 nodes started
// alike with bootstrap-expect 6 and a replica limit of 3 form one cluster
// of 3 replicas, the 3 lowest IDs, and 3 registry clients; every node
// lists all 6 as live members.
func TestBootstrapExpectBeyondTheReplicaLimitMakesClients(t *testing.T) {
	nodes := prepareNodes(t, 6, func(_ int, addrs []string) []Option {
		return append([]Option{WithPeers(addrs...), WithBootstrapExpect(6)}, clientOptions()...)
	})
	for i, err := range startAll(ctxWithin(t, clusterWait), nodes) {
		require.NoError(t, err, "node %s", nodes[i].id)
	}
	leader := waitLeaderOf(t, nodes...)
	assert.Equal(t, []string{"n1", "n2", "n3"}, configIDs(t, leader))
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	for _, n := range nodes {
		client := n.id >= "n4"
		assert.Equal(t, client, n.reg.IsClient(), "%s's role", n.id)
		require.Eventually(t, func() bool {
			ms := n.reg.State().Members()
			alive := 0
			for _, m := range ms {
				if m.Status == Alive {
					alive++
				}
			}
			return alive == len(nodes)
		}, clusterWait, 10*time.Millisecond, "%s lists every member", n.id)
	}
	assert.Equal(t, 3, leader.reg.Metrics().Clients)
}

// TestBootstrapExpectThroughOneAddress: every node is given only the first
// node's address (as an operator might write it); they find each other
// through it and form one cluster.
func TestBootstrapExpectThroughOneAddress(t *testing.T) {
	nodes := prepareNodes(t, 3, func(_ int, addrs []string) []Option {
		return []Option{WithPeers(addrs[0]), WithBootstrapExpect(3)}
	})
	for i, err := range startAll(ctxWithin(t, clusterWait), nodes) {
		require.NoError(t, err, "node %s", nodes[i].id)
	}
	requireOneCluster(t, nodes)
}

// TestBootstrapExpectJoinsAnExistingCluster: a node started with the same
// bootstrap-expect after the cluster formed joins it instead of waiting
// for more nodes or bootstrapping another.
func TestBootstrapExpectJoinsAnExistingCluster(t *testing.T) {
	nodes := prepareNodes(t, 4, func(_ int, addrs []string) []Option {
		return []Option{WithPeers(addrs...), WithBootstrapExpect(3)}
	})
	for i, err := range startAll(ctxWithin(t, clusterWait), nodes[:3]) {
		require.NoError(t, err, "node %s", nodes[i].id)
	}
	require.NoError(t, nodes[3].reg.Start(ctxWithin(t, clusterWait)))
	requireOneCluster(t, nodes)
}

// TestBootstrapExpectWaitsForTheOthers: with fewer nodes than expected
// nobody bootstraps; Start fails when its ctx ends, saying how many it saw.
func TestBootstrapExpectWaitsForTheOthers(t *testing.T) {
	nodes := prepareNodes(t, 2, func(_ int, addrs []string) []Option {
		return []Option{WithPeers(addrs...), WithBootstrapExpect(3)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	errs := startAll(ctx, nodes)
	for i, err := range errs {
		require.ErrorIs(t, err, ErrUnavailable, "node %s", nodes[i].id)
		assert.Contains(t, err.Error(), "saw 2 of the 3 expected nodes", "node %s", nodes[i].id)
		assert.False(t, hasConfiguration(nodes[i].reg.raft), "node %s bootstrapped", nodes[i].id)
	}
}

// TestBootstrapExpectThroughADNSName: the peers are a DNS name (here one
// name and each node's port, as the nodes share one loopback IP), looked
// up again on every attempt: the name has no records when the nodes
// start, and they find each other once it has.
func TestBootstrapExpectThroughADNSName(t *testing.T) {
	var mu sync.Mutex
	var records []string
	lookups := 0
	lookup := func(_ context.Context, host string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if host != "dchan.test" || len(records) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return append([]string(nil), records...), nil
	}
	nodes := prepareNodes(t, 3, func(_ int, addrs []string) []Option {
		return []Option{withLookupHost(lookup), WithBootstrapExpect(3), WithPeers(namesFor(addrs)...)}
	})
	time.AfterFunc(300*time.Millisecond, func() {
		mu.Lock()
		records = []string{"127.0.0.1"}
		mu.Unlock()
	})
	for i, err := range startAll(ctxWithin(t, clusterWait), nodes) {
		require.NoError(t, err, "node %s", nodes[i].id)
	}
	requireOneCluster(t, nodes)
	mu.Lock()
	assert.Greater(t, lookups, 3*3, "names are looked up again on every attempt")
	mu.Unlock()
}

// namesFor turns loopback addresses into "dchan.test:port" peers.
func namesFor(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		out[i] = "dchan.test:" + port
	}
	return out
}

// TestJoinFailureNamesTheAddressAndCause: a join through an address where
// nothing listens fails when ctx ends with an error naming the address
// and the cause, not a bare "not the leader".
func TestJoinFailureNamesTheAddressAndCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	nodes := prepareNodes(t, 1, func(int, []string) []Option {
		return []Option{WithPeers(dead, "no-such-host.invalid:7001")}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = nodes[0].reg.Start(ctx)
	require.ErrorIs(t, err, ErrUnavailable)
	msg := err.Error()
	assert.Contains(t, msg, dead)
	assert.Contains(t, msg, "connection refused")
	assert.Contains(t, msg, "no-such-host.invalid")
	assert.NotContains(t, msg, "not the leader (leader: registry: not the leader)")
}

// TestNotLeaderNamesTheLeader: a follower's refusal names the leader it
// knows, once, not the sentinel's text twice.
func TestNotLeaderNamesTheLeader(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	follower := followersOf(leader, nodes)[0]
	require.Eventually(t, func() bool { _, ok := follower.reg.leaderAddr(); return ok }, clusterWait, 10*time.Millisecond)
	_, err := leader.reg.callReply(ctxWithin(t, clusterWait), follower.addr, methodSync, nil)
	require.ErrorIs(t, err, errNotLeader)
	assert.Equal(t, "registry: not the leader (leader: "+leader.reg.ep.AdvertiseAddr()+")", err.Error())
	assert.Equal(t, 1, strings.Count(err.Error(), "not the leader"))
}

// TestBootstrapExpectWithStaggeredStarts: more nodes than expected start
// at random moments within half a second, the lowest IDs often last: the
// first three to see each other form the cluster and every later node
// joins it. Never two clusters.
func TestBootstrapExpectWithStaggeredStarts(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			nodes := prepareNodes(t, 5, func(_ int, addrs []string) []Option {
				return []Option{WithPeers(addrs...), WithBootstrapExpect(3)}
			})
			ctx := ctxWithin(t, clusterWait)
			errs := make([]error, len(nodes))
			var wg sync.WaitGroup
			for i, n := range nodes {
				delay := time.Duration(rand.N(500)) * time.Millisecond
				if i == 0 {
					delay = 500 * time.Millisecond // the lowest ID comes last
				}
				wg.Go(func() {
					time.Sleep(delay)
					errs[i] = n.reg.Start(ctx)
				})
			}
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "node %s", nodes[i].id)
			}
			requireOneCluster(t, nodes)
		})
	}
}
