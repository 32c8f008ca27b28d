package actor

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: no actor with that PID exists (never did, or stopped).
	ErrNotFound = errors.New("actor: not found")
	// ErrStopped: the actor is stopping or stopped and accepts no messages.
	ErrStopped = errors.New("actor: stopped")
	// ErrShutdown: the System is shutting down or has shut down.
	ErrShutdown = errors.New("actor: system shut down")
	// ErrNameTaken: SpawnNamed was given a name that is in use.
	ErrNameTaken = errors.New("actor: name taken")
	// ErrInvalidName: a name is empty, starts with '$' or contains '/'.
	ErrInvalidName = errors.New("actor: invalid name")
	// ErrNoRemote: the PID is on another node and no Remote is installed.
	ErrNoRemote = errors.New("actor: no remote transport for node")
	// ErrNotLocal: the operation needs an actor on this node.
	ErrNotLocal = errors.New("actor: not a local actor")
	// ErrNoSender: Respond was called for a message that has no sender.
	ErrNoSender = errors.New("actor: message has no sender")
	// ErrRejected: the target's filter (WithFilter) refused the message.
	ErrRejected = errors.New("actor: message rejected")
	// ErrFull: TrySendFrom found the target's mailbox full.
	ErrFull = errors.New("actor: mailbox full")
	// ErrInvalidOption: an option had a value out of range.
	ErrInvalidOption = errors.New("actor: invalid option")
)

// PanicError is the failure reason of an actor whose Receive panicked.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("actor: panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so errors.Is and
// errors.As see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
