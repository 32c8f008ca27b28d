package remoting

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

	"github.com/dchan-io/dchan/actor"
)

const waitFor = 10 * time.Second

type item struct {
	From string
	Seq  int
}

type unregistered struct{ X int }

// node is one actor System with its Endpoint.
type node struct {
	name string
	sys  *actor.System
	ep   *Endpoint
}

// startNodes starts n nodes on loopback that resolve each other.
func startNodes(t *testing.T, n int, opts ...Option) []*node {
	t.Helper()
	resolver := StaticResolver{}
	nodes := make([]*node, n)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		sys, err := actor.NewSystem(actor.WithNode(name), actor.WithLogger(zaptest.NewLogger(t)))
		require.NoError(t, err)
		codec, err := NewGobCodec(item{}, "")
		require.NoError(t, err)
		all := append([]Option{WithResolver(resolver), WithCodec(codec), WithLogger(zaptest.NewLogger(t))}, opts...)
		ep, err := New(sys, all...)
		require.NoError(t, err)
		sys.SetRemote(ep)
		resolver[name] = ep.Addr()
		nodes[i] = &node{name: name, sys: sys, ep: ep}
	}
	for _, nd := range nodes {
		require.NoError(t, nd.ep.Start())
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.stop(t)
		}
	})
	return nodes
}

func (n *node) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	assert.NoError(t, n.ep.Shutdown(ctx))
	assert.NoError(t, n.sys.Shutdown(ctx))
}

// sink is an actor that checks per-sender order and counts items.
type sink struct {
	mu       sync.Mutex
	last     map[string]int
	count    int
	disorder int
	gate     chan struct{} // if set, each item waits for a token
	counted  chan struct{}
}

func newSink() *sink {
	return &sink{last: map[string]int{}, counted: make(chan struct{}, 1)}
}

func (s *sink) producer() actor.Producer {
	return func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			it, ok := c.Message().(item)
			if !ok {
				return
			}
			if s.gate != nil {
				<-s.gate
			}
			s.mu.Lock()
			if last, seen := s.last[it.From]; seen && it.Seq <= last {
				s.disorder++
			}
			s.last[it.From] = it.Seq
			s.count++
			s.mu.Unlock()
			select {
			case s.counted <- struct{}{}:
			default:
			}
		})
	}
}

func (s *sink) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		s.mu.Lock()
		c := s.count
		s.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-s.counted:
		case <-deadline:
			t.Fatalf("sink counted %d of %d", c, n)
		}
	}
}

func TestOrderPerPairAcrossBatches(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(8))
	require.NoError(t, err)
	const n = 20000
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	s.waitCount(t, n)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Zero(t, s.disorder)
	assert.Equal(t, n, s.last["a"])
}

func Test100kMessagesBothWaysBetween3Nodes(t *testing.T) {
	nodes := startNodes(t, 3)
	sinks := make([]*sink, len(nodes))
	pids := make([]actor.PID, len(nodes))
	for i, nd := range nodes {
		sinks[i] = newSink()
		var err error
		pids[i], err = nd.sys.SpawnNamed("sink", sinks[i].producer(), actor.WithMailboxSize(256))
		require.NoError(t, err)
	}
	const perPair = 100000 / 6
	var wg sync.WaitGroup
	for i, from := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 1; seq <= perPair; seq++ {
					if err := from.sys.Send(context.Background(), pids[j], item{From: from.name, Seq: seq}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for i, s := range sinks {
		s.waitCount(t, 2*perPair)
		s.mu.Lock()
		assert.Zero(t, s.disorder, "sink %d", i)
		assert.Equal(t, 2*perPair, s.count, "sink %d", i)
		s.mu.Unlock()
	}
}

func TestRequestAcrossNodes(t *testing.T) {
	nodes := startNodes(t, 2)
	echo, err := nodes[1].sys.SpawnNamed("echo", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if s, ok := c.Message().(string); ok {
				_ = c.Respond(strings.ToUpper(s))
			}
		})
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for i := 0; i < 100; i++ {
		reply, err := nodes[0].sys.Request(ctx, echo, "ping")
		require.NoError(t, err)
		assert.Equal(t, "PING", reply)
	}
}

func TestTrackedSendIsConfirmedOnAcceptance(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	done := make(chan error, 1)
	require.NoError(t, nodes[0].ep.SendTracked(context.Background(), target, actor.PID{}, item{From: "a", Seq: 1},
		func(err error) { done <- err }))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("no confirmation")
	}
	st := nodes[0].ep.Stats()
	assert.EqualValues(t, 1, st.Confirmed)
}

