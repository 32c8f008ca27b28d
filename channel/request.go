package channel

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/reply"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// Call is how a request made with Request looks to a plain Receive of its
// name: the request, and the Ref to answer it at (with SendTo, or with an
// error through Serve). Serve answers Calls itself.
type Call struct {
	Request any
	ReplyTo Ref
}

// replies is the node's reply receiver and the requests waiting for an
// answer there.
type replies struct {
	*reply.Table
	pid     actor.PID
	answers *remoting.Outcomes // hears of the answers this node sent
}

// startReplies spawns the node's reply receiver.
func (n *Node) startReplies() error {
	rs := &replies{Table: reply.NewTable()}
	// Nobody waits for an answer's acceptance: the requester waits for
	// the answer itself. A failure is only worth a debug line.
	rs.answers = remoting.NewOutcomes(func(vals []any, err error) {
		if err != nil && n.ctx.Err() == nil {
			n.log.Debug("answers not delivered", zap.Int("answers", len(vals)), zap.Error(err))
		}
	})
	// The node's one reply receiver: every Request of this run is
	// answered there, each answer carrying its request's correlation.
	pid, err := n.sys.SpawnNamed(refActorPrefix+randomHex(), func() actor.Actor {
		return replyActor{rs}
	})
	if err != nil {
		return err
	}
	rs.pid = pid
	n.replies = rs
	return nil
}

// replyActor is the reply receiver. It is Eager: an answer is handed to its
// requester on the goroutine that delivers it (rs.answer never blocks), not
// queued for a run of the actor, one goroutine switch fewer per request.
type replyActor struct{ rs *replies }

func (a replyActor) Receive(c *actor.Context) { a.TryReceive(c.Message(), c.Sender()) }

func (a replyActor) TryReceive(msg any, sender actor.PID) bool {
	if t, ok := msg.(remoting.Tagged); ok {
		a.rs.Deliver(t, sender.Node)
	}
	return true
}

// Request sends req to one receiver of name, as a Call, and waits for its
// answer: the value the receiver's Serve handler returned (or that a plain
// Receive user sent to the Call's ReplyTo), which must be a Resp. It fails
// with ctx's error, with an error wrapping ErrHandler if the handler
// failed, ErrNodeLost if the node the request went to is declared dead
// before it answered, ErrNoReceivers if nobody receives name until ctx's
// deadline, or ErrWrongType for an answer of another type. A request is
// delivered at most once and answered at most once; no registry write is
// made for it (the node's one reply receiver takes every answer, each
// carrying 128 random bits of correlation).
func Request[Resp any](ctx context.Context, n *Node, name string, req any) (Resp, error) {
	var zero Resp
	if err := validName(name); err != nil {
		return zero, err
	}
	if n.isClosed() {
		return zero, ErrClosed
	}
	rs := n.replies
	tag := randomHex()
	p := rs.Add(tag)
	defer p.Done()
	call := callMessage(req, n.refOf(rs.pid, tag))
	r := n.acquireRouter(name)
	defer r.release()
	// The request goes as a value of a batch: its acceptance may come up
	// to remoting.AckDelay late, and nobody waits for it, only for the
	// answer, or a refusal (then it goes to another receiver), or the
	// failure of its node. Its outcome is counted when it comes, also
	// after Request returned.
	outcome := make(chan error, 1) // one outcome per attempt, read before the next
	out := remoting.NewOutcomes(func(_ []any, err error) {
		switch {
		case err == nil:
			p.Accepted()
			n.stats.Delivered(r.stats, 1)
		case refused(err):
			n.stats.Refused(1)
		default:
			n.stats.failed(name, true, err, 1)
		}
		outcome <- err
	})
	trying := func(to actor.PID) { p.Trying(to.Node) }
	for {
		if err := r.routeOne(ctx, &r.turn, call, out, trying); err != nil {
			n.stats.failed(name, false, err, 1)
			return zero, fmt.Errorf("channel: request to %q: %w", name, wrongType(err))
		}
		// Its node might have been declared dead before p.node was set:
		// look once now; FailNode tells of a later death.
		if node := p.Node(); node != n.id && !n.isLiveMember(node) {
			return zero, fmt.Errorf("channel: request to %q: %w: %s was declared dead", name, ErrNodeLost, node)
		}
		for waiting := outcome; ; {
			select {
			case err := <-waiting:
				switch {
				case err == nil:
					waiting = nil // accepted: now only the answer counts
					continue
				case !refused(err):
					return zero, fmt.Errorf("channel: request to %q: %w", name, wrongType(err))
				}
			case m := <-p.Answer():
				return answerOf[Resp](name, m)
			case err := <-p.Lost():
				return zero, fmt.Errorf("channel: request to %q: %w", name, err)
			case <-ctx.Done():
				return zero, fmt.Errorf("channel: request to %q: %w", name, ctx.Err())
			case <-n.ctx.Done():
				return zero, ErrClosed
			}
			break // refused, never accepted: another receiver may take it
		}
	}
}

