package supervisor

import "fmt"

// Directive is what a strategy does with a failed actor.
type Directive int

const (
	// Restart replaces the actor with a fresh instance, keeping its mailbox.
	Restart Directive = iota
	// Resume keeps the actor's instance and state and processes the next
	// message.
	Resume
	// Stop stops the actor.
	Stop
	// Escalate fails the supervisor with the same reason.
	Escalate
)

func (d Directive) String() string {
	switch d {
	case Restart:
		return "restart"
	case Resume:
		return "resume"
	case Stop:
		return "stop"
	case Escalate:
		return "escalate"
	default:
		return fmt.Sprintf("directive(%d)", int(d))
	}
}

// Decider chooses a directive for a failure reason. It must be a pure
// function of the reason: no I/O, no blocking. A panic's reason is an
// *actor.PanicError, which unwraps to the panic value when that is an error,
// so deciders can use errors.Is and errors.As.
type Decider func(reason error) Directive

// AlwaysRestart is the default Decider.
func AlwaysRestart(error) Directive { return Restart }
