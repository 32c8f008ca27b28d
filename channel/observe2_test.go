package channel

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

func waitInFlight0(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n.stats.InFlight() == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := n.Stats()
	t.Errorf("inFlight = %d (raw), want 0; Sent=%d Delivered=%d Failed=%d", n.stats.InFlight(), st.Sent, st.Delivered, st.Failed)
}

// TestSendContextCountsAnOutcomeThatComesAfterItReturned: a SendContext
// whose ctx ends after the value was handed to a remote receiver, before
// its acceptance came back, still has the acceptance counted (InFlight
// used to stay 1 and Delivered short by one).
func TestSendContextCountsAnOutcomeThatComesAfterItReturned(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("slowrx", 1)
	require.NoError(t, err)
	defer closeIn()
	waitReceivers(t, nodes[0], "slowrx", 1)
	// fill the receiver: mailbox 1 (channel 0)
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "slowrx", 1))
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "slowrx", 2))
	// this one is handed (link credit >= minLinkWindow) but waits in the
	// remote overflow: its acceptance comes only after the user reads.
	err = nodes[0].SendContext(ctxFor(t, 300*time.Millisecond), "slowrx", 3)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	t.Logf("before reading: %+v", nodes[0].stats.InFlight())
	assert.Equal(t, 1, recv(t, in))
	assert.Equal(t, 2, recv(t, in))
	assert.Equal(t, 3, recv(t, in)) // it did arrive
	waitInFlight0(t, nodes[0])
	st := nodes[0].Stats()
	t.Logf("Sent=%d Delivered=%d Failed=%d InFlight=%d", st.Sent, st.Delivered, st.Failed, st.InFlight)
}

// TestRequestsLeaveNothingInFlight: requests answered (remote and local,
// where the answer may overtake the acceptance), cancelled while their
// handler holds them, and lost with their node, all leave InFlight at 0.
func TestRequestsLeaveNothingInFlight(t *testing.T) {
	nodes := startCluster(t, 3)
	release := make(chan struct{})
	stop, err := Serve(nodes[1], "slow", 1, func(ctx context.Context, x int) (int, error) {
		if x < 0 {
			<-release
		}
		return x, nil
	})
	require.NoError(t, err)
	waitReceivers(t, nodes[0], "slow", 1)
	// many plain requests (answer may overtake acceptance)
	for i := range 200 {
		v, err := Request[int](ctxFor(t, waitFor), nodes[0], "slow", i)
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	// cancelled while the handler holds them
	for range 5 {
		_, err := Request[int](ctxFor(t, 100*time.Millisecond), nodes[0], "slow", -1)
		require.Error(t, err)
	}
	close(release)
	waitInFlight0(t, nodes[0])
	require.NoError(t, stop())

	// local serve
	stop2, err := Serve(nodes[0], "local", 4, func(ctx context.Context, x int) (int, error) { return x, nil })
	require.NoError(t, err)
	for i := range 200 {
		_, err := Request[int](ctxFor(t, waitFor), nodes[0], "local", i)
		require.NoError(t, err)
	}
	require.NoError(t, stop2())
	waitInFlight0(t, nodes[0])

	// node lost
	_, err = Serve(nodes[2], "stuck", 4, func(ctx context.Context, x int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	require.NoError(t, err)
	waitReceivers(t, nodes[0], "stuck", 1)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := Request[int](ctxFor(t, time.Minute), nodes[0], "stuck", i); errs <- err }()
	}
	time.Sleep(300 * time.Millisecond)
	kill(nodes[2])
	for range 3 {
		require.ErrorIs(t, <-errs, ErrNodeLost)
	}
	waitInFlight0(t, nodes[0])
	st := nodes[0].Stats()
	t.Logf("Sent=%d Delivered=%d Failed=%d FailedBy=%v", st.Sent, st.Delivered, st.Failed, st.FailedBy)
}

// TestANewThatFailsStopsItsFailureReporter: New fails after starting
// the failure reporter (the listen address is taken); its goroutine
// stops (goleak, in TestMain, used to find it running).
func TestANewThatFailsStopsItsFailureReporter(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, err = New(context.Background(), WithNodeID("x"), WithLogger(zaptest.NewLogger(t)),
		WithListenAddr(l.Addr().String()),
		WithFailureHandler(func(string, any, error) {}))
	require.Error(t, err)
	t.Log(err)
}

// TestShutdownIsBoundedByItsCtxWhileTheFailureHandlerBlocks: a failure
// handler that does not return does not hold Shutdown past its ctx (it
// used to wait for the handler without end).
func TestShutdownIsBoundedByItsCtxWhileTheFailureHandlerBlocks(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	nodes := startCluster(t, 1, WithFailureHandler(func(string, any, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}))
	out, closeOut, err := nodes[0].Send("nobody-enc", 1)
	require.NoError(t, err)
	_, _, err = nodes[0].Receive("nobody-enc", 1) // closed by the Shutdown below
	require.NoError(t, err)
	waitReceivers(t, nodes[0], "nobody-enc", 1)
	out <- (*Message)(nil) // fails at once, and the handler is told
	<-entered
	_ = closeOut()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- nodes[0].Shutdown(ctx) }()
	select {
	case err := <-done:
		t.Logf("Shutdown returned %v after %v", err, time.Since(start))
	case <-time.After(3 * time.Second):
		t.Errorf("Shutdown(ctx 500ms) still blocked after 3s: it waits for the handler")
		close(gate)
		<-done
		return
	}
	close(gate)
}

// TestARequestOfferedToANodeDeclaredDeadIsAnsweredByTheNext: a request
// offered to a dead node's receiver, still listed (turned away, passed
// over), while that node is declared dead, then taken by a live receiver:
// its answer completes it. (Declaring the node dead used to fail every
// request last offered to it, and the live receiver's answer was dropped.)
func TestARequestOfferedToANodeDeclaredDeadIsAnsweredByTheNext(t *testing.T) {
	nodes := startCluster(t, 3)
	_, err := Serve(nodes[1], "svc", 4, func(_ context.Context, x int) (int, error) { return x, nil })
	require.NoError(t, err)
	waitReceivers(t, nodes[0], "svc", 1)
	kill(nodes[1]) // its receiver stays listed until it expires (~1 s)

	handled := make(chan int, 1)
	res := make(chan error, 1)
	go func() {
		v, err := Request[int](ctxFor(t, 10*time.Second), nodes[0], "svc", 42)
		t.Logf("Request returned %v, %v", v, err)
		res <- err
	}()
	// wait until n2 is expired and its receiver gone
	require.Eventually(t, func() bool { return len(nodes[0].reg.Lookup("svc")) == 0 }, waitFor, 5*time.Millisecond)
	stop, err := Serve(nodes[2], "svc", 4, func(_ context.Context, x int) (int, error) { handled <- x; return x, nil })
	require.NoError(t, err)
	defer stop()
	err = <-res
	select {
	case x := <-handled:
		t.Logf("n3's handler ran for %d", x)
	case <-time.After(time.Second):
		t.Logf("n3's handler did not run")
	}
	require.NoError(t, err, "the request reached a live receiver, which answered")
}
