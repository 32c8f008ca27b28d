package remoting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/internal/testcerts"
	"github.com/dchan-io/dchan/remoting/internal/security"
)

// TestSenderClaimingAnotherNodeIsRefused: a member sends a message whose
// sender names another node. The receiving side takes the sender's node
// from the stream, sees the lie, closes the stream; the target never sees
// the message, and the sender's other messages fail with the stream.
func TestSenderClaimingAnotherNodeIsRefused(t *testing.T) {
	nodes := startNodes(t, 3)
	target, attacker := nodes[0], nodes[2]
	s := newSink()
	pid, err := target.sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)

	// An honest message first: the stream works.
	require.NoError(t, attacker.ep.Send(context.Background(), pid, actor.PID{Node: attacker.name, ID: "me"}, item{From: "honest", Seq: 1}))
	s.waitCount(t, 1)
	done := make(chan error, 1)
	forged := actor.PID{Node: nodes[1].name, ID: "victim"}
	require.NoError(t, attacker.ep.SendTracked(context.Background(), pid, forged, item{From: "forged", Seq: 1}, func(err error) { done <- err }))
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrNodeLost, "the stream that carried it was closed")
	case <-time.After(waitFor):
		t.Fatal("the forged message's outcome never came")
	}
	time.Sleep(50 * time.Millisecond) // anything that slipped through would arrive now
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, 1, s.count, "the forged message never reached the actor")
	_, seen := s.last["forged"]
	assert.False(t, seen)
}

// TestDeclaredIDMustMatchTheCertificate: with mutual TLS a peer's identity
// is its certificate's; a peer holding n3's certificate that declares
// itself n2 is refused before anything it sends is read.
func TestDeclaredIDMustMatchTheCertificate(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	srv, cli, err := ca.NodeTLS("n1")
	require.NoError(t, err)
	n1 := startNode(t, "n1", StaticResolver{}, WithTLS(srv, cli))
	_, cli3, err := ca.NodeTLS("n3")
	require.NoError(t, err)

	call := func(declared string) error {
		cc, err := grpc.NewClient(n1.ep.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cli3)))
		require.NoError(t, err)
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		md := metadata.Pairs(security.ProtocolKey, "1")
		if declared != "" {
			md.Append(security.NodeKey, declared)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
		s, err := cc.NewStream(ctx, &messagesStreamDesc, messagesMethod, rawcodec.CallOption())
		require.NoError(t, err)
		require.NoError(t, s.CloseSend())
		return s.RecvMsg(new(rawcodec.Frame))
	}
	err = call("n2")
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "declared n2 with n3's certificate: %v", err)
	assert.Contains(t, status.Convert(err).Message(), `"n3"`)
	// Declaring its own ID, or none (the certificate says who it is), is
	// let in: the stream then ends normally.
	for _, declared := range []string{"n3", ""} {
		err = call(declared)
		assert.NotEqual(t, codes.PermissionDenied, status.Code(err), "declared %q: %v", declared, err)
	}
}

// TestCertificateMustNameTheNode: an endpoint whose certificate names
// another node than its own is refused at New.
func TestCertificateMustNameTheNode(t *testing.T) {
	ca, err := testcerts.NewAuthority("cluster")
	require.NoError(t, err)
	srv, cli, err := ca.NodeTLS("n3")
	require.NoError(t, err)
	sys, err := actor.NewSystem(actor.WithNode("n2"))
	require.NoError(t, err)
	defer func() { _ = sys.Shutdown(context.Background()) }()
	_, err = New(sys, WithTLS(srv, cli))
	require.ErrorIs(t, err, ErrInvalidOption)
	assert.Contains(t, err.Error(), `"n3"`)
	assert.Contains(t, err.Error(), `"n2"`)
}
