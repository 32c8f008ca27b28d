package tally

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReasonNames(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		want string
	}{
		{Timeout, "timeout"}, {Canceled, "canceled"}, {NoReceivers, "no_receivers"}, {NodeLost, "node_lost"},
		{Encode, "encode"}, {TooLarge, "too_large"}, {WrongType, "wrong_type"}, {Gone, "gone"},
		{Closed, "closed"}, {Other, "other"}, {numReasons, "other"}, {200, "other"},
	} {
		assert.Equal(t, tc.want, tc.r.String(), "Reason(%d)", tc.r)
	}
}

// TestHotCountsSitOnLinesOfTheirOwn: sent, delivered and received, and a
// Tally's in-flight count and its maps, are a cache line apart (measured:
// sharing a line cost cross-node throughput).
func TestHotCountsSitOnLinesOfTheirOwn(t *testing.T) {
	var c Counters
	var tl Tally
	for _, tc := range []struct {
		name   string
		lo, hi uintptr
	}{
		{"sent→delivered", unsafe.Offsetof(c.sent), unsafe.Offsetof(c.delivered)},
		{"delivered→received", unsafe.Offsetof(c.delivered), unsafe.Offsetof(c.received)},
		{"received→failed", unsafe.Offsetof(c.received), unsafe.Offsetof(c.failed)},
		{"inFlight→names", unsafe.Offsetof(tl.inFlight), unsafe.Offsetof(tl.names)},
	} {
		assert.GreaterOrEqual(t, tc.hi-tc.lo, uintptr(64), tc.name)
	}
}

func TestCounting(t *testing.T) {
	var tl Tally
	c := tl.Hold("orders")
	defer tl.Release(c)
	tl.Sent(c, "n2", 5)
	tl.Sent(c, "n3", 0) // nothing: no peer entry either
	tl.Delivered(c, 2)
	t0 := time.Unix(1000, 0)
	tl.Confirmed(c, t0, t0.Add(3*time.Millisecond))
	tl.Confirmed(c, time.Time{}, t0) // not timed
	tl.Refused(1)
	tl.Failed("orders", true, Timeout, 1)
	tl.Failed("orders", false, NoReceivers, 2)
	tl.Failed("other", false, 250, 1) // out of range: other
	tl.Dropped("orders")
	tl.Received(c)

	assert.Equal(t, Snapshot{Sent: 5, Delivered: 4, Failed: 4, Dropped: 1, Received: 1,
		FailedBy: map[string]uint64{"timeout": 1, "no_receivers": 2, "other": 1}}, tl.Total())
	assert.Equal(t, int64(5-4-1-1), tl.InFlight())
	names := tl.Names()
	assert.Equal(t, Snapshot{Sent: 5, Delivered: 4, Failed: 3, Dropped: 1, Received: 1,
		FailedBy: map[string]uint64{"timeout": 1, "no_receivers": 2}}, names["orders"])
	assert.Equal(t, Snapshot{Failed: 1, FailedBy: map[string]uint64{"other": 1}}, names["other"])
	assert.Equal(t, map[string]Snapshot{"n2": {Sent: 5}}, tl.Peers())
	lat := tl.AcceptLatency()
	assert.Equal(t, uint64(1), lat.Count)
	assert.Equal(t, 3*time.Millisecond, lat.Sum)
}

func TestTotalFailedByIsNeverNil(t *testing.T) {
	var tl Tally
	assert.NotNil(t, tl.Total().FailedBy)
	assert.Nil(t, tl.Names()["x"].FailedBy)
}

// TestSweepForgetsOnlyQuietCounters: counters are forgotten after
// ForgetAfter quiet sweeps in a row, never while held, never while they
// count, and a peer's never while it is live.
func TestSweepForgetsOnlyQuietCounters(t *testing.T) {
	for _, tc := range []struct {
		name string
		// each runs before every sweep
		step       func(tl *Tally, sweep int)
		live       bool
		wantName   bool // the name's counters remain after the sweeps
		wantPeer   bool
		extraSweep int
	}{
		{name: "quiet: forgotten", step: func(*Tally, int) {}, wantName: false, wantPeer: false},
		{name: "quiet peer still live: kept", step: func(*Tally, int) {}, live: true, wantPeer: true},
		{name: "counting: kept", step: func(tl *Tally, _ int) { tl.Dropped("a") }, wantName: true},
		{name: "held: kept", step: func(tl *Tally, s int) {
			if s == 0 {
				tl.Hold("a") // never released
			}
		}, wantName: true},
		{name: "counted on the last sweep: kept", step: func(tl *Tally, s int) {
			if s == 2*ForgetAfter-1 {
				tl.Dropped("a")
			}
		}, wantName: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tl Tally
			c := tl.Hold("a")
			tl.Sent(c, "p", 1)
			tl.Release(c)
			for s := range 2 * ForgetAfter {
				tc.step(&tl, s)
				tl.Sweep(func(string) bool { return tc.live })
			}
			_, okName := tl.Names()["a"]
			_, okPeer := tl.Peers()["p"]
			assert.Equal(t, tc.wantName, okName, "name")
			assert.Equal(t, tc.wantPeer, okPeer, "peer")
		})
	}
}

