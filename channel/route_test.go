package channel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/registry"
)

// listGhost lists, for name, a receiver on node that has no actor: as a
// receiver looks to senders after its actor stopped and before the registry
// drops it. It waits until every node sees it.
func listGhost(t *testing.T, nodes []*Node, node *Node, name string) {
	t.Helper()
	require.NoError(t, node.reg.Register(ctxFor(t, waitFor), name, "ghost", registry.Queue))
	for _, n := range nodes {
		require.Eventually(t, func() bool {
			for _, rc := range n.reg.State().Receivers(name) {
				if rc.ActorID == "ghost" {
					return true
				}
			}
			return false
		}, waitFor, time.Millisecond, "%s does not list the ghost", n.ID())
	}
}

// openReceive is Receive on n; the receiver closes, without error, when
// the test ends.
func openReceive(t *testing.T, n *Node, name string, buf int) <-chan any {
	t.Helper()
	in, closeIn, err := n.Receive(name, buf)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, closeIn()) })
	return in
}

// openSend is Send on n; the sender closes, without error, when the test
// ends.
func openSend(t *testing.T, n *Node, name string, buf int) chan<- any {
	t.Helper()
	out, closeOut, err := n.Send(name, buf)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, closeOut()) })
	return out
}

// tries counts the times node was told that a receiver is gone: a local
// one's refusals, and remote links closed as Gone.
func tries(node *Node) uint64 { return node.stats.localGone.Load() + node.ep.Stats().Gone }

// A receiver listed but gone turns every value away at once. A sender
// passes over it for a while instead of asking it again in a loop, and
// hands its value to a receiver that registers later.
func TestASenderPassesOverAReceiverListedButGone(t *testing.T) {
	for _, where := range []string{"local", "remote"} {
		t.Run(where, func(t *testing.T) {
			nodes := startCluster(t, 2)
			ghostNode := nodes[0]
			if where == "remote" {
				ghostNode = nodes[1]
			}
			listGhost(t, nodes, ghostNode, "orders")
			out := openSend(t, nodes[0], "orders", 0)

			before := tries(nodes[0])
			// A handle is routed alone: each try on the local ghost is
			// counted.
			m := WithMessage(Order{Seq: 1}, waitFor)
			out <- m // taken by the pump, which finds only the ghost
			const watch = 500 * time.Millisecond
			time.Sleep(watch)
			// Once per route.DefaultBenchFor (20 ms) is about 25; asking again at once
			// was 350,000 dead letters (local) or thousands of Gone links
			// (remote) in the same time.
			asked := tries(nodes[0]) - before
			t.Logf("asked the ghost %d times in %v", asked, watch)
			assert.Positive(t, asked, "the ghost was never asked")
			assert.Less(t, asked, uint64(100), "asked the ghost %d times in %v", asked, watch)

			in := openReceive(t, nodes[1], "orders", 4)
			assert.Equal(t, Order{Seq: 1}, recv(t, in))
			<-m.Done()
			assert.NoError(t, m.Err())
		})
	}
}

// Passing over a gone receiver holds up only that receiver: values go on
// to the live ones without waiting, and the gone one is asked rarely.
func TestASenderPassesOverOnlyTheReceiverThatIsGone(t *testing.T) {
	nodes := startCluster(t, 1)
	in := openReceive(t, nodes[0], "orders", 1024)
	listGhost(t, nodes, nodes[0], "orders")
	out := openSend(t, nodes[0], "orders", 0)

	const values = 1000
	before := tries(nodes[0])
	msgs := make([]*Message, values)
	for i := range msgs {
		msgs[i] = WithMessage(Order{Seq: i}, waitFor)
		out <- msgs[i]
	}
	for i, m := range msgs {
		<-m.Done()
		require.NoError(t, m.Err(), "value %d", i)
		assert.Equal(t, Order{Seq: i}, recv(t, in))
	}
	// Each handle is routed alone, in turn from the next receiver: asking
	// the ghost each time it comes first was about half of them.
	asked := tries(nodes[0]) - before
	t.Logf("asked the ghost %d times for %d values", asked, values)
	assert.Less(t, asked, uint64(values/10), "asked the ghost %d times for %d values", asked, values)
}

// benchRouter is name's router on n with a long bench, so that a test can
// tell a router that waits out a bench from one that does not without
// timing it.
func benchRouter(n *Node, name string) *router { return newRouter(n, name, time.Minute) }

// A receiver that registers while the router tries the others is seen at
// once, even when every receiver it read is passed over: the router
// compares what it read with the registry after it begins to watch.
func TestARouterSeesAReceiverThatRegisteredDuringItsTries(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	listGhost(t, nodes, n, "orders")
	r := benchRouter(n, "orders")
	first := true
	var tookBy string
	_, err := r.Hand(ctxFor(t, 30*time.Second), &r.turn, 1,
		func(t2 target, _ int) (int, error) {
			if t2.PID().ID != "ghost" {
				tookBy = t2.PID().ID
				return 1, nil
			}
			if first { // a live receiver registers meanwhile
				first = false
				require.NoError(t, n.reg.Register(ctxFor(t, waitFor), "orders", "live", registry.Queue))
				require.Eventually(t, func() bool { return len(n.reg.State().Receivers("orders")) == 2 },
					waitFor, time.Millisecond)
			}
			return 0, fmt.Errorf("test: %w", actor.ErrNotFound)
		},
		func(context.Context, target, int) (int, error) {
			return 0, fmt.Errorf("test: %w", actor.ErrNotFound)
		})
	require.NoError(t, err, "the router waited out the ghost's bench (a minute) instead")
	assert.Equal(t, "live", tookBy)
}

