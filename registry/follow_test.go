package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/remoting"
)

// startFollower follows replicas (tried in order) from an endpoint of its
// own, until the test ends.
func startFollower(t *testing.T, replicas ...*testNode) *follower {
	t.Helper()
	log := zaptest.NewLogger(t)
	sys, err := actor.NewSystem(actor.WithNode("f1"), actor.WithLogger(log))
	require.NoError(t, err)
	ep, err := remoting.New(sys, remoting.WithListenAddr("127.0.0.1:0"), remoting.WithLogger(log))
	require.NoError(t, err)
	require.NoError(t, ep.Start())
	fl := &follower{f: newFSM(), ep: ep, log: log, replicas: func() []string {
		var addrs []string
		for _, r := range replicas {
			addrs = append(addrs, r.addr)
		}
		return addrs
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fl.run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = ep.Close()
		_ = sys.Shutdown(context.Background())
	})
	return fl
}

// caughtUp waits until fl holds what leader holds after a Sync.
func caughtUp(t *testing.T, fl *follower, leader *testNode) {
	t.Helper()
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	want := leader.reg.State()
	require.NoError(t, fl.f.waitVersion(ctxWithin(t, clusterWait), want.Version()))
	require.Equal(t, observe(want), observe(fl.f.current()))
}

// TestAFollowerHoldsWhatTheReplicasHold: a follower's copy moves with the
// cluster's writes, entry by entry; when the replica it follows dies it
// resumes at the next from the version it holds, without a snapshot.
func TestAFollowerHoldsWhatTheReplicasHold(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	followed := followersOf(leader, nodes)
	fl := startFollower(t, followed[0], followed[1])
	register := func(from, to int) {
		for i := from; i < to; i++ {
			n := nodes[i%len(nodes)]
			if n.down.Load() {
				n = leader
			}
			require.NoError(t, n.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("f.%d", i), "$1", Queue))
		}
	}
	register(0, 30)
	caughtUp(t, fl, leader)
	followed[0].kill()
	register(30, 60)
	caughtUp(t, fl, leader)
	assert.Equal(t, 60, fl.f.current().NumNames())
	assert.Zero(t, fl.snapshots.Load(), "every entry was still held: no snapshot needed")
}

// TestAFollowerTooFarBehindGetsTheStateWhole: a replica that no longer
// holds the entries after a follower's version sends its State whole, then
// the entries after it.
func TestAFollowerTooFarBehindGetsTheStateWhole(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	replica := followersOf(leader, nodes)[0]
	replica.reg.fsm.mu.Lock()
	replica.reg.fsm.applied.maxEntries, replica.reg.fsm.applied.maxBytes = 4, 1<<20
	replica.reg.fsm.mu.Unlock()
	for i := range 20 {
		require.NoError(t, leader.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("old.%d", i), "$1", Queue))
	}
	require.NoError(t, replica.reg.Sync(ctxWithin(t, clusterWait)))
	fl := startFollower(t, replica)
	caughtUp(t, fl, leader)
	snapshots := fl.snapshots.Load()
	require.GreaterOrEqual(t, snapshots, int64(1), "the entries after version 0 are gone: a snapshot")
	// One write at a time, each followed to the end: never more than
	// the replica's 4 entries behind, so entries, not snapshots, follow.
	batches := fl.batches.Load()
	for i := range 3 {
		require.NoError(t, leader.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("new.%d", i), "$1", Queue))
		caughtUp(t, fl, leader)
	}
	assert.Equal(t, snapshots, fl.snapshots.Load(), "no snapshot for entries the replica holds")
	assert.Greater(t, fl.batches.Load(), batches, "entries after the snapshot")
}

// TestAppliedLog: the entries after a version, while they are all held.
func TestAppliedLog(t *testing.T) {
	a := appliedLog{maxEntries: 3, maxBytes: 10}
	ok := func(v uint64) []uint64 {
		t.Helper()
		es, held := a.since(v)
		require.True(t, held, "entries after %d", v)
		var out []uint64
		for _, e := range es {
			out = append(out, e.index)
		}
		return out
	}
	assert.Empty(t, ok(0))
	a.add(1, []byte("a"))
	a.add(3, []byte("b")) // index 2 was a configuration entry
	assert.Equal(t, []uint64{1, 3}, ok(0))
	assert.Equal(t, []uint64{3}, ok(1))
	assert.Equal(t, []uint64{3}, ok(2))
	a.add(4, []byte("c"))
	a.add(5, []byte("d")) // over 3 entries: 1 goes
	assert.Equal(t, []uint64{3, 4, 5}, ok(1))
	_, held := a.since(0)
	assert.False(t, held, "entry 1 is gone")
	a.add(6, []byte("0123456789")) // over 10 bytes: all but the newest go
	assert.Equal(t, []uint64{6}, ok(5))
	_, held = a.since(4)
	assert.False(t, held)
	a.reset(9)
	assert.Empty(t, ok(9))
	_, held = a.since(8)
	assert.False(t, held, "a restored State: nothing before it is held")

	// A client keeps nothing; promoted, it keeps entries from then on.
	a.keep(false, 9)
	a.add(10, []byte("e"))
	assert.Empty(t, a.entries)
	_, held = a.since(9)
	assert.False(t, held, "a client holds no entries")
	a.keep(true, 10)
	a.add(11, []byte("f"))
	assert.Equal(t, []uint64{11}, ok(10))
	_, held = a.since(9)
	assert.False(t, held)
}

// TestDecodeEntryFrameRefusesDisorder: entries must come after the
// follower's version, in order; anything else fails as malformed.
func TestDecodeEntryFrameRefusesDisorder(t *testing.T) {
	frame := func(indexes ...uint64) []byte {
		w := bin.Writer{}
		w.Uvarint(uint64(len(indexes)))
		for _, i := range indexes {
			w.Uvarint(i)
			w.Str("x")
		}
		return w.B
	}
	logs, err := decodeEntryFrame(frame(5, 7), 4)
	require.NoError(t, err)
	assert.Equal(t, []uint64{5, 7}, []uint64{logs[0].Index, logs[1].Index})
	for name, b := range map[string][]byte{
		"not after the version": frame(4),
		"out of order":          frame(6, 5),
		"repeated":              frame(6, 6),
		"truncated":             frame(6, 7)[:4],
		"absurd count":          {0xff, 0xff, 0x03},
	} {
		_, err := decodeEntryFrame(b, 4)
		assert.True(t, errors.Is(err, ErrMalformed), "%s: %v", name, err)
	}
}
