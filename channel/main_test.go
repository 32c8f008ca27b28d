package channel

import (
	"testing"

	"go.uber.org/goleak"
)

// See registry's TestMain: a Raft future left unanswered by a shutdown
// keeps the goroutine waiting for it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dchan-io/dchan/registry.(*Registry).waitFuture.func1"))
}
