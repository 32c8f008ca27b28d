package registry

import (
	"testing"

	"go.uber.org/goleak"
)

// A test that kills a leader may leave a Raft future that Raft never
// answers (it shuts down with the future queued); the goroutine
// Registry.waitFuture left waiting for it stays blocked by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dchan-io/dchan/registry.(*Registry).waitFuture.func1"))
}
