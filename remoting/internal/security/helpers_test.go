package security

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"

	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/internal/testcerts"
)

// The probe service: one unary and one bidi stream method, hand-written
// like dchan's real services, whose handlers count their invocations.
const (
	probeService = "dchan.test.v1.Probe"
	methodUnary  = "/" + probeService + "/Unary"
	methodStream = "/" + probeService + "/Stream"
)

// testTimeout bounds every RPC of a test.
const testTimeout = 5 * time.Second

type probeHandler interface {
	handled() (unary, stream int64)
}

// probe counts handler invocations: a refused peer must leave both at 0.
type probe struct {
	unary  atomic.Int64
	stream atomic.Int64
}

func (p *probe) handled() (unary, stream int64) { return p.unary.Load(), p.stream.Load() }

func probeDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: probeService,
		HandlerType: (*probeHandler)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Unary",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawcodec.Frame)
				if err := dec(in); err != nil {
					return nil, err
				}
				handler := func(_ context.Context, req any) (any, error) {
					srv.(*probe).unary.Add(1)
					return &rawcodec.Frame{Data: req.(*rawcodec.Frame).Data}, nil
				}
				if interceptor == nil {
					return handler(ctx, in)
				}
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodUnary}, handler)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName: "Stream",
			Handler: func(srv any, stream grpc.ServerStream) error {
				srv.(*probe).stream.Add(1)
				for {
					in := new(rawcodec.Frame)
					if err := stream.RecvMsg(in); err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
					if err := stream.SendMsg(in); err != nil {
						return err
					}
				}
			},
			ServerStreams: true,
			ClientStreams: true,
		}},
		Metadata: "security test probe (hand-written, rawcodec frames)",
	}
}

// testServer is a gRPC server secured by a Guard, serving the probe.
type testServer struct {
	addr  string
	guard *Guard
	probe *probe
	logs  *observer.ObservedLogs
}

// startServer starts a server on 127.0.0.1:0 secured by cfg; its Logger is
// replaced by one that records entries for the test to inspect and also
// writes them to the test log.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(g.ServerOptions(), rawcodec.ServerOption())...)
	p := new(probe)
	srv.RegisterService(probeDesc(), p)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return &testServer{addr: lis.Addr().String(), guard: g, probe: p, logs: logs}
}

// dial returns a client connection to addr secured by cfg.
func dial(t *testing.T, addr string, cfg Config) *grpc.ClientConn {
	t.Helper()
	cfg.Logger = zaptest.NewLogger(t)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, g.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// callUnary makes one unary call and checks the echo.
func callUnary(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	in := &rawcodec.Frame{Data: []byte("ping")}
	out := new(rawcodec.Frame)
	if err := cc.Invoke(ctx, methodUnary, in, out, rawcodec.CallOption()); err != nil {
		return err
	}
	if !bytes.Equal(out.Data, in.Data) {
		return fmt.Errorf("unary echo %q, want %q", out.Data, in.Data)
	}
	return nil
}

// callStream opens one bidi stream, sends a frame, closes its side and
// checks the echo and the clean end of the stream.
func callStream(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}
	st, err := cc.NewStream(ctx, desc, methodStream, rawcodec.CallOption())
	if err != nil {
		return err
	}
	in := &rawcodec.Frame{Data: []byte("ping")}
	// A refused stream may fail SendMsg with io.EOF; its status then comes
	// from RecvMsg.
	if err := st.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	out := new(rawcodec.Frame)
	if err := st.RecvMsg(out); err != nil {
		return err
	}
	if !bytes.Equal(out.Data, in.Data) {
		return fmt.Errorf("stream echo %q, want %q", out.Data, in.Data)
	}
	if err := st.RecvMsg(out); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream end: %v, want io.EOF", err)
	}
	return nil
}

// mustAuthority returns a new test CA.
func mustAuthority(t *testing.T, name string) *testcerts.Authority {
	t.Helper()
	a, err := testcerts.NewAuthority(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// nodeTLS returns a node's server and client configs issued by a.
func nodeTLS(t *testing.T, a *testcerts.Authority, name string) (server, client *tls.Config) {
	t.Helper()
	server, client, err := a.NodeTLS(name)
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// waitForLog polls logs until an entry with message msg appears or the
// deadline passes.
func waitForLog(t *testing.T, logs *observer.ObservedLogs, msg string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		if entries := logs.FilterMessage(msg).All(); len(entries) > 0 {
			return entries[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log entry within %v", msg, testTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// presenting returns a copy of client that presents cert to every server,
// whatever CAs the server asks for. (Given Certificates, crypto/tls would
// send no certificate at all to a server that names other CAs, which tests
// a missing certificate, not an untrusted one.)
func presenting(client *tls.Config, cert tls.Certificate) *tls.Config {
	c := client.Clone()
	c.Certificates = nil
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	return c
}
