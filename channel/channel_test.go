package channel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/dchan-io/dchan/remoting"
)

func TestSendReceiveAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	in, closeIn, err := nodes[1].Receive("orders", 16)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("orders", 16)
	require.NoError(t, err)
	defer closeOut()
	for i := 0; i < 10; i++ {
		out <- Order{Sender: "n1", Seq: i}
	}
	for i := 0; i < 10; i++ {
		assert.Equal(t, Order{Sender: "n1", Seq: i}, recv(t, in))
	}
}

func TestWithMessageReportsAcceptance(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("orders", 4)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("orders", 0)
	require.NoError(t, err)
	defer closeOut()
	m := WithMessage(Order{Seq: 1}, 5*time.Second)
	out <- m
	<-m.Done()
	require.NoError(t, m.Err())
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
}

func TestSendContextToLocalAndRemote(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[0].Receive("jobs", 4)
	require.NoError(t, err)
	defer closeIn()
	require.NoError(t, nodes[0].SendContext(ctxFor(t, 5*time.Second), "jobs", Order{Seq: 1}))
	require.NoError(t, nodes[1].SendContext(ctxFor(t, 5*time.Second), "jobs", Order{Seq: 2}))
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
	assert.Equal(t, Order{Seq: 2}, recv(t, in))
}

func TestCloseFuncsAndNodeCloseAreIdempotent(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	_, closeIn, err := n.Receive("twice", 1)
	require.NoError(t, err)
	require.NoError(t, closeIn())
	require.NoError(t, closeIn())
	_, closeOut, err := n.Send("twice", 1)
	require.NoError(t, err)
	require.NoError(t, closeOut())
	require.NoError(t, closeOut())
	require.NoError(t, n.Close())
	require.NoError(t, n.Close())
	_, _, err = n.Receive("after", 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, _, err = n.Send("after", 1)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, n.SendContext(context.Background(), "after", 1), ErrClosed)
}

func TestNewAndChannelsValidateInput(t *testing.T) {
	ctx := ctxFor(t, 5*time.Second)
	_, err := New(ctx, WithLogger(nil))
	assert.ErrorIs(t, err, ErrInvalidOption)
	_, err = New(ctx, WithNodeID("a/b"))
	assert.ErrorIs(t, err, ErrInvalidOption)
	_, err = New(ctx, WithCodec(nil), WithTypes(Order{}), WithCodec(badCodec{}))
	assert.ErrorIs(t, err, ErrInvalidOption, "types go to the default codec only")
	nodes := startCluster(t, 1)
	_, _, err = nodes[0].Receive("", 1)
	assert.ErrorIs(t, err, ErrInvalidName)
	_, _, err = nodes[0].Send("x", -1)
	assert.ErrorIs(t, err, ErrInvalidOption)
	_, _, err = nodes[0].Receive(strings.Repeat("x", 5000), 1)
	assert.ErrorIs(t, err, ErrInvalidName)
}

type badCodec struct{}

func (badCodec) Name() string                 { return "bad" }
func (badCodec) NewEncoder() remoting.Encoder { return nil }
func (badCodec) NewDecoder() remoting.Decoder { return nil }

func TestStatsCountPerNameAndPeer(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("counted", 8)
	require.NoError(t, err)
	defer closeIn()
	for i := 0; i < 5; i++ {
		require.NoError(t, nodes[0].SendContext(ctxFor(t, 5*time.Second), "counted", Order{Seq: i}))
		recv(t, in)
	}
	st := nodes[0].Stats()
	assert.EqualValues(t, 5, st.Sent)
	assert.EqualValues(t, 5, st.Delivered)
	assert.Zero(t, st.InFlight)
	assert.EqualValues(t, 5, st.Names["counted"].Delivered)
	assert.EqualValues(t, 5, st.Peers["n2"].Sent)
	require.Eventually(t, func() bool { return nodes[1].Stats().Names["counted"].Received == 5 },
		waitFor, time.Millisecond, "the receiving node counts what its user took")
}

