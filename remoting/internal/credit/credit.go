// Package credit is the pure accounting of dchan's flow control: how many
// messages a sender may have in flight to one target on one stream.
//
// The receiver grants a window of credits for a link (one stream, one target
// actor) when the sender opens it, sized to the target's free mailbox space.
// Every message the sender puts on the wire takes one credit. The receiver
// resolves each message exactly once, in order — accepted into the mailbox
// or rejected — and reports resolutions back; each resolution returns one
// credit. So at every moment
//
//	in flight = sent - resolved ≤ window
//
// and a receiver never holds more undelivered messages for a link than the
// window it granted. Both ends keep the same Window and check each other:
// a sender that overruns its credit, or a receiver that resolves messages
// that were never sent, is a protocol violation that closes the stream.
//
// Window has no locks and no I/O; its owner serialises access.
package credit

import (
	"errors"
	"fmt"
)

// ErrViolation reports a peer that broke the credit protocol.
var ErrViolation = errors.New("credit: protocol violation")

// Window is one link's credit state.
type Window struct {
	window   uint64 // credits granted in total (the window size)
	sent     uint64 // messages put on the wire
	resolved uint64 // messages accepted or rejected by the receiver
}

// Grant widens the window by n credits.
func (w *Window) Grant(n uint64) { w.window += n }

// Size returns the window granted so far.
func (w *Window) Size() uint64 { return w.window }

// InFlight returns the messages sent and not yet resolved.
func (w *Window) InFlight() uint64 { return w.sent - w.resolved }

// Available returns how many messages may be sent now.
func (w *Window) Available() uint64 { return w.window - w.InFlight() }

// Sent returns how many messages were sent in total.
func (w *Window) Sent() uint64 { return w.sent }

// Resolved returns how many messages were resolved in total.
func (w *Window) Resolved() uint64 { return w.resolved }

// TryTake takes one credit for a message about to be sent. It reports false,
// changing nothing, when no credit is available.
func (w *Window) TryTake() bool {
	if w.InFlight() >= w.window {
		return false
	}
	w.sent++
	return true
}

// TakeUpTo takes up to n credits for messages about to be sent, as many
// as are available, and returns how many it took.
func (w *Window) TakeUpTo(n uint64) uint64 {
	n = min(n, w.Available())
	w.sent += n
	return n
}

// Untake gives back a credit taken by TryTake for a message that was not
// sent after all (for example because it failed to encode).
func (w *Window) Untake() error {
	if w.sent == w.resolved {
		return fmt.Errorf("%w: untake with nothing in flight", ErrViolation)
	}
	w.sent--
	return nil
}

// Receive is the receiver's check for one arriving message: it counts the
// message as in flight, or reports a violation if the sender had no credit.
func (w *Window) Receive() error {
	if !w.TryTake() {
		return fmt.Errorf("%w: message beyond the granted window of %d", ErrViolation, w.window)
	}
	return nil
}

// Resolve records that the next n in-flight messages were accepted or
// rejected, returning their credits. Resolving more than is in flight is a
// violation and changes nothing.
func (w *Window) Resolve(n uint64) error {
	if n > w.InFlight() {
		return fmt.Errorf("%w: %d resolved with %d in flight", ErrViolation, n, w.InFlight())
	}
	w.resolved += n
	return nil
}
