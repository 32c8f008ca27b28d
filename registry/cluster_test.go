package registry

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/faultproxy"
	"github.com/dchan-io/dchan/remoting"
)

const clusterWait = 15 * time.Second

// testNode is one registry replica with its own actor system and endpoint.
type testNode struct {
	id   string
	dir  string
	sys  *actor.System
	ep   *remoting.Endpoint
	reg  *Registry
	addr string
	down atomic.Bool
}

// fast timings keep elections and expiry short on a loaded 2-core machine.
func fastOptions() []Option {
	return []Option{WithTimeouts(150*time.Millisecond, 300*time.Millisecond), WithExpireAfter(time.Second)}
}

// startTestNode starts a node joining through peers (none: bootstrap).
func startTestNode(t testing.TB, id, listen, dir string, peers []string, opts ...Option) *testNode {
	t.Helper()
	n, err := tryStartTestNode(t, id, listen, dir, peers, opts...)
	require.NoError(t, err)
	return n
}

func tryStartTestNode(t testing.TB, id, listen, dir string, peers []string, opts ...Option) (*testNode, error) {
	t.Helper()
	return tryStartTestNodeVia(t, nil, id, listen, dir, peers, opts...)
}

// tryStartTestNodeVia is tryStartTestNode with the node's outgoing
// connections dialled through network (nil: direct).
func tryStartTestNodeVia(t testing.TB, network *faultproxy.Network, id, listen, dir string, peers []string, opts ...Option) (*testNode, error) {
	t.Helper()
	var epOpts []remoting.Option
	if network != nil {
		epOpts = append(epOpts, remoting.WithDialer(network.Dialer(id)))
	}
	return tryStartTestNodeFull(t, epOpts, id, listen, dir, peers, opts...)
}

func startTestNodeWithEndpoint(t testing.TB, id string, peers []string, epOpts ...remoting.Option) *testNode {
	t.Helper()
	n, err := tryStartTestNodeFull(t, epOpts, id, "", "", peers, WithTimeouts(150*time.Millisecond, 300*time.Millisecond))
	require.NoError(t, err)
	return n
}

func tryStartTestNodeWithEndpoint(t testing.TB, id string, peers []string, epOpts ...remoting.Option) (*testNode, error) {
	t.Helper()
	return tryStartTestNodeFull(t, epOpts, id, "", "", peers)
}

func tryStartTestNodeFull(t testing.TB, extraEp []remoting.Option, id, listen, dir string, peers []string, opts ...Option) (*testNode, error) {
	t.Helper()
	return tryStartTestNodeLog(t, zaptest.NewLogger(t), extraEp, id, listen, dir, peers, opts...)
}

// tryStartTestNodeLog is tryStartTestNodeFull logging to log.
func tryStartTestNodeLog(t testing.TB, log *zap.Logger, extraEp []remoting.Option, id, listen, dir string, peers []string, opts ...Option) (*testNode, error) {
	t.Helper()
	sys, err := actor.NewSystem(actor.WithNode(id), actor.WithLogger(log))
	require.NoError(t, err)
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	n := &testNode{id: id, dir: dir, sys: sys}
	all := append([]Option{WithNodeID(id), WithLogger(log), WithPeers(peers...)}, fastOptions()...)
	if dir != "" {
		all = append(all, WithDataDir(dir))
	}
	all = append(all, opts...)
	var reg *Registry
	epOpts := []remoting.Option{remoting.WithListenAddr(listen), remoting.WithLogger(log),
		remoting.WithResolver(resolverFunc(func(node string) (string, error) { return reg.Resolve(node) }))}
	epOpts = append(epOpts, extraEp...)
	ep, err := remoting.New(sys, epOpts...)
	require.NoError(t, err)
	reg, err = New(ep, all...)
	require.NoError(t, err)
	require.NoError(t, ep.Start())
	n.ep, n.reg, n.addr = ep, reg, ep.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if err := reg.Start(ctx); err != nil {
		n.kill()
		return nil, err
	}
	t.Cleanup(n.kill)
	return n, nil
}

type resolverFunc func(string) (string, error)

func (f resolverFunc) Resolve(node string) (string, error) { return f(node) }