func TestSendToMissingActorFailsWithNotFound(t *testing.T) {
	nodes := startNodes(t, 2)
	missing := actor.PID{Node: "n2", ID: "nobody"}
	err := nodes[0].sys.Send(context.Background(), missing, item{})
	require.ErrorIs(t, err, actor.ErrNotFound, "the far node's sentinel survives the wire")

	// An actor that stops while messages are in flight fails them.
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(4))
	require.NoError(t, err)
	var failed atomic.Int32
	var confirmed atomic.Int32
	var all sync.WaitGroup
	for i := 1; i <= 4; i++ {
		all.Add(1)
		require.NoError(t, nodes[0].ep.SendTracked(context.Background(), target, actor.PID{}, item{From: "a", Seq: i},
			func(err error) {
				defer all.Done()
				if err == nil {
					confirmed.Add(1)
				} else {
					failed.Add(1)
				}
			}))
	}
	all.Wait() // all four accepted into the mailbox (one taken by the actor)
	assert.EqualValues(t, 4, confirmed.Load())
	close(gate)
	require.NoError(t, nodes[1].sys.Stop(context.Background(), target))
	// The link still has credit: the message goes out and is refused.
	done := make(chan error, 1)
	require.NoError(t, nodes[0].ep.SendTracked(context.Background(), target, actor.PID{}, item{From: "a", Seq: 5},
		func(err error) { done <- err }))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, actor.ErrNotFound)
	case <-time.After(waitFor):
		t.Fatal("no answer for a message to a stopped actor")
	}
	// The link is gone now: the next send asks again and is refused at once.
	err = nodes[0].sys.Send(context.Background(), target, item{From: "a", Seq: 6})
	assert.ErrorIs(t, err, actor.ErrNotFound)
	// Three links closed as Gone: nobody's, then the stopped actor's
	// twice (with a message on it, then asked again).
	assert.EqualValues(t, 3, nodes[0].ep.Stats().Gone)
}

func TestUnregisteredGobTypeFailsThatMessageAlone(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 1}))
	err = nodes[0].sys.Send(ctx, target, unregistered{X: 1})
	require.ErrorIs(t, err, ErrEncode)
	assert.Contains(t, err.Error(), "unregistered")
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 2}))
	s.waitCount(t, 2)
}

// TestOversizeMessageIsRefused: a value over the limit fails alone. Values
// are encoded after Send returns, so the failure reaches the message's
// completion, or the dead letters for an untracked send.
func TestOversizeMessageIsRefused(t *testing.T) {
	nodes := startNodes(t, 2, WithMaxMessageSize(1024))
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	err = trackedOutcome(t, nodes[0].ep, target, item{From: strings.Repeat("x", 4096), Seq: 1})
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Contains(t, err.Error(), "limit 1024")

	dead := nodes[0].sys.DeadLetters()
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: strings.Repeat("x", 4096), Seq: 1}))
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 2}), "the stream survives")
	s.waitCount(t, 1)
	assert.Equal(t, dead+1, nodes[0].sys.DeadLetters(), "the untracked oversize value is a dead letter")
	assert.EqualValues(t, 2, nodes[0].ep.Stats().Failed)
}

