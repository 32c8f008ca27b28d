// Package pump moves what a user writes to a Go channel on to a Sink: the
// goroutine behind every send channel that channel.Send, SendOf and
// Publish return.
//
// A Pump takes the values that wait in its channel in batches (up to the
// channel's buffer, at most 128 at once) and hands each batch to its Sink
// in order; a value the Sink wants routed again (Retry) goes before new
// ones. Close flushes: what was written before it is routed, the Sink
// settles what it has in flight (Settle), and the pump ends. If the life
// context given to New ends first (the node closes), the pump fails what
// it holds with the error New was given, instead of routing it.
//
// # Goroutines
//
// Run is the pump's goroutine; its owner starts it and waits for it. It
// returns after Close's flush, once the user closes the channel, or soon
// after the life context ends.
package pump
