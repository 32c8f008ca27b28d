package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction names one or both directions of a proxied connection. The
// client is the side that dialed the proxy; the server is the target.
type Direction uint8

const (
	// ClientToServer is the direction from the dialing side to the target.
	ClientToServer Direction = 1 << iota
	// ServerToClient is the direction from the target back to the dialer.
	ServerToClient
	// Both is ClientToServer and ServerToClient.
	Both = ClientToServer | ServerToClient
)

// String returns the direction's name.
func (d Direction) String() string {
	switch d {
	case 0:
		return "None"
	case ClientToServer:
		return "ClientToServer"
	case ServerToClient:
		return "ServerToClient"
	case Both:
		return "Both"
	default:
		return fmt.Sprintf("Direction(%d)", uint8(d))
	}
}

// Stats are a proxy's counters since New.
type Stats struct {
	Accepted            uint64 // connections accepted and forwarded to the target
	Refused             uint64 // connections reset on arrival because the proxy was disconnected
	DialFailures        uint64 // accepted connections reset because the target could not be dialed
	Resets              uint64 // connections reset by the random reset fault
	Active              int    // connections open now
	BytesClientToServer uint64 // bytes written to the target
	BytesServerToClient uint64 // bytes written back to clients
}

// Proxy forwards TCP connections from a loopback listen address to a
// loopback target, and injects faults into them on request. All methods are
// safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	cfg    config

	ctx    context.Context // canceled by Close; bounds dials of the target
	cancel context.CancelFunc
	wg     sync.WaitGroup // the accept loop and one handler per connection

	mu           sync.Mutex
	closed       bool
	disconnected bool
	blackholed   Direction
	delay        time.Duration
	resetP       float64
	rng          *rand.Rand
	changed      chan struct{} // closed and replaced whenever a fault changes
	conns        map[*conn]struct{}

	closeOnce sync.Once
	closeErr  error

	accepted, refused, dialFailures, resets atomic.Uint64
	bytesC2S, bytesS2C                      atomic.Uint64
}

// New starts a proxy that listens on a loopback address (by default
// 127.0.0.1 and a free port) and forwards every connection it accepts to
// target. target must be an IP literal in 127.0.0.0/8 or ::1; anything else
// fails with ErrNotLoopback. The proxy starts with no fault. Close it when
// done.
func New(target string, opts ...Option) (*Proxy, error) {
	t, err := loopbackAddr(target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	seed := cfg.seed
	if !cfg.seeded {
		seed = rand.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target:  t,
		ln:      ln,
		cfg:     cfg,
		ctx:     ctx,
		cancel:  cancel,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		changed: make(chan struct{}),
		conns:   make(map[*conn]struct{}),
	}
	p.goFunc(p.acceptLoop)
	return p, nil
}

// goFunc runs f in a goroutine that Close waits for.
func (p *Proxy) goFunc(f func()) {
	p.wg.Go(f)
}

// Addr returns the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Close stops listening, resets every connection and waits for all of the
// proxy's goroutines. It is idempotent: later calls return the first call's
// result.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		conns := p.snapshotLocked()
		p.notifyLocked()
		p.mu.Unlock()

		p.cancel()
		if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = fmt.Errorf("faultproxy: close listener: %w", err)
		}
		for _, c := range conns {
			c.abort(true)
		}
		p.wg.Wait()
	})
	return p.closeErr
}

// Disconnect resets every open connection and resets each new one on arrival
// until Reconnect. A client sees its dial succeed and the connection reset at
// once (the listener stays open so that Addr does not change).
func (p *Proxy) Disconnect() {
	p.mu.Lock()
	p.disconnected = true
	conns := p.snapshotLocked()
	p.notifyLocked()
	p.mu.Unlock()
	for _, c := range conns {
		c.abort(true)
	}
}

// Reconnect ends Disconnect: new connections are forwarded again.
func (p *Proxy) Reconnect() {
	p.mu.Lock()
	p.disconnected = false
	p.notifyLocked()
	p.mu.Unlock()
}

// Blackhole stops forwarding in dir, in addition to any direction already
// blackholed, while keeping connections open: the proxy stops reading from
// the sending side, so its writes stall once TCP's buffers fill, as they
// would behind a one-way partition. Bytes already read are held (at most a
// few chunks per connection and direction) and delivered after Heal; nothing
// is lost or buffered without bound. Bits of dir other than Both are ignored.
func (p *Proxy) Blackhole(dir Direction) {
	p.mu.Lock()
	p.blackholed |= dir & Both
	p.notifyLocked()
	p.mu.Unlock()
}

// Heal ends Blackhole in both directions. It does not undo Disconnect,
// SetDelay or SetResetProbability.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.blackholed = 0
	p.notifyLocked()
	p.mu.Unlock()
}

// SetDelay delays each chunk read from now on by d before it is written on,
// in both directions, preserving order. It adds latency without limiting
// throughput (up to the per-connection buffer). A negative d counts as 0.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = max(d, 0)
	p.notifyLocked()
	p.mu.Unlock()
}

// SetResetProbability makes each chunk about to be forwarded, in either
// direction, reset its connection (both sides, with RST) with probability
// prob instead of being written: the TCP analogue of dropping a message,
// since TCP itself never loses bytes silently. prob is clamped to [0, 1];
// NaN counts as 0.
func (p *Proxy) SetResetProbability(prob float64) {
	if !(prob > 0) { // also catches NaN
		prob = 0
	}
	p.mu.Lock()
	p.resetP = min(prob, 1)
	p.notifyLocked()
	p.mu.Unlock()
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted:            p.accepted.Load(),
		Refused:             p.refused.Load(),
		DialFailures:        p.dialFailures.Load(),
		Resets:              p.resets.Load(),
		Active:              active,
		BytesClientToServer: p.bytesC2S.Load(),
		BytesServerToClient: p.bytesS2C.Load(),
	}
}

// notifyLocked wakes everything waiting for a fault to change.
func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) snapshotLocked() []*conn {
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	return conns
}

// flowing reports whether dir is not blackholed, and a channel closed at the
// next fault change.
func (p *Proxy) flowing(dir Direction) (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blackholed&dir == 0, p.changed
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// rollReset decides whether the next chunk resets its connection.
func (p *Proxy) rollReset() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resetP > 0 && p.rng.Float64() < p.resetP
}

func (p *Proxy) acceptLoop() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			// Transient (e.g. too many open files): back off briefly.
			select {
			case <-time.After(10 * time.Millisecond):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		c := newConn(p, nc)
		if !p.register(c) {
			closeConn(nc, true)
			continue
		}
		p.accepted.Add(1)
		p.goFunc(func() { p.handle(c) })
	}
}

// register adds c to the open connections unless the proxy is closed or
// disconnected, atomically with respect to Disconnect and Close.
func (p *Proxy) register(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.disconnected {
		p.refused.Add(1)
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) unregister(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// handle dials the target for c and forwards until both directions end.
func (p *Proxy) handle(c *conn) {
	defer p.unregister(c)
	d := net.Dialer{Timeout: p.cfg.dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.dialFailures.Add(1)
		c.abort(true)
		return
	}
	if !c.setServer(server) {
		return // reset while dialing
	}
	c.run()
}