// trackedOutcome sends v with SendTracked and returns its outcome.
func trackedOutcome(t *testing.T, ep *Endpoint, to actor.PID, v any) error {
	t.Helper()
	done := make(chan error, 1)
	if err := ep.SendTracked(context.Background(), to, actor.PID{}, v, func(err error) { done <- err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-time.After(waitFor):
		t.Fatal("no outcome")
		return nil
	}
}

// sendItemsTracked sends items 1 to n from "a" to target with
// SendTracked, without waiting for their outcomes: results[i] hears item
// i's.
func sendItemsTracked(t *testing.T, ep *Endpoint, target actor.PID, n int) (results []chan error) {
	t.Helper()
	results = make([]chan error, n+1)
	for i := 1; i <= n; i++ {
		ch := make(chan error, 1)
		results[i] = ch
		require.NoError(t, ep.SendTracked(context.Background(), target, actor.PID{}, item{From: "a", Seq: i},
			func(err error) { ch <- err }))
	}
	return results
}

func TestBackpressureBoundsInFlight(t *testing.T) {
	const mailbox = 4
	nodes := startNodes(t, 2)
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(mailbox))
	require.NoError(t, err)
	// The window is the mailbox's free space (4). The actor holds one
	// message, the mailbox four, the link's overflow at most the window:
	// a sender gets at most 1 + 4 + 4 messages away, then blocks.
	sent := 0
	for ; sent < 100; sent++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := nodes[0].sys.Send(ctx, target, item{From: "a", Seq: sent + 1})
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
	}
	assert.LessOrEqual(t, sent, 1+mailbox+mailbox, "a full receiver must stop granting credit")
	assert.GreaterOrEqual(t, sent, mailbox)
	close(gate)
	s.waitCount(t, sent)
}

// TestOverflowKeepsOrderAndFailsEachRefusalAlone: values that wait in a
// link's overflow while the target's mailbox is full go into it in runs
// once there is room. Each keeps its place, and each one the target's
// filter refuses fails alone, with ErrRejected, between values accepted.
func TestOverflowKeepsOrderAndFailsEachRefusalAlone(t *testing.T) {
	const n, mailbox = 300, 4
	nodes := startNodes(t, 2, WithMinWindow(n))
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	refused := func(seq int) bool { return seq%7 == 0 }
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(mailbox),
		actor.WithFilter(func(m any) error {
			if it, ok := m.(item); ok && refused(it.Seq) {
				return errors.New("a multiple of 7")
			}
			return nil
		}))
	require.NoError(t, err)

	results := sendItemsTracked(t, nodes[0].ep, target, n)
	// All n are on the wire and the mailbox is full: what arrives now
	// waits in the overflow until the gate opens.
	require.Eventually(t, func() bool {
		return nodes[0].ep.Stats().Sent == n && nodes[1].ep.Stats().Delivered >= mailbox
	}, waitFor, time.Millisecond)
	close(gate)

	accepted := 0
	for i := 1; i <= n; i++ {
		select {
		case err := <-results[i]:
			if refused(i) {
				require.ErrorIs(t, err, actor.ErrRejected, "value %d", i)
				continue
			}
			require.NoError(t, err, "value %d", i)
			accepted++
		case <-time.After(waitFor):
			t.Fatalf("no outcome for value %d", i)
		}
	}
	s.waitCount(t, accepted)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, accepted, s.count, "every accepted value arrives once")
	assert.Zero(t, s.disorder, "in send order")
	assert.Equal(t, n-n/7, accepted)
}

