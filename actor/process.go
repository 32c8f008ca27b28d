package actor

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/mailbox"
)

// envelope is a user message with its sender. The mailbox stores envelopes by
// value, so queuing one does not allocate.
type envelope struct {
	msg    any
	sender PID
}

// System messages, always processed before user messages.
type (
	sysStarted    struct{}
	sysStop       struct{ graceful bool }
	sysGrown      struct{} // the mailbox allocated its whole capacity
	sysTrim       struct{} // the trim timer fired
	sysRestart    struct{}
	sysResume     struct{}
	sysFailure    struct{ f Failure }
	sysTerminated struct{ pid PID }
)

const (
	alive int32 = iota
	stopping
	stopped
)

// process is a local actor: its mailbox, its current instance and its place
// in the supervision tree. Fields marked "runner" are touched only by the
// goroutine that is running the mailbox, one at a time.
type process struct {
	sys      *System
	pid      PID
	parent   *process // nil for top-level actors
	producer Producer
	strategy SupervisorStrategy // supervises this process's children
	mb       *mailbox.Mailbox[envelope]
	filter   func(msg any) error // WithFilter's, or nil
	ctx      context.Context
	cancel   context.CancelFunc
	stats    RestartStats
	done     chan struct{} // closed once fully stopped

	actor    Actor       // runner
	eager    Eager       // runner: actor, if it is Eager
	c        Context     // runner
	draining bool        // runner: stop once the user queue is empty
	trim     *time.Timer // runner: asks for a Trim of a grown mailbox

	state atomic.Int32 // alive, stopping, stopped; written under mu

	// inline says whether the current instance is Eager: senders read it
	// to skip offering messages to one that is not.
	inline atomic.Bool
	take   func(envelope) bool // offerInline, made once

	mu       sync.Mutex
	children map[string]*process
	watchers map[*process]struct{}
}

var _ mailbox.Invoker[envelope] = (*process)(nil)

// refuse applies the actor's filter to msg: an error wrapping ErrRejected
// if the actor does not accept it.
func (p *process) refuse(msg any) error {
	if p.filter == nil {
		return nil
	}
	if err := p.filter(msg); err != nil {
		return fmt.Errorf("send to %v: %w: %w", p.pid, ErrRejected, err)
	}
	return nil
}

// InvokeUser implements mailbox.Invoker.
func (p *process) InvokeUser(e envelope) {
	if p.stateIs(stopped) {
		p.sys.deadLetter(p.pid, e.sender, e.msg, ErrStopped)
		return
	}
	p.invoke(e.msg, e.sender)
	if p.draining && p.mb.Len() == 0 {
		p.stop(true)
	}
}

// InvokeSystem implements mailbox.Invoker.
func (p *process) InvokeSystem(msg any) {
	if p.stateIs(stopped) {
		return
	}
	switch m := msg.(type) {
	case sysStarted:
		p.invoke(Started{}, PID{})
	case sysStop:
		if !m.graceful || p.mb.Len() == 0 {
			p.stop(m.graceful)
		} else {
			p.draining = true
		}
	case sysRestart:
		p.restart()
	case sysResume:
		p.mb.Resume()
	case sysFailure:
		p.strategy.HandleFailure(p, m.f)
	case sysTerminated:
		p.invoke(Terminated{PID: m.pid}, PID{})
	case sysGrown:
		p.armTrim()
	case sysTrim:
		if !p.mb.Trim() && p.mb.Grown() {
			p.armTrim() // used since the last look, or not empty: look again later
		}
	}
}

// armTrim asks for a sysTrim after the System's trim interval
// (WithTrimAfter): a look at a grown mailbox, whose whole-capacity ring
// goes once nothing was pushed since the previous look and it is empty
// (mailbox.Mailbox.Trim); runner.
func (p *process) armTrim() {
	d := p.sys.cfg.trimAfter
	if p.trim == nil {
		p.trim = time.AfterFunc(d, func() { p.mb.PushSystem(sysTrim{}) })
		return
	}
	p.trim.Reset(d)
}

