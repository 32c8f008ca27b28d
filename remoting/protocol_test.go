package remoting

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// TestAcceptanceBeyondWhatIsOnTheWireIsAProtocolError: credit is taken when
// a message is queued, but it is on the wire (pending) only once the writer
// sent it. A peer that accepts or rejects more than is on the wire breaks
// the protocol: the stream fails, the process does not panic.
func TestAcceptanceBeyondWhatIsOnTheWireIsAProtocolError(t *testing.T) {
	for _, kind := range []wire.Kind{wire.KindAccepted, wire.KindRejected} {
		t.Run(kind.String(), func(t *testing.T) {
			s := &outStream{links: map[string]*outLink{}}
			l := &outLink{target: "t"}
			s.links["t"] = l
			l.w.Grant(4)
			require.True(t, l.w.TryTake()) // queued, not yet written
			require.True(t, l.w.TryTake())
			var out []completion
			err := s.apply(&wire.Record{Kind: kind, Target: []byte("t"), N: 2}, &out)
			assert.ErrorContains(t, err, "on the wire")
			assert.Empty(t, out)
		})
	}
}

// TestDirtyLinksAreListedOnce: a link whose acceptances were reported
// mid-frame and that accepts again is not listed twice, so the list of
// links to report stays as long as the links with something to report.
func TestDirtyLinksAreListedOnce(t *testing.T) {
	s := &inStream{e: &Endpoint{}, links: map[string]*inLink{}, ackTimer: time.NewTimer(time.Hour)}
	defer s.ackTimer.Stop()
	l := &inLink{target: actor.PID{ID: "t"}, batch: 128}
	l.w.Grant(1 << 40)
	s.links["t"] = l
	for frame := range 1000 {
		for range 250 + frame%7 {
			require.NoError(t, l.w.Receive())
			s.resolveLocked(l, nil, false)
		}
		assert.LessOrEqual(t, len(s.dirty), 1, "frame %d", frame)
		s.flushAcceptedLocked(false)
	}
}

// TestLazyAcceptanceIsReportedWithinAckDelay: a message sent with
// SendMany may be acknowledged with others, but about AckDelay after its
// acceptance at the latest — not at the link sweep, seconds later.
func TestLazyAcceptanceIsReportedWithinAckDelay(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	for i := range 20 {
		done := make(chan error, 1)
		start := time.Now()
		n, err := nodes[0].ep.SendMany(context.Background(), target, actor.PID{}, []any{item{From: "a", Seq: i + 1}},
			NewOutcomes(func(_ []any, err error) { done <- err }))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Second): // the sweep would take 5 s
			t.Fatalf("message %d: no outcome %v after it was sent", i, time.Since(start))
		}
	}
	s.waitCount(t, 20)
}

// TestStreamQueueIsBounded: while the writer does not take the queue,
// sends stop at maxQueued messages — a try fails with ErrNoCredit, a send
// waits and gives up with its context — whether they need credit (which
// is plentiful here) or not (replies). Guarantee 4: nothing buffers
// without bound on the sending side.
func TestStreamQueueIsBounded(t *testing.T) {
	for _, to := range []actor.PID{{Node: "n2", ID: "t"}, {Node: "n2", ID: "$req/1"}} {
		t.Run(to.ID, func(t *testing.T) {
			s := &outStream{
				p:      &peer{e: &Endpoint{}},
				links:  map[string]*outLink{},
				wake:   make(chan struct{}, 1),
				broken: make(chan struct{}),
			}
			l := &outLink{target: "t", opened: true}
			l.w.Grant(1 << 20)
			s.links["t"] = l
			for i := range maxQueued {
				require.NoError(t, s.send(context.Background(), to, actor.PID{}, i, nil, sendTry), "message %d", i)
			}
			err := s.send(context.Background(), to, actor.PID{}, -1, nil, sendTry)
			require.ErrorIs(t, err, ErrNoCredit)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			err = s.send(ctx, to, actor.PID{}, -1, nil, 0)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Len(t, s.queue, maxQueued)
		})
	}
}

