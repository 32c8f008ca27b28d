package remoting

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestHealthCheckNeedsNoTokenAndRevealsNothingElse: a probe without the
// cluster token or a protocol version gets answers from
// grpc.health.v1.Health/Check, and from nothing else: Watch, List and
// dchan's own services refuse it.
func TestHealthCheckNeedsNoTokenAndRevealsNothingElse(t *testing.T) {
	n := startNode(t, "a", StaticResolver{}, WithToken("s3cret"))
	cc, err := grpc.NewClient(n.ep.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)

	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus(), "not serving until its owner says so")
	n.ep.SetServing(true)
	resp, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	resp, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: LivenessService})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = w.Recv()
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "Watch needs the token: %v", err)
	_, err = hc.List(ctx, &healthpb.HealthListRequest{})
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "List needs the token: %v", err)
	s, err := cc.NewStream(ctx, &messagesStreamDesc, messagesMethod)
	require.NoError(t, err)
	assert.Equal(t, codes.Unauthenticated, status.Code(s.RecvMsg(new(struct{}))), "the message stream needs the token")

	// Drain: NOT_SERVING from now on, whatever the owner says.
	n.ep.Drain()
	n.ep.SetServing(true)
	for _, svc := range []string{"", LivenessService} {
		resp, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus(), "service %q after Drain", svc)
	}
}
