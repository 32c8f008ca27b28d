package raftrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// AppendEntriesPipeline opens a long-lived AppendEntriesPipeline stream to
// target. Requests are sent by the caller's goroutine; one receive
// goroutine per pipeline reads the responses, which the peer sends in
// request order, and delivers the completed futures on Consumer.
//
// As in raft's NetworkTransport, at most MaxInFlight requests are sent and
// unanswered: AppendEntries blocks (back-pressure) until the oldest one is
// answered.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if t.maxInFlight < 2 {
		return nil, raft.ErrPipelineReplicationNotSupported
	}
	if t.ctx.Err() != nil {
		return nil, fmt.Errorf("raftrpc: pipeline to %s: %w", target, ErrTransportShutdown)
	}
	ctx, cancel := context.WithCancelCause(t.ctx)
	setup := time.AfterFunc(t.timeout, func() { cancel(errTimeout) })
	cc, err := t.conn(ctx, target)
	var stream grpc.ClientStream
	if err == nil {
		stream, err = cc.NewStream(ctx, pipelineStreamDesc(), fullMethod(methodAppendEntriesPipeline), rawcodec.CallOption())
	}
	if !setup.Stop() && err == nil {
		err = errTimeout
	}
	if err != nil {
		cancel(nil)
		return nil, t.callErr(methodAppendEntriesPipeline, target, err)
	}

	p := &pipeline{
		t:          t,
		target:     target,
		stream:     stream,
		ctx:        ctx,
		cancel:     cancel,
		inflight:   make(chan *appendFuture, t.maxInFlight-2),
		doneCh:     make(chan raft.AppendFuture, t.maxInFlight-2),
		shutdownCh: make(chan struct{}),
		ended:      make(chan struct{}),
		exited:     make(chan struct{}),
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel(ErrTransportShutdown)
		return nil, fmt.Errorf("raftrpc: pipeline to %s: %w", target, ErrTransportShutdown)
	}
	t.pipelines[p] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer close(p.exited)
		p.receive()
	}()
	return p, nil
}

// pipeline is a raft.AppendPipeline over one bidi stream.
type pipeline struct {
	t      *Transport
	target raft.ServerAddress
	stream grpc.ClientStream
	ctx    context.Context
	cancel context.CancelCauseFunc

	inflight   chan *appendFuture     // sent, awaiting a response
	doneCh     chan raft.AppendFuture // answered, for Consumer
	shutdownCh chan struct{}
	closeOnce  sync.Once
	ended      chan struct{} // closed when a future ended the pipeline (see receive)
	exited     chan struct{} // closed when receive returns
}

// AppendEntries sends args and returns its future once it is in flight.
// It must not be called concurrently (raft calls it from one goroutine).
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	case <-p.ended:
		return nil, ErrPipelineShutdown
	default:
	}
	data, err := encodeMessage(nil, args)
	if err != nil {
		return nil, err
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{}), shutdownCh: p.shutdownCh}

	// SendMsg blocks while the peer's flow-control window is full; a peer
	// that stops reading fails the pipeline after the timeout.
	watchdog := time.AfterFunc(p.t.timeout, func() { p.cancel(errTimeout) })
	err = p.stream.SendMsg(&rawcodec.Frame{Data: data})
	watchdog.Stop()
	if err != nil {
		select {
		case <-p.ended:
			// The stream failed because a response ended the pipeline
			// (closed before the cancel): the same error as past ended.
			return nil, ErrPipelineShutdown
		default:
		}
		return nil, p.err(err)
	}

	select {
	case p.inflight <- f:
		return f, nil
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	case <-p.ended:
		return nil, ErrPipelineShutdown
	}
}

// Consumer returns the channel of answered futures, in request order.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close cancels the stream, fails what is in flight and waits for the
// receive goroutine. It is idempotent.
func (p *pipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.cancel(ErrPipelineShutdown)
		<-p.exited
		p.t.mu.Lock()
		delete(p.t.pipelines, p)
		p.t.mu.Unlock()
	})
	return nil
}

// receive reads one response per in-flight future, in order.
//
// A future that failed, was refused (Success false) or carries a newer
// term ends the pipeline: raft's consumer (pipelineDecode) returns on
// reading it and never reads Consumer again, while raft's sender may still
// be in AppendEntries. With the default MaxInFlight of 2 both channels are
// unbuffered, so this goroutine would wait forever to deliver the next
// future and the sender forever to hand over its request, and
// pipelineReplicate, which closes the pipeline only after its send loop
// ends, would never return: the follower would get no more entries while
// heartbeats kept it from calling an election, and raft's Shutdown would
// hang (hashicorp/raft#612; its NetworkTransport has the same hazard).
// Here, once such a future is delivered, ended is closed: AppendEntries
// fails instead of waiting, and raft falls back to plain RPCs.
func (p *pipeline) receive() {
	for {
		select {
		case f := <-p.inflight:
			f.err = p.recv(f.resp)
			close(f.done)
			select {
			case p.doneCh <- f:
			case <-p.shutdownCh:
				return
			}
			if f.err != nil || !f.resp.Success || f.resp.Term > f.args.Term {
				close(p.ended)
				p.cancel(errPipelineEnded)
				p.failInflight()
				return
			}
		case <-p.shutdownCh:
			return
		}
	}
}

// failInflight completes the futures still in flight once the pipeline
// has ended; they are not delivered (nobody reads Consumer any more).
func (p *pipeline) failInflight() {
	for {
		select {
		case f := <-p.inflight:
			f.err = fmt.Errorf("raftrpc: pipeline to %s: %w", p.target, errPipelineEnded)
			close(f.done)
		default:
			return
		}
	}
}

// recv reads and decodes the next response into resp.
func (p *pipeline) recv(resp *raft.AppendEntriesResponse) error {
	watchdog := time.AfterFunc(p.t.timeout, func() { p.cancel(errTimeout) })
	defer watchdog.Stop()
	var in rawcodec.Frame
	if err := p.stream.RecvMsg(&in); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return p.err(err)
	}
	remoteMsg, err := decodeResponse(in.Data, resp)
	if err != nil {
		// The stream's framing is lost: fail it, and so every later future.
		p.cancel(err)
		return fmt.Errorf("raftrpc: pipeline response from %s: %w", p.target, err)
	}
	if remoteMsg != "" {
		return fmt.Errorf("raftrpc: pipeline to %s: %w", p.target, remoteError(remoteMsg))
	}
	return nil
}

// err wraps a stream error, naming the cause when the pipeline was
// cancelled (closed, timed out, transport shut down).
func (p *pipeline) err(err error) error {
	if cause := context.Cause(p.ctx); cause != nil {
		if errors.Is(cause, context.Canceled) && p.t.ctx.Err() != nil {
			cause = ErrTransportShutdown
		}
		return fmt.Errorf("raftrpc: pipeline to %s: %w (%v)", p.target, cause, err)
	}
	return fmt.Errorf("raftrpc: pipeline to %s: %w", p.target, err)
}

// appendFuture is a raft.AppendFuture completed by the receive goroutine.
type appendFuture struct {
	start      time.Time
	args       *raft.AppendEntriesRequest
	resp       *raft.AppendEntriesResponse
	done       chan struct{} // closed once err is set
	err        error
	shutdownCh <-chan struct{}
}

// Error blocks until the response arrived or the pipeline closed.
func (f *appendFuture) Error() error {
	select {
	case <-f.done:
		return f.err
	default:
	}
	select {
	case <-f.done:
		return f.err
	case <-f.shutdownCh:
		return ErrPipelineShutdown
	}
}

func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
