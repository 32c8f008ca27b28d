package mailbox

import "errors"

var (
	// ErrFull is returned by TryPush when the user queue has no free slot.
	ErrFull = errors.New("mailbox: full")
	// ErrClosed is returned by pushes after Close.
	ErrClosed = errors.New("mailbox: closed")
)
