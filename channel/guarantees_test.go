package channel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/internal/testcerts"
	"github.com/dchan-io/dchan/registry"
)

// kill stops a node the way a crash does: the network goes first (nothing
// more leaves or enters), then everything else; no Leave, no draining.
func kill(n *Node) {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.ep.Shutdown(ctx)
	n.teardown(ctx)
	select {
	case <-n.closeDone:
	default:
		close(n.closeDone)
	}
}

// collector drains receivers into per-receiver lists.
type collector struct {
	mu   sync.Mutex
	got  map[string][]Order // receiver label → values in arrival order
	seen map[Order]int
	wg   sync.WaitGroup
}

func newCollector() *collector {
	return &collector{got: map[string][]Order{}, seen: map[Order]int{}}
}

func (c *collector) drain(label string, ch <-chan any) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for v := range ch {
			o := v.(Order)
			c.mu.Lock()
			c.got[label] = append(c.got[label], o)
			c.seen[o]++
			c.mu.Unlock()
		}
	}()
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.seen {
		n += v
	}
	return n
}

func (c *collector) duplicates() []Order {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d []Order
	for o, k := range c.seen {
		if k > 1 {
			d = append(d, o)
		}
	}
	return d
}

func TestGuarantee1_AtMostOnce(t *testing.T) {
	nodes := startCluster(t, 3)
	col := newCollector()
	for i, n := range nodes[1:] {
		ch, _, err := n.Receive("work", 8)
		require.NoError(t, err)
		col.drain(fmt.Sprintf("r%d", i), ch)
	}
	out, closeOut, err := nodes[0].Send("work", 0)
	require.NoError(t, err)
	const total = 2000
	var handles []*Message
	for i := 0; i < total; i++ {
		if i == total/2 {
			kill(nodes[2]) // a receiver's node dies mid-stream
		}
		m := WithMessage(Order{Sender: "n1", Seq: i}, 5*time.Second)
		handles = append(handles, m)
		out <- m
	}
	require.NoError(t, closeOut())
	for _, m := range handles {
		<-m.Done()
	}
	assert.Empty(t, col.duplicates(), "no value may be delivered twice, under any fault")
	assert.LessOrEqual(t, col.count(), total)
	// Let the cluster expire the dead node, so that the others leave fast.
	require.Eventually(t, func() bool {
		m, ok := nodes[0].reg.State().Member(nodes[2].ID())
		return !ok || m.Status == registry.Expired
	}, waitFor, 20*time.Millisecond)
}

// TestGuarantee1_AtMostOnceForBatchedValues: bare values go in batches,
// and a value a receiver refuses (it closed while the value was on its
// way) is routed again; under a receiver closing and a node dying
// mid-stream, none is delivered twice.
func TestGuarantee1_AtMostOnceForBatchedValues(t *testing.T) {
	nodes := startCluster(t, 4)
	col, closers := receiveOnAll(t, nodes[1:], "work", 8)
	out, closeOut, err := nodes[0].Send("work", 64)
	require.NoError(t, err)
	const total = 6000
	for i := 0; i < total; i++ {
		switch i {
		case total / 3:
			require.NoError(t, closers[0]()) // n2's receiver closes
		case 2 * total / 3:
			kill(nodes[3]) // n4 dies
		}
		out <- Order{Sender: "n1", Seq: i}
	}
	require.NoError(t, closeOut())
	assert.Empty(t, col.duplicates(), "no value may be delivered twice, under any fault")
	assert.LessOrEqual(t, col.count(), total)
	assert.Positive(t, col.count())
	// Let the cluster expire the dead node, so that the others leave fast.
	require.Eventually(t, func() bool {
		m, ok := nodes[0].reg.State().Member(nodes[3].ID())
		return !ok || m.Status == registry.Expired
	}, waitFor, 20*time.Millisecond)
}

