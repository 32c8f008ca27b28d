// Package supervisor provides restart strategies for dchan actors.
//
// When an actor's Receive panics, its mailbox is suspended and the failure
// goes to its parent's strategy (for top-level actors, the System's guardian
// strategy). A strategy asks a pure Decider for a Directive:
//
//   - Restart: replace the actor with a fresh instance from its Producer. The
//     mailbox is kept, so messages queued behind the failing one are
//     processed by the new instance; only the message being processed when
//     it failed is lost (at-most-once).
//   - Resume: keep the instance and go on with the next message.
//   - Stop: stop the actor; its queued messages go to dead letters.
//   - Escalate: fail the supervisor itself, handing the decision upwards.
//
// OneForOne applies the directive to the failed child only; AllForOne applies
// Restart and Stop to all of the supervisor's children. Restarts are bounded:
// a child that fails more than n times within a window (WithMaxRestarts; 10
// within 10 seconds by default) is stopped instead. A Backoff (WithBackoff;
// none by default) delays each restart exponentially with jitter; the delay
// is timed by an injectable Clock (WithClock), so tests drive it without
// sleeping.
//
// Use a strategy for top-level actors with actor.WithGuardian, and for an
// actor's children with actor.WithSupervisor.
//
// # Goroutines
//
// The package starts none of its own. A delayed restart runs from the Clock's
// timer (for the real clock, time.AfterFunc); if the supervisor has stopped by
// then the restart is a no-op.
package supervisor