// kill stops the node without leaving: to the others it has died.
func (n *testNode) kill() {
	if n.down.Swap(true) {
		return
	}
	_ = n.reg.Close()
	_ = n.ep.Close()
	_ = n.sys.Shutdown(context.Background())
}

func waitLeaderOf(t *testing.T, nodes ...*testNode) *testNode {
	t.Helper()
	var leader *testNode
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if !n.down.Load() && n.reg.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	}, clusterWait, 10*time.Millisecond, "no leader")
	return leader
}

func startCluster(t *testing.T, size int, opts ...Option) []*testNode {
	t.Helper()
	first := startTestNode(t, "n1", "", "", nil, opts...)
	nodes := []*testNode{first}
	for i := 2; i <= size; i++ {
		// Join through the most recent node: a follower forwards to the leader.
		nodes = append(nodes, startTestNode(t, fmt.Sprintf("n%d", i), "", "", []string{nodes[len(nodes)-1].addr}, opts...))
	}
	return nodes
}

// startClusterVia starts three nodes whose connections go through network,
// n2 and n3 joining through n1.
func startClusterVia(t *testing.T, network *faultproxy.Network, opts ...Option) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i, id := range []string{"n1", "n2", "n3"} {
		var peers []string
		if i > 0 {
			peers = []string{nodes[0].addr}
		}
		n, err := tryStartTestNodeVia(t, network, id, "", "", peers, opts...)
		require.NoError(t, err)
		t.Cleanup(n.kill)
		nodes = append(nodes, n)
	}
	return nodes
}

// followersOf returns the nodes other than leader.
func followersOf(leader *testNode, nodes []*testNode) []*testNode {
	var out []*testNode
	for _, n := range nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// linkAll routes every node's connection to every other through network,
// so that any link can be cut.
func linkAll(t *testing.T, network *faultproxy.Network, nodes []*testNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				_, err := network.Link(a.id, b.addr)
				require.NoError(t, err)
			}
		}
	}
}

// isolate links every pair of nodes through network and returns the two
// sides of cutting victim off from the others, for Partition and
// Reconnect.
func isolate(t *testing.T, network *faultproxy.Network, nodes []*testNode, victim *testNode) (cutOff, others map[string]string) {
	t.Helper()
	linkAll(t, network, nodes)
	others = map[string]string{}
	for _, n := range followersOf(victim, nodes) {
		others[n.id] = n.addr
	}
	return map[string]string{victim.id: victim.addr}, others
}

func ctxWithin(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitReceivers waits until every live node's replica lists want receivers.
func waitReceivers(t *testing.T, name string, want int, nodes ...*testNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if !n.down.Load() && len(n.reg.Lookup(name)) != want {
				return false
			}
		}
		return true
	}, clusterWait, 10*time.Millisecond, "receivers of %q never became %d", name, want)
}

func TestBootstrapAndJoinThroughAFollower(t *testing.T) {
	nodes := startCluster(t, 3)
	for _, n := range nodes {
		require.Eventually(t, func() bool { return len(n.reg.State().Members()) == 3 },
			clusterWait, 10*time.Millisecond, "node %s sees every member", n.id)
	}
	// A write from a follower is forwarded to the leader.
	leader := waitLeaderOf(t, nodes...)
	var follower *testNode
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	require.NoError(t, follower.reg.Register(ctxWithin(t, clusterWait), "orders", "$1", Queue))
	waitReceivers(t, "orders", 1, nodes...)
	rs, err := leader.reg.LookupLinearizable(ctxWithin(t, clusterWait), "orders")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	assert.Equal(t, follower.id, rs[0].Node)
	rs, err = follower.reg.LookupLinearizable(ctxWithin(t, clusterWait), "orders")
	require.NoError(t, err)
	assert.Len(t, rs, 1)
}

func TestLeaderKilledNewLeaderAndWritesResume(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	leader.kill()
	var rest []*testNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	newLeader := waitLeaderOf(t, rest...)
	assert.NotEqual(t, leader.id, newLeader.id)
	require.NoError(t, rest[0].reg.Register(ctxWithin(t, clusterWait), "after", "$2", Queue))
	waitReceivers(t, "after", 1, rest...)
}