func TestGuarantee2_ConfirmedMeansAcceptedByExactlyOneReceiver(t *testing.T) {
	nodes := startCluster(t, 3)
	col := newCollector()
	var closers []CloseFunc
	for i, n := range nodes {
		ch, closeFn, err := n.Receive("acks", 4)
		require.NoError(t, err)
		col.drain(fmt.Sprintf("r%d", i), ch)
		closers = append(closers, closeFn)
	}
	var handles []*Message
	var mu sync.Mutex
	var wg sync.WaitGroup
	for s, n := range nodes {
		out, closeOut, err := n.Send("acks", 4)
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer closeOut()
			for i := 0; i < 300; i++ {
				m := WithMessage(Order{Sender: fmt.Sprint(s), Seq: i}, 10*time.Second)
				mu.Lock()
				handles = append(handles, m)
				mu.Unlock()
				out <- m
			}
		}()
	}
	wg.Wait()
	for _, m := range handles {
		<-m.Done()
	}
	for _, c := range closers {
		require.NoError(t, c())
	}
	col.wg.Wait()
	for _, m := range handles {
		require.NoError(t, m.Err())
		assert.Equal(t, 1, col.seen[m.Value().(Order)], "%v", m.Value())
	}
}

// receiveOnAll starts a receiver of name with buffer buf on each of nodes,
// drained into one collector, and returns the collector and the receivers'
// CloseFuncs.
func receiveOnAll(t *testing.T, nodes []*Node, name string, buf int) (*collector, []CloseFunc) {
	t.Helper()
	col := newCollector()
	var closers []CloseFunc
	for i, n := range nodes {
		ch, closeFn, err := n.Receive(name, buf)
		require.NoError(t, err)
		col.drain(fmt.Sprintf("r%d", i), ch)
		closers = append(closers, closeFn)
	}
	return col, closers
}

// assertSendOrder waits for total values, closes the receivers, and checks
// that each receiver got its values in send order (Order.Seq increasing).
func (c *collector) assertSendOrder(t *testing.T, closers []CloseFunc, total int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.count() == total }, waitFor, 10*time.Millisecond)
	for _, closeFn := range closers {
		require.NoError(t, closeFn())
	}
	c.wg.Wait()
	for label, got := range c.got {
		for i := 1; i < len(got); i++ {
			require.Less(t, got[i-1].Seq, got[i].Seq, "receiver %s got values out of send order", label)
		}
	}
}

func TestGuarantee3_PerPairFIFO(t *testing.T) {
	nodes := startCluster(t, 3)
	col, closers := receiveOnAll(t, nodes[1:], "fifo", 2) // small buffers: values spread over both
	out, closeOut, err := nodes[0].Send("fifo", 8)
	require.NoError(t, err)
	const total = 3000
	for i := 0; i < total; i++ {
		out <- Order{Sender: "n1", Seq: i}
	}
	require.NoError(t, closeOut())
	col.assertSendOrder(t, closers, total)
}

// TestGuarantee3_PerPairFIFOWithHandlesAmongValues: the pump routes the
// bare values of a batch together and the values with a handle one by one,
// in between; what reaches one receiver still comes in send order.
func TestGuarantee3_PerPairFIFOWithHandlesAmongValues(t *testing.T) {
	nodes := startCluster(t, 3)
	col, closers := receiveOnAll(t, nodes[1:], "mixed", 4)
	out, closeOut, err := nodes[0].Send("mixed", 64)
	require.NoError(t, err)
	const total = 3000
	var handles []*Message
	for i := 0; i < total; i++ {
		v := Order{Sender: "n1", Seq: i}
		if i%7 == 3 {
			m := WithMessage(v, waitFor)
			handles = append(handles, m)
			out <- m
			continue
		}
		out <- v
	}
	require.NoError(t, closeOut())
	for _, m := range handles {
		<-m.Done()
		require.NoError(t, m.Err())
	}
	col.assertSendOrder(t, closers, total)
}

