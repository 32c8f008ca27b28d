package credit

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestWindowBasics(t *testing.T) {
	var w Window
	assert.False(t, w.TryTake(), "no credit before a grant")
	w.Grant(2)
	assert.True(t, w.TryTake())
	assert.True(t, w.TryTake())
	assert.False(t, w.TryTake(), "window of 2 exhausted")
	assert.ErrorIs(t, w.Resolve(3), ErrViolation)
	require.NoError(t, w.Resolve(1))
	assert.EqualValues(t, 1, w.Available())
	require.NoError(t, w.Untake())
	assert.EqualValues(t, 0, w.InFlight())
	assert.ErrorIs(t, w.Untake(), ErrViolation)
	assert.ErrorIs(t, (&Window{}).Receive(), ErrViolation)

	w.Grant(3) // a window of 5, nothing in flight
	assert.EqualValues(t, 5, w.TakeUpTo(7), "takes what is available")
	assert.EqualValues(t, 0, w.TakeUpTo(1))
	require.NoError(t, w.Resolve(2))
	assert.EqualValues(t, 1, w.TakeUpTo(1))
}

// TestInFlightNeverExceedsGrant drives a sender's and a receiver's Window
// with random interleavings of grants, sends, resolutions and bogus
// resolutions, and checks the invariants after every step.
func TestInFlightNeverExceedsGrant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var sender, receiver Window
		var onWire uint64 // sent by the sender, not yet seen by the receiver
		var toReport uint64
		t.Repeat(map[string]func(*rapid.T){
			"grant": func(t *rapid.T) {
				n := rapid.Uint64Range(0, 8).Draw(t, "n")
				receiver.Grant(n)
				sender.Grant(n)
			},
			"send": func(t *rapid.T) {
				before := sender.InFlight()
				ok := sender.TryTake()
				if ok != (before < sender.Size()) {
					t.Fatalf("TryTake=%v with %d in flight of %d", ok, before, sender.Size())
				}
				if ok {
					onWire++
				}
			},
			"send many": func(t *rapid.T) {
				want := rapid.Uint64Range(0, 10).Draw(t, "want")
				avail := sender.Available()
				got := sender.TakeUpTo(want)
				if got != min(want, avail) {
					t.Fatalf("TakeUpTo(%d) = %d with %d available", want, got, avail)
				}
				onWire += got
			},
			"untake": func(t *rapid.T) {
				if onWire == 0 {
					t.Skip("nothing unsent to give back")
				}
				if err := sender.Untake(); err != nil {
					t.Fatal(err)
				}
				onWire--
			},
			"arrive": func(t *rapid.T) {
				if onWire == 0 {
					t.Skip("nothing on the wire")
				}
				if err := receiver.Receive(); err != nil {
					t.Fatalf("receiver refused a message the sender had credit for: %v", err)
				}
				onWire--
			},
			"resolve": func(t *rapid.T) {
				n := rapid.Uint64Range(0, receiver.InFlight()).Draw(t, "n")
				if err := receiver.Resolve(n); err != nil {
					t.Fatal(err)
				}
				toReport += n
			},
			"report": func(t *rapid.T) {
				if err := sender.Resolve(toReport); err != nil {
					t.Fatalf("sender refused a genuine report: %v", err)
				}
				toReport = 0
			},
			"bogus report": func(t *rapid.T) {
				before := sender
				extra := rapid.Uint64Range(1, 5).Draw(t, "extra")
				if err := sender.Resolve(sender.InFlight() + extra); err == nil {
					t.Fatal("resolving more than is in flight must be refused")
				}
				if sender != before {
					t.Fatal("a refused report changed the window")
				}
			},
			"": func(t *rapid.T) {
				if sender.InFlight() > sender.Size() {
					t.Fatalf("sender: %d in flight > window %d", sender.InFlight(), sender.Size())
				}
				if receiver.InFlight() > receiver.Size() {
					t.Fatalf("receiver: %d held > window %d", receiver.InFlight(), receiver.Size())
				}
				if sender.InFlight() != onWire+receiver.InFlight()+toReport {
					t.Fatalf("accounting drift: sender %d != wire %d + receiver %d + unreported %d",
						sender.InFlight(), onWire, receiver.InFlight(), toReport)
				}
			},
		})
	})
}