// TestTrackedMessageFromTheOverflowIsAcknowledgedWhenAccepted: a tracked
// message that waited in its link's overflow is acknowledged once the
// mailbox takes it, as one accepted straight away is — not when the
// overflow has drained, nor at the link sweep (an hour here). Its sender
// waits for that outcome before the receiver frees more room, as a
// channel user waiting on a handle's Done before reading on does.
func TestTrackedMessageFromTheOverflowIsAcknowledgedWhenAccepted(t *testing.T) {
	const n, mailbox = 12, 2
	nodes := startNodes(t, 2, WithMinWindow(8*n), withLinkSweep(time.Hour)) // acknowledgement batches of n
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(mailbox))
	require.NoError(t, err)
	results := sendItemsTracked(t, nodes[0].ep, target, n)
	for i := 1; i <= n; i++ {
		select {
		case err := <-results[i]:
			require.NoError(t, err, "value %d", i)
		case <-time.After(waitFor):
			t.Fatalf("no outcome for value %d while the sink waits for it", i)
		}
		gate <- struct{}{} // the sink takes the next: room for one more
	}
	s.waitCount(t, n)
}

// TestATryOnAStreamThatBreaksUnderItGoesOnANewOne: a stream that fails
// between a try finding it and queueing on it (here ResetPeer, at that
// moment) does not fail the try with ErrNodeLost — which a router takes
// for a receiver it cannot reach and passes over — but opens a new
// stream: the try finds no credit yet on the new link, and a later send
// arrives. For TrySendTracked and TrySendMany.
func TestATryOnAStreamThatBreaksUnderItGoesOnANewOne(t *testing.T) {
	var reset atomic.Pointer[func()]
	nodes := startNodes(t, 2, withAfterStream(func() {
		if f := reset.Swap(nil); f != nil {
			(*f)()
		}
	}))
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	send := func(seq int) {
		require.NoError(t, trackedOutcome(t, nodes[0].ep, target, item{From: "a", Seq: seq}))
	}
	send(1) // the stream is open and the link has credit
	resetOnce := func() {
		f := func() { nodes[0].ep.ResetPeer(nodes[1].ep.Addr()) }
		reset.Store(&f)
	}

	resetOnce()
	err = nodes[0].ep.TrySendTracked(target, actor.PID{}, item{From: "a", Seq: 2}, func(error) {})
	require.ErrorIs(t, err, ErrNoCredit, "a new stream's new link")
	assert.NotErrorIs(t, err, ErrNodeLost)
	send(2)

	resetOnce()
	n, err := nodes[0].ep.TrySendMany(target, actor.PID{}, []any{item{From: "a", Seq: 3}}, NewOutcomes(func([]any, error) {}))
	require.ErrorIs(t, err, ErrNoCredit, "a new stream's new link")
	assert.NotErrorIs(t, err, ErrNodeLost)
	assert.Zero(t, n)
	send(3)
	s.waitCount(t, 3)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, 3, s.count)
	assert.Zero(t, s.disorder)
}

func TestPeerKilledMidStreamFailsInFlightHandlesWithin1s(t *testing.T) {
	nodes := startNodes(t, 2)
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	defer close(gate)
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(2))
	require.NoError(t, err)
	results, sent := sendUntilBlocked(t, nodes[0].ep, target, 16)
	// Kill the receiving endpoint hard: its connections drop.
	killed := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace
	require.NoError(t, nodes[1].ep.Shutdown(ctx))
	confirmed, lost := awaitHandles(t, results, sent, "the peer died")
	assert.Less(t, time.Since(killed), time.Second+100*time.Millisecond)
	assert.Positive(t, lost, "messages in the overflow and on the wire fail")
	t.Logf("sent %d: confirmed %d, failed %d", sent, confirmed, lost)
}