// linkWindow is the credit window a sender's link to a receiver of buf
// gets: the receiver's mailbox, at least minLinkWindow.
func linkWindow(buf int) int {
	_, mailbox := receiveBuffers(buf)
	return max(mailbox, minLinkWindow)
}

func TestGuarantee4_Backpressure(t *testing.T) {
	nodes := startCluster(t, 2)
	// Each buf is split half and half between mailbox and channel buffer,
	// and the two together must still hold only buf; buf 512's mailbox
	// (256) fills past its first ring and moves to its whole capacity
	// while the backlog forms, and the values still come in order.
	for i, buf := range []int{4, 64, 512} {
		name := fmt.Sprintf("slow%d", i)
		in, closeIn, err := nodes[1].Receive(name, buf)
		require.NoError(t, err)
		out, closeOut, err := nodes[0].Send(name, 0)
		require.NoError(t, err)
		// The receiver's user does not read: the buffer fills, credit
		// stops, the sender's pump blocks, and so do writes.
		written := 0
		for ; written < 3000; written++ {
			select {
			case out <- Order{Seq: written}:
				continue
			case <-time.After(300 * time.Millisecond):
			}
			break
		}
		// Bounded: receiver buffer (buf) + the value in the receiver's
		// hand (1) + the link's overflow (≤ the window) + the pump's
		// value in hand (1) + 1.
		window := linkWindow(buf)
		t.Logf("buf %d: %d values written before the sender blocked", buf, written)
		assert.LessOrEqual(t, written, buf+1+window+1+1, "buf %d: a full receiver must stop the sender", buf)
		assert.Positive(t, written)
		for i := 0; i < written; i++ {
			assert.Equal(t, Order{Seq: i}, recv(t, in))
		}
		require.NoError(t, closeOut())
		require.NoError(t, closeIn())
	}
}

// TestGuarantee4_BackpressureWithManyWriters: the pump takes what waits in
// batches of at most the send buffer (1 for buf 0): with many goroutines
// writing to one send channel, no more values are taken than the receiver's
// side, the send buffer and one batch hold — with buf 0, what one writer
// gets through in TestGuarantee4_Backpressure.
func TestGuarantee4_BackpressureWithManyWriters(t *testing.T) {
	nodes := startCluster(t, 2)
	for i, buf := range []int{0, 16} {
		name := fmt.Sprintf("crowded%d", i)
		in, closeIn, err := nodes[1].Receive(name, 4)
		require.NoError(t, err)
		out, closeOut, err := nodes[0].Send(name, buf)
		require.NoError(t, err)
		var written atomic.Int64
		release := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case out <- Order{Sender: fmt.Sprint(w)}:
					written.Add(1)
				case <-release:
				}
			}()
		}
		// The receiver's user does not read. Wait until the writes stop
		// going through, then a little longer.
		last := int64(-1)
		for written.Load() != last {
			last = written.Load()
			time.Sleep(200 * time.Millisecond)
		}
		window := linkWindow(4)
		batch := max(buf, 1)                  // the pump's batch: at most the send buffer, 1 for buf 0
		bound := 4 + 1 + window + batch + buf // as TestGuarantee4_Backpressure, plus the send buffer
		assert.LessOrEqual(t, int(written.Load()), bound, "send buf %d: 50 writers got %d values through", buf, written.Load())
		close(release)
		wg.Wait()
		for range written.Load() {
			recv(t, in)
		}
		require.NoError(t, closeOut())
		require.NoError(t, closeIn())
	}
}

