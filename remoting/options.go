package remoting

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Defaults.
const (
	// DefaultMaxMessageSize bounds one encoded message (1 MiB).
	DefaultMaxMessageSize = 1 << 20
	// DefaultMaxWindow bounds the credit window of one link (sender stream
	// to one target actor). A window must cover the messages sent during
	// one credit round trip; on a busy machine that trip crosses several
	// goroutines on each side, and 1024 left RemoteSend waiting for credit
	// for half its run (docs/benchmarks.md). It is also the most a link
	// holds in the receiver's overflow when the target's mailbox is full.
	DefaultMaxWindow = 4096
	// DefaultMaxBatchBytes bounds the bytes queued for one peer's stream;
	// senders wait while it is exceeded.
	DefaultMaxBatchBytes = 1 << 20
)

// Resolver maps a node name (actor.PID.Node) to its listen address. The
// registry implements it; tests may use a StaticResolver.
type Resolver interface {
	Resolve(node string) (addr string, err error)
}

// StaticResolver is a fixed node → address map.
type StaticResolver map[string]string

// Resolve implements Resolver.
func (r StaticResolver) Resolve(node string) (string, error) {
	if addr, ok := r[node]; ok {
		return addr, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownNode, node)
}

// Option configures an Endpoint.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	listenAddr     string
	advertiseAddr  string
	resolver       Resolver
	codec          Codec
	logger         *zap.Logger
	serverTLS      *tls.Config
	clientTLS      *tls.Config
	token          string
	protocol       [2]int // version, min; zero: ProtocolVersion, MinProtocolVersion
	maxMessageSize int
	maxWindow      int
	minWindow      int
	maxBatchBytes  int
	dialer         func(ctx context.Context, addr string) (net.Conn, error)
	linkSweep      time.Duration
	// afterStream, if set, runs in every send between finding the
	// peer's stream and queueing on it (tests of a stream that breaks
	// under a send).
	afterStream func()
}

func defaultConfig() config {
	return config{
		listenAddr:     "127.0.0.1:0",
		logger:         zap.NewNop(),
		maxMessageSize: DefaultMaxMessageSize,
		maxWindow:      DefaultMaxWindow,
		maxBatchBytes:  DefaultMaxBatchBytes,
		linkSweep:      5 * time.Second,
	}
}

func (c *config) validate() error {
	switch {
	case c.listenAddr == "":
		return fmt.Errorf("%w: empty listen address", ErrInvalidOption)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	case c.maxMessageSize < 1 || c.maxMessageSize > 64<<20:
		return fmt.Errorf("%w: max message size %d outside [1, 64 MiB]", ErrInvalidOption, c.maxMessageSize)
	case c.maxWindow < 1:
		return fmt.Errorf("%w: max window %d must be positive", ErrInvalidOption, c.maxWindow)
	case c.minWindow < 0 || c.minWindow > c.maxWindow:
		return fmt.Errorf("%w: min window %d outside [0, max window %d]", ErrInvalidOption, c.minWindow, c.maxWindow)
	case c.maxBatchBytes < 1:
		return fmt.Errorf("%w: max batch bytes %d must be positive", ErrInvalidOption, c.maxBatchBytes)
	}
	return nil
}

// WithListenAddr sets the address to listen on (default "127.0.0.1:0", a
// free port; Addr reports the bound address).
func WithListenAddr(addr string) Option { return optionFunc(func(c *config) { c.listenAddr = addr }) }

// WithAdvertiseAddr sets the address peers dial to reach this endpoint:
// the Raft transport's local address, and what the registry records for
// the node. Default: the bound listen address, or, when listening on every
// interface (0.0.0.0, [::], ":port"), the host's single private IPv4
// address with the bound port. A host name is allowed; a missing or zero
// port takes the bound port.
func WithAdvertiseAddr(addr string) Option {
	return optionFunc(func(c *config) { c.advertiseAddr = addr })
}

// WithResolver sets how node names become addresses (required to send to
// other nodes by PID).
func WithResolver(r Resolver) Option { return optionFunc(func(c *config) { c.resolver = r }) }

// WithCodec sets the message codec (default: a GobCodec without registered
// types).
func WithCodec(codec Codec) Option { return optionFunc(func(c *config) { c.codec = codec }) }

// WithLogger sets the logger (default: silent).
func WithLogger(l *zap.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithTLS secures every connection: server is used for accepted
// connections, client for dialled ones. For mutual TLS, server must require
// and verify client certificates.
func WithTLS(server, client *tls.Config) Option {
	return optionFunc(func(c *config) { c.serverTLS, c.clientTLS = server, client })
}

// WithToken sets a shared cluster secret that every RPC must carry.
func WithToken(token string) Option { return optionFunc(func(c *config) { c.token = token }) }

// WithMaxMessageSize bounds one encoded message, enforced by sender and
// receiver (default DefaultMaxMessageSize).
func WithMaxMessageSize(n int) Option { return optionFunc(func(c *config) { c.maxMessageSize = n }) }

// WithMaxWindow bounds the credits one link may hold (default
// DefaultMaxWindow).
func WithMaxWindow(n int) Option { return optionFunc(func(c *config) { c.maxWindow = n }) }

// WithMinWindow sets the least credit window of a link, whatever the free
// space of its target's mailbox (default 0: the free space, at least 1).
// A link whose window is a small mailbox's size waits for credit most of
// the time; with a larger window what exceeds the mailbox waits in the
// link's overflow at the receiver, at most the window per link.
func WithMinWindow(n int) Option { return optionFunc(func(c *config) { c.minWindow = n }) }

// WithDialer replaces how connections to peers are dialled (default: TCP).
// Fault tests route peers through a proxy with it; TLS still runs on top.
func WithDialer(dial func(ctx context.Context, addr string) (net.Conn, error)) Option {
	return optionFunc(func(c *config) { c.dialer = dial })
}

// withProtocol makes the endpoint speak another protocol version range
// (tests of version mismatches).
func withProtocol(version, minVersion int) Option {
	return optionFunc(func(c *config) { c.protocol = [2]int{version, minVersion} })
}

// withLinkSweep sets how often incoming streams close the links of stopped
// actors (tests).
func withLinkSweep(d time.Duration) Option { return optionFunc(func(c *config) { c.linkSweep = d }) }

// withAfterStream sets a function every send runs between finding the
// peer's stream and queueing on it (tests).
func withAfterStream(f func()) Option { return optionFunc(func(c *config) { c.afterStream = f }) }