// A router waits only for the receivers it has listed: a passed-over
// receiver that has left the name, whose time is up, does not make it
// look again and again while the listed ones are still passed over.
func TestARouterDoesNotSpinOnAReceiverThatLeft(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	listGhost(t, nodes, n, "orders")
	r := newRouter(n, "orders", 200*time.Millisecond)
	r.Bench(actor.PID{Node: n.ID(), ID: "left"}) // no longer listed
	time.Sleep(100 * time.Millisecond)
	r.Bench(actor.PID{Node: n.ID(), ID: "ghost"})
	time.Sleep(150 * time.Millisecond) // "left" is due, the ghost is not

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	looks := r.turn.Load()
	_, err := r.Hand(ctx, &r.turn, 1,
		func(target, int) (int, error) { return 0, fmt.Errorf("test: %w", actor.ErrNotFound) },
		func(context.Context, target, int) (int, error) {
			return 0, fmt.Errorf("test: %w", actor.ErrNotFound)
		})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	looks = r.turn.Load() - looks
	// One look, or a few if this machine is slow enough for the ghost's
	// bench to run out too; a spin is hundreds.
	assert.Less(t, looks, uint64(10), "looked at the receivers %d times in 20 ms", looks)
}

// A stream that fails while the router waits on a live remote receiver
// does not make the router pass that receiver over: the next try opens a
// new stream.
func TestARouterDoesNotPassOverAReceiverWhoseStreamWasReset(t *testing.T) {
	nodes := startCluster(t, 2)
	in := openReceive(t, nodes[1], "orders", 1)
	require.Eventually(t, func() bool { return len(nodes[0].reg.State().Receivers("orders")) == 1 },
		waitFor, time.Millisecond)
	r := benchRouter(nodes[0], "orders")
	live := nodes[0].reg.State().Receivers("orders")[0].PID()

	// Fill the receiver's buffer and window until a value waits for credit.
	routed := make(chan error, 1)
	for i := 0; ; i++ {
		go func() { routed <- r.route(ctxFor(t, waitFor), &r.turn, Order{Seq: i}, func(error) {}) }()
		select {
		case err := <-routed:
			require.NoError(t, err)
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break // this one waits
	}
	nodes[0].ep.ResetPeer(nodes[1].Addr())
	go func() {
		for range in { // make room again
		}
	}()
	require.NoError(t, <-routed, "the router waited out a bench (a minute) instead")
	assert.False(t, r.IsBenched(live))
}

// SendContext calls share their node's router for the name: a gone
// receiver is passed over across calls, not asked once per call.
func TestSendContextCallsShareWhatTheRouterPassesOver(t *testing.T) {
	nodes := startCluster(t, 1)
	in := openReceive(t, nodes[0], "orders", 1024)
	listGhost(t, nodes, nodes[0], "orders")
	const calls = 1000
	before := tries(nodes[0])
	for i := range calls {
		require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "orders", Order{Seq: i}))
		assert.Equal(t, Order{Seq: i}, recv(t, in))
	}
	asked := tries(nodes[0]) - before
	t.Logf("asked the ghost %d times for %d calls", asked, calls)
	assert.Less(t, asked, uint64(calls/10), "asked the ghost %d times for %d calls", asked, calls)
}

// Each send channel takes turns of its own: two channels of one name, on
// one node, writing in turn, each spread their values over both
// receivers, not one channel's to one receiver and the other's to the
// other.
func TestEachSendChannelTakesItsOwnTurns(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	var ins [2]<-chan any
	for i := range ins {
		in := openReceive(t, n, "turn", 64)
		ins[i] = in
	}
	require.Eventually(t, func() bool { return len(n.reg.State().Receivers("turn")) == 2 },
		waitFor, time.Millisecond)
	var outs [2]chan<- any
	for i := range outs {
		out := openSend(t, n, "turn", 0)
		outs[i] = out
	}
	var got [2][2]int // [channel][receiver]
	for i := range 40 {
		for c, out := range outs {
			out <- Order{Sender: fmt.Sprint(c), Seq: i}
			select {
			case <-ins[0]:
				got[c][0]++
			case <-ins[1]:
				got[c][1]++
			case <-time.After(waitFor):
				t.Fatalf("value %d of channel %d not received", i, c)
			}
		}
	}
	t.Logf("values per channel and receiver: %v", got)
	for c := range got {
		assert.Equal(t, [2]int{20, 20}, got[c], "channel %d", c)
	}
}

// With every receiver of a name passed over, a send waits as with none:
// a handle ends with its timeout, and SendContext with its context's
// error, neither sooner nor never.
func TestASendToOnlyGoneReceiversEndsWithItsTimeout(t *testing.T) {
	nodes := startCluster(t, 1)
	listGhost(t, nodes, nodes[0], "orders")
	out := openSend(t, nodes[0], "orders", 0)

	const timeout = 200 * time.Millisecond
	start := time.Now()
	m := WithMessage(Order{Seq: 1}, timeout)
	out <- m
	select {
	case <-m.Done():
	case <-time.After(waitFor):
		t.Fatal("the handle did not end")
	}
	require.ErrorIs(t, m.Err(), ErrTimeout)
	assert.GreaterOrEqual(t, time.Since(start), timeout)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := nodes[0].SendContext(ctx, "orders", Order{Seq: 2})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
