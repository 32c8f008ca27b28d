package registry

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestSixtyFiveNodes: 65 nodes in one process (17 with -short;
// DCHAN_SCALE_NODES=n for another size, the long form: 200), joining one
// after the other through the first: 5 voters, 4 non-voters, the rest
// registry clients (DCHAN_SCALE_MAX_REPLICAS=0: every node a replica).
// 100 registrations per node, 64 at a time spread over the nodes, commit
// (in batches), and every node ends with the same names; a node that dies
// holding 100 receivers (a client, if there are any) is expired, and its
// names are gone from every other node. How long that takes is the scale
// benchmark's to measure (cd bench && go run . -scale 65:100000), not
// this test's.
func TestSixtyFiveNodes(t *testing.T) {
	size := 65
	if testing.Short() {
		size = 17
	}
	if v := os.Getenv("DCHAN_SCALE_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "DCHAN_SCALE_NODES")
		size = n
	}
	const perNode = 100
	// Timings for a loaded machine: a 64-follower leader under the race
	// detector must not miss heartbeats for long enough to expire anyone.
	opts := []Option{WithTimeouts(time.Second, 2*time.Second), WithExpireAfter(5 * time.Second)}
	replicas := defaultMaxReplicas
	if v := os.Getenv("DCHAN_SCALE_MAX_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "DCHAN_SCALE_MAX_REPLICAS")
		opts = append(opts, WithMaxReplicas(n))
		replicas = n
	}
	if replicas == 0 {
		replicas = size
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	start := time.Now()
	var nodes []*testNode
	for i := 1; i <= size; i++ {
		var peers []string
		if i > 1 {
			peers = []string{nodes[0].addr}
		}
		n, err := tryStartTestNodeLog(t, log, nil, fmt.Sprintf("n%02d", i), "", "", peers, opts...)
		require.NoError(t, err, "node %d", i)
		nodes = append(nodes, n)
	}
	t.Logf("%d nodes formed in %v", size, time.Since(start).Round(time.Millisecond))
	leader := waitLeaderOf(t, nodes...)
	m := leader.reg.Metrics()
	require.Equal(t, size, m.Alive)
	require.Equal(t, 5, m.Voters)
	require.Equal(t, max(size-replicas, 0), m.Clients)

	start = time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, size*perNode)
	for range 64 {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= size*perNode {
					return
				}
				n := nodes[k%size]
				errs <- n.reg.Register(ctxWithin(t, 2*clusterWait), fmt.Sprintf("r.%s.%d", n.id, k/size), "$1", Queue)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	regs := time.Since(start)
	var writes, batches uint64
	for _, n := range nodes {
		m := n.reg.Metrics()
		writes, batches = writes+m.Writes, batches+m.Batches
	}
	t.Logf("%d registrations in %v: %.0f/s; %d writes sent in %d batches; %d log entries",
		size*perNode, regs.Round(time.Millisecond), float64(size*perNode)/regs.Seconds(),
		writes, batches, leader.reg.Metrics().LastIndex-m.LastIndex)

	want := leader.reg.State()
	for _, n := range nodes {
		require.NoError(t, n.reg.Sync(ctxWithin(t, clusterWait)), n.id)
		st := n.reg.State()
		require.Equal(t, size*perNode, st.NumNames(), n.id)
		for _, other := range nodes {
			name := fmt.Sprintf("r.%s.%d", other.id, perNode-1)
			require.Equal(t, want.Receivers(name), st.Receivers(name), "%s on %s", name, n.id)
		}
	}

	var victim *testNode
	for _, n := range nodes[1:] {
		if mb, _ := want.Member(n.id); !mb.Voter && (victim == nil || mb.Client) {
			victim = n
		}
	}
	require.NotNil(t, victim, "a non-voter")
	victim.kill()
	killed := time.Now()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n != victim && n.reg.State().NumNames() != (size-1)*perNode {
				return false
			}
		}
		return true
	}, 2*clusterWait, 10*time.Millisecond, "the dead node's names gone from every replica")
	mv, _ := want.Member(victim.id)
	t.Logf("the dead node's names (a client: %v) gone from every other node %v after it died", mv.Client, time.Since(killed).Round(time.Millisecond))
	mb, _ := leader.reg.State().Member(victim.id)
	assert.Equal(t, Expired, mb.Status)
}
