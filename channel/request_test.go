package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// Envelope carries a Ref in a field, as users put reply addresses in
// their messages.
type Envelope struct {
	Body    string
	ReplyTo Ref
}

func square(_ context.Context, x int) (int, error) { return x * x, nil }

func TestRequestAnswersTenThousandConcurrentRequestsAcrossNodes(t *testing.T) {
	// 10,000 requesting goroutines on two cores under -race can starve
	// heartbeats past the tests' 1 s expiry (seen in CI: a responder
	// declared dead, its requests failed with ErrNodeLost, as they
	// should). Failure detection is another test's subject.
	nodes := startCluster(t, 3, WithExpireAfter(30*time.Second))
	for _, n := range nodes[1:] {
		stop, err := Serve(n, "square", 256, square)
		require.NoError(t, err)
		t.Cleanup(func() { _ = stop() })
	}
	waitReceivers(t, nodes[0], "square", 2)

	const requests = 10_000
	ctx := ctxFor(t, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Go(func() {
			got, err := Request[int](ctx, nodes[0], "square", i)
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case got != i*i:
				errs <- fmt.Errorf("request %d: answer %d, want %d", i, got, i*i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, nodes[0].replies.Len(), "no request left waiting")
	// A request's acceptance may be reported after its answer (it goes
	// with the frame's others, up to remoting.AckDelay late, or later on
	// a loaded machine): it is counted when it comes.
	assert.Eventually(t, func() bool { return nodes[0].Stats().Delivered == requests }, waitFor, time.Millisecond,
		"every request counted as delivered (%d when the last answer came)", nodes[0].Stats().Delivered)
}

// waitReceivers waits until n's replica lists want receivers of name.
func waitReceivers(t *testing.T, n *Node, name string, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(n.reg.Lookup(name)) == want }, waitFor, 5*time.Millisecond)
}

func TestRequestReportsTheHandlersError(t *testing.T) {
	nodes := startCluster(t, 2)
	stop, err := Serve(nodes[1], "div", 4, func(_ context.Context, d int) (int, error) {
		if d == 0 {
			return 0, errors.New("division by zero")
		}
		return 100 / d, nil
	})
	require.NoError(t, err)
	defer stop()
	waitReceivers(t, nodes[0], "div", 1)

	got, err := Request[int](ctxFor(t, waitFor), nodes[0], "div", 4)
	require.NoError(t, err)
	assert.Equal(t, 25, got)
	_, err = Request[int](ctxFor(t, waitFor), nodes[0], "div", 0)
	require.ErrorIs(t, err, ErrHandler)
	assert.ErrorContains(t, err, "division by zero")
}

func TestRequestOfTheWrongTypeFailsWithErrWrongType(t *testing.T) {
	nodes := startCluster(t, 2)
	stop, err := Serve(nodes[1], "square", 4, square)
	require.NoError(t, err)
	defer stop()
	waitReceivers(t, nodes[0], "square", 1)

	_, err = Request[int](ctxFor(t, waitFor), nodes[0], "square", "seven")
	require.ErrorIs(t, err, ErrWrongType, "a string request to an int handler")
	_, err = Request[string](ctxFor(t, waitFor), nodes[0], "square", 7)
	require.ErrorIs(t, err, ErrWrongType, "an int answer to a string request")
	err = nodes[0].SendContext(ctxFor(t, waitFor), "square", 7)
	require.ErrorIs(t, err, ErrWrongType, "a bare value is not a request")
	// The handler still answers the right ones.
	got, err := Request[int](ctxFor(t, waitFor), nodes[0], "square", 7)
	require.NoError(t, err)
	assert.Equal(t, 49, got)
}

func TestRequestCancelledReturnsTheContextsError(t *testing.T) {
	nodes := startCluster(t, 2)
	release := make(chan struct{})
	stop, err := Serve(nodes[1], "slow", 4, func(ctx context.Context, x int) (int, error) {
		<-release
		return x, nil
	})
	require.NoError(t, err)
	defer stop()
	defer close(release) // before stop: the handler must end for Serve to close
	waitReceivers(t, nodes[0], "slow", 1)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = Request[int](ctx, nodes[0], "slow", 1)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, nodes[0].replies.Len(), "the cancelled request stops waiting")

	// A request to a name nobody receives waits for a receiver until
	// its deadline.
	_, err = Request[int](ctxFor(t, 200*time.Millisecond), nodes[0], "nobody", 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// goleak (TestMain) checks that nothing is left running.
}

func TestRequestFailsWithErrNodeLostWhenTheRespondersNodeDies(t *testing.T) {
	nodes := startCluster(t, 3)
	started := make(chan struct{}, 8)
	stop, err := Serve(nodes[2], "stuck", 4, func(ctx context.Context, x int) (int, error) {
		started <- struct{}{}
		<-ctx.Done() // never answers before its node dies
		return 0, ctx.Err()
	})
	require.NoError(t, err)
	_ = stop // the node dies with it
	waitReceivers(t, nodes[0], "stuck", 1)

	const pending = 5
	errs := make(chan error, pending)
	for i := range pending {
		go func() {
			_, err := Request[int](ctxFor(t, time.Minute), nodes[0], "stuck", i)
			errs <- err
		}()
	}
	for range pending {
		<-started
	}
	// Accepted, so only the node's death (not a broken stream) can
	// fail them.
	require.Eventually(t, func() bool { return nodes[0].Stats().Delivered == pending }, waitFor, time.Millisecond)
	killed := time.Now()
	kill(nodes[2])
	// They fail once the leader expires the node: about fastRegistry's
	// grace (1 s) after the kill on a quiet machine. Each leader change
	// starts the grace again (a new leader cannot know since when a peer
	// is silent), and a loaded machine changes leaders often at these
	// timeouts, so the bound is the point of the guarantee, well before
	// the requests' own deadline, not the grace.
	for range pending {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, ErrNodeLost)
			assert.ErrorContains(t, err, "declared dead")
		case <-time.After(waitFor - time.Since(killed)):
			t.Fatalf("a request still pending %v after its responder's node died", time.Since(killed))
		}
	}
	t.Logf("pending requests failed %v after the kill (grace 1 s)", time.Since(killed))
}

