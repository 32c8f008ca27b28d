package raftrpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

func TestNewValidatesConfig(t *testing.T) {
	conn := func(context.Context, raft.ServerAddress) (grpc.ClientConnInterface, error) { return nil, nil }
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no LocalAddr", Config{Conn: conn}},
		{"no Conn", Config{LocalAddr: "127.0.0.1:1"}},
		{"negative Timeout", Config{LocalAddr: "127.0.0.1:1", Conn: conn, Timeout: -time.Second}},
		{"negative MaxInFlight", Config{LocalAddr: "127.0.0.1:1", Conn: conn, MaxInFlight: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
	tr, err := New(Config{LocalAddr: "127.0.0.1:1", Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.timeout != DefaultTimeout || tr.maxInFlight != DefaultMaxInFlight || tr.LocalAddr() != "127.0.0.1:1" {
		t.Fatalf("defaults not applied: %v %v %v", tr.timeout, tr.maxInFlight, tr.LocalAddr())
	}
	if got := tr.DecodePeer(tr.EncodePeer("id", "127.0.0.1:9")); got != "127.0.0.1:9" {
		t.Fatalf("DecodePeer(EncodePeer) = %q", got)
	}
}

// answerAll answers each command with a response derived from it, and
// RequestVote with a Raft-side error.
func answerAll(rpc raft.RPC) {
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + uint64(len(req.Entries)), Success: true}, nil)
	case *raft.RequestVoteRequest:
		rpc.Respond(&raft.RequestVoteResponse{Term: req.Term}, errors.New("vote refused"))
	case *raft.RequestPreVoteRequest:
		rpc.Respond(&raft.RequestPreVoteResponse{Term: req.Term, Granted: true}, nil)
	case *raft.TimeoutNowRequest:
		rpc.Respond(&raft.TimeoutNowResponse{RPCHeader: raft.RPCHeader{ID: []byte("b")}}, nil)
	default:
		rpc.Respond(nil, fmt.Errorf("unexpected command %T", req))
	}
}

func TestUnaryRPCs(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	// The node's server may carry interceptors (dchan checks its cluster
	// token in one): the hand-written handlers must call them.
	intercepted := make(chan string, 8)
	b := startServer(t, conns, nil, grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			intercepted <- info.FullMethod
			return handler(ctx, req)
		}))
	seen := serveRPCs(t, b.trans, answerAll)

	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(a.addr)}
	aeReq := &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3, PrevLogEntry: 10, PrevLogTerm: 2, LeaderCommitIndex: 9,
		Entries: []*raft.Log{{Index: 11, Term: 3, Data: []byte("x")}, {Index: 12, Term: 3, Data: []byte("y")}}}
	var aeResp raft.AppendEntriesResponse
	if err := a.trans.AppendEntries("b", b.addr, aeReq, &aeResp); err != nil {
		t.Fatal(err)
	}
	if !aeResp.Success || aeResp.LastLog != 12 || aeResp.Term != 3 {
		t.Fatalf("AppendEntries response %+v", aeResp)
	}
	if got := recvWithin(t, seen, 5*time.Second, "AppendEntries"); !reflect.DeepEqual(got, aeReq) {
		t.Fatalf("peer got %#v, want %#v", got, aeReq)
	}

	var pvResp raft.RequestPreVoteResponse
	if err := a.trans.RequestPreVote("b", b.addr, &raft.RequestPreVoteRequest{RPCHeader: hdr, Term: 4}, &pvResp); err != nil {
		t.Fatal(err)
	}
	if !pvResp.Granted || pvResp.Term != 4 {
		t.Fatalf("RequestPreVote response %+v", pvResp)
	}

	var rvResp raft.RequestVoteResponse
	err := a.trans.RequestVote("b", b.addr, &raft.RequestVoteRequest{RPCHeader: hdr, Term: 5}, &rvResp)
	if !errors.Is(err, ErrRemote) {
		t.Fatalf("RequestVote err = %v, want ErrRemote", err)
	}

	var tnResp raft.TimeoutNowResponse
	if err := a.trans.TimeoutNow("b", b.addr, &raft.TimeoutNowRequest{RPCHeader: hdr}, &tnResp); err != nil {
		t.Fatal(err)
	}
	if string(tnResp.ID) != "b" {
		t.Fatalf("TimeoutNow response %+v", tnResp)
	}
	for _, m := range []string{methodAppendEntries, methodRequestPreVote, methodRequestVote, methodTimeoutNow} {
		if got := recvWithin(t, intercepted, time.Second, "interceptor"); got != fullMethod(m) {
			t.Fatalf("interceptor saw %q, want %q", got, fullMethod(m))
		}
	}
}

