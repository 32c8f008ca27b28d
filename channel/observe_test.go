package channel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/tally"
)

// reported is what a failure handler was told.
type reported struct {
	name  string
	value any
	err   error
}

// failureLog is a failure handler that records, and can be held up.
type failureLog struct {
	mu   sync.Mutex
	got  []reported
	gate chan struct{} // nil: never held; else the handler waits on it
}

func (l *failureLog) handle(name string, v any, err error) {
	if l.gate != nil {
		<-l.gate
	}
	l.mu.Lock()
	l.got = append(l.got, reported{name, v, err})
	l.mu.Unlock()
}

func (l *failureLog) all() []reported {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]reported(nil), l.got...)
}

type unregistered struct{ X int }

// TestFailureHandlerIsToldOfEveryBareValueThatFails: bare values that fail
// for three reasons reach the handler with their name, value and an error
// matching the sentinel; values with a handle do not (their handle says).
func TestFailureHandlerIsToldOfEveryBareValueThatFails(t *testing.T) {
	var log failureLog
	nodes := startCluster(t, 2, WithFailureHandler(log.handle))
	in := openReceive(t, nodes[1], "orders", 16)
	ints, closeInts, err := ReceiveOf[int](nodes[1], "ints", 4)
	require.NoError(t, err)
	defer closeInts()
	waitReceivers(t, nodes[0], "orders", 1)
	waitReceivers(t, nodes[0], "ints", 1)

	out := openSend(t, nodes[0], "orders", 4)
	out <- unregistered{1}                       // cannot be encoded
	out <- WithMessage(unregistered{2}, waitFor) // has a handle: not reported
	out <- Order{Sender: "ok", Seq: 3}
	assert.Equal(t, Order{Sender: "ok", Seq: 3}, recv(t, in))
	toInts := openSend(t, nodes[0], "ints", 4)
	toInts <- "not an int" // refused by the typed receiver
	toInts <- 7
	assert.Equal(t, 7, <-ints)

	require.Eventually(t, func() bool { return len(log.all()) == 2 }, waitFor, 5*time.Millisecond)
	got := log.all()
	byName := map[string]reported{got[0].name: got[0], got[1].name: got[1]}
	assert.Equal(t, unregistered{1}, byName["orders"].value)
	assert.ErrorIs(t, byName["orders"].err, ErrEncode)
	assert.Equal(t, "not an int", byName["ints"].value)
	assert.ErrorIs(t, byName["ints"].err, ErrWrongType)

	st := nodes[0].Stats()
	assert.Equal(t, uint64(2), st.Names["orders"].FailedBy["encode"], "the bare value and the handle")
	assert.Equal(t, uint64(1), st.Names["ints"].FailedBy["wrong_type"])
	assert.Equal(t, uint64(2), st.FailedBy["encode"])
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, log.all(), 2, "nothing else was reported")
}

// TestAFailureHandlerNeverHoldsUpTheValuePath: a handler that does not
// return leaves the sender sending; failures queue up to their bound and
// past it are counted as unreported; once the handler returns it is told
// of every queued failure, and Close waits for it.
func TestAFailureHandlerNeverHoldsUpTheValuePath(t *testing.T) {
	log := failureLog{gate: make(chan struct{})}
	nodes := startCluster(t, 2, WithFailureHandler(log.handle))
	openReceive(t, nodes[1], "orders", 16)
	waitReceivers(t, nodes[0], "orders", 1)
	out := openSend(t, nodes[0], "orders", 64)
	const bad = maxFailureQueue + 100
	for i := range bad {
		out <- unregistered{i}
	}
	require.Eventually(t, func() bool { return nodes[0].Stats().Failed == bad }, waitFor, 5*time.Millisecond,
		"every value failed while the handler was held up")
	// One is in the handler, maxFailureQueue wait; the rest were not queued.
	assert.Equal(t, uint64(bad-maxFailureQueue-1), nodes[0].Stats().FailuresUnreported)
	close(log.gate)
	require.Eventually(t, func() bool { return len(log.all()) == maxFailureQueue+1 }, waitFor, 5*time.Millisecond)
	for _, r := range log.all() {
		require.ErrorIs(t, r.err, ErrEncode)
	}
}

// TestFailureHandlerIsToldOfDeadLetters: a message to an actor that is
// not there (through the actor API) reaches the handler as ErrGone.
func TestFailureHandlerIsToldOfDeadLetters(t *testing.T) {
	var log failureLog
	nodes := startCluster(t, 1, WithFailureHandler(log.handle))
	err := nodes[0].Actors().Send(context.Background(), actor.PID{Node: nodes[0].ID(), ID: "nobody"}, "hello")
	require.ErrorIs(t, err, actor.ErrNotFound)
	require.Eventually(t, func() bool { return len(log.all()) == 1 }, waitFor, 5*time.Millisecond)
	r := log.all()[0]
	assert.Equal(t, "hello", r.value)
	assert.ErrorIs(t, r.err, ErrGone)
	assert.ErrorIs(t, r.err, actor.ErrNotFound)
	assert.Equal(t, uint64(1), nodes[0].Stats().DeadLetters)
}

