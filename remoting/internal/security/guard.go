package security

import (
	"context"
	"crypto/sha256"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
)

// refusalLogInterval is the least time between two refusal log entries of
// one kind (token, TLS); refusals in between are counted and reported in
// the next entry's "suppressed" field.
const refusalLogInterval = time.Second

// Guard is a node's validated security configuration. It builds the gRPC
// options that enforce it on the node's server and on its client
// connections. A Guard is safe for concurrent use, runs no goroutine and
// needs no closing; use one per node for both its server and its clients.
type Guard struct {
	serverCreds credentials.TransportCredentials
	clientCreds credentials.TransportCredentials
	token       string
	tokenSum    [sha256.Size]byte
	protocol    Protocol
	nodeID      string
	open        map[string]struct{} // methods served without token or version

	log      *zap.Logger
	tokenLog logLimiter // refused RPCs and streams
	tlsLog   logLimiter // refused TLS handshakes
}

// New validates cfg and returns its Guard, or an error wrapping
// ErrInvalidConfig. The TLS configs are copied: changing them afterwards
// does not affect the Guard.
func New(cfg Config) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Guard{
		token:    cfg.Token,
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
		protocol: cfg.Protocol,
		nodeID:   cfg.NodeID,
		open:     make(map[string]struct{}, len(cfg.Open)),
		log:      cfg.Logger,
		tokenLog: logLimiter{interval: int64(refusalLogInterval)},
		tlsLog:   logLimiter{interval: int64(refusalLogInterval)},
	}
	for _, m := range cfg.Open {
		g.open[m] = struct{}{}
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	g.log = g.log.Named("security")
	if cfg.ServerTLS == nil {
		g.serverCreds = insecure.NewCredentials()
		g.clientCreds = insecure.NewCredentials()
	} else {
		// credentials.NewTLS clones the configs and adds gRPC's defaults
		// (ALPN "h2", TLS 1.2 at least, HTTP/2-safe cipher suites).
		g.serverCreds = serverCreds{TransportCredentials: credentials.NewTLS(cfg.ServerTLS), g: g}
		g.clientCreds = credentials.NewTLS(cfg.ClientTLS)
	}
	return g, nil
}

// ServerOptions returns the options that make a gRPC server enforce the
// Guard: its transport credentials and a tap handle that checks every RPC
// and stream's headers (protocol version, token) before gRPC reads any of
// its body or runs any handler. gRPC allows one tap handle per server:
// this is it.
func (g *Guard) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.Creds(g.serverCreds), grpc.InTapHandle(g.admit)}
}

// DialOptions returns the options that make a client connection meet the
// Guard of its peers: transport credentials and per-RPC credentials that
// attach the token and the protocol version to every RPC and stream.
func (g *Guard) DialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(g.clientCreds)}
	if g.token != "" || g.protocol.Version != 0 || g.nodeID != "" {
		h := headerCreds{token: g.token, node: g.nodeID}
		if g.protocol.Version != 0 {
			h.protocol = strconv.Itoa(g.protocol.Version)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(h))
	}
	return opts
}

// refuseRPC logs an RPC or stream refused for its token, unless the limiter
// holds it back. The presented token is never logged.
func (g *Guard) refuseRPC(ctx context.Context, method, reason string) {
	ok, suppressed := g.tokenLog.allow(time.Now().UnixNano())
	if !ok {
		return
	}
	addr := "unknown"
	if p, found := peer.FromContext(ctx); found && p.Addr != nil {
		addr = p.Addr.String()
	}
	g.log.Warn("refused peer RPC",
		zap.String("peer", addr),
		zap.String("method", method),
		zap.String("reason", reason),
		zap.Uint64("suppressed", suppressed),
	)
}

// refuseConn logs a connection whose TLS handshake failed, unless the
// limiter holds it back.
func (g *Guard) refuseConn(remote net.Addr, err error) {
	ok, suppressed := g.tlsLog.allow(time.Now().UnixNano())
	if !ok {
		return
	}
	addr := "unknown"
	if remote != nil {
		addr = remote.String()
	}
	g.log.Warn("refused peer connection",
		zap.String("peer", addr),
		zap.String("reason", "tls handshake failed"),
		zap.Error(err),
		zap.Uint64("suppressed", suppressed),
	)
}