func TestGuarantee5_Buf0NoReceiversBlocksUntilReceiverAppears(t *testing.T) {
	nodes := startCluster(t, 2)
	out, closeOut, err := nodes[0].Send("later", 0)
	require.NoError(t, err)
	defer closeOut()

	early := WithMessage(Order{Seq: 0}, 200*time.Millisecond)
	select {
	case out <- early:
	case <-early.Done():
	}
	<-early.Done()
	require.ErrorIs(t, early.Err(), ErrTimeout, "with no receiver the handle times out")

	m := WithMessage(Order{Seq: 1}, 10*time.Second)
	sent := make(chan struct{})
	go func() {
		out <- m
		close(sent)
	}()
	select {
	case <-m.Done():
		t.Fatal("delivered with no receiver")
	case <-time.After(200 * time.Millisecond):
	}
	in, closeIn, err := nodes[1].Receive("later", 0)
	require.NoError(t, err)
	defer closeIn()
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
	<-m.Done()
	require.NoError(t, m.Err())
	<-sent
}

func TestGuarantee6_CleanCloseDropsNothingAccepted(t *testing.T) {
	// Bare values take another path than values with handles (no Message
	// is made for them unless a refusal makes them wait to be re-routed).
	for _, handles := range []bool{true, false} {
		name := "bare values"
		if handles {
			name = "with handles"
		}
		t.Run(name, func(t *testing.T) { cleanCloseDropsNothing(t, handles) })
	}
}

func cleanCloseDropsNothing(t *testing.T, withHandles bool) {
	nodes := startCluster(t, 3)
	inA, closeA, err := nodes[1].Receive("drain", 8)
	require.NoError(t, err)
	inB, closeB, err := nodes[2].Receive("drain", 8)
	require.NoError(t, err)
	col := newCollector()
	col.drain("b", inB) // B's user reads all along; A's user reads only after closing
	out, closeOut, err := nodes[0].Send("drain", 0)
	require.NoError(t, err)
	// Both links open before the values flow: a link's first values go
	// elsewhere until its credit arrives, and with B's window far larger
	// than A's buffer, B could take every value before A's came.
	// Two sends, whose turns try both receivers, open both links; their
	// credit comes back within a round trip.
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "drain", Order{Seq: -1}))
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "drain", Order{Seq: -2}))
	time.Sleep(50 * time.Millisecond)
	const total = 200 + 2
	var handles []*Message
	for i := 0; i < total-2; i++ {
		if withHandles {
			m := WithMessage(Order{Seq: i}, 10*time.Second)
			handles = append(handles, m)
			out <- m
		} else {
			out <- Order{Seq: i}
		}
		if i == (total-2)/2 {
			// Close A while values fill its buffer and are on the wire.
			go func() { _ = closeA() }()
		}
	}
	var fromA []Order
	for v := range inA { // A delivers what it accepted, then closes
		fromA = append(fromA, v.(Order))
	}
	for _, m := range handles {
		<-m.Done()
		require.NoError(t, m.Err(), "value %v: accepted by A (and drained) or re-routed to B", m.Value())
	}
	require.NoError(t, closeOut()) // waits for every outcome, re-routing refused values
	require.Eventually(t, func() bool { return len(fromA)+col.count() == total }, waitFor, time.Millisecond,
		"every value drained by A or re-routed to B")
	require.NoError(t, closeB())
	col.wg.Wait()
	assert.Positive(t, len(fromA), "sender: %+v; A: %+v", nodes[0].Stats().Peers, nodes[1].Stats().Names)
	assert.Equal(t, total, len(fromA)+col.count(), "A drained %d, B got %d", len(fromA), col.count())
	for _, o := range fromA {
		assert.Zero(t, col.seen[o], "value %v reached both receivers", o)
	}
	assert.Zero(t, nodes[0].Stats().Failed, "no value failed")
}

