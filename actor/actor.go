package actor

// Actor is the behaviour behind a PID. Receive is called for each message,
// one at a time, never concurrently: an actor needs no locks for its own
// state. The Context is valid only during the call.
type Actor interface {
	Receive(c *Context)
}

// ReceiveFunc adapts a function to the Actor interface.
type ReceiveFunc func(c *Context)

// Receive calls f(c).
func (f ReceiveFunc) Receive(c *Context) { f(c) }

// Producer makes a fresh Actor instance: once at spawn and again at each
// restart, so that a restarted actor starts from clean state.
type Producer func() Actor

// Lifecycle messages, delivered to Receive like any other message.
type (
	// Started is the first message of every instance, after spawn and
	// after each restart.
	Started struct{}
	// Stopping is delivered when the actor begins to stop, before its
	// children are stopped.
	Stopping struct{}
	// Stopped is the last message an actor receives, after all of its
	// children have stopped.
	Stopped struct{}
	// Restarting is delivered to the failed instance before it is replaced.
	Restarting struct{}
	// Terminated tells a watcher that the watched actor has stopped.
	Terminated struct {
		PID PID
	}
)
