// Package actor is dchan's actor runtime: spawn actors, send them messages,
// make requests, supervise failures and shut everything down. Every named
// channel of dchan is an actor of this package; advanced users may use it
// directly.
//
// # Actors and PIDs
//
// An Actor has one method, Receive(*Context), called for one message at a
// time. A PID{Node, ID} names an actor anywhere in the cluster; it is a plain
// comparable value. A System owns the actors of one node:
//
//	sys, _ := actor.NewSystem(actor.WithNode("n1"))
//	pid, _ := sys.Spawn(func() actor.Actor { return &counter{} })
//	_ = sys.Send(ctx, pid, Inc{})
//	reply, err := sys.Request(ctx, pid, Get{})
//	_ = sys.Shutdown(ctx)
//
// Every actor receives Started first and Stopped last; Stopping and
// Restarting mark the other transitions. A watcher receives Terminated when
// the actor it watches stops.
//
// # Delivery
//
// Each actor has a bounded mailbox (WithMailboxSize). Send blocks while the
// mailbox is full, so a slow actor slows its senders instead of letting
// memory grow (backpressure); ctx bounds the wait. Messages from one sender
// to one actor are processed in send order. Messages that cannot be
// delivered (no such actor, actor stopped, request already timed out) go to
// dead letters: counted by DeadLetters and observable with
// WithDeadLetterHandler. An actor spawned WithFilter refuses the messages
// its filter rejects before they are queued: the send fails with
// ErrRejected and the message is not a dead letter. PIDs of other nodes
// are handed to the Remote the node installs with SetRemote; this package
// has no networking.
//
// # Stopping
//
// Stop is graceful: the actor accepts nothing new, processes what is queued,
// stops its children and receives Stopped. Poison is immediate: after the
// current message, the rest of the queue goes to dead letters. Shutdown
// stops every actor, children before parents, and waits for every goroutine
// the System started; it is idempotent and bounded by its context.
//
// # Supervision
//
// A panic in Receive is recovered; the actor's mailbox is suspended and the
// failure goes to the parent's SupervisorStrategy (top-level actors: the
// System's guardian, WithGuardian). The strategy restarts, resumes, stops or
// escalates. A restart replaces the instance through its Producer and keeps
// the mailbox: only the message being processed is lost. Package supervisor
// provides OneForOne and AllForOne strategies with restart windows and
// backoff.
//
// # Goroutines
//
// An idle actor owns no goroutine. When a message arrives for an idle actor
// the System hands the run of its mailbox to one of its idle worker
// goroutines, or starts a new one; the run ends when the mailbox is empty
// and yields after every 300 messages (WithThroughput) so that busy actors
// share the processor. A worker whose run ended waits for the next one
// unless enough workers (GOMAXPROCS) already wait, so the number of idle
// goroutines is bounded by the System, not by its actors. Shutdown stops the
// idle workers and waits for every run. Delayed restarts run from the
// strategy's clock. An actor whose mailbox grew to its whole capacity has a
// timer (WithTrimAfter, 10 s by default) whose function only queues a
// system message: the actor's next run lets the large ring go if nothing
// was pushed since the previous look.
//
// An actor that implements Eager is offered messages on the sender's
// goroutine first, whenever it is idle with an empty mailbox: one sent
// alone, or the messages of a TrySendManyFrom in order. Its TryReceive
// takes each without a run (dchan's channel receivers put it straight into
// the user's buffered channel) or declines it; a declined message, and
// what follows it, is queued as usual. The offer follows the same rules as
// a run, so Receive and TryReceive never overlap and each sender's order
// holds; a panic in TryReceive is supervised like one in Receive.
//
// Nothing in this package uses package-level state: Systems are
// independent.
package actor
