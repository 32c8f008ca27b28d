package pump

import (
	"context"
	"sync"
)

// Sink is where a pump's values go.
type Sink interface {
	// Route hands on every value of batch, in order. It may keep none of
	// batch's slots.
	Route(batch []any)
	// Retry returns a value to route again (one a receiver refused while
	// closing), if there is one.
	Retry() (any, bool)
	// Settle waits until the outcomes of the values in flight are known,
	// and returns a value to route again, if there is one; it returns at
	// once if the pump's life ends (then the pump fails what it holds).
	Settle() (any, bool)
	// Fail gives up a value with err.
	Fail(v any, err error)
	// Done is told when the pump ends.
	Done()
}

// fastRun bounds how many batches the pump takes in a row without
// looking at its control channel.
const fastRun = 16

// maxBatch bounds the values the pump takes from its channel at once and
// routes together.
const maxBatch = 128

// BatchFor returns the most values the pump of a channel with buf takes
// at once: buf, at least 1, at most 128. Writes block once buf values
// wait in the channel, as its buffer says; the pump holds at most one
// batch besides — the one value it routes, with buf 0 — so its batching
// loosens backpressure by less than buf.
func BatchFor(buf int) int { return min(max(buf, 1), maxBatch) }

// Pump moves the values written to its channel to a Sink. Make it with
// New, run it with Run.
type Pump[T any] struct {
	in     chan T
	sink   Sink
	life   context.Context
	closed error
	stop   chan struct{} // closed by Close: flush and end
	ended  chan struct{} // closed when Run has ended
	once   sync.Once
	// ctl wakes the pump for anything but a value: a value to route
	// again (Signal), a Close, the end of life. One channel, so that a
	// pump waiting for its next value waits on two, not four.
	ctl   chan struct{}
	batch []any // values taken from in, to route
	// conv turns a T into what the sink routes; nil for any(v).
	conv func(T) any
}

// New returns a pump of a channel with buffer buf into sink. conv (nil:
// any(v)) turns each value into what the sink routes. Once life ends the
// pump fails what it holds with closed.
func New[T any](life context.Context, closed error, buf int, sink Sink, conv func(T) any) *Pump[T] {
	return &Pump[T]{
		in:     make(chan T, buf),
		sink:   sink,
		life:   life,
		closed: closed,
		stop:   make(chan struct{}),
		ended:  make(chan struct{}),
		ctl:    make(chan struct{}, 1),
		batch:  make([]any, 0, BatchFor(buf)),
		conv:   conv,
	}
}

// In returns the pump's channel, for the user to write to (and close,
// which ends the pump once what was written is routed).
func (p *Pump[T]) In() chan<- T { return p.in }

// Run moves values until the pump ends: see the package doc.
func (p *Pump[T]) Run() {
	defer close(p.ended)
	defer p.sink.Done()
	stopWatch := context.AfterFunc(p.life, p.Signal)
	defer stopWatch()
	fast := 0
	for {
		if v, ok := p.sink.Retry(); ok {
			p.sink.Route([]any{v})
			continue
		}
		// Values already waiting are taken without the select, which
		// locks every channel it waits on; the select still runs at
		// least every fastRun batches, so a stop or the end of life is
		// seen promptly.
		if fast < fastRun {
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
			case p.life.Err() != nil:
				p.failPending()
				return
			case p.stopping():
				p.flush()
				return
			} // else a value to route again: the loop takes it
		}
	}
}

// Signal wakes the pump to look at its sink's retries, its stop and its
// life.
func (p *Pump[T]) Signal() {
	select {
	case p.ctl <- struct{}{}:
	default:
	}
}

func (p *Pump[T]) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// flush routes what was written before the close, and what comes back to
// be routed again, then ends the pump.
func (p *Pump[T]) flush() {
	for {
		took, ended := p.drain(cap(p.batch))
		if ended {
			return
		}
		if took {
			continue
		}
		if v, ok := p.sink.Retry(); ok {
			p.sink.Route([]any{v})
			continue
		}
		p.finish()
		return
	}
}

// drain takes up to max more values that wait in the channel and routes
// them with any already in the batch. It reports whether it took any, and
// whether the pump has ended: the channel was closed, so it finished.
func (p *Pump[T]) drain(max int) (took, ended bool) {
	took, closed := p.take(max)
	if len(p.batch) > 0 {
		p.sink.Route(p.batch)
		clear(p.batch)
		p.batch = p.batch[:0]
	}
	if closed {
		p.finish()
	}
	return took, closed
}

// toAny returns what the sink routes for v.
func (p *Pump[T]) toAny(v T) any {
	if p.conv != nil {
		return p.conv(v)
	}
	return any(v)
}

// take appends to the batch up to max values that wait in the channel,
// without blocking. It reports whether it took any, and whether the
// channel is closed.
func (p *Pump[T]) take(max int) (took, closed bool) {
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
// come back to be routed again; if life ends meanwhile, it fails what is
// left.
func (p *Pump[T]) finish() {
	for {
		v, again := p.sink.Settle()
		if p.life.Err() != nil {
			if again {
				p.sink.Fail(v, p.closed)
			}
			p.failPending()
			return
		}
		if !again {
			return
		}
		p.sink.Route([]any{v})
	}
}

// failPending fails what waits to be routed again and what waits in the
// channel.
func (p *Pump[T]) failPending() {
	for v, ok := p.sink.Retry(); ok; v, ok = p.sink.Retry() {
		p.sink.Fail(v, p.closed)
	}
	for {
		select {
		case v, ok := <-p.in:
			if !ok {
				return // closed by the user: nothing more waits
			}
			p.sink.Fail(p.toAny(v), p.closed)
		default:
			return
		}
	}
}

// Close flushes and stops the pump, and waits for it to end until ctx
// ends: then it returns ctx's error. Safe to call more than once.
func (p *Pump[T]) Close(ctx context.Context) error {
	p.once.Do(func() {
		close(p.stop)
		p.Signal()
	})
	select {
	case <-p.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
