// Package mailbox implements the queue in front of every dchan actor: a
// bounded multi-producer, single-consumer queue for user messages, a separate
// unbounded queue for system messages that is always drained first, and the
// scheduling that runs the consumer only while there is work.
//
// # Scheduling
//
// A mailbox owns no goroutine while it is idle. Each push flips the mailbox's
// status from idle to running with one compare-and-swap; the pusher that wins
// hands the mailbox's run to the Dispatcher, which runs it on a goroutine of
// its choosing. The run invokes the Invoker for each message, system messages
// first, yields the processor after every Throughput messages
// (runtime.Gosched), and returns once both queues are empty, flipping the
// status back to idle and re-checking the queues so that no message is ever
// stranded.
//
// The Dispatcher decides where runs go. GoDispatcher starts a goroutine per
// run. The actor package's dispatcher hands each run to one of its idle
// worker goroutines, or starts a new worker when none is idle; a worker
// whose run ended waits for the next one (at most GOMAXPROCS workers, and
// at least two, wait idle), and the System waits for all of them on
// shutdown.
//
// # Inline delivery
//
// TryInline lets a pusher act as the run for as long as it takes to hand
// over its messages, when the mailbox is started, open, not suspended,
// idle and both queues are empty:
// it wins the same compare-and-swap a run does, offers the messages to the
// owner's non-blocking take, and flips the status back, scheduling a run if
// pushes arrived meanwhile. Nothing is ahead of the offered messages, so
// order per pusher holds; a message take declines is the pusher's to push.
//
// # Backpressure
//
// The user queue is bounded. Push blocks while it is full and returns when a
// slot frees, when ctx ends, or when the mailbox is closed. Blocked pushers
// are woken in batches: once the consumer has freed an eighth of the
// capacity (at most 512 slots) since the last wake, or when its run ends,
// so that a pusher and the consumer do not take turns one message at a
// time. TryPush and TryPushMany never block; TryPush reports ErrFull. Len,
// Cap and Free let a flow-control layer grant credit from the free space.
//
// # Memory
//
// A mailbox does not allocate its capacity up front. Its user queue starts
// on a ring of 64 slots and moves, the first time more than 64 messages are
// queued, to a ring of the whole capacity (rounded up to a power of two);
// the small ring is let go once the consumer has emptied it. The move
// takes no lock: the producer that finds the small ring full links the
// large one behind it and seals the small one, and until the consumer has
// emptied the small ring the two hold no more than the capacity between
// them. So an actor that never builds a backlog costs a few kilobytes
// whatever its capacity.
//
// The way back is the owner's to ask for: WithGrowHook tells it when a
// mailbox grew, and Trim, called by the consumer, lets the large ring go
// if it is empty and nothing was pushed since the previous call. The actor
// package calls it every 10 seconds for a grown mailbox, so an actor's
// memory falls back 10 to 20 seconds after its last message. The
// consumer seals the empty large ring with one compare-and-swap of its
// tail from its head, which fails if a producer took a ticket meanwhile,
// and producers move on to the new small ring as they move to a large one.
//
// # Supervision
//
// Suspend stops the delivery of user messages (system messages still flow) so
// that a supervisor can decide what to do with a failed actor; Resume restarts
// delivery. Messages stay queued while the mailbox is suspended.
//
// # Closing
//
// Close rejects further pushes with ErrClosed and wakes blocked pushers. What
// was already queued stays readable with Pop (or Drain), so that the owner can
// process it or report it as dead letters: nothing is dropped silently.
package mailbox
