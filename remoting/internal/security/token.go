package security

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenKey is the gRPC metadata key that carries the cluster token.
const TokenKey = "dchan-token"

// Status messages of refused RPCs. They name the problem, never the token
// the peer presented.
const (
	msgMissingToken = "dchan: missing cluster token"
	msgInvalidToken = "dchan: invalid cluster token"
)

// tokenCreds attaches the cluster token to every RPC and stream a client
// connection starts.
type tokenCreds struct {
	token string
}

var _ credentials.PerRPCCredentials = tokenCreds{}

// GetRequestMetadata returns the token's metadata; a fresh map per call, as
// gRPC owns what it is given.
func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{TokenKey: c.token}, nil
}

// RequireTransportSecurity is false so that the token also works over
// plaintext; Config documents that it is then readable on the wire.
func (tokenCreds) RequireTransportSecurity() bool { return false }

// checkToken returns nil if ctx's incoming metadata carries exactly one
// value for TokenKey and that value is the cluster token, or else a
// codes.Unauthenticated status. The values are compared as SHA-256 digests
// with crypto/subtle, so the time taken reveals neither the token's bytes
// nor its length.
func (g *Guard) checkToken(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(TokenKey)
	var reason, msg string
	switch len(values) {
	case 0:
		reason, msg = "missing token", msgMissingToken
	case 1:
		sum := sha256.Sum256([]byte(values[0]))
		if subtle.ConstantTimeCompare(sum[:], g.tokenSum[:]) == 1 {
			return nil
		}
		reason, msg = "wrong token", msgInvalidToken
	default:
		reason, msg = "several tokens", msgInvalidToken
	}
	g.refuseRPC(ctx, method, reason)
	return status.Error(codes.Unauthenticated, msg)
}

// unaryInterceptor refuses a unary RPC without the token before its
// handler runs.
func (g *Guard) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.checkToken(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// streamInterceptor refuses a stream without the token before its handler
// runs, so no message of the stream is read.
func (g *Guard) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := g.checkToken(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
