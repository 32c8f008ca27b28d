package actor

import (
	"sync"
	"time"
)

// Failure describes an actor whose Receive panicked (or whose child escalated
// a failure to it). The failed actor's mailbox is suspended until its
// supervisor restarts, resumes or stops it; the message it was processing is
// lost (at-most-once), the messages queued behind it are not.
type Failure struct {
	Child    PID           // the failed actor
	Reason   error         // *PanicError for a panic
	Message  any           // the message being processed, if any
	Restarts *RestartStats // the child's failure history, kept across restarts
}

// SupervisorStrategy decides what happens to a failed child. HandleFailure
// runs on the supervising actor's goroutine (for top-level actors, on the
// failed actor's goroutine) and must not block; it may act later, for example
// from a timer, since every Supervisor method is safe from any goroutine.
//
// The supervisor package provides OneForOne and AllForOne strategies.
type SupervisorStrategy interface {
	HandleFailure(s Supervisor, f Failure)
}

// Supervisor is the view of a supervising actor that a strategy acts on.
// Every method is asynchronous and safe for concurrent use; PIDs that are not
// children of the supervisor are ignored.
type Supervisor interface {
	// Children returns the supervisor's live children.
	Children() []PID
	// RestartChildren replaces each child's actor with a fresh instance
	// from its Producer and resumes its mailbox. Queued messages are kept.
	RestartChildren(pids ...PID)
	// StopChildren stops each child at once; queued messages go to dead
	// letters.
	StopChildren(pids ...PID)
	// ResumeChildren resumes each child's mailbox with the same instance.
	ResumeChildren(pids ...PID)
	// EscalateFailure fails the supervisor itself with f's reason, handing
	// the decision to its own supervisor.
	EscalateFailure(f Failure)
}

// RestartStats is a child's failure history, used by strategies to bound
// restarts within a window. It survives restarts of the child. Safe for
// concurrent use.
type RestartStats struct {
	mu       sync.Mutex
	failures []time.Time
}

// Fail records a failure at now.
func (r *RestartStats) Fail(now time.Time) {
	r.mu.Lock()
	r.failures = append(r.failures, now)
	r.mu.Unlock()
}

// FailuresSince returns the number of failures recorded at or after t and
// forgets older ones.
func (r *RestartStats) FailuresSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.failures) && r.failures[i].Before(t) {
		i++
	}
	r.failures = append(r.failures[:0], r.failures[i:]...)
	return len(r.failures)
}

// Count returns the number of failures recorded and not forgotten.
func (r *RestartStats) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failures)
}

// Reset forgets all failures.
func (r *RestartStats) Reset() {
	r.mu.Lock()
	r.failures = nil
	r.mu.Unlock()
}

// defaultStrategy supervises actors when no strategy was configured: restart
// the failed actor at once, but stop it after 10 failures within 10 seconds.
// The supervisor package offers configurable strategies.
type defaultStrategy struct{}

func (defaultStrategy) HandleFailure(s Supervisor, f Failure) {
	now := time.Now()
	f.Restarts.Fail(now)
	if f.Restarts.FailuresSince(now.Add(-10*time.Second)) > 10 {
		s.StopChildren(f.Child)
		return
	}
	s.RestartChildren(f.Child)
}