func TestRefSentToAThirdNodeReachesItsReceiver(t *testing.T) {
	nodes := startCluster(t, 3, WithTypes(Envelope{}))
	// n1 opens a private receiver and sends its Ref, in a message field,
	// to n2; n2 hands it on to n3; n3 answers at it.
	replies, ref, closeRef, err := nodes[0].ReceiveRef(4)
	require.NoError(t, err)
	defer closeRef()
	assert.Equal(t, "n1", ref.Node())
	assert.False(t, ref.IsZero())

	atTwo, closeTwo, err := nodes[1].Receive("hop", 4)
	require.NoError(t, err)
	defer closeTwo()
	atThree, closeThree, err := nodes[2].Receive("last", 4)
	require.NoError(t, err)
	defer closeThree()
	waitReceivers(t, nodes[0], "hop", 1)
	waitReceivers(t, nodes[1], "last", 1)

	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "hop", Envelope{Body: "ping", ReplyTo: ref}))
	e := recv(t, atTwo).(Envelope)
	assert.Equal(t, ref, e.ReplyTo, "a Ref survives the wire unchanged")
	require.NoError(t, nodes[1].SendContext(ctxFor(t, waitFor), "last", e))
	e = recv(t, atThree).(Envelope)
	require.NoError(t, nodes[2].SendTo(ctxFor(t, waitFor), e.ReplyTo, "pong from n3"))
	assert.Equal(t, "pong from n3", recv(t, replies))

	// A Ref used on its own node.
	require.NoError(t, nodes[0].SendTo(ctxFor(t, waitFor), ref, "local"))
	assert.Equal(t, "local", recv(t, replies))
	assert.Empty(t, nodes[0].reg.Lookup(ref.id), "a Ref makes no registry write")
}

