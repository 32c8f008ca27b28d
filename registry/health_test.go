package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dchan-io/dchan/internal/faultproxy"
)

// healthOf asks the node at addr for its health, as a probe would: a
// plain gRPC client without the cluster token or a protocol version.
func healthOf(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	return resp.GetStatus()
}

// TestHealthFollowsContactWithTheLeader: a member answers SERVING; cut off
// from the others for longer than the expiry grace it answers NOT_SERVING,
// and SERVING again once it is back in the cluster.
func TestHealthFollowsContactWithTheLeader(t *testing.T) {
	network := faultproxy.NewNetwork()
	defer network.Close()
	nodes := startClusterVia(t, network)
	leader := waitLeaderOf(t, nodes...)
	victim := followersOf(leader, nodes)[0]
	for _, n := range nodes {
		require.Eventually(t, func() bool { return healthOf(t, n.addr) == healthpb.HealthCheckResponse_SERVING },
			clusterWait, 20*time.Millisecond, "%s serves once joined", n.id)
	}
	cutOff, others := isolate(t, network, nodes, victim)
	require.NoError(t, network.Partition(cutOff, others))
	cut := time.Now()
	require.Eventually(t, func() bool { return healthOf(t, victim.addr) == healthpb.HealthCheckResponse_NOT_SERVING },
		clusterWait, 20*time.Millisecond, "a node cut off answers NOT_SERVING")
	t.Logf("NOT_SERVING %v after the cut (grace %v)", time.Since(cut), time.Second)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, healthOf(t, leader.addr), "the majority's leader still serves")
	require.NoError(t, network.Reconnect(cutOff, others))
	require.Eventually(t, func() bool { return healthOf(t, victim.addr) == healthpb.HealthCheckResponse_SERVING },
		clusterWait, 20*time.Millisecond, "SERVING again after the heal")
}