func TestForgottenAfterExactlyForgetAfterQuietSweeps(t *testing.T) {
	var tl Tally
	tl.Dropped("a")
	tl.Sweep(nil) // first look: the activity is new
	for range ForgetAfter - 1 {
		tl.Sweep(nil)
		require.Contains(t, tl.Names(), "a", "forgotten too early")
	}
	tl.Sweep(nil)
	assert.NotContains(t, tl.Names(), "a")
}

// TestForgottenCountersStartAgain: a name used after its counters were
// forgotten counts from zero, and a holder of the old ones is not handed
// them again.
func TestForgottenCountersStartAgain(t *testing.T) {
	var tl Tally
	tl.Dropped("a")
	old := tl.Hold("a")
	tl.Release(old)
	for range 2 * ForgetAfter {
		tl.Sweep(nil)
	}
	require.True(t, old.holders.Forgotten())
	c := tl.Hold("a")
	defer tl.Release(c)
	assert.NotSame(t, old, c)
	tl.Received(c)
	assert.Equal(t, Snapshot{Received: 1}, tl.Names()["a"])
}

// TestHoldRacesTheSweeper: whatever the interleaving, counts made through
// held counters are never lost.
func TestHoldRacesTheSweeper(t *testing.T) {
	var tl Tally
	const workers, rounds = 4, 2000
	stop := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				tl.Sweep(func(string) bool { return false })
			}
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				c := tl.Hold("a")
				tl.Received(c)
				assert.False(t, c.holders.Forgotten(), "held counters forgotten")
				tl.Release(c)
			}
		})
	}
	wg.Wait()
	close(stop)
	sweeper.Wait()
	assert.Equal(t, uint64(workers*rounds), tl.Total().Received)
}

func TestHolders(t *testing.T) {
	var h Holders
	require.True(t, h.Acquire())
	assert.True(t, h.Held())
	assert.False(t, h.Forget(), "held: not forgotten")
	h.Release()
	assert.False(t, h.Held())
	require.True(t, h.Forget())
	assert.True(t, h.Forgotten())
	assert.False(t, h.Acquire(), "forgotten: cannot be held again")
	assert.False(t, h.Forget(), "forgotten once")
}

func TestQuietIdle(t *testing.T) {
	type step struct {
		activity uint64
		busy     bool
		want     bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"quiet from the start", []step{{0, false, false}, {0, false, true}}},
		{"activity resets", []step{{0, false, false}, {1, false, false}, {1, false, false}, {1, false, true}}},
		{"busy resets", []step{{0, false, false}, {0, true, false}, {0, false, false}, {0, false, true}}},
		{"stays idle", []step{{5, false, false}, {5, false, false}, {5, false, true}, {5, false, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q Quiet
			for i, s := range tc.steps {
				assert.Equal(t, s.want, q.Idle(s.activity, s.busy), "step %d", i)
			}
		})
	}
}

func TestQuietSetSweep(t *testing.T) {
	var s QuietSet
	live := map[string]bool{"live": true}
	keep := func(k string) bool { return live[k] }
	act := map[string]uint64{"quiet": 3, "live": 3, "busy": 0, "gone": 1}
	var forgot []string
	for i := range ForgetAfter + 1 {
		if i == ForgetAfter {
			delete(act, "gone")
		}
		act["busy"]++
		forgot = append(forgot, s.Sweep(act, keep)...)
	}
	assert.Equal(t, []string{"quiet"}, forgot)
	assert.NotContains(t, s.m, "quiet", "forgotten keys are dropped")
	assert.NotContains(t, s.m, "gone", "keys no longer reported are dropped")
	assert.Contains(t, s.m, "live")
	assert.Contains(t, s.m, "busy")
}