func TestDecodeErrorDropsOnlyThatStream(t *testing.T) {
	nodes := startNodes(t, 3)
	// n3's codec does not know item: its stream to n2 breaks on decode
	// while n1's stream to n2 keeps working.
	resolver := StaticResolver{"n2": nodes[1].ep.Addr()}
	sys, err := actor.NewSystem(actor.WithNode("n4"))
	require.NoError(t, err)
	stranger, err := NewGobCodec(struct{ Y string }{})
	require.NoError(t, err)
	ep, err := New(sys, WithResolver(resolver), WithCodec(stranger))
	require.NoError(t, err)
	require.NoError(t, ep.Start())
	t.Cleanup(func() { (&node{sys: sys, ep: ep}).stop(t) })

	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "n1", Seq: 1}))
	s.waitCount(t, 1)

	done := make(chan error, 1)
	err = ep.SendTracked(ctx, target, actor.PID{}, struct{ Y string }{"?"}, func(err error) { done <- err })
	require.NoError(t, err)
	select {
	case err := <-done:
		assert.Error(t, err, "the receiver cannot decode this value")
	case <-time.After(waitFor):
		t.Fatal("the undecodable message was never failed")
	}
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "n1", Seq: 2}))
	s.waitCount(t, 2)
}

func TestEndpointValidatesOptions(t *testing.T) {
	sys, err := actor.NewSystem()
	require.NoError(t, err)
	defer sys.Shutdown(context.Background())
	for name, opts := range map[string][]Option{
		"zero max message": {WithMaxMessageSize(0)},
		"zero window":      {WithMaxWindow(0)},
		"nil logger":       {WithLogger(nil)},
		"half TLS":         {WithTLS(nil, nil), WithTLS(nil, nil)},
	} {
		if name == "half TLS" {
			continue // covered in the security tests
		}
		_, err := New(sys, opts...)
		assert.ErrorIs(t, err, ErrInvalidOption, name)
	}
	_, err = New(nil)
	assert.ErrorIs(t, err, ErrInvalidOption)
	ep, err := New(sys)
	require.NoError(t, err)
	require.NoError(t, ep.Close())
	require.NoError(t, ep.Close(), "Close is idempotent")
	assert.True(t, errors.Is(ep.Start(), ErrClosed))
}

func TestTrySendTrackedNeverWaitsForCredit(t *testing.T) {
	nodes := startNodes(t, 2)
	gate := make(chan struct{})
	defer close(gate)
	s := newSink()
	s.gate = gate
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(2))
	require.NoError(t, err)
	// A new link has no credit yet: the try asks for it and reports so.
	err = nodes[0].ep.TrySendTracked(target, actor.PID{}, item{From: "a", Seq: 1}, nil)
	require.ErrorIs(t, err, ErrNoCredit)
	sent := 0
	require.Eventually(t, func() bool {
		for {
			err := nodes[0].ep.TrySendTracked(target, actor.PID{}, item{From: "a", Seq: sent + 1}, nil)
			if err != nil {
				require.ErrorIs(t, err, ErrNoCredit)
				return sent > 0
			}
			sent++
		}
	}, waitFor, time.Millisecond)
	assert.LessOrEqual(t, sent, 2+2+1, "never more in flight than granted")
}

func TestLinksOfStoppedActorsAreForgotten(t *testing.T) {
	nodes := startNodes(t, 2, withLinkSweep(20*time.Millisecond))
	for i := 0; i < 20; i++ {
		s := newSink()
		pid, err := nodes[1].sys.Spawn(s.producer())
		require.NoError(t, err)
		require.NoError(t, nodes[0].sys.Send(context.Background(), pid, item{From: "a", Seq: 1}))
		s.waitCount(t, 1)
		require.NoError(t, nodes[1].sys.Stop(context.Background(), pid))
	}
	// The sender forgets a link only when the receiver reports it Gone,
	// which the receiver does as it drops its own side.
	countLinks := func() (out int) {
		nodes[0].ep.mu.Lock()
		defer nodes[0].ep.mu.Unlock()
		for _, p := range nodes[0].ep.peers {
			p.mu.Lock()
			if p.out != nil {
				p.out.mu.Lock()
				out += len(p.out.links)
				p.out.mu.Unlock()
			}
			p.mu.Unlock()
		}
		return out
	}
	require.Eventually(t, func() bool {
		return countLinks() == 0
	}, waitFor, 10*time.Millisecond, "links of stopped actors must not pile up")
}