func TestKilledNodesNamesExpire(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	var victim *testNode
	for _, n := range nodes {
		if n != leader {
			victim = n
			break
		}
	}
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "jobs", "$9", Queue))
	waitReceivers(t, "jobs", 1, nodes...)
	watch, stop := leader.reg.Watch("jobs")
	defer stop()
	victim.kill()
	select {
	case <-watch:
	case <-time.After(clusterWait):
		t.Fatal("watchers of the name were never told")
	}
	waitReceivers(t, "jobs", 0, nodes...)
	m, ok := leader.reg.State().Member(victim.id)
	require.True(t, ok)
	assert.Equal(t, Expired, m.Status)
}

func TestRestartWithDataDirKeepsStateAndClearsOldIncarnation(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	n1 := startTestNode(t, "n1", "", dirs[0], nil)
	n2 := startTestNode(t, "n2", "", dirs[1], []string{n1.addr})
	n3 := startTestNode(t, "n3", "", dirs[2], []string{n1.addr})
	require.NoError(t, n1.reg.Register(ctxWithin(t, clusterWait), "keep", "$1", Queue))
	require.NoError(t, n3.reg.Register(ctxWithin(t, clusterWait), "old", "$7", Queue))
	waitReceivers(t, "old", 1, n1, n2, n3)

	addr := n3.addr
	n3.kill()
	// Restart on the same address and data dir before the grace expires it.
	n3b := startTestNode(t, "n3", addr, dirs[2], []string{n1.addr})
	assert.Greater(t, n3b.reg.Incarnation(), n3.reg.Incarnation())
	waitReceivers(t, "old", 0, n1, n2, n3b)
	waitReceivers(t, "keep", 1, n1, n2, n3b)
	m, ok := n3b.reg.State().Member("n3")
	require.True(t, ok)
	assert.Equal(t, Alive, m.Status)
	assert.Equal(t, n3b.reg.Incarnation(), m.Incarnation)
}

func TestSixthNodeJoinsAsNonVoterAndIsPromotedWhenAVoterLeaves(t *testing.T) {
	nodes := startCluster(t, 6)
	leader := waitLeaderOf(t, nodes...)
	suffrage := func() (voters, nonvoters []string) {
		cf := leader.reg.raft.GetConfiguration()
		require.NoError(t, cf.Error())
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters = append(voters, string(s.ID))
			} else {
				nonvoters = append(nonvoters, string(s.ID))
			}
		}
		return
	}
	voters, nonvoters := suffrage()
	require.Len(t, voters, 5)
	require.Equal(t, []string{"n6"}, nonvoters)
	m, _ := leader.reg.State().Member("n6")
	assert.False(t, m.Voter)

	var leaving *testNode
	for _, n := range nodes {
		if n != leader && n.id != "n6" {
			leaving = n
			break
		}
	}
	require.NoError(t, leaving.reg.Leave(ctxWithin(t, clusterWait)))
	leaving.kill()
	require.Eventually(t, func() bool {
		v, nv := suffrage()
		return len(v) == 5 && len(nv) == 0
	}, clusterWait, 20*time.Millisecond, "n6 was not promoted")
	require.Eventually(t, func() bool {
		m, _ := leader.reg.State().Member("n6")
		return m.Voter
	}, clusterWait, 20*time.Millisecond)
	_, stillMember := leader.reg.State().Member(leaving.id)
	assert.False(t, stillMember, "a node that left is no member")
}

