package channel

import (
	"context"
	"fmt"

	"github.com/dchan-io/dchan/channel/internal/pump"
)

// flusher is a pump of any type, for the node's shutdown.
type flusher interface {
	Close(ctx context.Context) error
}

// startPump starts a pump (package pump) of a channel with buf into sink:
// one goroutine, which the node tracks until it ends, and which fails what
// it holds with ErrClosed once the node closes. conv turns each T into
// what sink routes (nil: the T itself).
func startPump[T any](n *Node, buf int, sink pump.Sink, conv func(T) any) (*pump.Pump[T], error) {
	p := pump.New(n.ctx, ErrClosed, buf, sink, conv)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	n.pumps[p] = struct{}{}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		defer func() {
			n.mu.Lock()
			delete(n.pumps, p)
			n.mu.Unlock()
		}()
		p.Run()
	}()
	return p, nil
}

// pumpCloseFunc is the CloseFunc of the channel of name pumped by p: it
// flushes and stops p, waiting for it at most DefaultDrainTimeout.
func pumpCloseFunc(name string, p flusher) CloseFunc {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			return fmt.Errorf("channel: closing the channel of %q: %w", name, err)
		}
		return nil
	}
}