func TestSnapshotTimeout(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{snapshotChunkSize, time.Second},
		{snapshotChunkSize + 1, 2 * time.Second},
		{10 * snapshotChunkSize, 10 * time.Second},
		{1 << 62, math.MaxInt64},
	} {
		if got := snapshotTimeout(time.Second, tc.size); got != tc.want {
			t.Errorf("snapshotTimeout(1s, %d) = %v, want %v", tc.size, got, tc.want)
		}
	}
}

func TestHeartbeatFastPath(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	seen := serveRPCs(t, b.trans, answerAll)
	beats := make(chan *raft.AppendEntriesRequest, 1)
	b.trans.SetHeartbeatHandler(func(rpc raft.RPC) {
		beats <- rpc.Command.(*raft.AppendEntriesRequest)
		rpc.Respond(&raft.AppendEntriesResponse{Term: 9, Success: true}, nil)
	})

	heartbeat := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(a.addr)}, Term: 9}
	var resp raft.AppendEntriesResponse
	if err := a.trans.AppendEntries("b", b.addr, heartbeat, &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.Term != 9 {
		t.Fatalf("heartbeat response %+v", resp)
	}
	recvWithin(t, beats, 5*time.Second, "heartbeat handler")

	// Not a heartbeat: goes to the Consumer.
	notBeat := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(a.addr)}, Term: 9, LeaderCommitIndex: 1}
	if err := a.trans.AppendEntries("b", b.addr, notBeat, &resp); err != nil {
		t.Fatal(err)
	}
	recvWithin(t, seen, 5*time.Second, "consumer")
	if len(beats) != 0 {
		t.Fatal("non-heartbeat reached the heartbeat handler")
	}
}

func TestMalformedRequestIsRejected(t *testing.T) {
	conns := newConnCache(t)
	b := startServer(t, conns, nil)
	serveRPCs(t, b.trans, answerAll)
	cc, err := conns.conn(context.Background(), b.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out rawcodec.Frame
	for _, in := range [][]byte{nil, {0xff}, {kindAppendEntriesRequest, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}} {
		err := cc.Invoke(ctx, fullMethod(methodAppendEntries), &rawcodec.Frame{Data: in}, &out, rawcodec.CallOption())
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Invoke(%x) err = %v, want InvalidArgument", in, err)
		}
	}
	// The server still serves well-formed requests.
	a := startServer(t, conns, nil)
	var resp raft.RequestPreVoteResponse
	if err := a.trans.RequestPreVote("b", b.addr, &raft.RequestPreVoteRequest{Term: 1}, &resp); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineDeliversResponsesInOrder(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	seen := serveRPCs(t, b.trans, answerAll)

	p, err := a.trans.AppendEntriesPipeline("b", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	const n = 200
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			req := &raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i), Entries: []*raft.Log{{Index: uint64(i) + 1, Term: 1, Data: []byte{byte(i)}}}}
			if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := range n {
		f := recvWithin(t, p.Consumer(), 5*time.Second, fmt.Sprintf("future %d", i))
		if err := f.Error(); err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		if got := f.Request().PrevLogEntry; got != uint64(i) {
			t.Fatalf("future %d is for request %d", i, got)
		}
		if got := f.Response().LastLog; got != uint64(i)+1 {
			t.Fatalf("future %d: LastLog %d", i, got)
		}
		if f.Start().IsZero() {
			t.Fatalf("future %d: zero Start", i)
		}
		got := recvWithin(t, seen, 5*time.Second, "request").(*raft.AppendEntriesRequest)
		if got.PrevLogEntry != uint64(i) {
			t.Fatalf("peer got request %d, want %d", got.PrevLogEntry, i)
		}
	}
	if err := recvWithin(t, sent, 5*time.Second, "sender"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{}, new(raft.AppendEntriesResponse)); !errors.Is(err, ErrPipelineShutdown) {
		t.Fatalf("AppendEntries after Close: %v", err)
	}
}