// TestSendManyTakesWhatCreditAllows: SendMany queues, in order, as many
// messages as the link has credit for and says why it stopped; a value the
// codec refuses ends the batch without taking credit; the queue's bound
// caps a batch too.
func TestSendManyTakesWhatCreditAllows(t *testing.T) {
	codec, err := NewGobCodec(item{}, "")
	require.NoError(t, err)
	s := &outStream{
		p:      &peer{e: &Endpoint{checker: codec}},
		links:  map[string]*outLink{},
		wake:   make(chan struct{}, 1),
		broken: make(chan struct{}),
	}
	to := actor.PID{Node: "n2", ID: "t"}
	l := &outLink{target: "t", opened: true}
	l.w.Grant(5)
	s.links["t"] = l
	batch := func(seqs ...int) []any {
		out := make([]any, len(seqs))
		for i, q := range seqs {
			out[i] = item{Seq: q}
		}
		return out
	}
	each := NewOutcomes(func([]any, error) {})

	n, err := s.sendMany(context.Background(), to, actor.PID{}, batch(1, 2, 3), each, sendTry)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	n, err = (&Endpoint{}).TrySendMany(to, actor.PID{}, batch(1), nil)
	require.ErrorIs(t, err, ErrInvalidOption, "no Outcomes")
	assert.Zero(t, n)

	msgs := batch(4, 5, 6, 7)
	n, err = s.sendMany(context.Background(), to, actor.PID{}, msgs, each, sendTry)
	require.ErrorIs(t, err, ErrNoCredit)
	assert.Equal(t, 2, n, "two credits were left")
	n, err = s.sendMany(context.Background(), to, actor.PID{}, msgs[n:], each, sendTry)
	require.ErrorIs(t, err, ErrNoCredit)
	assert.Zero(t, n)

	require.NoError(t, l.w.Resolve(5))
	n, err = s.sendMany(context.Background(), to, actor.PID{}, []any{item{Seq: 6}, unregistered{}, item{Seq: 7}}, each, sendTry)
	require.ErrorIs(t, err, ErrEncode)
	assert.Equal(t, 1, n, "the refused value ends the batch")
	assert.EqualValues(t, 1, l.w.InFlight(), "no credit taken for the refused value or after it")
	assert.EqualValues(t, 1, s.p.e.stats.failed.Load())

	// A refused value that credit does not reach yet is neither checked
	// nor counted as failed.
	require.NoError(t, l.w.Resolve(1))
	l.w.TakeUpTo(l.w.Available() - 1) // one credit left
	n, err = s.sendMany(context.Background(), to, actor.PID{}, []any{item{Seq: 7}, item{Seq: 8}, unregistered{}}, each, sendTry)
	require.ErrorIs(t, err, ErrNoCredit)
	assert.Equal(t, 1, n)
	assert.EqualValues(t, 1, s.p.e.stats.failed.Load(), "nothing failed")
	require.NoError(t, l.w.Resolve(l.w.InFlight()))

	var got []int
	for _, m := range s.queue {
		assert.Equal(t, m.msg, m.done.msg, "its Outcomes is told its message")
		assert.Same(t, each, m.done.many)
		got = append(got, m.msg.(item).Seq)
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, got)

	// The queue's bound: a batch takes what room is left, then a try
	// fails.
	l.w.Grant(2 * maxQueued)
	big := make([]any, maxQueued)
	for i := range big {
		big[i] = item{Seq: i}
	}
	n, err = s.sendMany(context.Background(), to, actor.PID{}, big, each, sendTry)
	require.ErrorIs(t, err, ErrNoCredit)
	assert.Equal(t, maxQueued-7, n)
	n, err = s.sendMany(context.Background(), to, actor.PID{}, big, each, sendTry)
	require.ErrorIs(t, err, ErrNoCredit)
	assert.Zero(t, n)
	assert.Len(t, s.queue, maxQueued)
}

