package registry

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentWritesCommitInBatches: writes made at once, on the leader
// and on followers, commit in fewer Raft entries than there are writes,
// and each writer returns only once its own write is committed: a Sync
// after the writers returned finds every one of them.
func TestConcurrentWritesCommitInBatches(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	const perNode = 100
	before := leader.reg.Metrics().LastIndex
	var wg sync.WaitGroup
	errs := make(chan error, perNode*len(nodes))
	for _, n := range nodes {
		for i := range perNode {
			wg.Go(func() {
				errs <- n.reg.Register(ctxWithin(t, clusterWait), fmt.Sprintf("b.%s.%d", n.id, i), "$1", Queue)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	for _, n := range nodes {
		for i := range perNode {
			name := fmt.Sprintf("b.%s.%d", n.id, i)
			assert.Equal(t, []Receiver{{Node: n.id, ActorID: "$1", Mode: Queue, Incarnation: n.reg.Incarnation()}},
				leader.reg.Lookup(name), name)
		}
	}
	entries := leader.reg.Metrics().LastIndex - before
	var writes, batches uint64
	for _, n := range nodes {
		m := n.reg.Metrics()
		writes += m.Writes
		batches += m.Batches
	}
	t.Logf("%d writes in %d batches, %d log entries", writes, batches, entries)
	assert.GreaterOrEqual(t, writes, uint64(perNode*len(nodes)), "every write went through a batcher")
	assert.Less(t, entries, uint64(perNode*len(nodes)/2), "the writes shared entries")
}

// TestARefusedWriteInABatchFailsAlone: in a batch committed on the leader,
// and in one a follower forwards, a write the registry refuses
// (ErrStaleIncarnation here) fails alone: the others commit, and each
// writer gets its own result.
func TestARefusedWriteInABatchFailsAlone(t *testing.T) {
	nodes := startCluster(t, 3)
	leader := waitLeaderOf(t, nodes...)
	follower := followersOf(leader, nodes)[0]
	for _, n := range []*testNode{leader, follower} {
		stale := registerCmd{Name: "stale." + n.id, Receiver: Receiver{Node: n.id, ActorID: "$1", Incarnation: n.reg.Incarnation() - 1}}
		good := registerCmd{Name: "good." + n.id, Receiver: Receiver{Node: n.id, ActorID: "$1", Incarnation: n.reg.Incarnation()}}
		gone := unregisterCmd{Name: "never." + n.id, Node: n.id, ActorID: "$1"}
		data := encode(t, batchCmd{Cmds: []command{good, stale, gone}})
		errs, err := n.reg.batch.send(data, 3)
		require.NoError(t, err, n.id)
		require.Len(t, errs, 3)
		assert.NoError(t, errs[0], n.id)
		assert.ErrorIs(t, errs[1], ErrStaleIncarnation, n.id)
		assert.NoError(t, errs[2], n.id, "unregistering what is not there does nothing")
		require.NoError(t, n.reg.Sync(ctxWithin(t, clusterWait)))
		assert.Len(t, n.reg.Lookup(good.Name), 1, n.id)
		assert.Empty(t, n.reg.Lookup(stale.Name), n.id)
	}
}

// TestForgedWriteInsideABatchIsRefused: a member that slips a write about
// another node into a batch of its own writes has the whole batch refused;
// none of it commits.
func TestForgedWriteInsideABatchIsRefused(t *testing.T) {
	leader, victim, attacker := attackFixture(t)
	before := *leader.reg.State()
	m, _ := before.Member(victim.id)
	own := registerCmd{Name: "own", Receiver: Receiver{Node: attacker.id, ActorID: "$9", Incarnation: attacker.reg.Incarnation()}}
	for _, forged := range []command{
		unregisterCmd{Name: "svc", Node: victim.id, ActorID: "$1", Incarnation: m.Incarnation},
		registerCmd{Name: "svc", Receiver: Receiver{Node: victim.id, ActorID: "$evil", Incarnation: m.Incarnation}},
	} {
		batch := encode(t, batchCmd{Cmds: []command{own, forged}})
		require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, batch), ErrPermissionDenied, "%T", forged)
	}
	unchanged(t, leader, victim, before)
	assert.Empty(t, leader.reg.Lookup("own"), "the attacker's own write in the batch did not commit either")
}

// TestAWriteGivenUpBeforeItsBatchIsNeverSent: a write whose caller gave
// up while it waited in the queue is dropped when its batch is taken, so
// that a stale copy cannot commit after the caller's retry and later
// writes; the others keep their order.
func TestAWriteGivenUpBeforeItsBatchIsNeverSent(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	b := &batcher{}
	var want []*pendingWrite
	for i, ctx := range []context.Context{live, gone, live, gone, live} {
		w := &pendingWrite{ctx: ctx, cmd: registerCmd{Name: fmt.Sprintf("n%d", i)}}
		b.queue = append(b.queue, w)
		if ctx == live {
			want = append(want, w)
		}
	}
	assert.Equal(t, want, b.take())
	assert.Empty(t, b.queue)
	assert.Nil(t, b.take(), "an empty queue")

	b.queue = []*pendingWrite{{ctx: gone}, {ctx: gone}}
	assert.Nil(t, b.take(), "every write given up: nothing to send")
	assert.Empty(t, b.queue)
}