func TestMinorityRefusesWrites(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	// Kill the two others: the leader is now a minority of one.
	for _, n := range nodes {
		if n != leader {
			n.kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := leader.reg.Register(ctx, "never", "$1", Queue)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, leader.reg.Lookup("never"), "a refused write is never visible")
}

// TestMinoritySideOfAPartitionRefusesWrites cuts the leader off from the
// two others through fault proxies (both directions): the old leader, now a
// minority, never reports a successful write; the majority elects a leader
// and writes again within 3 s of the cut; after healing, the old leader
// follows and sees only the majority's writes.
func TestMinoritySideOfAPartitionRefusesWrites(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	// A grace longer than the cut: the old leader is not expired, so after
	// the heal it follows again (TestKilledNodesNamesExpire covers expiry).
	start := func(id string, peers []string) *testNode {
		n, err := tryStartTestNodeVia(t, network, id, "", "", peers, WithExpireAfter(20*time.Second))
		require.NoError(t, err)
		t.Cleanup(n.kill)
		return n
	}
	n1 := start("n1", nil)
	n2 := start("n2", []string{n1.addr})
	n3 := start("n3", []string{n1.addr})
	nodes := []*testNode{n1, n2, n3}
	leader := waitLeaderOf(t, nodes...)
	var majority []*testNode
	minority := map[string]string{leader.id: leader.addr}
	others := map[string]string{}
	for _, n := range nodes {
		if n != leader {
			majority = append(majority, n)
			others[n.id] = n.addr
		}
	}
	// Every link between the sides must exist before it can be cut.
	linkAll(t, network, nodes)
	require.NoError(t, network.Partition(minority, others))
	cut := time.Now()

	refused := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		refused <- leader.reg.Register(ctx, "minority", "$1", Queue)
	}()
	newLeader := waitLeaderOf(t, majority...)
	require.NoError(t, newLeader.reg.Register(ctxWithin(t, 3*time.Second), "majority", "$2", Queue))
	assert.Less(t, time.Since(cut), 3*time.Second+500*time.Millisecond, "the majority writes again within 3s of the cut")
	err := <-refused
	require.ErrorIs(t, err, ErrUnavailable, "the minority must never report a successful write")

	require.NoError(t, network.Reconnect(minority, others))
	waitReceivers(t, "majority", 1, nodes...)
	waitReceivers(t, "minority", 0, nodes...)
}

func TestSameDataDirTwiceFailsClearlyWithin2s(t *testing.T) {
	dir := t.TempDir()
	startTestNode(t, "n1", "", dir, nil)
	began := time.Now()
	_, err := tryStartTestNode(t, "n1b", "", dir, nil)
	require.ErrorIs(t, err, ErrDataDir)
	assert.Contains(t, err.Error(), "locked")
	assert.Less(t, time.Since(began), 2*time.Second)
}

// TestCorruptRaftDBFailsClearly damages a node's raft.db the ways a disk or
// an operator might — garbage, cut short, its first pages (the meta pages)
// or a page in the middle overwritten — and restarts it: the start fails
// with ErrDataDir (never a panic, never a node that leads on a damaged log)
// or, where the damage leaves the database readable, the node starts with
// its log intact.
func TestCorruptRaftDBFailsClearly(t *testing.T) {
	damage := map[string]struct {
		f        func(b []byte) []byte
		mustFail bool
	}{
		"intact":                      {func(b []byte) []byte { return b }, false},
		"garbage":                     {func([]byte) []byte { return []byte("not a bolt database at all") }, true},
		"empty":                       {func([]byte) []byte { return nil }, true},
		"truncated to the meta pages": {func(b []byte) []byte { return b[:min(len(b), 2*4096)] }, true},
		"truncated to 5 pages":        {func(b []byte) []byte { return b[:min(len(b), 5*4096)] }, true},
		"truncated half":              {func(b []byte) []byte { return b[:len(b)/2] }, false},
		"meta pages zeroed": {func(b []byte) []byte {
			clear(b[:min(len(b), 2*4096)])
			return b
		}, true},
		"free-page list garbage": {func(b []byte) []byte {
			// The newer of the two meta pages names the free-page list's
			// page: overwrite that page. A meta page (after the 16-byte
			// page header): magic, version, page size, flags (4 bytes
			// each), root bucket (16), free-page list page (8), page
			// count (8), txid (8), checksum (8).
			meta := func(i int) (txid, freelist uint64) {
				m := b[i*4096+16:]
				return binary.LittleEndian.Uint64(m[48:]), binary.LittleEndian.Uint64(m[32:])
			}
			tx0, fl0 := meta(0)
			tx1, fl1 := meta(1)
			fl := fl0
			if tx1 > tx0 {
				fl = fl1
			}
			for i := int(fl) * 4096; i < min(len(b), int(fl)*4096+4096); i++ {
				b[i] = 0xff
			}
			return b
		}, true},
		"middle page garbage": {func(b []byte) []byte {
			for i := len(b) / 2; i < min(len(b), len(b)/2+4096); i++ {
				b[i] = byte(i * 7)
			}
			return b
		}, false},
	}
	for name, d := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			n := startTestNode(t, "n1", "", dir, nil)
			for i := range 20 {
				require.NoError(t, n.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("name%d", i), "$1", Queue))
			}
			version := n.reg.State().Version()
			n.kill()
			path := filepath.Join(dir, "raft.db")
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, d.f(b), 0o600))
			restarted, err := tryStartTestNode(t, "n1", "", dir, nil)
			if err != nil || d.mustFail {
				require.ErrorIs(t, err, ErrDataDir)
				t.Log(err)
				return
			}
			// The damage spared what bolt reads: the log must be whole (the
			// restart clears the registrations, which moves the version on).
			require.Eventually(t, func() bool { return restarted.reg.State().Version() > version },
				clusterWait, 10*time.Millisecond, "the restarted node's log lost entries")
		})
	}
}

