package actor

// Actor is the behaviour behind a PID. Receive is called for each message,
// one at a time, never concurrently: an actor needs no locks for its own
// state. The Context is valid only during the call.
type Actor interface {
	Receive(c *Context)
}

// Eager is implemented by an Actor that can often take a message at once,
// without blocking: a hand-off to a buffered channel with room, say. When
// such an actor is idle and its mailbox empty, every local send of one
// message (System.Send, SendFrom, TrySendFrom, and Context's Send, Respond
// and Request) offers it to TryReceive on the sender's goroutine instead
// of queuing it and starting a run: one goroutine switch fewer per
// message. TrySendManyFrom offers its messages the same way, in order,
// until TryReceive declines one; the rest are queued.
//
// TryReceive runs under the same rules as Receive: never concurrently with
// it or with itself, never before Started or after Stopping, and not while
// the actor is suspended. It reports whether it took msg, and must not
// block: it may run on a transport's goroutine that holds the lock of a
// stream. A panic in it is handled as one in Receive (the message counts
// as taken and the supervisor decides). When it declines, msg is queued
// and reaches Receive as usual, so an Eager actor must be able to take
// every message through Receive too. Order per sender holds: TryReceive is
// offered a message only when nothing is queued ahead of it.
type Eager interface {
	Actor
	TryReceive(msg any, sender PID) bool
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
