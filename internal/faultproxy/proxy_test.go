package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestLoopbackAddr(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" means refused
	}{
		{"127.0.0.1:80", "127.0.0.1:80"},
		{"127.1.2.3:0", "127.1.2.3:0"},
		{"[::1]:80", "[::1]:80"},
		{"[0:0::1]:80", "[::1]:80"},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1:80"},
		{"localhost:80", ""},
		{"example.com:80", ""},
		{"0.0.0.0:80", ""},
		{":80", ""},
		{"[::]:80", ""},
		{"10.0.0.1:80", ""},
		{"8.8.8.8:53", ""},
		{"128.0.0.1:80", ""},
		{"[fe80::1%lo]:80", ""},
		{"[::1%lo]:80", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:http", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := loopbackAddr(tt.addr)
			if tt.want == "" {
				if !errors.Is(err, ErrNotLoopback) {
					t.Fatalf("loopbackAddr(%q) = %q, %v; want ErrNotLoopback", tt.addr, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("loopbackAddr(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
			}
		})
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name   string
		target string
		opts   []Option
	}{
		{"remote target", "192.0.2.1:80", nil},
		{"host name target", "localhost:80", nil},
		{"wildcard listen", "127.0.0.1:80", []Option{WithListenAddr("0.0.0.0:0")}},
		{"remote listen", "127.0.0.1:80", []Option{WithListenAddr("192.0.2.1:0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.target, tt.opts...)
			if !errors.Is(err, ErrNotLoopback) {
				if p != nil {
					p.Close()
				}
				t.Fatalf("New = %v; want ErrNotLoopback", err)
			}
		})
	}
	if _, err := New("127.0.0.1:80", WithDialTimeout(0)); err == nil {
		t.Fatal("New with a zero dial timeout succeeded")
	}
}

func TestForwardsBothWays(t *testing.T) {
	s := startEcho(t)
	p := newProxy(t, s.addr())
	if p.Target() != s.addr() {
		t.Fatalf("Target() = %q, want %q", p.Target(), s.addr())
	}
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")

	// Larger than the proxy's buffering, to exercise flow control.
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() {
		c.SetWriteDeadline(time.Now().Add(waitTimeout))
		c.Write(big) // a failure shows as a short read below
	}()
	if got := readN(t, c, len(big)); !bytes.Equal(got, big) {
		t.Fatal("1 MiB echo corrupted")
	}

	// A half-close travels through: the server sees EOF, closes, and the
	// client then sees EOF too.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after half-close = %d, %v; want EOF", n, err)
	}

	want := uint64(len("hello") + len(big))
	waitFor(t, "connection to end", func() bool { return p.Stats().Active == 0 })
	st := p.Stats()
	if st.Accepted != 1 || st.BytesClientToServer != want || st.BytesServerToClient != want {
		t.Fatalf("stats = %+v; want 1 accepted and %d bytes each way", st, want)
	}
}

func TestDisconnectAndReconnect(t *testing.T) {
	s := startEcho(t)
	p := newProxy(t, s.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "before")

	p.Disconnect()
	expectClosed(t, c)
	expectRefused(t, p.Addr())
	waitFor(t, "refusal to be counted", func() bool { return p.Stats().Refused == 1 })
	waitFor(t, "no active connection", func() bool { return p.Stats().Active == 0 })

	p.Reconnect()
	roundTrip(t, dial(t, p.Addr()), "after")
}

func TestBlackhole(t *testing.T) {
	tests := []struct {
		dir             Direction
		stallsToServer  bool
		stallsToClients bool
	}{
		{ClientToServer, true, false},
		{ServerToClient, false, true},
		{Both, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.dir.String(), func(t *testing.T) {
			s := startEcho(t)
			p := newProxy(t, s.addr())
			c := dial(t, p.Addr())
			roundTrip(t, c, "open")
			serverSide := s.lastConn(t)

			p.Blackhole(tt.dir)
			// Server to client: an unsolicited server write. It goes first,
			// so that the server sends "down" before the echo of "up".
			serverSide.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := serverSide.Write([]byte("down")); err != nil {
				t.Fatal(err)
			}
			// Client to server: a request, echoed back.
			write(t, c, []byte("up"))

			if tt.stallsToServer {
				time.Sleep(quiet) // watching for something that must not happen
				if got := string(s.received()); got != "open" {
					t.Fatalf("server received %q through a blackhole", got)
				}
			} else {
				waitFor(t, "server to receive", func() bool { return string(s.received()) == "openup" })
			}
			if tt.stallsToClients {
				expectNothing(t, c)
			} else if got := string(readN(t, c, 4)); got != "down" {
				t.Fatalf("client read %q, want %q", got, "down")
			}

			p.Heal()
			// Everything held arrives, in order, once healed.
			waitFor(t, "server to receive after heal", func() bool { return string(s.received()) == "openup" })
			var want string
			if tt.stallsToClients {
				want = "down"
			}
			want += "up" // the echo of "up"
			if got := string(readN(t, c, len(want))); got != want {
				t.Fatalf("client read %q after heal, want %q", got, want)
			}
			roundTrip(t, c, "healed")
		})
	}
}

func TestDelayPreservesOrder(t *testing.T) {
	const delay = 30 * time.Millisecond
	s := startEcho(t)
	p := newProxy(t, s.addr())
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")

	p.SetDelay(delay)
	start := time.Now()
	roundTrip(t, c, "slow")
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("round trip took %v, want at least %v (delay each way)", rtt, 2*delay)
	}

	// Many small writes while the delay changes: order must hold.
	var want strings.Builder
	for i := range 200 {
		if i == 100 {
			p.SetDelay(0) // later chunks become due before earlier ones
		}
		msg := fmt.Sprintf("%03d,", i)
		want.WriteString(msg)
		write(t, c, []byte(msg))
	}
	if got := string(readN(t, c, want.Len())); got != want.String() {
		t.Fatalf("echo out of order:\n got %s\nwant %s", got, want.String())
	}
}

