package security

// TokenKey is the gRPC metadata key that carries the cluster token.
const TokenKey = "dchan-token"

// Status messages of refused RPCs. They name the problem, never the token
// the peer presented.
const (
	msgMissingToken = "dchan: missing cluster token"
	msgInvalidToken = "dchan: invalid cluster token"
)