func TestJoinWithoutTheTokenIsRefused(t *testing.T) {
	member := startTestNodeWithEndpoint(t, "n1", nil, remoting.WithToken("s3cret"))
	began := time.Now()
	_, err := tryStartTestNodeWithEndpoint(t, "x", []string{member.addr})
	require.Error(t, err)
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	assert.Less(t, time.Since(began), 5*time.Second, "a refusal is final, not retried")
	assert.Len(t, member.reg.State().Members(), 1, "a refused peer never reaches the registry")
	cf := member.reg.raft.GetConfiguration()
	require.NoError(t, cf.Error())
	assert.Len(t, cf.Configuration().Servers, 1)
}

// TestNodeExpiredByAPartitionRejoinsAfterTheHeal cuts a follower off for
// longer than the expiry grace: the majority expires it (its names go);
// once the link heals the node finds out, rejoins under a new incarnation
// and its owner is told to register again.
func TestNodeExpiredByAPartitionRejoinsAfterTheHeal(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	rejoined := make(chan struct{}, 1)
	nodes := startClusterVia(t, network)
	leader := waitLeaderOf(t, nodes...)
	victim := followersOf(leader, nodes)[0]
	victim.reg.OnRejoin(func() { rejoined <- struct{}{} })
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))
	waitReceivers(t, "svc", 1, nodes...)
	oldInc := victim.reg.Incarnation()

	cutUntilExpiredThenHeal(t, network, nodes, leader, victim, rejoined)
	require.Eventually(t, func() bool {
		m, ok := leader.reg.State().Member(victim.id)
		return ok && m.Status == Alive && m.Incarnation > oldInc
	}, clusterWait, 20*time.Millisecond)
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue), "it can register again")
	waitReceivers(t, "svc", 1, nodes...)
}

// cutUntilExpiredThenHeal cuts victim off from the other nodes until the
// leader has expired it (its receivers gone), has it register while
// expired, heals, and checks that it rejoins (rejoined, its OnRejoin's
// signal) and that the registration made while expired commits under the
// new incarnation.
func cutUntilExpiredThenHeal(t *testing.T, network *faultproxy.Network, nodes []*testNode, leader, victim *testNode, rejoined <-chan struct{}) {
	t.Helper()
	cutOff, others := isolate(t, network, nodes, victim)
	require.NoError(t, network.Partition(cutOff, others))
	require.Eventually(t, func() bool {
		m, ok := leader.reg.State().Member(victim.id)
		return !ok || m.Status == Expired
	}, clusterWait, 20*time.Millisecond, "the cut-off node is expired")
	assert.Empty(t, leader.reg.Lookup("svc"), "its names are gone")
	// A registration made while the node is expired waits for the rejoin
	// and commits under the new incarnation.
	during := make(chan error, 1)
	go func() { during <- victim.reg.Register(ctxWithin(t, clusterWait), "during", "$2", Queue) }()

	require.NoError(t, network.Reconnect(cutOff, others))
	select {
	case <-rejoined:
	case <-time.After(clusterWait):
		t.Fatal("the node never rejoined")
	}
	require.NoError(t, <-during, "a registration made while expired commits after the rejoin")
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	if rs := leader.reg.Lookup("during"); assert.Len(t, rs, 1) {
		assert.Equal(t, victim.reg.Incarnation(), rs[0].Incarnation, "registered under the new incarnation")
	}
}