func TestSetDelayAndProbabilityClamp(t *testing.T) {
	p := newProxy(t, "127.0.0.1:9")
	p.SetDelay(-time.Second)
	if d := p.currentDelay(); d != 0 {
		t.Fatalf("delay = %v, want 0", d)
	}
	for _, tt := range []struct{ in, want float64 }{{-1, 0}, {math.NaN(), 0}, {0.5, 0.5}, {2, 1}} {
		p.SetResetProbability(tt.in)
		p.mu.Lock()
		got := p.resetP
		p.mu.Unlock()
		if got != tt.want {
			t.Errorf("SetResetProbability(%v) stored %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestResetProbabilityOne(t *testing.T) {
	s := startEcho(t)
	p := newProxy(t, s.addr(), WithSeed(1))
	c := dial(t, p.Addr())
	roundTrip(t, c, "fine")

	p.SetResetProbability(1)
	write(t, c, []byte("doomed"))
	expectClosed(t, c)
	waitFor(t, "reset to be counted", func() bool { return p.Stats().Resets == 1 })
	if got := string(s.received()); got != "fine" {
		t.Fatalf("server received %q; the reset chunk must not be forwarded", got)
	}

	p.SetResetProbability(0)
	roundTrip(t, dial(t, p.Addr()), "again")
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now

	p := newProxy(t, dead)
	expectRefused(t, p.Addr())
	waitFor(t, "dial failure to be counted", func() bool { return p.Stats().DialFailures == 1 })
}

func TestCloseIsIdempotentAndLeakFree(t *testing.T) {
	s := startEcho(t)
	before := goleak.IgnoreCurrent()

	p, err := New(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	// Leave connections in every state: flowing, held by a blackhole, and
	// waiting out a delay.
	flowing := dial(t, p.Addr())
	roundTrip(t, flowing, "x")
	p.SetDelay(time.Hour)
	delayed := dial(t, p.Addr())
	write(t, delayed, []byte("late"))
	p.Blackhole(ClientToServer)
	held := dial(t, p.Addr())
	write(t, held, []byte("held"))
	waitFor(t, "three connections", func() bool { return p.Stats().Active == 3 })

	for i := range 2 {
		if err := p.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	for _, c := range []net.Conn{flowing, delayed, held} {
		expectClosed(t, c)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("dial after Close succeeded")
	}
	// The echo server's handlers end once the proxy reset their sides.
	goleak.VerifyNone(t, before)
}
