package remoting

import (
	"context"
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

// TestFIFOKeepsOrderAndReusesItsArray: elements come out in the order
// they went in, across partial takes, compaction and drains, and the array
// grows with what waits, not with what went through.
func TestFIFOKeepsOrderAndReusesItsArray(t *testing.T) {
	var f fifo[int]
	var got []int
	next := 0
	peak := 0
	for round := range 3000 {
		for range 1 + round%300 {
			f.push(next)
			next++
		}
		peak = max(peak, f.len())
		if f.len() > 0 {
			require.Equal(t, len(got), f.front(), "round %d: the oldest", round)
		}
		f.take(min(f.len(), 1+(round*7)%350), func(v int) { got = append(got, v) })
		// The array holds about twice what was ever waiting at once
		// (append doubles, then rounds to a size class).
		require.LessOrEqual(t, cap(f.q), 9*peak/4+64, "round %d: the array grew to %d (peak %d)", round, cap(f.q), peak)
	}
	got = f.drain(got)
	assert.Zero(t, f.len())
	require.Len(t, got, next)
	for i, v := range got {
		require.Equal(t, i, v)
	}
}

// TestLazyAcceptanceIsReportedWithinAckDelay: a message sent with
// SendTrackedLazy may be acknowledged with others, but about AckDelay
// after its acceptance at the latest — not at the link sweep, seconds
// later.
func TestLazyAcceptanceIsReportedWithinAckDelay(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	for i := range 20 {
		done := make(chan error, 1)
		start := time.Now()
		require.NoError(t, nodes[0].ep.SendTrackedLazy(context.Background(), target, actor.PID{}, item{From: "a", Seq: i + 1},
			func(err error) { done <- err }))
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