// TestSendManyDeliversInOrderAndReportsEach: batches of SendMany to a
// remote actor arrive in order, and each message's outcome is reported
// once, with the message, once its mailbox accepted it — in calls of
// several messages, in the order they were sent.
func TestSendManyDeliversInOrderAndReportsEach(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	const total = 3000
	var mu sync.Mutex
	reported := map[int]int{}
	last, calls := 0, 0
	all := make(chan struct{})
	each := NewOutcomes(func(msgs []any, err error) {
		assert.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, msg := range msgs {
			seq := msg.(item).Seq
			assert.Greater(t, seq, last, "outcomes in the order sent")
			last = seq
			reported[seq]++
		}
		if len(reported) == total {
			close(all)
		}
	})
	var msgs []any
	for i := range total {
		msgs = append(msgs, item{From: "a", Seq: i + 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for sent := 0; sent < total; {
		n, err := nodes[0].ep.SendMany(ctx, target, actor.PID{}, msgs[sent:min(sent+100, total)], each)
		if err != nil {
			require.ErrorIs(t, err, ErrNoCredit)
		}
		require.Positive(t, n, "SendMany waits for credit for the first")
		sent += n
	}
	s.waitCount(t, total)
	select {
	case <-all:
	case <-time.After(waitFor):
		t.Fatal("not every outcome was reported")
	}
	mu.Lock()
	defer mu.Unlock()
	for seq, times := range reported {
		assert.Equal(t, 1, times, "message %d reported %d times", seq, times)
	}
	assert.Less(t, calls, total/10, "acceptances are reported together")
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Zero(t, s.disorder)
}

// TestAGoneLinkForgetsOnlyItself: a sender waiting for credit on a link
// that the receiver then reports gone forgets that link — not a newer one
// that another sender opened to the same target meanwhile, whose
// acknowledgements would otherwise arrive for an unknown target and fail
// the stream.
func TestAGoneLinkForgetsOnlyItself(t *testing.T) {
	s := &outStream{
		p:      &peer{e: &Endpoint{}},
		links:  map[string]*outLink{},
		wake:   make(chan struct{}, 1),
		broken: make(chan struct{}),
	}
	to := actor.PID{Node: "n2", ID: "t"}
	old := &outLink{target: "t", opened: true} // no credit: a sender waits
	s.links["t"] = old
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.reserve(context.Background(), to, 1, false)
		errc <- err
	}()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return old.credit != nil
	}, waitFor, time.Millisecond, "the sender waits for credit")

	s.mu.Lock()
	old.gone = actor.ErrStopped
	newer := &outLink{target: "t", opened: true} // another sender's, after the first forgot old
	s.links["t"] = newer
	old.wakeSenders()
	s.mu.Unlock()

	require.ErrorIs(t, <-errc, actor.ErrStopped)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Same(t, newer, s.links["t"])
}

// TestSingleAndBatchSendersShareAStreamInOrder: senders of single messages
// and of batches race on one stream, through a small mailbox (so credit
// runs out and senders wait): every message arrives once, each sender's
// in order, and every batch message is reported accepted.
func TestSingleAndBatchSendersShareAStreamInOrder(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer(), actor.WithMailboxSize(64))
	require.NoError(t, err)
	const senders, each = 4, 2000
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var accepted atomic.Int64 // batch messages reported accepted
	outcomes := NewOutcomes(func(msgs []any, err error) {
		assert.NoError(t, err)
		accepted.Add(int64(len(msgs)))
	})
	var wg sync.WaitGroup
	for snd := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := fmt.Sprintf("s%d", snd)
			for seq := 1; seq <= each; {
				if snd%2 == 0 {
					if err := nodes[0].ep.Send(ctx, target, actor.PID{}, item{From: from, Seq: seq}); err != nil {
						t.Error(err)
						return
					}
					seq++
					continue
				}
				var batch []any
				for k := 0; k < 1+seq%7 && seq+k <= each; k++ {
					batch = append(batch, item{From: from, Seq: seq + k})
				}
				n, err := nodes[0].ep.SendMany(ctx, target, actor.PID{}, batch, outcomes)
				if err != nil && !errors.Is(err, ErrNoCredit) {
					t.Error(err)
					return
				}
				seq += n
			}
		}()
	}
	wg.Wait()
	s.waitCount(t, senders*each)
	// Acceptances of batches are reported lazily: wait for them before
	// the nodes close, which would fail any still unreported.
	require.Eventually(t, func() bool { return accepted.Load() == senders/2*each }, waitFor, time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Zero(t, s.disorder)
	assert.Equal(t, senders*each, s.count)
}
