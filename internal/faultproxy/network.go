package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Network routes each node's outgoing connections through one Proxy per
// ordered (from, to) pair, so that a test can fault "node A → node B"
// without touching B's other peers. Proxies are created on first use, by a
// dial or by Link, so a link can be faulted before anything dials it.
//
// from is any label naming the dialing node (its node ID, say); to is the
// loopback address being dialed (the listen address of the node dialed).
// Connections A opens to B and connections B opens to A are different links:
// a symmetric partition cuts both.
type Network struct {
	mu     sync.Mutex
	closed bool
	links  map[link]*Proxy
}

type link struct{ from, to string }

// NewNetwork returns an empty Network. Close it when done.
func NewNetwork() *Network {
	return &Network{links: make(map[link]*Proxy)}
}

// Link returns the proxy carrying from's connections to the address to,
// starting it if needed. to must be a loopback IP literal (ErrNotLoopback
// otherwise); after Close it fails with ErrClosed.
func (n *Network) Link(from, to string) (*Proxy, error) {
	target, err := loopbackAddr(to)
	if err != nil {
		return nil, fmt.Errorf("link %s→%s: %w", from, to, err)
	}
	key := link{from: from, to: target}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if p, ok := n.links[key]; ok {
		return p, nil
	}
	p, err := New(target)
	if err != nil {
		return nil, fmt.Errorf("link %s→%s: %w", from, to, err)
	}
	n.links[key] = p
	return p, nil
}

// Dialer returns the dial function to give the node labelled from: it
// connects to addr through Link(from, addr). Its signature is that of
// grpc.WithContextDialer and of net.Dialer.DialContext without the network.
func (n *Network) Dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		p, err := n.Link(from, addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", p.Addr())
	}
}

// Partition cuts every link between the two sides, both ways, with
// Disconnect. Each side lists nodes as label → listen address. Undo it with
// Reconnect on the same sides.
func (n *Network) Partition(a, b map[string]string) error {
	return n.eachBetween(a, b, (*Proxy).Disconnect)
}

// Reconnect undoes Partition for the links between a and b.
func (n *Network) Reconnect(a, b map[string]string) error {
	return n.eachBetween(a, b, (*Proxy).Reconnect)
}

func (n *Network) eachBetween(a, b map[string]string, f func(*Proxy)) error {
	for fromA, addrA := range a {
		for fromB, addrB := range b {
			ab, err := n.Link(fromA, addrB)
			if err != nil {
				return err
			}
			ba, err := n.Link(fromB, addrA)
			if err != nil {
				return err
			}
			f(ab)
			f(ba)
		}
	}
	return nil
}

// Close closes every proxy of the network (see Proxy.Close). It is
// idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	links := n.links
	n.links = nil
	n.mu.Unlock()

	var errs []error
	for _, p := range links {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
