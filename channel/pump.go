package channel

import (
	"context"
	"fmt"
	"sync"
)

// pump moves the values a user writes to a Go channel (a Send, SendOf or
// Publish channel) to a sink that routes them: in batches of what waits,
// then, on close, what is left, and on the node's end it fails what it
// holds. One goroutine per pump, which the node waits for.
type pump[T any] struct {
	n     *Node
	name  string
	in    chan T
	sink  sink
	stop  chan struct{} // closed by close: flush and end
	ended chan struct{} // closed when the pump has ended
	once  sync.Once
	// ctl wakes the pump for anything but a value: a value to route
	// again (the sink's retry), a close (stop), the node's end. One
	// channel, so that a pump waiting for its next value waits on two,
	// not four.
	ctl   chan struct{}
	batch []any // values taken from in, to route
	// conv turns a T into what the sink routes (SendMessageOf's handles
	// into their *Message); nil for any(v).
	conv func(T) any
}

// sink is where a pump's values go.
type sink interface {
	// route hands on every value of batch, in order: bare values and
	// *Message handles. It may keep none of batch's elements' slots.
	route(batch []any)
	// retry returns a value to route again (one a receiver refused while
	// closing), or nil.
	retry() *Message
	// settle waits until the outcomes of the values in flight are known,
	// and returns a value to route again, or nil; it returns nil at once
	// if the node closes (then the pump fails what it holds).
	settle() *Message
	// fail gives up a value, or a *Message's handle, with err.
	fail(v any, err error)
	// done is told when the pump ends.
	done()
}

// flusher is a pump of any type, for the node's shutdown.
type flusher interface {
	close(ctx context.Context) error
}

// pumpFastRun bounds how many batches the pump takes in a row without
// looking at its control channel.
const pumpFastRun = 16

// pumpBatch bounds the values the pump takes from its channel at once and
// routes together.
const pumpBatch = 128

// batchFor returns the most values the pump of a channel with buf takes at
// once: buf, at least 1, at most pumpBatch. Writes block once buf values
// wait in the channel, as its buffer says; the pump holds at most one
// batch besides — the one value it routes, with buf 0 — so its batching
// loosens backpressure by less than buf.
func batchFor(buf int) int { return min(max(buf, 1), pumpBatch) }

// startPump starts a pump of a channel with buf into sink; the node
// tracks it until it ends.
func startPump[T any](n *Node, name string, buf int, sink sink, conv func(T) any) (*pump[T], error) {
	p := &pump[T]{
		conv:  conv,
		n:     n,
		name:  name,
		in:    make(chan T, buf),
		sink:  sink,
		stop:  make(chan struct{}),
		ended: make(chan struct{}),
		ctl:   make(chan struct{}, 1),
		batch: make([]any, 0, batchFor(buf)),
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	n.pumps[p] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go p.run()
	return p, nil
}

func (p *pump[T]) run() {
	defer p.n.wg.Done()
	defer close(p.ended)
	defer p.sink.done()
	defer func() {
		p.n.mu.Lock()
		delete(p.n.pumps, p)
		p.n.mu.Unlock()
	}()
	stopWatch := context.AfterFunc(p.n.ctx, p.signal)
	defer stopWatch()
	fast := 0
	for {
		if m := p.sink.retry(); m != nil {
			p.sink.route([]any{m})
			continue
		}
		// Values already waiting are taken without the select, which
		// locks every channel it waits on; the select still runs at
		// least every pumpFastRun batches, so a stop or the node's end
		// is seen promptly.
		if fast < pumpFastRun {
			fast++
			took, ended := p.drain(cap(p.batch))
			if ended {
				return
			}
			if took {
				continue
			}
		}
		fast = 0
		select {
		case v, ok := <-p.in:
			if !ok {
				p.finish()
				return
			}
			p.batch = append(p.batch, p.toAny(v))
			if _, ended := p.drain(cap(p.batch) - 1); ended {
				return
			}
		case <-p.ctl:
			switch {
			case p.n.ctx.Err() != nil:
				p.failPending(ErrClosed)
				return
			case p.stopping():
				p.flush()
				return
			} // else a value to route again: the loop takes it
		}
	}
}

// signal wakes the pump to look at its retries, its stop and the node.
func (p *pump[T]) signal() {
	select {
	case p.ctl <- struct{}{}:
	default:
	}
}

func (p *pump[T]) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// flush routes what was written before the close, and what comes back to
// be routed again, then ends the pump.
func (p *pump[T]) flush() {
	for {
		took, ended := p.drain(cap(p.batch))
		if ended {
			return
		}
		if took {
			continue
		}
		if m := p.sink.retry(); m != nil {
			p.sink.route([]any{m})
			continue
		}
		p.finish()
		return
	}
}

// drain takes up to max more values that wait in the channel and routes
// them with any already in the batch. It reports whether it took any, and
// whether the pump has ended: the channel was closed, so it finished.
func (p *pump[T]) drain(max int) (took, ended bool) {
	took, closed := p.take(max)
	if len(p.batch) > 0 {
		p.sink.route(p.batch)
		clear(p.batch)
		p.batch = p.batch[:0]
	}
	if closed {
		p.finish()
	}
	return took, closed
}

// toAny returns what the sink routes for v.
func (p *pump[T]) toAny(v T) any {
	if p.conv != nil {
		return p.conv(v)
	}
	return any(v)
}

// take appends to the batch up to max values that wait in the channel,
// without blocking. It reports whether it took any, and whether the
// channel is closed.
func (p *pump[T]) take(max int) (took, closed bool) {
	for range max {
		select {
		case v, ok := <-p.in:
			if !ok {
				return took, true
			}
			p.batch = append(p.batch, p.toAny(v))
			took = true
		default:
			return took, false
		}
	}
	return took, false
}

// finish waits for the outcomes of values in flight and routes any that
// come back to be routed again; if the node closes meanwhile, it fails
// what is left.
func (p *pump[T]) finish() {
	for {
		m := p.sink.settle()
		if p.n.ctx.Err() != nil {
			if m != nil {
				p.sink.fail(m, ErrClosed)
			}
			p.failPending(ErrClosed)
			return
		}
		if m == nil {
			return
		}
		p.sink.route([]any{m})
	}
}

// failPending fails what waits to be routed again and what waits in the
// channel.
func (p *pump[T]) failPending(err error) {
	for m := p.sink.retry(); m != nil; m = p.sink.retry() {
		p.sink.fail(m, err)
	}
	for {
		select {
		case v := <-p.in:
			p.sink.fail(p.toAny(v), err)
		default:
			return
		}
	}
}

// close flushes and stops the pump, waiting for it within ctx.
func (p *pump[T]) close(ctx context.Context) error {
	p.once.Do(func() {
		close(p.stop)
		p.signal()
	})
	select {
	case <-p.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("channel: closing the channel of %q: %w", p.name, ctx.Err())
	}
}

// closeFunc is the CloseFunc of the pump's channel.
func (p *pump[T]) closeFunc() CloseFunc {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
		defer cancel()
		return p.close(ctx)
	}
}
