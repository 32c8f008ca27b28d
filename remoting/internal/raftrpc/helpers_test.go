package raftrpc

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// connCache stands in for the remoting layer: one shared client connection
// per peer address, closed when the test ends.
type connCache struct {
	mu    sync.Mutex
	conns map[raft.ServerAddress]*grpc.ClientConn
}

func newConnCache(t *testing.T) *connCache {
	c := &connCache{conns: make(map[raft.ServerAddress]*grpc.ClientConn)}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cc := range c.conns {
			_ = cc.Close()
		}
	})
	return c
}

func (c *connCache) conn(_ context.Context, target raft.ServerAddress) (grpc.ClientConnInterface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[target]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+string(target), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c.conns[target] = cc
	return cc, nil
}

// testServer is one node's gRPC server with a Transport registered on it.
type testServer struct {
	addr     raft.ServerAddress
	srv      *grpc.Server
	trans    *Transport
	served   chan struct{}
	stopOnce sync.Once
}

func startServer(t *testing.T, conns *connCache, modify func(*Config), opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		LocalAddr: raft.ServerAddress(lis.Addr().String()),
		Conn:      conns.conn,
		Timeout:   5 * time.Second,
		Logger:    zaptest.NewLogger(t),
	}
	if modify != nil {
		modify(&cfg)
	}
	trans, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		addr:   cfg.LocalAddr,
		srv:    grpc.NewServer(append([]grpc.ServerOption{rawcodec.ServerOption()}, opts...)...),
		trans:  trans,
		served: make(chan struct{}),
	}
	trans.Register(s.srv)
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(lis)
	}()
	t.Cleanup(s.stop)
	return s
}

// stop closes the transport and stops the server; it is idempotent.
func (s *testServer) stop() {
	s.stopOnce.Do(func() {
		_ = s.trans.Close()
		s.srv.Stop()
		<-s.served
	})
}

// serveRPCs answers every RPC on trans's Consumer with answer until the
// test ends; it returns a channel of the commands seen.
func serveRPCs(t *testing.T, trans *Transport, answer func(raft.RPC)) <-chan any {
	t.Helper()
	seen := make(chan any, 1024)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-trans.Consumer():
				select {
				case seen <- rpc.Command:
				default:
				}
				answer(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return seen
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// recvWithin receives from ch or fails the test after timeout.
func recvWithin[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		var zero T
		return zero
	}
}