func TestRestartOnAnotherAddressUpdatesTheConfiguration(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	n1 := startTestNode(t, "n1", "", dirs[0], nil)
	n2 := startTestNode(t, "n2", "", dirs[1], []string{n1.addr})
	n3 := startTestNode(t, "n3", "", dirs[2], []string{n1.addr})
	old := n3.addr
	n3.kill()
	n3b := startTestNode(t, "n3", "", dirs[2], []string{n1.addr}) // a new port
	require.NotEqual(t, old, n3b.addr)
	leader := waitLeaderOf(t, n1, n2, n3b)
	require.Eventually(t, func() bool {
		cf := leader.reg.raft.GetConfiguration()
		if cf.Error() != nil {
			return false
		}
		for _, s := range cf.Configuration().Servers {
			if s.ID == "n3" {
				return string(s.Address) == n3b.addr
			}
		}
		return false
	}, clusterWait, 20*time.Millisecond, "the configuration carries n3's new address")
	require.NoError(t, n3b.reg.Register(ctxWithin(t, clusterWait), "moved", "$1", Queue))
	waitReceivers(t, "moved", 1, n1, n2, n3b)
}

func TestSoleNodeRestartsOnAnotherAddress(t *testing.T) {
	dir := t.TempDir()
	n := startTestNode(t, "n1", "", dir, nil)
	n.kill()
	again := startTestNode(t, "n1", "", dir, nil)
	require.NoError(t, again.reg.Register(ctxWithin(t, clusterWait), "x", "$1", Queue))
}

// DESIGN: a lost voter is replaced by promoting a healthy non-voter — here
// the voter dies (expiry) rather than leaving.
func TestNonVoterIsPromotedWhenAVoterDies(t *testing.T) {
	nodes := startCluster(t, 6)
	leader := waitLeaderOf(t, nodes...)
	var victim *testNode
	for _, n := range nodes {
		if n != leader && n.id != "n6" {
			victim = n
			break
		}
	}
	victim.kill()
	require.Eventually(t, func() bool {
		cf := leader.reg.raft.GetConfiguration()
		if cf.Error() != nil {
			return false
		}
		voters, six := 0, false
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
				six = six || s.ID == "n6"
			}
		}
		return voters == 5 && six
	}, clusterWait, 20*time.Millisecond, "n6 replaces the dead voter")
	m, ok := leader.reg.State().Member(victim.id)
	require.True(t, ok)
	assert.Equal(t, Expired, m.Status)
}

// TestStalledFollowerIsExpiredWithinTheGrace cuts a follower off without
// closing its connections — every byte to and from it is dropped, as for
// a paused process or a black-holed link — and checks the leader expires
// it soon after the grace (1s here), long before the transport's general
// 10s RPC timeout would have reported a failed heartbeat; after the heal
// it rejoins.
func TestStalledFollowerIsExpiredWithinTheGrace(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	nodes := startClusterVia(t, network)
	leader := waitLeaderOf(t, nodes...)
	victim := followersOf(leader, nodes)[0]
	rejoined := make(chan struct{}, 1)
	victim.reg.OnRejoin(func() { rejoined <- struct{}{} })
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))
	waitReceivers(t, "svc", 1, nodes...)

	var links []*faultproxy.Proxy
	for _, n := range nodes {
		if n == victim {
			continue
		}
		for _, l := range [][2]string{{n.id, victim.addr}, {victim.id, n.addr}} {
			p, err := network.Link(l[0], l[1])
			require.NoError(t, err)
			links = append(links, p)
		}
	}
	for _, p := range links {
		p.Blackhole(faultproxy.Both)
	}
	require.Eventually(t, func() bool {
		m, ok := leader.reg.State().Member(victim.id)
		return !ok || m.Status == Expired
	}, 7*time.Second, 20*time.Millisecond, "the stalled node is expired before a 10s RPC timeout could report it")
	assert.Empty(t, leader.reg.Lookup("svc"), "its names are gone")

	for _, p := range links {
		p.Heal()
	}
	select {
	case <-rejoined:
	case <-time.After(clusterWait):
		t.Fatal("the node never rejoined")
	}
}

