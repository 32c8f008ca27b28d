package remoting

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// TestGarbageAtThePortLeavesTheNodeWorking throws bytes that are not gRPC
// at a node's port — random junk, a broken HTTP/2 preface, a valid preface
// followed by junk, a half-open connection — and garbage frames on a real
// Messages stream; the node keeps serving the other streams.
func TestGarbageAtThePortLeavesTheNodeWorking(t *testing.T) {
	nodes := startNodes(t, 2)
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 1}))
	s.waitCount(t, 1)

	addr := nodes[1].ep.Addr()
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0xff, 0xff, 0xff, 0x09, 0xff, 0, 0, 0, 1, 'j', 'u', 'n', 'k'),
		make([]byte, 64<<10),
		{},
	} {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		require.NoError(t, err)
		_, _ = conn.Write(junk)
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = conn.Read(make([]byte, 1024))
		_ = conn.Close()
	}

	// A real stream carrying frames that are not records: only that stream
	// is closed.
	conn, err := nodes[0].ep.Conn(addr)
	require.NoError(t, err)
	cs, err := conn.NewStream(ctx, &messagesStreamDesc, messagesMethod, rawcodec.CallOption())
	require.NoError(t, err)
	require.NoError(t, cs.SendMsg(&rawcodec.Frame{Data: []byte{0xee, 1, 2, 3}}))
	var reply rawcodec.Frame
	require.Error(t, cs.RecvMsg(&reply), "the node closes a stream that sends garbage")

	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 2}))
	s.waitCount(t, 2)
}