func TestPipelineBoundsInFlight(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	release := make(chan struct{})
	seen := serveRPCs(t, b.trans, func(rpc raft.RPC) {
		<-release
		answerAll(rpc)
	})
	p, err := a.trans.AppendEntriesPipeline("b", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// With MaxInFlight 2 the first call returns at once and the second
	// sends, then waits for the first answer.
	returned := make(chan int, 3)
	go func() {
		for i := range 3 {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
				return
			}
			returned <- i
		}
	}()
	if i := recvWithin(t, returned, 5*time.Second, "first send"); i != 0 {
		t.Fatalf("first return %d", i)
	}
	recvWithin(t, seen, 5*time.Second, "request at the peer")
	select {
	case i := <-returned:
		t.Fatalf("call %d returned while two requests were unanswered", i)
	default:
	}
	close(release)
	for i := range 3 {
		f := recvWithin(t, p.Consumer(), 5*time.Second, "future")
		if err := f.Error(); err != nil || f.Request().PrevLogEntry != uint64(i) {
			t.Fatalf("future %d: %v, request %d", i, err, f.Request().PrevLogEntry)
		}
	}
	for i := 1; i < 3; i++ {
		recvWithin(t, returned, 5*time.Second, "later send")
	}
}

func TestPipelineDisabled(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, func(c *Config) { c.MaxInFlight = 1 })
	if _, err := a.trans.AppendEntriesPipeline("b", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("err = %v, want ErrPipelineReplicationNotSupported", err)
	}
}

// snapshotAnswer reads the whole snapshot and answers with its SHA-256 in
// the response's ID, or rejects it without reading when its term is 0.
func snapshotAnswer(rpc raft.RPC) {
	req, ok := rpc.Command.(*raft.InstallSnapshotRequest)
	if !ok {
		answerAll(rpc)
		return
	}
	if req.Term == 0 {
		rpc.Respond(&raft.InstallSnapshotResponse{Success: false}, nil)
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, rpc.Reader)
	if err == nil && n != req.Size {
		err = fmt.Errorf("read %d bytes, want %d", n, req.Size)
	}
	if err != nil {
		rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term}, err)
		return
	}
	rpc.Respond(&raft.InstallSnapshotResponse{RPCHeader: raft.RPCHeader{ID: h.Sum(nil)}, Term: req.Term, Success: true}, nil)
}

