package mailbox

// Dispatcher starts mailbox runs. Schedule must eventually call fn exactly
// once; it must not call it synchronously on the pusher's stack unless the
// caller can tolerate that (the default dispatchers never do).
type Dispatcher interface {
	Schedule(fn func())
}

// Invoker is what a mailbox delivers to: its owner, usually an actor process.
// A mailbox calls these methods from one goroutine at a time.
type Invoker[T any] interface {
	// InvokeSystem handles one system message.
	InvokeSystem(msg any)
	// InvokeUser handles one user message.
	InvokeUser(msg T)
}

// GoDispatcher starts every run on a new goroutine. It does not track them;
// owners that must wait for their runs (the actor system does) wrap it.
type GoDispatcher struct{}

// Schedule runs fn on a new goroutine.
func (GoDispatcher) Schedule(fn func()) { go fn() }
