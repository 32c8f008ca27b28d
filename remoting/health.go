package remoting

import (
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthCheckMethod is the one method of grpc.health.v1.Health served
// without the cluster token or a protocol version: probes (Kubernetes,
// grpc-health-probe, load balancers) hold neither. Watch and List stay
// behind the token.
const healthCheckMethod = "/grpc.health.v1.Health/Check"

// LivenessService is the health service name that answers SERVING for as
// long as the endpoint runs and has not begun to shut down, whatever the
// node's place in its cluster: the check for a liveness probe, which
// should not restart a node only because its cluster lost its quorum. The
// whole server's status (service "") is the readiness check.
const LivenessService = "liveness"

// newHealth returns the endpoint's health service: NOT_SERVING for the
// server until its owner says otherwise, SERVING for LivenessService.
func newHealth() *health.Server {
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	return h
}

// SetServing sets what the endpoint's grpc.health.v1.Health service
// answers for the whole server (service ""): SERVING or NOT_SERVING. The
// owner reports there whether the node is a working member of its cluster.
// After Drain it has no effect.
func (e *Endpoint) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	e.health.SetServingStatus("", st)
}

// Drain makes the health service answer NOT_SERVING from now on, whatever
// SetServing says later: the owner calls it when it begins to shut down,
// so that probes and load balancers stop sending work before the node
// leaves.
func (e *Endpoint) Drain() { e.health.Shutdown() }