// invoke calls Receive; a panic fails the actor and goes to its supervisor.
func (p *process) invoke(msg any, sender PID) {
	defer func() {
		if r := recover(); r != nil {
			p.fail(&PanicError{Value: r, Stack: debug.Stack()}, msg)
		}
	}()
	p.c.message, p.c.sender = msg, sender
	p.actor.Receive(&p.c)
	p.c.message, p.c.sender = nil, PID{}
}

// invokeQuietly calls Receive for a lifecycle message outside supervision
// (Stopping, Stopped, Restarting): a panic there is logged, not supervised.
func (p *process) invokeQuietly(msg any) {
	defer func() {
		if r := recover(); r != nil {
			p.sys.log.Error("actor panicked in lifecycle message",
				zap.Stringer("pid", p.pid), zap.Any("message", msg), zap.Any("panic", r))
		}
	}()
	p.c.message, p.c.sender = msg, PID{}
	p.actor.Receive(&p.c)
	p.c.message = nil
}

// fail suspends the mailbox and hands the failure to the supervisor.
func (p *process) fail(reason error, msg any) {
	p.mb.Suspend()
	p.sys.log.Debug("actor failed", zap.Stringer("pid", p.pid), zap.Error(reason))
	f := Failure{Child: p.pid, Reason: reason, Message: msg, Restarts: &p.stats}
	if p.parent != nil {
		p.parent.mb.PushSystem(sysFailure{f: f})
		return
	}
	p.sys.cfg.guardian.HandleFailure(guardian{sys: p.sys, child: p}, f)
}

func (p *process) restart() {
	if !p.stateIs(alive) {
		return
	}
	p.invokeQuietly(Restarting{})
	p.stopChildren(false)
	a, err := produce(p.producer)
	if err != nil {
		p.sys.log.Error("actor producer failed on restart", zap.Stringer("pid", p.pid), zap.Error(err))
		p.stop(false)
		return
	}
	p.setActor(a)
	p.mb.Resume()
	p.invoke(Started{}, PID{})
}

// stop runs on the process's runner: stop children first and wait for them,
// then deliver Stopped, unregister, report leftovers as dead letters and tell
// watchers and the parent.
func (p *process) stop(graceful bool) {
	p.mu.Lock()
	if p.state.Load() != alive {
		p.mu.Unlock()
		return
	}
	p.state.Store(stopping)
	p.mu.Unlock()

	p.mb.Close()
	if p.trim != nil {
		p.trim.Stop()
	}
	p.invokeQuietly(Stopping{})
	p.stopChildren(graceful)
	p.invokeQuietly(Stopped{})
	p.cancel()
	p.sys.table.remove(p.pid.ID, p)

	p.mu.Lock()
	p.state.Store(stopped)
	watchers := p.watchers
	p.watchers = nil
	p.mu.Unlock()

	for e, ok := p.mb.Pop(); ok; e, ok = p.mb.Pop() {
		p.sys.deadLetter(p.pid, e.sender, e.msg, ErrStopped)
	}
	for w := range watchers {
		w.mb.PushSystem(sysTerminated{pid: p.pid})
	}
	if p.parent != nil {
		p.parent.mu.Lock()
		delete(p.parent.children, p.pid.ID)
		p.parent.mu.Unlock()
	} else {
		p.sys.removeTop(p)
	}
	p.setActor(nil)
	close(p.done)
}

// stopChildren stops every child and waits until each has fully stopped.
func (p *process) stopChildren(graceful bool) {
	p.mu.Lock()
	children := make([]*process, 0, len(p.children))
	for _, c := range p.children {
		children = append(children, c)
	}
	p.mu.Unlock()
	for _, c := range children {
		if graceful {
			c.stopGracefully()
		} else {
			c.poison()
		}
	}
	for _, c := range children {
		<-c.done
	}
}

// stopGracefully refuses new messages and stops once the queue is drained.
func (p *process) stopGracefully() {
	p.mb.Close()
	p.mb.PushSystem(sysStop{graceful: true})
}

// poison stops the process after its current message.
func (p *process) poison() {
	p.mb.Close()
	p.cancel()
	p.mb.PushSystem(sysStop{})
}

