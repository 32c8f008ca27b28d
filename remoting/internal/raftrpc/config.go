package raftrpc

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultTimeout bounds one RPC: a unary call, one pipelined response
	// or one snapshot chunk's share of an InstallSnapshot (see Config).
	DefaultTimeout = 10 * time.Second

	// DefaultHeartbeatTimeout bounds a heartbeat until SetHeartbeatTimeout
	// says otherwise: hashicorp/raft's default heartbeat timeout.
	DefaultHeartbeatTimeout = time.Second

	// DefaultMaxInFlight is hashicorp/raft's DefaultMaxRPCsInFlight: one
	// AppendEntries is prepared and sent while the previous one waits for
	// its response.
	DefaultMaxInFlight = raft.DefaultMaxRPCsInFlight
)

// snapshotChunkSize is the largest data frame InstallSnapshot sends, and
// the unit its timeout scales by (raft's NetworkTransport TimeoutScale).
const snapshotChunkSize = 256 << 10

// Config configures a Transport. LocalAddr and Conn are required.
type Config struct {
	// LocalAddr is this node's address as its peers reach it: the address
	// of the gRPC server the Transport is registered on.
	LocalAddr raft.ServerAddress

	// Conn returns the client connection to target. dchan's remoting layer
	// passes its one shared connection per peer; the Transport never dials
	// and never closes what Conn returns. ctx bounds the lookup.
	Conn func(ctx context.Context, target raft.ServerAddress) (grpc.ClientConnInterface, error)

	// Timeout bounds each unary RPC and each response of an AppendEntries
	// pipeline. InstallSnapshot gets Timeout per started 256 KiB of the
	// snapshot, like raft's NetworkTransport. Zero means DefaultTimeout.
	Timeout time.Duration

	// MaxInFlight bounds the AppendEntries requests a pipeline has sent and
	// not yet seen answered, with raft's NetworkTransport semantics. Zero
	// means DefaultMaxInFlight; 1 disables pipelining (AppendEntriesPipeline
	// returns raft.ErrPipelineReplicationNotSupported).
	MaxInFlight int

	// Logger receives the transport's logs under the name "raftrpc".
	// Nil means silent.
	Logger *zap.Logger
}

// withDefaults returns the config with defaults applied, or an error
// wrapping ErrInvalidConfig.
func (c Config) withDefaults() (Config, error) {
	if c.LocalAddr == "" {
		return c, fmt.Errorf("%w: LocalAddr is required", ErrInvalidConfig)
	}
	if c.Conn == nil {
		return c, fmt.Errorf("%w: Conn is required", ErrInvalidConfig)
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("%w: negative Timeout %v", ErrInvalidConfig, c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight < 0 {
		return c, fmt.Errorf("%w: negative MaxInFlight %d", ErrInvalidConfig, c.MaxInFlight)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c, nil
}