// TestAValueRoutedAwayFromAGoneReceiverIsNoFailure: a local receiver that
// is gone turns values away; they go to another receiver, and the handler
// hears of nothing.
func TestAValueRoutedAwayFromAGoneReceiverIsNoFailure(t *testing.T) {
	var log failureLog
	nodes := startCluster(t, 1, WithFailureHandler(log.handle))
	listGhost(t, nodes, nodes[0], "orders")
	in := openReceive(t, nodes[0], "orders", 64)
	out := openSend(t, nodes[0], "orders", 0)
	for i := range 20 {
		out <- Order{Seq: i}
	}
	for range 20 {
		recv(t, in)
	}
	assert.Positive(t, tries(nodes[0]), "the ghost was tried")
	assert.Empty(t, log.all())
	assert.Zero(t, nodes[0].Stats().DeadLetters)
}

// TestStatsTimeConfirmedValuesAndCountWhatWaits: a confirmed value is
// timed from its handle to its acceptance; values a user has not read are
// counted as buffered.
func TestStatsTimeConfirmedValuesAndCountWhatWaits(t *testing.T) {
	nodes := startCluster(t, 2)
	in := openReceive(t, nodes[1], "orders", 64)
	waitReceivers(t, nodes[0], "orders", 1)
	out := openSend(t, nodes[0], "orders", 4)
	for i := range 10 {
		m := WithMessage(Order{Seq: i}, waitFor)
		out <- m
		<-m.Done()
		require.NoError(t, m.Err())
	}
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "orders", Order{Seq: 10}))
	lat := nodes[0].Stats().AcceptLatency
	assert.Equal(t, uint64(11), lat.Count)
	assert.Positive(t, lat.Sum)
	assert.Len(t, lat.Counts, len(lat.Bounds)+1)
	assert.Equal(t, uint64(11), nodes[1].Stats().Names["orders"].Buffered, "none read yet")
	for range 11 {
		recv(t, in)
	}
	assert.Zero(t, nodes[1].Stats().Names["orders"].Buffered)
	r := nodes[0].Stats().Registry
	assert.Equal(t, "leader", r.State)
	assert.Equal(t, 2, r.Alive)
	assert.Equal(t, 1, r.Names)
}

// TestCountersOfQuietNamesAreForgotten: the counters and router of a name
// with no receiver or sender on the node, and no traffic, are forgotten
// after a few sweeps; those of a name in use stay.
func TestCountersOfQuietNamesAreForgotten(t *testing.T) {
	nodes := startCluster(t, 2, withSweepInterval(20*time.Millisecond))
	keep := openReceive(t, nodes[1], "kept", 4)
	waitReceivers(t, nodes[0], "kept", 1)
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "kept", 1))
	recv(t, keep)
	keepOut := openSend(t, nodes[0], "kept", 1) // held open, idle

	in, closeIn, err := nodes[1].Receive("reply.1", 4)
	require.NoError(t, err)
	waitReceivers(t, nodes[0], "reply.1", 1)
	require.NoError(t, nodes[0].SendContext(ctxFor(t, waitFor), "reply.1", 1))
	recv(t, in)
	require.NoError(t, closeIn())

	for _, n := range nodes {
		require.Eventually(t, func() bool { _, ok := n.Stats().Names["reply.1"]; return !ok }, waitFor, 10*time.Millisecond,
			"%s forgets the quiet name", n.ID())
	}
	_, ok := nodes[0].routers.Load("reply.1")
	assert.False(t, ok, "its router is forgotten")
	time.Sleep(100 * time.Millisecond) // several sweeps
	assert.Equal(t, uint64(1), nodes[0].Stats().Names["kept"].Sent, "a name with a send channel open stays")
	assert.Equal(t, uint64(1), nodes[1].Stats().Names["kept"].Received, "a name with a receiver stays")
	_, ok = nodes[0].routers.Load("kept")
	assert.True(t, ok)
	keepOut <- 2
	assert.Equal(t, 2, recv(t, keep), "the idle send channel's router still routes")
}

// TestAMillionQuietNamesLeaveTheHeapFlat: a program that sends to a name
// per request grows nothing once the names go quiet: after a million
// distinct names, the heap is where it was after the first wave. (Under
// the race detector, ten times slower, 200,000 names: 13 s against 90 s.)
func TestAMillionQuietNamesLeaveTheHeapFlat(t *testing.T) {
	nodes := startCluster(t, 1, withSweepInterval(time.Hour)) // swept by hand below
	n := nodes[0]
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	waves, perWave := 10, 100_000
	if raceEnabled {
		waves = 2
	}
	wave := func(w int) {
		for i := range perWave {
			// No receiver, a context already over: the send fails at once,
			// leaving the name's counters and router behind.
			err := n.SendContext(gone, fmt.Sprintf("reply.%d.%d", w, i), i)
			if !errors.Is(err, context.Canceled) {
				require.ErrorIs(t, err, context.Canceled)
			}
		}
		// Routers first, then the counters they held.
		for range 2*tally.ForgetAfter + 2 {
			n.sweep()
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	wave(0)
	base := heap()
	for w := 1; w < waves; w++ {
		wave(w)
	}
	after := heap()
	t.Logf("heap after the first %d names: %d KiB; after %d: %d KiB", perWave, base>>10, waves*perWave, after>>10)
	assert.Less(t, after, base+8<<20, "the heap grew with the names")
	assert.Zero(t, len(n.Stats().Names), "names left")
	assert.Equal(t, uint64(waves*perWave), n.Stats().FailedBy["canceled"])
}
