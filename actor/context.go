package actor

import (
	"context"
	"fmt"
)

// Context is what an actor sees while it handles a message: the message, its
// sender, and the operations an actor may perform. It is valid only during
// the Receive call that was given it; do not keep it or share it with other
// goroutines.
type Context struct {
	p       *process
	message any
	sender  PID
}

// Message returns the message being handled.
func (c *Context) Message() any { return c.message }

// Sender returns the PID that sent the message, or the zero PID.
func (c *Context) Sender() PID { return c.sender }

// Self returns the actor's own PID.
func (c *Context) Self() PID { return c.p.pid }

// Parent returns the supervising actor's PID, or the zero PID for a
// top-level actor.
func (c *Context) Parent() PID {
	if c.p.parent == nil {
		return PID{}
	}
	return c.p.parent.pid
}

// System returns the actor system the actor lives in.
func (c *Context) System() *System { return c.p.sys }

// Context returns a context.Context that is cancelled when the actor stops
// (or is poisoned). Blocking work inside Receive should honour it.
func (c *Context) Context() context.Context { return c.p.ctx }

// Send sends msg to the actor at to, with this actor as the sender. It blocks
// while the target's mailbox is full, until the actor itself is stopped.
func (c *Context) Send(to PID, msg any) error {
	return c.p.sys.send(c.p.ctx, to, c.p.pid, msg)
}

// Respond sends msg to the sender of the message being handled (for a
// Request, it completes the request). Without a sender the response goes to
// dead letters and ErrNoSender is returned.
func (c *Context) Respond(msg any) error {
	if c.sender.IsZero() {
		c.p.sys.deadLetter(PID{}, c.p.pid, msg, ErrNoSender)
		return ErrNoSender
	}
	return c.p.sys.send(c.p.ctx, c.sender, c.p.pid, msg)
}

// Spawn starts a child actor supervised by this actor.
func (c *Context) Spawn(p Producer, opts ...SpawnOption) (PID, error) {
	return c.p.sys.spawn(c.p, "", p, opts)
}

// SpawnNamed starts a child actor with the ID "<self>/<name>".
func (c *Context) SpawnNamed(name string, p Producer, opts ...SpawnOption) (PID, error) {
	if err := validName(name); err != nil {
		return PID{}, err
	}
	return c.p.sys.spawn(c.p, name, p, opts)
}

// Children returns this actor's live children.
func (c *Context) Children() []PID { return c.p.Children() }

// Stop stops the actor at pid gracefully (see System.Stop) without waiting
// for it: Stop(c.Self()) lets the actor finish what is queued, then stop.
func (c *Context) Stop(pid PID) error {
	p, err := c.p.sys.local(pid)
	if err != nil {
		return err
	}
	p.stopGracefully()
	return nil
}

// Poison stops the actor at pid at once (see System.Poison) without waiting.
func (c *Context) Poison(pid PID) error {
	p, err := c.p.sys.local(pid)
	if err != nil {
		return err
	}
	p.poison()
	return nil
}

// Watch asks for a Terminated message when the actor at pid stops. If it has
// already stopped (or never existed), Terminated arrives at once.
func (c *Context) Watch(pid PID) error {
	if pid.Node != c.p.sys.node {
		return fmt.Errorf("watch %v: %w", pid, ErrNotLocal)
	}
	target := c.p.sys.table.get(pid.ID)
	if target == nil || !target.addWatcher(c.p) {
		c.p.mb.PushSystem(sysTerminated{pid: pid})
	}
	return nil
}

// Unwatch cancels a Watch.
func (c *Context) Unwatch(pid PID) {
	if target := c.p.sys.table.get(pid.ID); target != nil && pid.Node == c.p.sys.node {
		target.removeWatcher(c.p)
	}
}
