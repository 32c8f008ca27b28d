// Package reply is the requester's side of channel.Request: the table of
// a node's requests that wait for their answer, and how an answer
// travels.
//
// An answer is a remoting.Tagged value (Message): its tag's first byte
// says whether it is the handler's result or its error's text, the rest
// is the request's correlation. Every answer of a node arrives at its one
// reply receiver, which hands it to the Table (Deliver).
//
// A request is answered at most once, and only by the node it went to:
// any node may learn a request's reply address from the request itself,
// so Deliver takes the sending node (which the transport authenticated)
// and drops an answer from any other. A request whose node the cluster
// declares dead fails at once (FailNode) once that node accepted it; one
// only offered to it fails through its send's outcome instead.
//
// # Goroutines
//
// None. Every method is safe for concurrent use and never blocks.
package reply
