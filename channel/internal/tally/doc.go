// Package tally is a node's value counters: what it sent, delivered,
// failed (by Reason), dropped and received, in total, per channel name and
// per peer, and how long acceptances took. channel.Node.Stats reads them.
//
// Counting takes no lock: a name's or peer's Counters are made once and
// then only atomically incremented, each hot count on a cache line of its
// own. A name's Counters may be held (Tally.Hold) by the routers and
// receivers that count into them often; held Counters are never forgotten.
//
// A program that uses a name per request must not grow without bound, so
// the node sweeps now and then (Tally.Sweep): Counters that no one holds
// and that did not change for ForgetAfter sweeps in a row are forgotten,
// and start again from zero if the name is used again. Holders and Quiet
// are the two halves of that rule for anything else a sweeper forgets
// (the node's routers, its wire counters).
//
// # Goroutines
//
// None. The caller runs Sweep, on one goroutine at a time.
package tally
