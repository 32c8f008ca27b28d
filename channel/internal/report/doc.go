// Package report tells a handler of failures without making anyone wait
// for it: the node's failure handler (channel.WithFailureHandler).
//
// A Reporter queues what it is given (Report never blocks) and calls the
// handler with each, in order, one at a time, on a goroutine of its own.
// The queue is bounded: past its limit a failure is not queued but
// counted (Unreported) and a warning logged, at most once a second. A
// handler that panics is logged, not the end of the goroutine. Stop
// reports what is queued and waits for the handler, within a context.
//
// # Goroutines
//
// One per Reporter with a handler, from Start to Stop (or to the handler's
// return from the last failure, if Stop's context ended first).
package report
