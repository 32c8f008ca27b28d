package channel

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/report"
)

// maxFailureQueue bounds the failures waiting for the failure handler.
const maxFailureQueue = 4096

// failure is one failed value for the failure handler; a dead letter
// names its target actor instead of a name (resolved when reported).
type failure struct {
	name  string
	value any
	err   error
	to    *actor.PID
}

// newFailureReporter returns the reporter of failures to h (none if nil),
// on a goroutine of its own, so that the value path never waits for it:
// failures queue (up to maxFailureQueue; past that they are counted in
// Stats.FailuresUnreported and logged). A dead letter's name is that of
// the receiver it was sent to, looked up with name when reported.
func newFailureReporter(h func(string, any, error), name func(actor.PID) string, log *zap.Logger) *report.Reporter[failure] {
	if h == nil {
		return report.New[failure](nil, maxFailureQueue, log)
	}
	return report.New(func(f failure) {
		if f.to != nil {
			f.name = name(*f.to)
		}
		h(f.name, f.value, f.err)
	}, maxFailureQueue, log)
}

// reportValues reports each of vals, bare values of name that failed with
// err.
func (n *Node) reportValues(name string, vals []any, err error) {
	for _, v := range vals {
		n.failures.Report(failure{name: name, value: v, err: err})
	}
}

// deadLetter is the failure of a dead letter.
func deadLetter(dl actor.DeadLetter) failure {
	to := dl.To
	return failure{value: dl.Message, to: &to,
		err: fmt.Errorf("%w: a dead letter to %v: %w", ErrGone, dl.To, dl.Reason)}
}

// receiverName returns the name of this node's receiver with actor pid,
// or "".
func (n *Node) receiverName(pid actor.PID) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for r := range n.receivers {
		if r.pid == pid {
			return r.name
		}
	}
	return ""
}