func TestReceiversRegisterAgainAfterARejoin(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("again", 4)
	require.NoError(t, err)
	defer closeIn()
	_, closedIn, err := nodes[1].Receive("closed", 4)
	require.NoError(t, err)
	require.NoError(t, closedIn())
	// What an expiry does to the node's names, then what the registry's
	// rejoin hook does about it.
	for _, rc := range nodes[1].reg.Lookup("again") {
		require.NoError(t, nodes[1].reg.Unregister(ctxFor(t, 5*time.Second), "again", rc.ActorID))
	}
	require.Eventually(t, func() bool { return len(nodes[0].reg.Lookup("again")) == 0 }, waitFor, time.Millisecond)
	nodes[1].reregister()
	require.Eventually(t, func() bool { return len(nodes[0].reg.Lookup("again")) == 1 }, waitFor, time.Millisecond)
	assert.Empty(t, nodes[0].reg.Lookup("closed"), "a closed receiver is not registered again")
	require.NoError(t, nodes[0].SendContext(ctxFor(t, 5*time.Second), "again", Order{Seq: 1}))
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
}

func TestRandomNodeIDPersistsInTheDataDir(t *testing.T) {
	dir := t.TempDir()
	start := func() *Node {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		n, err := New(ctx, WithDataDir(dir), WithLogger(zaptest.NewLogger(t)), fastRegistry())
		require.NoError(t, err)
		return n
	}
	first := start()
	id := first.ID()
	require.NotEmpty(t, id)
	require.NoError(t, first.Close())
	second := start()
	defer second.Close()
	assert.Equal(t, id, second.ID(), "a restarted node keeps its ID")
	assert.Len(t, second.Cluster().Members, 1)
}

// DESIGN: graceful Close removes the node's registrations and leaves the
// Raft configuration.
func TestCloseRemovesRegistrationsAndLeavesTheCluster(t *testing.T) {
	nodes := startCluster(t, 3)
	_, _, err := nodes[2].Receive("leaving", 4)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return nodes[0].Cluster().Names["leaving"] == 1 }, waitFor, time.Millisecond)
	require.NoError(t, nodes[2].Close())
	require.Eventually(t, func() bool {
		c := nodes[0].Cluster()
		return len(c.Members) == 2 && c.Names["leaving"] == 0
	}, waitFor, time.Millisecond, "the closed node's receivers and membership are gone")
	cf := nodes[0].reg.State()
	_, stillMember := cf.Member(nodes[2].ID())
	assert.False(t, stillMember)
}

// TestSyncShowsWritesCompletedBeforeIt: after Receive returned on one node,
// Cluster on every other node, once it has called Sync, counts the
// receiver; so does the view after Close on its node; Sync on a closed
// node reports ErrClosed.
func TestSyncShowsWritesCompletedBeforeIt(t *testing.T) {
	nodes := startCluster(t, 3)
	for i := range 3 {
		name := fmt.Sprintf("synced%d", i)
		_, closeFn, err := nodes[i].Receive(name, 1)
		require.NoError(t, err)
		for _, n := range nodes {
			require.NoError(t, n.Sync(ctxFor(t, waitFor)))
			assert.Equal(t, 1, n.Cluster().Names[name], "node %s after Sync", n.ID())
		}
		require.NoError(t, closeFn())
		for _, n := range nodes {
			require.NoError(t, n.Sync(ctxFor(t, waitFor)))
			assert.Zero(t, n.Cluster().Names[name], "node %s after the close and Sync", n.ID())
		}
	}
	require.NoError(t, nodes[2].Close())
	assert.ErrorIs(t, nodes[2].Sync(ctxFor(t, waitFor)), ErrClosed)
}

// TestMessageHandleTimeoutAndRouteContext: a handle ends with ErrTimeout
// at its timeout unless an outcome came first, and the context that bounds
// its routing ends with it, reporting why.
func TestMessageHandleTimeoutAndRouteContext(t *testing.T) {
	m := WithMessage(Order{Seq: 1}, 50*time.Millisecond)
	ctx := routeCtx{m}
	deadline, ok := ctx.Deadline()
	require.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(50*time.Millisecond), deadline, 40*time.Millisecond)
	require.NoError(t, ctx.Err())
	require.ErrorIs(t, m.Err(), ErrPending)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the handle did not time out")
	}
	require.ErrorIs(t, m.Err(), ErrTimeout)
	require.ErrorIs(t, m.Err(), context.DeadlineExceeded)
	require.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	m.finish(nil) // a late outcome changes nothing
	require.ErrorIs(t, m.Err(), ErrTimeout)

	early := WithMessage(Order{Seq: 2}, 30*time.Millisecond)
	early.finish(nil)
	time.Sleep(60 * time.Millisecond) // past the timeout: it was stopped
	require.NoError(t, early.Err())
	require.ErrorIs(t, routeCtx{early}.Err(), context.Canceled)

	forever := WithMessage(Order{Seq: 3}, 0)
	_, ok = routeCtx{forever}.Deadline()
	require.False(t, ok)
	forever.finish(ErrClosed)
	require.ErrorIs(t, forever.Err(), ErrClosed)
}