func TestGuarantee7_DeadNodesReceiversRemovedAndInFlightFailPromptly(t *testing.T) {
	nodes := startCluster(t, 3)
	_, _, err := nodes[2].Receive("doomed", 4) // its user never reads
	require.NoError(t, err)
	out, closeOut, err := nodes[0].Send("doomed", 0)
	require.NoError(t, err)
	defer closeOut()
	// The receiver accepts 1 (in hand) + 4 (buffer); a window more wait in
	// its link's overflow, in flight; the next waits in the sender's pump.
	window := linkWindow(4)
	handles := make([]*Message, 1+4+window+1)
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
	require.Eventually(t, func() bool { return nodes[0].Stats().Sent >= uint64(5+window) }, waitFor, time.Millisecond)

	killed := time.Now()
	kill(nodes[2])
	for _, m := range handles[5 : 5+window] {
		select {
		case <-m.Done():
			assert.ErrorIs(t, m.Err(), ErrNodeLost, "%v", m.Value())
		case <-time.After(2 * time.Second):
			t.Fatalf("in-flight value %v still pending 2s after its receiver's node died", m.Value())
		}
	}
	t.Logf("in-flight handles failed %v after the kill", time.Since(killed))
	require.Eventually(t, func() bool {
		return len(nodes[0].reg.Lookup("doomed")) == 0 && len(nodes[1].reg.Lookup("doomed")) == 0
	}, waitFor, 20*time.Millisecond, "the dead node's receiver is removed from the registry")
	t.Logf("receiver expired %v after the kill", time.Since(killed))
	select {
	case <-handles[5+window].Done():
		t.Fatalf("the value held by the pump must wait for a receiver, got %v", handles[5+window].Err())
	default:
	}
	// A new receiver takes it (guarantee 5), and the sender can close.
	in, closeIn, err := nodes[1].Receive("doomed", 1)
	require.NoError(t, err)
	defer closeIn()
	assert.Equal(t, Order{Seq: 5 + window}, recv(t, in))
	<-handles[5+window].Done()
	require.NoError(t, handles[5+window].Err())
}

func TestGuarantee8_RegistryLinearizableWritesLocalReads(t *testing.T) {
	nodes := startCluster(t, 3)
	_, closeIn, err := nodes[2].Receive("seen", 1)
	require.NoError(t, err)
	defer closeIn()
	// Receive returned once committed: a linearizable read anywhere sees it.
	rs, err := nodes[0].reg.LookupLinearizable(ctxFor(t, 5*time.Second), "seen")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	// Local reads converge to it without a round trip.
	require.Eventually(t, func() bool { return len(nodes[1].reg.Lookup("seen")) == 1 }, waitFor, time.Millisecond)
}

type notRegistered struct{ X int }

func TestGuarantee9_BadValueFailsAloneNoPanic(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("mixed", 8)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("mixed", 0)
	require.NoError(t, err)
	defer closeOut()
	bad := WithMessage(notRegistered{1}, 5*time.Second)
	huge := WithMessage(Order{Sender: strings.Repeat("x", 2<<20)}, 5*time.Second)
	good := WithMessage(Order{Seq: 7}, 5*time.Second)
	out <- bad
	out <- huge
	out <- good
	<-bad.Done()
	<-huge.Done()
	<-good.Done()
	assert.ErrorIs(t, bad.Err(), ErrEncode)
	assert.ErrorIs(t, huge.Err(), ErrTooLarge)
	require.NoError(t, good.Err(), "the stream carries on for other values")
	assert.Equal(t, Order{Seq: 7}, recv(t, in))
}

func TestGuarantee10_WrongTokenOrCARefused(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	srv, cli, err := ca.NodeTLS("n1")
	require.NoError(t, err)
	nodes := startCluster(t, 1, WithToken("s3cret"), WithTLS(srv, cli))
	before := nodes[0].reg.State().Members()

	try := func(opts ...Option) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		all := append([]Option{WithNodeID("intruder"), WithLogger(zaptest.NewLogger(t)),
			WithPeers(nodes[0].Addr()), fastRegistry()}, opts...)
		n, err := New(ctx, all...)
		if err == nil {
			_ = n.Close()
		}
		return err
	}
	srvX, cliX, err := ca.NodeTLS("intruder")
	require.NoError(t, err)
	assert.Error(t, try(WithTLS(srvX, cliX)), "right CA, no token")
	other, err := testcerts.NewAuthority("other")
	require.NoError(t, err)
	srvO, cliO, err := other.NodeTLS("intruder")
	require.NoError(t, err)
	assert.Error(t, try(WithTLS(srvO, cliO), WithToken("s3cret")), "right token, wrong CA")
	assert.Equal(t, before, nodes[0].reg.State().Members(), "a refused peer never reaches the registry")
	_, member := nodes[0].reg.State().Member("intruder")
	assert.False(t, member)
	err = try(WithTLS(srvX, cliX), WithToken("wrong"))
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "wrong token: %v", err)
	err = try(WithTLS(srvO, cliO), WithToken("s3cret"))
	assert.True(t, errors.Is(err, registry.ErrUnavailable), "wrong CA: %v", err)
}