// answerOf turns an answer into Request's result.
func answerOf[Resp any](name string, a reply.Answer) (Resp, error) {
	var zero Resp
	if a.Err != "" {
		return zero, fmt.Errorf("channel: request to %q: %w: %s", name, ErrHandler, a.Err)
	}
	if a.Value == nil {
		return zero, nil
	}
	resp, ok := a.Value.(Resp)
	if !ok {
		return zero, fmt.Errorf("channel: request to %q: %w: the answer is a %T, want %T", name, ErrWrongType, a.Value, zero)
	}
	return resp, nil
}

// serveConcurrency bounds the handlers Serve runs at once.
const serveConcurrency = 64

// Serve answers the requests made to name (with Request) with h: it
// receives them as Receive(name, buf) would, runs h for each, up to 64 at
// once, and sends each answer, or h's error, back to its requester. h's
// ctx ends when the node closes. Serve's receiver refuses what it cannot
// answer before accepting it: a request that is not a Req, or a value
// that is not a request at all, fails its sender with ErrWrongType.
//
// Close with the returned CloseFunc: the receiver is closed as Receive's
// is, the requests it accepted are answered, then it returns.
func Serve[Req, Resp any](n *Node, name string, buf int, h func(context.Context, Req) (Resp, error)) (CloseFunc, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOption)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultRegisterTimeout)
	defer cancel()
	in, closeIn, err := n.receive(ctx, name, buf, requestFilter[Req])
	if err != nil {
		return nil, err
	}
	// serveConcurrency handlers take the requests from the receiver's
	// channel themselves: a request wakes one of them, with no hand-off
	// through a dispatching goroutine (a p50 round trip 10–15% shorter).
	done := make(chan struct{})
	var handlers sync.WaitGroup
	for range serveConcurrency {
		handlers.Go(func() {
			for v := range in {
				call, ok := v.(Call) // the filter let only Calls in
				if !ok {
					continue
				}
				n.answer(name, call, func(ctx context.Context) (any, error) {
					req, _ := call.Request.(Req) // the filter let only Reqs (or nil) in
					return h(ctx, req)
				})
			}
		})
	}
	n.wg.Go(func() {
		handlers.Wait()
		close(done)
	})
	return func() error {
		err := closeIn()
		<-done
		return err
	}, nil
}

// requestFilter refuses what is not a Call of a Req (a nil request is let
// in: the zero Req of an interface type).
func requestFilter[Req any](v any) error {
	call, ok := asCall(v).(Call)
	if !ok {
		return fmt.Errorf("%w: got %T, want a request (channel.Call)", ErrWrongType, v)
	}
	if _, ok := call.Request.(Req); !ok && call.Request != nil {
		var want Req
		return fmt.Errorf("%w: a request of type %T, want %T", ErrWrongType, call.Request, want)
	}
	return nil
}

// answer runs h for call and sends its result to call.ReplyTo.
func (n *Node) answer(name string, call Call, h func(context.Context) (any, error)) {
	resp, herr := h(n.ctx)
	m := any(resp)
	switch {
	case call.ReplyTo.tag != "":
		m = reply.Message(call.ReplyTo.tag, resp, herr)
	case herr != nil:
		n.log.Debug("request handler failed, and its Call has no correlation to report it to",
			zap.String("name", name), zap.Error(herr))
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, DefaultDrainTimeout)
	defer cancel()
	if err := n.sendTo(ctx, call.ReplyTo, m, n.replies.answers); err != nil && !errors.Is(err, ErrClosed) {
		n.log.Debug("answer not delivered", zap.String("name", name), zap.Stringer("to", call.ReplyTo), zap.Error(err))
	}
}

// isLiveMember reports whether node is a live member of the cluster in
// this node's replica.
func (n *Node) isLiveMember(node string) bool {
	m, ok := n.reg.State().Member(node)
	return ok && m.Status == registry.Alive
}
