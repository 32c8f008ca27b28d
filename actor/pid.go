package actor

import "strings"

// PID identifies an actor anywhere in the cluster: the node it lives on and
// its ID on that node. PIDs are plain comparable values: use them as map keys,
// compare them with ==, send them inside messages.
type PID struct {
	Node string
	ID   string
}

// IsZero reports whether p is the zero PID (no actor).
func (p PID) IsZero() bool { return p.Node == "" && p.ID == "" }

// IsReply reports whether p is a reply address made by System.Request: it
// takes exactly one message, the reply, and never blocks its sender.
func (p PID) IsReply() bool { return strings.HasPrefix(p.ID, futurePrefix) }

// String returns "node/id".
func (p PID) String() string { return p.Node + "/" + p.ID }