// TestGuarantee10_MemberCannotActForAnother: in a cluster with mutual TLS,
// n3, a member in good standing, tries to act as n2: to declare itself n2,
// to join as n2 with an address that would redirect n2's traffic, and to
// send a value from one of n2's actors. Each is refused; n2 keeps its
// membership and nothing arrives.
func TestGuarantee10_MemberCannotActForAnother(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	var nodes []*Node
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		srv, cli, err := ca.NodeTLS(id)
		require.NoError(t, err)
		opts := []Option{WithNodeID(id), WithTLS(srv, cli), WithLogger(zaptest.NewLogger(t)), WithTypes(Order{}), fastRegistry()}
		if i > 1 {
			opts = append(opts, WithPeers(nodes[0].Addr()))
		}
		n, err := New(ctxFor(t, waitFor), opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = n.Close() })
		nodes = append(nodes, n)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	in, closeIn, err := n1.Receive("orders", 16)
	require.NoError(t, err)
	defer closeIn()
	before, _ := n1.reg.State().Member("n2")

	// n3's certificate, declaring n2, on a registry join that would move
	// n2 to an address of n3's choosing.
	_, cli3, err := ca.NodeTLS("n3")
	require.NoError(t, err)
	cc, err := grpc.NewClient(n1.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cli3)))
	require.NoError(t, err)
	defer cc.Close()
	join := bin.Writer{}
	join.Str("n2")
	join.Str("127.0.0.1:9")
	join.Uvarint(before.Incarnation + 1)
	for _, declared := range []string{"n2", "n3"} {
		ctx := metadata.NewOutgoingContext(ctxFor(t, waitFor), metadata.Pairs("dchan-protocol", "1", "dchan-node", declared))
		var out rawcodec.Frame
		err = cc.Invoke(ctx, "/dchan.registry.v1.Registry/Join", &rawcodec.Frame{Data: join.B}, &out, rawcodec.CallOption())
		if declared == "n2" {
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "declared n2 with n3's certificate: %v", err)
		} else {
			// As itself the call goes through, and the leader refuses the
			// join for another node in its reply.
			require.NoError(t, err)
			assert.Contains(t, string(out.Data), "may not join as node")
		}
	}

	// A value from one of n2's actors, sent by n3.
	done := make(chan error, 1)
	forged := actor.PID{Node: "n2", ID: "worker"}
	require.NoError(t, n3.ep.SendTracked(ctxFor(t, waitFor), n1.reg.Lookup("orders")[0].PID(), forged, Order{Sender: "forged", Seq: 1},
		func(err error) { done <- err }))
	require.Error(t, <-done, "the forged value's stream is closed")
	select {
	case v := <-in:
		t.Fatalf("a value sent as n2 arrived: %v", v)
	case <-time.After(100 * time.Millisecond):
	}

	require.NoError(t, n1.Sync(ctxFor(t, waitFor)))
	after, ok := n1.reg.State().Member("n2")
	require.True(t, ok)
	assert.Equal(t, before, after, "n2's membership is unchanged")
	assert.Equal(t, n2.AdvertiseAddr(), after.Addr)
}