// TestResetPeerFailsInFlightHandlesAtOnce: a peer declared dead by its
// owner (it stopped answering without closing its connection) — every
// message in flight to it fails with ErrNodeLost at once, and a later send
// opens a new stream.
func TestResetPeerFailsInFlightHandlesAtOnce(t *testing.T) {
	nodes := startNodes(t, 2)
	gate := make(chan struct{})
	s := newSink()
	s.gate = gate
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(2))
	require.NoError(t, err)
	results, sent := sendUntilBlocked(t, nodes[0].ep, target, 16)
	nodes[0].ep.ResetPeer(nodes[1].ep.Addr())
	_, lost := awaitHandles(t, results, sent, "ResetPeer")
	assert.Positive(t, lost, "the values the gated sink had not accepted fail")
	close(gate)
	require.NoError(t, nodes[0].sys.Send(context.Background(), target, item{From: "b", Seq: 1}), "a new stream opens")
}

// TestDeferredAcknowledgementsKeepCreditFlowing: acceptances of untracked
// sends are reported in batches, yet a sender that exhausts a small window
// over and over keeps going, a tracked send among them is confirmed, and
// once the receiver's sweep runs the sender has its whole window back.
func TestDeferredAcknowledgementsKeepCreditFlowing(t *testing.T) {
	const n = 3000
	nodes := startNodes(t, 2, withLinkSweep(20*time.Millisecond))
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(40))
	require.NoError(t, err)
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	confirmed := make(chan error, 1)
	require.NoError(t, nodes[0].ep.SendTracked(ctx, target, actor.PID{}, item{From: "a", Seq: n + 1},
		func(err error) { confirmed <- err }))
	require.NoError(t, <-confirmed)
	s.waitCount(t, n+1)
	// The mailbox is empty: three more go straight in, and fewer than a
	// batch (40/8) of untracked acceptances wait for the sweep.
	for i := n + 2; i <= n+4; i++ {
		require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: i}))
	}
	s.waitCount(t, n+4)
	s.mu.Lock()
	assert.Zero(t, s.disorder)
	s.mu.Unlock()

	inFlight := func() uint64 {
		p, err := nodes[0].ep.peer(nodes[1].ep.Addr())
		require.NoError(t, err)
		p.mu.Lock()
		out := p.out
		p.mu.Unlock()
		out.mu.Lock()
		defer out.mu.Unlock()
		l := out.links[target.ID]
		if l == nil {
			return 0
		}
		return l.w.InFlight()
	}
	require.Eventually(t, func() bool { return inFlight() == 0 }, waitFor, 10*time.Millisecond,
		"held-back acceptances must reach the sender")
}

// sendUntilBlocked sends up to max tracked items from ep to target, each
// given 100ms to find credit, and stops at the first that does not (or
// fails): what was sent is then partly accepted, partly in flight. It
// returns the handles' outcomes channel and how many were sent.
func sendUntilBlocked(t *testing.T, ep *Endpoint, target actor.PID, max int) (chan error, int) {
	t.Helper()
	results := make(chan error, max)
	sent := 0
	for i := 1; i <= max; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := ep.SendTracked(ctx, target, actor.PID{}, item{From: "a", Seq: i}, func(err error) { results <- err })
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded, "blocked by credit, not failed")
			break
		}
		sent++
	}
	require.Positive(t, sent)
	return results, sent
}

// awaitHandles waits for n outcomes on results, each within 1s of the
// last: each nil (confirmed) or ErrNodeLost (lost).
func awaitHandles(t *testing.T, results <-chan error, n int, after string) (confirmed, lost int) {
	t.Helper()
	for i := range n {
		select {
		case err := <-results:
			if err == nil {
				confirmed++
			} else {
				require.ErrorIs(t, err, ErrNodeLost)
				lost++
			}
		case <-time.After(time.Second):
			t.Fatalf("handle %d of %d still pending 1s after %s", i+1, n, after)
		}
	}
	return confirmed, lost
}