// setActor installs the actor instance a (nil once stopped); runner.
func (p *process) setActor(a Actor) {
	p.actor = a
	p.eager, _ = a.(Eager)
	p.inline.Store(p.eager != nil)
}

// tryInline offers msgs to an Eager actor's TryReceive, as the mailbox's
// runner, and returns how many it took (see mailbox.TryInline).
func (p *process) tryInline(msgs []envelope) int {
	if !p.inline.Load() {
		return 0
	}
	return p.mb.TryInline(msgs, p.take)
}

// offerInline is the mailbox's take for tryInline; it runs as the runner.
// A panic in TryReceive is a panic in the actor: the message counts as
// taken (as one Receive panicked on) and the supervisor decides, as for
// Receive.
func (p *process) offerInline(e envelope) (took bool) {
	if p.eager == nil || !p.stateIs(alive) {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			p.fail(&PanicError{Value: r, Stack: debug.Stack()}, e.msg)
			took = true
		}
	}()
	return p.eager.TryReceive(e.msg, e.sender)
}

func (p *process) stateIs(s int32) bool { return p.state.Load() == s }

func (p *process) addWatcher(w *process) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load() == stopped {
		return false
	}
	if p.watchers == nil {
		p.watchers = make(map[*process]struct{})
	}
	p.watchers[w] = struct{}{}
	return true
}

func (p *process) removeWatcher(w *process) {
	p.mu.Lock()
	delete(p.watchers, w)
	p.mu.Unlock()
}

func (p *process) addChild(c *process) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load() != alive {
		return ErrStopped
	}
	if p.children == nil {
		p.children = make(map[string]*process)
	}
	p.children[c.pid.ID] = c
	return nil
}

func (p *process) child(pid PID) *process {
	if pid.Node != p.pid.Node {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.children[pid.ID]
}

// Children implements Supervisor.
func (p *process) Children() []PID {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PID, 0, len(p.children))
	for _, c := range p.children {
		out = append(out, c.pid)
	}
	return out
}

// RestartChildren implements Supervisor.
func (p *process) RestartChildren(pids ...PID) {
	for _, pid := range pids {
		if c := p.child(pid); c != nil {
			c.mb.PushSystem(sysRestart{})
		}
	}
}

// StopChildren implements Supervisor.
func (p *process) StopChildren(pids ...PID) {
	for _, pid := range pids {
		if c := p.child(pid); c != nil {
			c.poison()
		}
	}
}

// ResumeChildren implements Supervisor.
func (p *process) ResumeChildren(pids ...PID) {
	for _, pid := range pids {
		if c := p.child(pid); c != nil {
			c.mb.PushSystem(sysResume{})
		}
	}
}

// EscalateFailure implements Supervisor: the supervisor fails in turn.
func (p *process) EscalateFailure(f Failure) { p.fail(f.Reason, f.Message) }

// guardian supervises top-level actors on behalf of the System. Escalating
// past it stops the failed actor.
type guardian struct {
	sys   *System
	child *process
}

func (g guardian) Children() []PID { return g.sys.topLevel() }

func (g guardian) RestartChildren(pids ...PID) {
	for _, pid := range pids {
		if c := g.sys.top(pid); c != nil {
			c.mb.PushSystem(sysRestart{})
		}
	}
}

func (g guardian) StopChildren(pids ...PID) {
	for _, pid := range pids {
		if c := g.sys.top(pid); c != nil {
			c.poison()
		}
	}
}

func (g guardian) ResumeChildren(pids ...PID) {
	for _, pid := range pids {
		if c := g.sys.top(pid); c != nil {
			c.mb.PushSystem(sysResume{})
		}
	}
}

func (g guardian) EscalateFailure(f Failure) {
	g.sys.log.Warn("failure escalated past the root: stopping actor",
		zap.Stringer("pid", g.child.pid), zap.Error(f.Reason))
	g.child.poison()
}

// produce calls a Producer, turning a panic or a nil Actor into an error.
func produce(p Producer) (a Actor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	if a = p(); a == nil {
		return nil, ErrInvalidOption
	}
	return a, nil
}
