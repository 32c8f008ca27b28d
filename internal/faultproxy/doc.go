// Package faultproxy is a fault-injecting TCP proxy for tests. It forwards
// connections between processes on one machine and, on request, breaks them
// the ways a network does: resets, one-way stalls, latency and lost
// connections. It only ever listens on and dials loopback IP literals
// (127.0.0.0/8 and ::1); any other address, host names included, fails with
// ErrNotLoopback without being resolved.
//
// # Proxy
//
// New(target) listens on 127.0.0.1 and a free port; every connection
// accepted on Addr() is forwarded to target. Faults can be changed at any
// time, from any goroutine, and apply to open and new connections alike:
//
//   - Disconnect resets (RST) every open connection and every new one on
//     arrival, until Reconnect. The listener stays open so Addr is stable.
//   - Blackhole(dir) keeps connections open but stops forwarding in one
//     direction (ClientToServer, ServerToClient) or Both: the proxy stops
//     reading from the sender, whose writes stall once the kernel buffers
//     fill — a one-way partition or a paused peer. Heal resumes, losing
//     nothing.
//   - SetDelay(d) delivers each chunk d after the proxy read it, in order.
//   - SetResetProbability(p) resets the connection, instead of forwarding,
//     for each chunk with probability p: TCP never drops bytes silently, so
//     a reset is how a dropped message shows on a TCP stream.
//
// Stats counts connections and bytes. Close resets everything and waits for
// all goroutines; it is idempotent.
//
// Memory is bounded: a connection holds at most 8 chunks of up to 32 KiB
// per direction that were read but not yet written; beyond that the proxy stops
// reading and TCP flow control pushes back on the sender.
//
// # Isolating node A from node B
//
// Every dchan node has one listen address, and its peers dial it. A proxy in
// front of B's address sees connections from all of B's peers alike
// (they all come from 127.0.0.1), so it can only cut B off from everyone. To
// cut A → B alone, A's connections to B need their own proxy: that is
// Network, one Proxy per ordered (from, to) pair, created on first dial.
// Wire it through the node's dial function (the gRPC client's
// grpc.WithContextDialer): node "a" dials every peer address through
// nw.Dialer("a"), which connects to the proxy for ("a", addr) instead.
// Nodes keep advertising their real listen addresses; only the dialing is
// redirected.
//
//	nw := faultproxy.NewNetwork()
//	defer nw.Close()
//	// start nodes a, b, c, each with its dialer set to nw.Dialer(id)
//	_ = nw.Partition(map[string]string{"a": a.Addr()},
//		map[string]string{"b": b.Addr(), "c": c.Addr()}) // a is isolated
//	p, _ := nw.Link("b", c.Addr())
//	p.SetDelay(50 * time.Millisecond) // only b → c is slow
//
// A single Proxy needs no dial hook when a test only wants one node's
// inbound traffic faulted and controls the address its peers dial.
//
// # Goroutines
//
// Each Proxy runs one accept loop. Each forwarded connection runs one
// handler goroutine (it dials the target, then waits for the pumps) and four
// pumps: a reader and a writer per direction, joined by a bounded queue; the
// writer applies delay, blackhole and reset. A connection's goroutines end
// when both directions have reached EOF or when the connection is reset;
// Close resets every connection, stops the accept loop and waits for all of
// them. A Network runs no goroutines of its own besides its proxies'.
package faultproxy