func TestInstallSnapshotStreamsData(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	serveRPCs(t, b.trans, snapshotAnswer)

	data := make([]byte, 3*snapshotChunkSize+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	sum := sha256.Sum256(data)
	req := &raft.InstallSnapshotRequest{Term: 2, LastLogIndex: 100, LastLogTerm: 2, Size: int64(len(data))}

	t.Run("complete", func(t *testing.T) {
		var resp raft.InstallSnapshotResponse
		if err := a.trans.InstallSnapshot("b", b.addr, req, &resp, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if !resp.Success || !bytes.Equal(resp.ID, sum[:]) {
			t.Fatalf("response %+v: the peer read other bytes", resp)
		}
	})
	t.Run("short", func(t *testing.T) {
		var resp raft.InstallSnapshotResponse
		err := a.trans.InstallSnapshot("b", b.addr, req, &resp, bytes.NewReader(data[:len(data)-1]))
		if !errors.Is(err, ErrRemote) {
			t.Fatalf("err = %v, want ErrRemote (peer read too few bytes)", err)
		}
	})
	t.Run("long", func(t *testing.T) {
		var resp raft.InstallSnapshotResponse
		err := a.trans.InstallSnapshot("b", b.addr, req, &resp, io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte("extra"))))
		if !errors.Is(err, ErrRemote) {
			t.Fatalf("err = %v, want ErrRemote (peer saw too many bytes)", err)
		}
	})
	t.Run("rejected unread", func(t *testing.T) {
		var resp raft.InstallSnapshotResponse
		rejected := *req
		rejected.Term = 0
		big := io.LimitReader(zeroReader{}, 64*snapshotChunkSize)
		if err := a.trans.InstallSnapshot("b", b.addr, &rejected, &resp, big); err != nil {
			t.Fatal(err)
		}
		if resp.Success {
			t.Fatal("rejected snapshot reported success")
		}
	})
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestCloseUnblocksPendingRPCs(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	c := startServer(t, conns, nil)

	// b takes RPCs from its Consumer and never answers.
	held := make(chan raft.RPC, 8)
	serveRPCs(t, b.trans, func(rpc raft.RPC) { held <- rpc })
	serveRPCs(t, c.trans, func(rpc raft.RPC) { held <- rpc })

	// A handler waiting for b's Raft fails when b's transport closes.
	errs := make(chan error, 1)
	go func() {
		var resp raft.RequestVoteResponse
		errs <- a.trans.RequestVote("b", b.addr, &raft.RequestVoteRequest{Term: 1}, &resp)
	}()
	recvWithin(t, held, 5*time.Second, "vote request at b")
	if err := b.trans.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.trans.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := recvWithin(t, errs, 5*time.Second, "RequestVote to fail")
	if status.Code(errors.Unwrap(err)) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}

	// Outgoing calls, pipelines and snapshots of a closed transport fail.
	var resp raft.RequestVoteResponse
	if err := b.trans.RequestVote("a", a.addr, &raft.RequestVoteRequest{}, &resp); !errors.Is(err, ErrTransportShutdown) {
		t.Fatalf("RequestVote on closed transport: %v", err)
	}
	if _, err := b.trans.AppendEntriesPipeline("a", a.addr); !errors.Is(err, ErrTransportShutdown) {
		t.Fatalf("AppendEntriesPipeline on closed transport: %v", err)
	}
	if err := b.trans.InstallSnapshot("a", a.addr, &raft.InstallSnapshotRequest{}, new(raft.InstallSnapshotResponse), bytes.NewReader(nil)); !errors.Is(err, ErrTransportShutdown) {
		t.Fatalf("InstallSnapshot on closed transport: %v", err)
	}

	// A's own pending call and open pipeline fail when a closes.
	p, err := a.trans.AppendEntriesPipeline("c", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	recvWithin(t, held, 5*time.Second, "pipelined request at c")
	go func() {
		var resp raft.RequestVoteResponse
		errs <- a.trans.RequestVote("c", c.addr, &raft.RequestVoteRequest{Term: 1}, &resp)
	}()
	recvWithin(t, held, 5*time.Second, "vote request at c")
	if err := a.trans.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvWithin(t, errs, 5*time.Second, "RequestVote to fail"); !errors.Is(err, ErrTransportShutdown) {
		t.Fatalf("pending call after Close: %v", err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); !errors.Is(err, ErrPipelineShutdown) {
		t.Fatalf("pipeline after transport Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTimeouts(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, func(c *Config) { c.Timeout = 150 * time.Millisecond })
	b := startServer(t, conns, nil)
	held := make(chan raft.RPC, 8)
	serveRPCs(t, b.trans, func(rpc raft.RPC) { held <- rpc })

	var resp raft.RequestVoteResponse
	err := a.trans.RequestVote("b", b.addr, &raft.RequestVoteRequest{Term: 1}, &resp)
	if status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
		t.Fatalf("unanswered call: err = %v, want DeadlineExceeded", err)
	}

	p, err := a.trans.AppendEntriesPipeline("b", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err != nil {
		t.Fatal(err)
	}
	f := recvWithin(t, p.Consumer(), 5*time.Second, "the unanswered future")
	if err := f.Error(); !errors.Is(err, errTimeout) {
		t.Fatalf("unanswered pipelined request: err = %v, want errTimeout", err)
	}
}

// TestHeartbeatHasItsOwnDeadline: a heartbeat to a peer that holds it (a
// paused process) fails after the heartbeat timeout, while an
// AppendEntries carrying entries, sent at the same time to the same peer,
// still waits for its answer under the general timeout.
func TestHeartbeatHasItsOwnDeadline(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, func(c *Config) { c.Timeout = time.Minute })
	a.trans.SetHeartbeatTimeout(150 * time.Millisecond)
	a.trans.SetHeartbeatTimeout(-time.Second) // ignored
	b := startServer(t, conns, nil)
	held := make(chan raft.RPC, 8)
	serveRPCs(t, b.trans, func(rpc raft.RPC) { held <- rpc })

	appended := make(chan error, 1)
	go func() {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(a.addr)}, Term: 1, PrevLogEntry: 1, PrevLogTerm: 1,
			Entries: []*raft.Log{{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("x")}}}
		appended <- a.trans.AppendEntries("b", b.addr, req, new(raft.AppendEntriesResponse))
	}()
	entries := recvWithin(t, held, 5*time.Second, "the AppendEntries with entries")

	beat := make(chan error, 1)
	go func() {
		heartbeat := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(a.addr)}, Term: 1}
		beat <- a.trans.AppendEntries("b", b.addr, heartbeat, new(raft.AppendEntriesResponse))
	}()
	// Under the general timeout it would take a minute.
	err := recvWithin(t, beat, 10*time.Second, "the held heartbeat's error")
	if status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded {
		t.Fatalf("held heartbeat: err = %v, want DeadlineExceeded", err)
	}
	recvWithin(t, held, 5*time.Second, "the heartbeat")
	select {
	case err := <-appended:
		t.Fatalf("the AppendEntries with entries returned (%v) under the heartbeat's deadline", err)
	default:
	}
	entries.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
	if err := recvWithin(t, appended, 5*time.Second, "the answered AppendEntries"); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineEndsAfterARefusedResponse plays raft's pipelineReplicate
