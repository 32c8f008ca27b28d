package security

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// ProtocolKey is the gRPC metadata key that carries the protocol version
// of the node that opened an RPC or stream.
const ProtocolKey = "dchan-protocol"

// msgIncompatible starts the status message of an RPC refused for its
// protocol version; IsIncompatible looks for it.
const msgIncompatible = "dchan: incompatible protocol"

// Protocol is the range of wire protocol versions a node speaks: it sends
// Version with every RPC and stream, and accepts peers whose version is
// within [Min, Version]. The zero Protocol sends and checks nothing.
type Protocol struct {
	Version int
	Min     int
}

// admit runs for every new RPC and stream as gRPC's tap handle: on the
// request's headers, before gRPC reads any of its body. It lets the
// methods of Config.Open through untouched, then refuses a peer without
// the token (codes.Unauthenticated: a stranger learns nothing more), one
// of an incompatible protocol version (codes.FailedPrecondition), and one
// whose declared node ID is not the one its certificate names
// (codes.PermissionDenied); it records the peer's identity in the
// stream's ctx (PeerIdentity).
func (g *Guard) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if _, ok := g.open[info.FullMethodName]; ok {
		return ctx, nil
	}
	if g.token != "" {
		if err := g.checkToken(ctx, info.FullMethodName, info.Header); err != nil {
			return ctx, err
		}
	}
	if err := g.checkProtocol(ctx, info.FullMethodName, info.Header); err != nil {
		return ctx, err
	}
	if g.nodeID == "" {
		return ctx, nil // not a node: no identities
	}
	return g.identify(ctx, info.FullMethodName, info.Header)
}

func (g *Guard) checkProtocol(ctx context.Context, method string, md metadata.MD) error {
	if g.protocol.Version == 0 {
		return nil
	}
	values := md.Get(ProtocolKey)
	v := -1
	if len(values) == 1 {
		if n, err := strconv.Atoi(values[0]); err == nil {
			v = n
		}
	}
	if v >= g.protocol.Min && v <= g.protocol.Version {
		return nil
	}
	theirs := "none"
	if len(values) > 0 {
		theirs = strings.Join(values, ",")
	}
	msg := fmt.Sprintf("%s: the peer speaks version %s, this node %d (accepts %d to %d)",
		msgIncompatible, theirs, g.protocol.Version, g.protocol.Min, g.protocol.Version)
	g.refuseRPC(ctx, method, "incompatible protocol version "+theirs)
	return status.Error(codes.FailedPrecondition, msg)
}

// IsIncompatible reports whether err is a peer's refusal of this node's
// protocol version.
func IsIncompatible(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.FailedPrecondition && strings.HasPrefix(st.Message(), msgIncompatible)
}

// checkToken returns nil if md carries exactly one value for TokenKey and
// that value is the cluster token, or else a codes.Unauthenticated status.
// The values are compared as SHA-256 digests with crypto/subtle, so the
// time taken reveals neither the token's bytes nor its length.
func (g *Guard) checkToken(ctx context.Context, method string, md metadata.MD) error {
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

// headerCreds attaches the token (if any) and the protocol version (if
// any) to every RPC and stream a client connection starts.
type headerCreds struct {
	token    string
	protocol string
	node     string
}

var _ credentials.PerRPCCredentials = headerCreds{}

// GetRequestMetadata returns the headers; a fresh map per call, as gRPC
// owns what it is given.
func (c headerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	md := make(map[string]string, 3)
	if c.token != "" {
		md[TokenKey] = c.token
	}
	if c.node != "" {
		md[NodeKey] = c.node
	}
	if c.protocol != "" {
		md[ProtocolKey] = c.protocol
	}
	return md, nil
}

// RequireTransportSecurity is false so that the token also works over
// plaintext; Config documents that it is then readable on the wire.
func (headerCreds) RequireTransportSecurity() bool { return false }