// TestAHandleArmsItsTimeoutWhenWaitedOn: a handle's timer starts, and its
// Done channel is made, with the first wait on it (Done, or a router
// waiting to hand it over), and Err looks at the deadline itself; an
// outcome that comes before any wait costs neither.
func TestAHandleArmsItsTimeoutWhenWaitedOn(t *testing.T) {
	timer := func(m *Message) *time.Timer {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.timer
	}
	unwatched := WithMessage(Order{Seq: 1}, 20*time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	require.ErrorIs(t, unwatched.Err(), ErrTimeout, "Err past the deadline")
	select {
	case <-unwatched.Done():
	default:
		t.Fatal("Done is not closed after Err reported the timeout")
	}
	assert.Nil(t, timer(unwatched), "ended without a timer")

	late := WithMessage(Order{Seq: 2}, 20*time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	select {
	case <-late.Done(): // a first wait past the deadline ends it at once
	default:
		t.Fatal("Done past the deadline is not closed")
	}
	require.ErrorIs(t, late.Err(), ErrTimeout)

	quick := WithMessage(Order{Seq: 3}, time.Minute)
	quick.finish(nil)
	quick.mu.Lock()
	made := quick.done != nil
	quick.mu.Unlock()
	assert.False(t, made, "an outcome before any wait made a Done channel")
	<-quick.Done() // closed, though first asked for after the end
	require.NoError(t, quick.Err())
	assert.Nil(t, timer(quick), "an outcome before any wait started a timer")

	waited := WithMessage(Order{Seq: 4}, time.Minute)
	_ = waited.Done()
	assert.NotNil(t, timer(waited), "a wait on a pending handle did not arm its timeout")
	waited.finish(nil)
	require.NoError(t, waited.Err())

	routed := WithMessage(Order{Seq: 5}, time.Minute)
	child, cancel := context.WithTimeout(routeCtx{routed}, time.Hour)
	defer cancel()
	assert.NotNil(t, timer(routed), "a context derived for routing did not arm the timeout")
	require.NoError(t, child.Err())
}

// TestAHandlesErrAndDoneAgree: Err (and its routing context's Err)
// reports an outcome only once Done is closed, even while the outcome is
// being recorded on another goroutine.
func TestAHandlesErrAndDoneAgree(t *testing.T) {
	for i := range 5000 {
		m := WithMessage(Order{Seq: i}, 0)
		done := m.Done()
		go m.finish(ErrNodeLost)
		for (routeCtx{m}).Err() == nil {
			runtime.Gosched()
		}
		select {
		case <-done:
		default:
			t.Fatalf("handle %d: its routing context ended before Done closed", i)
		}
		m2 := WithMessage(Order{Seq: i}, 0)
		done2 := m2.Done()
		go m2.finish(nil)
		for errors.Is(m2.Err(), ErrPending) {
			runtime.Gosched()
		}
		select {
		case <-done2:
		default:
			t.Fatalf("handle %d: Err reported before Done closed", i)
		}
	}
}

// TestAnOutcomePastTheDeadlineIsTheTimeout: a handle whose outcome comes
// after its deadline reports the timeout, whether or not anyone waited on
// it before (its timer starts only with a wait), as it would had the
// timer run.
func TestAnOutcomePastTheDeadlineIsTheTimeout(t *testing.T) {
	for _, outcome := range []error{nil, ErrNodeLost} {
		m := WithMessage(Order{Seq: 1}, 10*time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		m.finish(outcome) // accepted (or lost) after the deadline, nobody waiting
		require.ErrorIs(t, m.Err(), ErrTimeout, "outcome %v", outcome)
		require.ErrorIs(t, routeCtx{m}.Err(), context.DeadlineExceeded)
	}
	inTime := WithMessage(Order{Seq: 2}, time.Minute)
	inTime.finish(nil)
	require.NoError(t, inTime.Err())
}

// TestRouteContextRunsAfterFuncs: a context derived from a handle's routing
// context ends when the handle does (routeCtx.AfterFunc, which the context
// package uses instead of a watching goroutine), and a stopped AfterFunc
// does not run.
func TestRouteContextRunsAfterFuncs(t *testing.T) {
	m := WithMessage(Order{Seq: 1}, 0)
	child, cancel := context.WithTimeout(routeCtx{m}, time.Hour)
	defer cancel()
	ran := make(chan struct{})
	stopped := routeCtx{m}.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
	routeCtx{m}.AfterFunc(func() { close(ran) })
	require.True(t, stopped(), "stop before the end reports it stopped f")
	require.False(t, stopped(), "a second stop has nothing to stop")
	require.NoError(t, child.Err())

	m.finish(nil)
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the derived context did not end with the handle")
	}
	require.ErrorIs(t, child.Err(), context.Canceled)
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("AfterFunc did not run")
	}
	late := make(chan struct{})
	assert.False(t, routeCtx{m}.AfterFunc(func() { close(late) })(), "after the end f runs at once")
	<-late
}

// TestBatchesReachASlowReceiverWhole: the pump routes the values waiting in
// a send channel as a batch; a receiver with room for two takes a batch a
// value or two at a time, the sender waiting for room in between. Every
// value arrives, in order, and the sender's close returns once all are
// confirmed — whether the receiver is on the sender's node or another.
func TestBatchesReachASlowReceiverWhole(t *testing.T) {
	for _, where := range []string{"local", "remote"} {
		t.Run(where, func(t *testing.T) {
			nodes := startCluster(t, 2)
			rn := nodes[0]
			if where == "remote" {
				rn = nodes[1]
			}
			in, closeIn, err := rn.Receive("slow", 2)
			require.NoError(t, err)
			defer closeIn()
			out, closeOut, err := nodes[0].Send("slow", 300)
			require.NoError(t, err)
			const total = 300
			for i := range total {
				out <- Order{Sender: "n1", Seq: i}
			}
			for i := range total {
				if i < 20 {
					time.Sleep(time.Millisecond) // the batch meets a full buffer
				}
				require.Equal(t, Order{Sender: "n1", Seq: i}, recv(t, in))
			}
			require.NoError(t, closeOut())
			st := nodes[0].Stats()
			assert.EqualValues(t, total, st.Sent)
			assert.EqualValues(t, total, st.Delivered)
			assert.Zero(t, st.Failed)
			assert.Zero(t, st.InFlight)
		})
	}
}

// TestBatchWithAnUnencodableValue: a value the codec refuses fails alone
// (counted in Stats.Failed); the values written before and after it in the
// same batch arrive, in order.
func TestBatchWithAnUnencodableValue(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("mixed", 64)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("mixed", 64)
	require.NoError(t, err)
	for i := range 20 {
		if i == 10 {
			out <- notRegistered{X: i}
		}
		out <- Order{Seq: i}
	}
	require.NoError(t, closeOut())
	for i := range 20 {
		require.Equal(t, Order{Seq: i}, recv(t, in))
	}
	st := nodes[0].Stats()
	assert.EqualValues(t, 1, st.Failed)
	assert.EqualValues(t, 20, st.Delivered)
}

// TestHandlesInABatchEachHaveTheirOwnOutcome: handles written together
// are routed together (sendHandles), to a remote receiver and a local
// one; each still ends with its own outcome: a value the codec refuses
// fails its handle alone with ErrEncode, a handle whose timeout has passed
// before the pump took it is not delivered and reports ErrTimeout, and
// the others are confirmed and arrive in order.
func TestHandlesInABatchEachHaveTheirOwnOutcome(t *testing.T) {
	nodes := startCluster(t, 2)
	for _, to := range nodes {
		name := "handles." + to.ID()
		in, closeIn, err := to.Receive(name, 64)
		require.NoError(t, err)
		defer closeIn()
		out, closeOut, err := nodes[0].Send(name, 64)
		require.NoError(t, err)
		var ms []*Message
		expired := WithMessage(Order{Seq: -1}, time.Nanosecond)
		bad := WithMessage(notRegistered{X: 1}, waitFor)
		for i := range 30 {
			switch i {
			case 10:
				out <- bad
			case 20:
				time.Sleep(time.Millisecond)
				out <- expired
			}
			m := WithMessage(Order{Seq: i}, waitFor)
			ms = append(ms, m)
			out <- m
		}
		local := to == nodes[0] // takes any value: nothing is encoded
		for i, m := range ms {
			<-m.Done()
			require.NoError(t, m.Err(), "handle %d to %s", i, to.ID())
			if i == 10 && local {
				require.Equal(t, notRegistered{X: 1}, recv(t, in))
			}
			require.Equal(t, Order{Seq: i}, recv(t, in), "to %s", to.ID())
		}
		<-bad.Done()
		<-expired.Done()
		if local {
			require.NoError(t, bad.Err())
		} else {
			assert.ErrorIs(t, bad.Err(), ErrEncode, "a remote receiver's codec")
		}
		assert.ErrorIs(t, expired.Err(), ErrTimeout)
		require.NoError(t, closeOut())
		select {
		case v := <-in:
			t.Fatalf("%v arrived at %s after the confirmed values", v, to.ID())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestHandlesPastTheirDeadlineInARunAreNotSent: handles that wait in the
// send channel while the pump is blocked are routed as one run once it is
// free; a handle among them whose timeout has passed is not sent — to a
// remote receiver or a local one — but reports ErrTimeout and is counted
// as failed by timeout, and the others arrive in order.
func TestHandlesPastTheirDeadlineInARunAreNotSent(t *testing.T) {
	nodes := startCluster(t, 2)
	for _, to := range nodes {
		name := "expired-in-run." + to.ID()
		in, closeIn, err := to.Receive(name, 1)
		require.NoError(t, err)
		defer closeIn()
		out, closeOut, err := nodes[0].Send(name, 64)
		require.NoError(t, err)
		blockers := blockPump(t, out)
		var ms, expired []*Message
		for i := range 22 {
			if i == 10 || i == 21 { // in the middle of the run, and last
				e := WithMessage(Order{Seq: -i}, time.Nanosecond)
				expired = append(expired, e)
				out <- e
				continue
			}
			m := WithMessage(Order{Seq: i}, waitFor)
			ms = append(ms, m)
			out <- m
		}
		for i := range blockers {
			require.Equal(t, i, recv(t, in), "to %s", to.ID())
		}
		for _, m := range ms {
			require.Equal(t, m.Value(), recv(t, in), "to %s", to.ID())
			<-m.Done()
			require.NoError(t, m.Err())
		}
		for _, e := range expired {
			<-e.Done()
			assert.ErrorIs(t, e.Err(), ErrTimeout)
		}
		require.NoError(t, closeOut())
		select {
		case v := <-in:
			t.Fatalf("%v arrived at %s after the confirmed values", v, to.ID())
		case <-time.After(50 * time.Millisecond):
		}
		assert.Equal(t, map[string]uint64{"timeout": 2}, nodes[0].Stats().Names[name].FailedBy)
	}
}

// blockPump writes bare values 0, 1, ... to out, one at a time, until the
// pump behind it stops taking them (one stays in the channel for 50 ms:
// its receiver is full), and returns how many it wrote.
func blockPump(t *testing.T, out chan<- any) int {
	t.Helper()
	for i := 0; i < 100_000; i++ {
		out <- i // the channel is empty: this does not wait
		taken := time.Now().Add(50 * time.Millisecond)
		for len(out) > 0 {
			if time.Now().After(taken) {
				return i + 1
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	t.Fatal("the pump took 100000 values: its receiver never filled")
	return 0
}

// TestSendOfSharesTheBatchedPump: a typed send channel routes like Send —
// its values arrive in order and its close flushes them — and validates
// its arguments the same way.
func TestSendOfSharesTheBatchedPump(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := ReceiveOf[Order](nodes[1], "typed", 32)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := SendOf[Order](nodes[0], "typed", 64)
	require.NoError(t, err)
	assert.Equal(t, 64, cap(out))
	const total = 500
	go func() {
		for i := range total {
			out <- Order{Sender: "n1", Seq: i}
		}
	}()
	for i := range total {
		select {
		case v := <-in:
			require.Equal(t, Order{Sender: "n1", Seq: i}, v)
		case <-time.After(waitFor):
			t.Fatalf("value %d not received", i)
		}
	}
	require.NoError(t, closeOut())
	require.NoError(t, closeOut(), "twice is safe")
	st := nodes[0].Stats()
	assert.EqualValues(t, total, st.Delivered)
	assert.Zero(t, st.InFlight)

	_, _, err = SendOf[Order](nodes[0], "typed", -1)
	assert.ErrorIs(t, err, ErrInvalidOption)
	_, _, err = SendOf[Order](nodes[0], "", 1)
	assert.Error(t, err)
	require.NoError(t, nodes[0].Close())
	_, _, err = SendOf[Order](nodes[0], "typed", 1)
	assert.ErrorIs(t, err, ErrClosed)
}

// TestSendWaitsForAQueueReceiverWhenANameHasOnlySubscribers: subscribers
// of a name are not receivers of its sends. A send to such a name waits
// for a receiver as if there were none (it looped without waiting, ignoring
// its context and holding up Shutdown), and goes to the first one.
func TestSendWaitsForAQueueReceiverWhenANameHasOnlySubscribers(t *testing.T) {
	nodes := startCluster(t, 1)
	n := nodes[0]
	sub, closeSub, err := n.Subscribe("mixed", 4)
	require.NoError(t, err)
	defer closeSub()

	start := time.Now()
	err = n.SendContext(ctxFor(t, 200*time.Millisecond), "mixed", Order{Seq: 1})
	require.ErrorIs(t, err, ErrNoReceivers)
	assert.Less(t, time.Since(start), 5*time.Second)

	out, closeOut, err := n.Send("mixed", 0)
	require.NoError(t, err)
	defer closeOut()
	m := WithMessage(Order{Seq: 2}, waitFor)
	out <- m
	in, closeIn, err := n.Receive("mixed", 4)
	require.NoError(t, err)
	defer closeIn()
	assert.Equal(t, Order{Seq: 2}, recv(t, in))
	<-m.Done()
	require.NoError(t, m.Err())
	select {
	case v := <-sub:
		t.Fatalf("a subscriber got %v from a send", v)
	default:
	}

	// A pump waiting on such a name lets the node shut down.
	_, _, err = n.Send("subscribers-only-"+t.Name(), 0)
	require.NoError(t, err)
	_, closeSub2, err := n.Subscribe("subscribers-only-"+t.Name(), 1)
	require.NoError(t, err)
	defer closeSub2()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, n.Shutdown(ctx))
}

// TestARefusedValueIsRoutedAgainWhileThePumpIsIdle: a value that a receiver
// refuses (it stopped, but is still registered) is routed again when a
// receiver appears, though nothing more is written to the send channel and
// it is not closed: the refusal's wake-up of the pump must not be lost.
func TestARefusedValueIsRoutedAgainWhileThePumpIsIdle(t *testing.T) {
	nodes := startCluster(t, 2)
	ctx := ctxFor(t, waitFor)
	in2, closeIn2, err := nodes[1].Receive("ghost", 4)
	require.NoError(t, err)
	defer closeIn2()
	require.NoError(t, nodes[0].Sync(ctx))
	out, closeOut, err := nodes[0].Send("ghost", 0)
	require.NoError(t, err)
	defer closeOut()
	first := WithMessage(Order{Seq: 0}, waitFor)
	out <- first // the link gets credit
	<-first.Done()
	require.NoError(t, first.Err())
	require.Equal(t, Order{Seq: 0}, recv(t, in2))
	// Stop n2's receiver without unregistering it: it refuses what comes.
	nodes[1].mu.Lock()
	for r := range nodes[1].receivers {
		if r.name == "ghost" {
			r.stop()
		}
	}
	nodes[1].mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	m := WithMessage(Order{Seq: 1}, waitFor)
	out <- m
	time.Sleep(300 * time.Millisecond) // refused; the pump has nothing else to do
	in, closeIn, err := nodes[0].Receive("ghost", 4)
	require.NoError(t, err)
	defer closeIn()
	<-m.Done()
	require.NoError(t, m.Err())
	require.Equal(t, Order{Seq: 1}, recv(t, in))
}

// TestShutdownIsBoundedWithoutAQuorum: a node whose peers are all gone
// cannot leave the cluster (no quorum commits its Leave), yet Shutdown
// returns when its ctx ends, with an error saying so, and Close within
// DefaultDrainTimeout: a process whose run is over always exits.
func TestShutdownIsBoundedWithoutAQuorum(t *testing.T) {
	nodes := startCluster(t, 3)
	survivor := nodes[0]
	_, closeRecv, err := survivor.Receive("orders", 4)
	require.NoError(t, err)
	defer closeRecv()
	out, closeSend, err := survivor.Send("orders", 4)
	require.NoError(t, err)
	defer closeSend()
	out <- Order{Sender: "n1", Seq: 1}
	kill(nodes[1])
	kill(nodes[2])

	const bound = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	err = survivor.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown returned after %v: %v", took, err)
	require.Error(t, err, "the leave cannot have committed")
	assert.Less(t, took, bound+2*time.Second, "Shutdown is bounded by its ctx")
	assert.Equal(t, err, survivor.Close(), "a second call returns the first's result at once")
}