// with its consumer: the consumer stops reading at the first refused
// response (Success false), as raft's pipelineDecode does, while the
// sender goes on sending. With the default MaxInFlight both channels are
// unbuffered: the sender must get an error, not wait forever
// (hashicorp/raft#612), and Close must return.
func TestPipelineEndsAfterARefusedResponse(t *testing.T) {
	conns := newConnCache(t)
	a := startServer(t, conns, nil)
	b := startServer(t, conns, nil)
	serveRPCs(t, b.trans, func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: req.PrevLogEntry < 3}, nil)
	})
	p, err := a.trans.AppendEntriesPipeline("b", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	consumed := make(chan uint64, 16)
	go func() { // raft's pipelineDecode
		for f := range p.Consumer() {
			consumed <- f.Request().PrevLogEntry
			if !f.Response().Success {
				return
			}
		}
	}()
	sendErr := make(chan error, 1)
	go func() { // raft's pipelineSend, triggered again and again
		for i := uint64(0); ; i++ {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: i}, new(raft.AppendEntriesResponse)); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	for want := uint64(0); want <= 3; want++ {
		if got := recvWithin(t, consumed, 5*time.Second, "a consumed future"); got != want {
			t.Fatalf("consumed the future of request %d, want %d", got, want)
		}
	}
	if err := recvWithin(t, sendErr, 5*time.Second, "the sender's error after the refusal"); !errors.Is(err, ErrPipelineShutdown) {
		t.Fatalf("sender: %v, want ErrPipelineShutdown", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	if err := recvWithin(t, closed, 5*time.Second, "Close"); err != nil {
		t.Fatal(err)
	}
}
