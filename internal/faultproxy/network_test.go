package faultproxy

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestNetwork(t *testing.T) {
	a, b := startEcho(t), startEcho(t)
	n := NewNetwork()
	t.Cleanup(func() { n.Close() })

	dialVia := func(t *testing.T, from, addr string) net.Conn {
		t.Helper()
		c, err := n.Dialer(from)(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	ab := dialVia(t, "a", b.addr())
	roundTrip(t, ab, "a→b")
	p, err := n.Link("a", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats().Accepted != 1 {
		t.Fatalf("link a→b accepted %d connections, want 1", p.Stats().Accepted)
	}

	sideA := map[string]string{"a": a.addr()}
	sideB := map[string]string{"b": b.addr()}
	if err := n.Partition(sideA, sideB); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, ab)
	for _, l := range []struct{ from, to string }{{"a", b.addr()}, {"b", a.addr()}} {
		p, err := n.Link(l.from, l.to)
		if err != nil {
			t.Fatal(err)
		}
		expectRefused(t, p.Addr())
	}
	// Other links are untouched: c still reaches both.
	roundTrip(t, dialVia(t, "c", b.addr()), "c→b")
	roundTrip(t, dialVia(t, "c", a.addr()), "c→a")

	if err := n.Reconnect(sideA, sideB); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dialVia(t, "a", b.addr()), "a→b again")
	roundTrip(t, dialVia(t, "b", a.addr()), "b→a again")

	if _, err := n.Link("a", "192.0.2.1:80"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Link to a remote address = %v, want ErrNotLoopback", err)
	}
	if _, err := n.Dialer("a")(context.Background(), "localhost:80"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("dial to a host name = %v, want ErrNotLoopback", err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := n.Link("a", b.addr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Link after Close = %v, want ErrClosed", err)
	}
}
