package actor

import "context"

// Remote carries messages to actors on other nodes. A System has none until
// the node installs one with SetRemote (the remoting package implements it);
// sends to other nodes fail with ErrNoRemote until then.
//
// Send must honour ctx and must not call back into the System while holding
// a lock. from is the zero PID when the message has no sender.
type Remote interface {
	Send(ctx context.Context, to, from PID, msg any) error
}