// TestSyncMakesLocalReadsLinearizable: replication to one follower is
// slowed down, so a write committed by the others is not yet in its
// replica; after Sync, its local reads see every write that completed
// before Sync was called.
func TestSyncMakesLocalReadsLinearizable(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	nodes := startClusterVia(t, network, WithExpireAfter(30*time.Second))
	leader := waitLeaderOf(t, nodes...)
	followers := followersOf(leader, nodes)
	slow, writer := followers[0], followers[1]
	link, err := network.Link(leader.id, slow.addr)
	require.NoError(t, err)
	link.SetDelay(300 * time.Millisecond)

	for i := range 3 {
		name := fmt.Sprintf("svc%d", i)
		require.NoError(t, writer.reg.Register(ctxWithin(t, clusterWait), name, "$1", Queue))
		require.NoError(t, slow.reg.Sync(ctxWithin(t, clusterWait)))
		assert.Len(t, slow.reg.Lookup(name), 1, "a write completed before Sync is in the replica after it")
	}
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)), "on the leader")
	link.SetDelay(0)
}

// TestIntruderWritesAreRefused: a peer without the cluster token calls the
// registry's RPCs directly — a registration for a member that exists, a
// join, a member query, a sync — and every call is refused with
// Unauthenticated; the registry does not change.
func TestIntruderWritesAreRefused(t *testing.T) {
	member := startTestNodeWithEndpoint(t, "n1", nil, remoting.WithToken("s3cret"))
	require.NoError(t, member.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))
	version := member.reg.State().Version()

	sys, err := actor.NewSystem(actor.WithNode("intruder"))
	require.NoError(t, err)
	defer func() { _ = sys.Shutdown(context.Background()) }()
	for _, token := range []string{"", "wrong"} {
		ep, err := remoting.New(sys, remoting.WithToken(token))
		require.NoError(t, err)
		reg, err := New(ep, WithNodeID("intruder"))
		require.NoError(t, err)
		require.NoError(t, ep.Start())
		register, err := encodeCommand(registerCmd{Name: "svc", Receiver: Receiver{Node: "n1", ActorID: "$evil", Incarnation: member.reg.Incarnation()}})
		require.NoError(t, err)
		join := bin.Writer{}
		join.Str("intruder")
		join.Str(ep.Addr())
		join.Uvarint(1)
		memberReq := bin.Writer{}
		memberReq.Str("n1")
		for method, req := range map[string][]byte{methodApply: register, methodJoin: join.B, methodMember: memberReq.B, methodSync: nil} {
			_, err := reg.call(ctxWithin(t, clusterWait), member.addr, method, req)
			assert.Equal(t, codes.Unauthenticated, status.Code(err), "token %q, %s: %v", token, method, err)
		}
		_ = reg.Close()
		require.NoError(t, ep.Close())
	}
	assert.Equal(t, version, member.reg.State().Version(), "nothing an intruder sent was committed")
	assert.Len(t, member.reg.Lookup("svc"), 1)
	assert.Len(t, member.reg.State().Members(), 1)
}

// TestRejoinCallbackDoesNotBlockTheNextRejoin: the OnRejoin callback (the
// channel layer registers its receivers again there, which can take long
// while the node is cut off once more) must not hold up the health
// watcher: a node expired twice in a row rejoins twice while the first
// callback is still running.
func TestRejoinCallbackDoesNotBlockTheNextRejoin(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	nodes := startClusterVia(t, network)
	leader := waitLeaderOf(t, nodes...)
	victim := followersOf(leader, nodes)[0]
	release := make(chan struct{})
	defer close(release)
	rejoins := make(chan struct{}, 2)
	victim.reg.OnRejoin(func() {
		rejoins <- struct{}{}
		<-release // a callback that takes its time
	})
	cutOff, others := isolate(t, network, nodes, victim)
	for round := range 2 {
		inc := victim.reg.Incarnation()
		require.NoError(t, network.Partition(cutOff, others))
		require.Eventually(t, func() bool {
			l := waitLeaderOf(t, followersOf(victim, nodes)...)
			m, ok := l.reg.State().Member(victim.id)
			return !ok || m.Status == Expired || m.Incarnation != inc
		}, clusterWait, 20*time.Millisecond, "round %d: the cut-off node is expired", round)
		require.NoError(t, network.Reconnect(cutOff, others))
		select {
		case <-rejoins:
		case <-time.After(clusterWait):
			t.Fatalf("round %d: the node never rejoined", round)
		}
	}
}
