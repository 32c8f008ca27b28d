package remoting

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/testcerts"
)

// startNode starts one node whose resolver knows the given peers.
func startNode(t *testing.T, name string, peers StaticResolver, opts ...Option) *node {
	t.Helper()
	sys, err := actor.NewSystem(actor.WithNode(name), actor.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	codec, err := NewGobCodec(item{})
	require.NoError(t, err)
	ep, err := New(sys, append([]Option{WithResolver(peers), WithCodec(codec), WithLogger(zaptest.NewLogger(t))}, opts...)...)
	require.NoError(t, err)
	sys.SetRemote(ep)
	require.NoError(t, ep.Start())
	n := &node{name: name, sys: sys, ep: ep}
	t.Cleanup(func() { n.stop(t) })
	return n
}

// assertRefused sends from → to's sink and checks that the send fails and
// the sink never sees a message.
func assertRefused(t *testing.T, from *node, target actor.PID, s *sink) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := from.sys.Send(ctx, target, item{From: from.name, Seq: 1})
	require.Error(t, err, "a peer failing authentication must be refused")
	time.Sleep(50 * time.Millisecond) // let anything that slipped through arrive
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Zero(t, s.count, "nothing from a refused peer may reach an actor")
	return err
}

func TestMissingTokenIsRefused(t *testing.T) {
	b := startNode(t, "b", StaticResolver{}, WithToken("s3cret"))
	s := newSink()
	target, err := b.sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)

	stranger := startNode(t, "x", StaticResolver{"b": b.ep.Addr()})
	err = assertRefused(t, stranger, target, s)
	assert.ErrorIs(t, err, ErrNodeLost)
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "refused with Unauthenticated: %v", err)

	wrong := startNode(t, "w", StaticResolver{"b": b.ep.Addr()}, WithToken("guess"))
	assertRefused(t, wrong, target, s)

	member := startNode(t, "a", StaticResolver{"b": b.ep.Addr()}, WithToken("s3cret"))
	require.NoError(t, member.sys.Send(context.Background(), target, item{From: "a", Seq: 1}))
	s.waitCount(t, 1)
}

func TestWrongCAIsRefused(t *testing.T) {
	cluster, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	other, err := testcerts.NewAuthority("other")
	require.NoError(t, err)

	srvB, cliB, err := cluster.NodeTLS("b")
	require.NoError(t, err)
	b := startNode(t, "b", StaticResolver{}, WithTLS(srvB, cliB))
	s := newSink()
	target, err := b.sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)

	srvX, cliX, err := other.NodeTLS("x")
	require.NoError(t, err)
	stranger := startNode(t, "x", StaticResolver{"b": b.ep.Addr()}, WithTLS(srvX, cliX))
	assertRefused(t, stranger, target, s)

	plain := startNode(t, "p", StaticResolver{"b": b.ep.Addr()})
	assertRefused(t, plain, target, s)

	srvA, cliA, err := cluster.NodeTLS("a")
	require.NoError(t, err)
	member := startNode(t, "a", StaticResolver{"b": b.ep.Addr()}, WithTLS(srvA, cliA))
	require.NoError(t, member.sys.Send(context.Background(), target, item{From: "a", Seq: 1}))
	s.waitCount(t, 1)
}

func TestMissingTokenNeverReachesRaft(t *testing.T) {
	b := startNode(t, "b", StaticResolver{}, WithToken("s3cret"))
	stranger := startNode(t, "x", StaticResolver{})
	var resp raft.RequestVoteResponse
	err := stranger.ep.RaftTransport().RequestVote("b", raft.ServerAddress(b.ep.Addr()),
		&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte(stranger.ep.Addr())}, Term: 99}, &resp)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Unauthenticated")
	select {
	case rpc := <-b.ep.RaftTransport().Consumer():
		t.Fatalf("a refused peer's RPC reached Raft: %T", rpc.Command)
	case <-time.After(50 * time.Millisecond):
	}
}