func TestSendToAClosedRefFailsWithErrGone(t *testing.T) {
	nodes := startCluster(t, 2)
	ch, ref, closeRef, err := nodes[0].ReceiveRef(1)
	require.NoError(t, err)
	require.NoError(t, nodes[1].SendTo(ctxFor(t, waitFor), ref, 1))
	require.NoError(t, closeRef())
	assert.Equal(t, 1, recv(t, ch), "what it accepted is delivered")
	_, open := <-ch
	assert.False(t, open, "then the channel closes")

	err = nodes[1].SendTo(ctxFor(t, waitFor), ref, 2)
	require.ErrorIs(t, err, ErrGone, "from another node")
	err = nodes[0].SendTo(ctxFor(t, waitFor), ref, 3)
	require.ErrorIs(t, err, ErrGone, "from its own node")
	require.ErrorIs(t, nodes[0].SendTo(ctxFor(t, waitFor), Ref{}, 4), ErrGone, "the zero Ref")
}

func TestRefOfARestartedNodeIsGone(t *testing.T) {
	nodes := startCluster(t, 3)
	ch, ref, _, err := nodes[2].ReceiveRef(4)
	require.NoError(t, err)
	require.NoError(t, nodes[0].SendTo(ctxFor(t, waitFor), ref, "before"))
	assert.Equal(t, "before", recv(t, ch))

	// n3 restarts: a new run under the same node ID.
	require.NoError(t, nodes[2].Close())
	n3, err := New(ctxFor(t, waitFor), WithNodeID("n3"), WithLogger(zaptest.NewLogger(t)),
		WithTypes(Order{}), fastRegistry(), WithPeers(nodes[0].Addr()))
	require.NoError(t, err)
	defer n3.Close()
	require.Eventually(t, func() bool { return nodes[0].isLiveMember("n3") }, waitFor, 10*time.Millisecond)

	err = nodes[0].SendTo(ctxFor(t, waitFor), ref, "after")
	require.ErrorIs(t, err, ErrGone, "the new run has none of the old run's receivers")
}

func TestReceiveOfRefusesAWrongTypedValueBeforeAcceptingIt(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := ReceiveOf[Order](nodes[1], "typed", 4)
	require.NoError(t, err)
	defer closeIn()
	waitReceivers(t, nodes[0], "typed", 1)

	for i, n := range nodes { // from another node, and from the receiver's own
		err := n.SendContext(ctxFor(t, waitFor), "typed", "not an order")
		require.ErrorIs(t, err, ErrWrongType, "sender n%d", i+1)

		out, closeOut, err := SendMessageOf[string](n, "typed", 1)
		require.NoError(t, err)
		m := WithMessageOf("not an order either", waitFor)
		out <- m
		<-m.Done()
		require.ErrorIs(t, m.Err(), ErrWrongType, "a handle of sender n%d", i+1)
		require.NoError(t, closeOut())
	}
	// Bare values count as failed; the right type still goes through.
	bare, closeBare, err := nodes[0].Send("typed", 4)
	require.NoError(t, err)
	bare <- "wrong"
	bare <- Order{Sender: "n1", Seq: 1}
	require.NoError(t, closeBare())
	assert.Equal(t, Order{Sender: "n1", Seq: 1}, <-in)
	require.Eventually(t, func() bool { return nodes[0].Stats().Failed >= 3 }, waitFor, 10*time.Millisecond,
		"the wrong-typed values count as failed")
	assert.Zero(t, nodes[1].Stats().Dropped, "nothing is accepted and then dropped")
}

func TestSendMessageOfConfirmsTypedValues(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := ReceiveOf[Order](nodes[1], "orders", 8)
	require.NoError(t, err)
	defer closeIn()
	waitReceivers(t, nodes[0], "orders", 1)

	out, closeOut, err := SendMessageOf[Order](nodes[0], "orders", 8)
	require.NoError(t, err)
	var handles []*MessageOf[Order]
	for i := range 5 {
		m := WithMessageOf(Order{Sender: "n1", Seq: i}, waitFor)
		handles = append(handles, m)
		out <- m
	}
	out <- nil // a nil handle is dropped, not a panic
	for i, m := range handles {
		<-m.Done()
		require.NoError(t, m.Err(), "handle %d", i)
		assert.Equal(t, Order{Sender: "n1", Seq: i}, <-in)
	}
	require.NoError(t, closeOut())
}

