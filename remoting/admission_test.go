package remoting

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/security"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// bigUnary sends a 48 MiB request to a unary method of the node at addr,
// with the given metadata, and returns the call's error and how many bytes
// the whole process allocated meanwhile (the client sends the request from
// one buffer without copying it, so nearly all of that is the server's).
func bigUnary(t *testing.T, addr string, md metadata.MD) (uint64, error) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	defer cc.Close()
	body := make([]byte, 48<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, md)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var out rawcodec.Frame
	err = cc.Invoke(ctx, "/dchan.raft.v1.Raft/AppendEntries", &rawcodec.Frame{Data: body}, &out, rawcodec.CallOption())
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// refusedCallAllocBound bounds what a refused 48 MiB call may allocate: the
// transport takes in what the client sent within gRPC's flow-control
// window before the refusal resets the stream (1–2 MiB on a loaded
// machine); reading the body would take 48 MiB, decoding it used to take 97.
const refusedCallAllocBound = 8 << 20

// TestUnauthenticatedRequestBodyIsNeverRead: a 48 MiB request without the
// token is refused on its headers; the node allocates nothing near its
// size (it used to decode the whole frame, ~97 MiB, before the token check).
func TestUnauthenticatedRequestBodyIsNeverRead(t *testing.T) {
	n := startNode(t, "b", StaticResolver{}, WithToken("s3cret"))
	alloc, err := bigUnary(t, n.ep.Addr(), metadata.Pairs(security.ProtocolKey, "1", security.NodeKey, "x"))
	t.Logf("refused: %v; allocated %d KiB", status.Code(err), alloc>>10)
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Less(t, alloc, uint64(refusedCallAllocBound), "allocated during the refused call")
}

// TestMemberRequestOverTheFrameLimitIsRefused: a peer with the token
// cannot make the node allocate more than a frame either: the length
// prefix is checked before the body is read.
func TestMemberRequestOverTheFrameLimitIsRefused(t *testing.T) {
	n := startNode(t, "b", StaticResolver{}, WithToken("s3cret"))
	alloc, err := bigUnary(t, n.ep.Addr(), metadata.Pairs(security.TokenKey, "s3cret", security.ProtocolKey, "1", security.NodeKey, "x"))
	t.Logf("refused: %v; allocated %d KiB", status.Code(err), alloc>>10)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Less(t, alloc, uint64(refusedCallAllocBound), "allocated during the refused call")
}

// TestRaftRequestInAnotherServersNameIsRefused: Raft takes a request's
// header ID for its sender; a member's request naming another server is
// refused before it reaches Raft.
func TestRaftRequestInAnotherServersNameIsRefused(t *testing.T) {
	b := startNode(t, "b", StaticResolver{})
	x := startNode(t, "x", StaticResolver{})
	var resp raft.RequestVoteResponse
	err := x.ep.RaftTransport().RequestVote("b", raft.ServerAddress(b.ep.Addr()),
		&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("n2"), Addr: []byte(x.ep.Addr())}, Term: 99}, &resp)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PermissionDenied")
	select {
	case rpc := <-b.ep.RaftTransport().Consumer():
		t.Fatalf("a request in another's name reached Raft: %T", rpc.Command)
	case <-time.After(50 * time.Millisecond):
	}
	// In its own name it does reach Raft.
	go func() {
		_ = x.ep.RaftTransport().RequestVote("b", raft.ServerAddress(b.ep.Addr()),
			&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte(x.ep.Addr())}, Term: 99}, &resp)
	}()
	select {
	case rpc := <-b.ep.RaftTransport().Consumer():
		rpc.Respond(&raft.RequestVoteResponse{}, nil)
	case <-time.After(5 * time.Second):
		t.Fatal("a request in the sender's own name never reached Raft")
	}
}

// TestReplyBufferIsBounded: a member opens links to actors that do not
// exist, frame after frame, and never reads the refusals. The node closes
// the stream once a bounded amount of replies waits; its heap stays flat
// (the same attack grew it by 156 MiB before).
func TestReplyBufferIsBounded(t *testing.T) {
	n := startNode(t, "b", StaticResolver{})
	cc, err := grpc.NewClient(n.ep.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(security.ProtocolKey, "1", security.NodeKey, "x"))
	s, err := cc.NewStream(ctx, &messagesStreamDesc, messagesMethod, rawcodec.CallOption())
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// The attacker sends without reading; its sends block once the node
	// stops reading them (it closed the stream), so they run apart.
	sent := make(chan int, 1)
	go func() {
		next, count := 0, 0
		for ; count < 16; count++ {
			frame := make([]byte, 0, 4<<20-1024) // gRPC may read a frame after SendMsg returns
			for len(frame) < cap(frame)-16 {
				frame = wire.AppendOpen(frame, "a"+strconv.Itoa(next))
				next++
			}
			if s.SendMsg(&rawcodec.Frame{Data: frame}) != nil {
				break // the node closed the stream
			}
		}
		sent <- count
	}()
	time.Sleep(time.Second) // the node reads, answers, and gives up on the attacker
	// What the node wrote before it closed the stream, then its status.
	for err = s.RecvMsg(new(rawcodec.Frame)); err == nil; err = s.RecvMsg(new(rawcodec.Frame)) {
	}
	cancel()
	frames := <-sent
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("sent %d frames of 4 MiB; stream ended with %v; heap in use grew %d KiB", frames, status.Code(err), growth>>10)
	assert.NotEqual(t, codes.OK, status.Code(err), "the node closed the stream")
	assert.Less(t, growth, int64(16<<20), "heap growth")
}

// TestOpenListenerWarns: a node that listens beyond loopback with neither
// TLS nor a token says so once, at Warn; on loopback, or with a token, it
// says nothing.
func TestOpenListenerWarns(t *testing.T) {
	for _, tc := range []struct {
		listen string
		opts   []Option
		warn   bool
	}{
		{"0.0.0.0:0", nil, true},
		{"127.0.0.1:0", nil, false},
		{"0.0.0.0:0", []Option{WithToken("t")}, false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		sys, err := actor.NewSystem(actor.WithNode("w"))
		require.NoError(t, err)
		ep, err := New(sys, append([]Option{WithListenAddr(tc.listen), WithAdvertiseAddr("127.0.0.1"), WithLogger(zap.New(core))}, tc.opts...)...)
		require.NoError(t, err)
		n := logs.FilterMessageSnippet("without TLS or a cluster token").Len()
		assert.Equal(t, tc.warn, n == 1, "%s %v: %d warnings", tc.listen, tc.opts, n)
		require.NoError(t, ep.Close())
		require.NoError(t, sys.Shutdown(context.Background()))
	}
}
