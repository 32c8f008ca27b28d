package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

const (
	// chunkSize is the largest read forwarded as one chunk.
	chunkSize = 32 << 10
	// queueDepth is how many chunks per direction may be read but not yet
	// written (delayed or blackholed), bounding a connection's buffering to
	// 2 × queueDepth × chunkSize bytes.
	queueDepth = 8
)

// conn is one proxied connection. Each direction runs a reader goroutine
// (read a chunk, stamp it with its due time, queue it) and a writer
// goroutine (wait until due and not blackholed, maybe reset, write).
type conn struct {
	p      *Proxy
	client net.Conn

	mu      sync.Mutex
	server  net.Conn // nil until dialed
	aborted bool
	done    chan struct{} // closed by abort

	wg sync.WaitGroup // the four pump goroutines
}

type chunk struct {
	buf []byte
	due time.Time
}

func newConn(p *Proxy, client net.Conn) *conn {
	return &conn{p: p, client: client, done: make(chan struct{})}
}

// setServer records the dialed target connection, or closes it and returns
// false if c was aborted meanwhile.
func (c *conn) setServer(s net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		closeConn(s, true)
		return false
	}
	c.server = s
	return true
}

// abort closes both sides (with RST if reset) and stops the pumps. It is
// idempotent.
func (c *conn) abort(reset bool) {
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		return
	}
	c.aborted = true
	close(c.done)
	server := c.server
	c.mu.Unlock()
	closeConn(c.client, reset)
	if server != nil {
		closeConn(server, reset)
	}
}

// run pumps both directions and returns when both have ended, with both
// sides closed.
func (c *conn) run() {
	c.pump(c.client, c.server, ClientToServer)
	c.pump(c.server, c.client, ServerToClient)
	c.wg.Wait()
	c.abort(false)
}

func (c *conn) goFunc(f func()) {
	c.wg.Go(f)
}

// pump starts the reader and writer goroutines of one direction.
func (c *conn) pump(src, dst net.Conn, dir Direction) {
	queue := make(chan chunk, queueDepth)
	free := make(chan []byte, queueDepth)
	c.goFunc(func() { c.read(src, dir, queue, free) })
	c.goFunc(func() { c.write(dst, dir, queue, free) })
}

// read moves chunks from src into queue until EOF (then closes queue) or an
// error (then resets the connection).
func (c *conn) read(src net.Conn, dir Direction, queue chan<- chunk, free chan []byte) {
	allocated := 0
	for {
		var buf []byte
		select {
		case buf = <-free:
		default:
			if allocated < queueDepth {
				allocated++
				buf = make([]byte, chunkSize)
			} else {
				select {
				case buf = <-free:
				case <-c.done:
					return
				}
			}
		}
		if !c.waitFlowing(dir) {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			due := time.Now().Add(c.p.currentDelay())
			select {
			case queue <- chunk{buf: buf[:n], due: due}:
			case <-c.done:
				return
			}
		} else {
			free <- buf
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				close(queue) // the writer half-closes dst after the queued chunks
			} else {
				c.abort(true)
			}
			return
		}
	}
}

// write forwards queued chunks to dst, applying delay, blackhole and reset.
func (c *conn) write(dst net.Conn, dir Direction, queue <-chan chunk, free chan<- []byte) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-queue:
		case <-c.done:
			return
		}
		if !ok {
			if tc, isTCP := dst.(*net.TCPConn); isTCP {
				_ = tc.CloseWrite()
			}
			return
		}
		if wait := time.Until(ch.due); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if !c.waitFlowing(dir) {
			return
		}
		if c.p.rollReset() {
			c.p.resets.Add(1)
			c.abort(true)
			return
		}
		n, err := dst.Write(ch.buf)
		if dir == ClientToServer {
			c.p.bytesC2S.Add(uint64(n))
		} else {
			c.p.bytesS2C.Add(uint64(n))
		}
		if err != nil {
			c.abort(true)
			return
		}
		free <- ch.buf[:cap(ch.buf)]
	}
}

// waitFlowing blocks while dir is blackholed. It returns false if the
// connection was aborted.
func (c *conn) waitFlowing(dir Direction) bool {
	for {
		ok, changed := c.p.flowing(dir)
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-c.done:
			return false
		}
	}
}

// closeConn closes nc; with reset, it first sets SO_LINGER to 0 so that the
// peer gets an RST (ECONNRESET) instead of an orderly FIN.
func closeConn(nc net.Conn, reset bool) {
	if tc, ok := nc.(*net.TCPConn); ok && reset {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}