func TestReceiveContextIsBoundedOnTheMinoritySide(t *testing.T) {
	nodes := startCluster(t, 3)
	kill(nodes[1])
	kill(nodes[2]) // n1 is alone: no registration can commit
	survivor := nodes[0]

	start := time.Now()
	_, _, err := survivor.ReceiveContext(ctxFor(t, 500*time.Millisecond), "minority", 4)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable), "%v", err)
	assert.Less(t, time.Since(start), 5*time.Second, "bounded by its context")
	_, _, err = survivor.SubscribeContext(ctxFor(t, 500*time.Millisecond), "minority-news", 4)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable), "%v", err)

	survivor.mu.Lock()
	left := len(survivor.receivers)
	survivor.mu.Unlock()
	assert.Zero(t, left, "the failed receivers are gone")
	assert.Empty(t, survivor.reg.Lookup("minority"), "nothing registered")
	assert.Empty(t, survivor.reg.Lookup("minority-news"), "nothing registered")
	kill(survivor) // a Close would wait for a quorum to leave
}

func TestAPlainReceiverAnswersRequestsItSeesAsCalls(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("manual", 4)
	require.NoError(t, err)
	defer closeIn()
	waitReceivers(t, nodes[0], "manual", 1)
	go func() {
		for v := range in {
			call, ok := v.(Call)
			if !ok {
				continue
			}
			_ = nodes[1].SendTo(context.Background(), call.ReplyTo, fmt.Sprintf("got %v", call.Request))
		}
	}()
	got, err := Request[string](ctxFor(t, waitFor), nodes[0], "manual", 7)
	require.NoError(t, err)
	assert.Equal(t, "got 7", got)

	// A typed receiver of Calls takes requests; one of another type
	// refuses them.
	calls, closeCalls, err := ReceiveOf[Call](nodes[1], "typed-calls", 4)
	require.NoError(t, err)
	defer closeCalls()
	ints, closeInts, err := ReceiveOf[int](nodes[1], "ints", 4)
	require.NoError(t, err)
	defer closeInts()
	waitReceivers(t, nodes[0], "typed-calls", 1)
	waitReceivers(t, nodes[0], "ints", 1)
	go func() {
		call := <-calls
		_ = nodes[1].SendTo(context.Background(), call.ReplyTo, call.Request.(int)+1)
	}()
	n, err := Request[int](ctxFor(t, waitFor), nodes[0], "typed-calls", 41)
	require.NoError(t, err)
	assert.Equal(t, 42, n)
	_, err = Request[int](ctxFor(t, waitFor), nodes[0], "ints", 1)
	require.ErrorIs(t, err, ErrWrongType, "a request is not an int")
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "ints", 5))
	assert.Equal(t, 5, <-ints)
}

// TestAnAnswerFromAnotherNodeDoesNotCompleteARequest: the attack — the
// node a request went to leaks its ReplyTo to a third member, which answers
// first with a value of its choosing. Only the answer of the node the
// request went to completes it.
func TestAnAnswerFromAnotherNodeDoesNotCompleteARequest(t *testing.T) {
	nodes := startCluster(t, 3)
	in, closeIn, err := nodes[1].Receive("leaky", 4)
	require.NoError(t, err)
	defer closeIn()
	waitReceivers(t, nodes[0], "leaky", 1)
	forged := make(chan error, 1)
	go func() {
		call := (<-in).(Call)
		// The third node answers first, and is told its answer was accepted
		// (the reply receiver takes it, and ignores it).
		forged <- nodes[2].SendTo(context.Background(), call.ReplyTo, "forged")
		_ = nodes[1].SendTo(context.Background(), call.ReplyTo, "genuine")
	}()
	got, err := Request[string](ctxFor(t, waitFor), nodes[0], "leaky", 1)
	require.NoError(t, err)
	assert.Equal(t, "genuine", got)
	assert.NoError(t, <-forged)
}
