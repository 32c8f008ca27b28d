package registry

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Defaults, tuned for a LAN.
const (
	defaultHeartbeatTimeout = 500 * time.Millisecond
	defaultElectionTimeout  = 500 * time.Millisecond
	defaultExpireAfter      = 3 * time.Second
	defaultMaxVoters        = 5
	defaultMaxReplicas      = 9
)

// Option configures a Registry.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	nodeID           string
	dataDir          string
	peers            []string
	logger           *zap.Logger
	maxVoters        int
	maxReplicas      int // 0: every member a replica
	heartbeatTimeout time.Duration
	electionTimeout  time.Duration
	expireAfter      time.Duration
	bootstrapExpect  int
	// lookupHost resolves peer names (tests give it their own DNS).
	lookupHost func(ctx context.Context, host string) ([]string, error)
}

func defaultConfig() config {
	return config{
		logger:           zap.NewNop(),
		maxVoters:        defaultMaxVoters,
		maxReplicas:      defaultMaxReplicas,
		heartbeatTimeout: defaultHeartbeatTimeout,
		electionTimeout:  defaultElectionTimeout,
		expireAfter:      defaultExpireAfter,
		lookupHost:       net.DefaultResolver.LookupHost,
	}
}

func (c *config) validate() error {
	switch {
	case c.nodeID == "":
		return fmt.Errorf("%w: empty node ID", ErrInvalidOption)
	case len(c.nodeID) > MaxIDLen:
		return fmt.Errorf("%w: node ID longer than %d bytes", ErrInvalidOption, MaxIDLen)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	case c.maxVoters < 1:
		return fmt.Errorf("%w: max voters %d must be at least 1", ErrInvalidOption, c.maxVoters)
	case c.maxReplicas < 0:
		return fmt.Errorf("%w: max replicas %d is negative", ErrInvalidOption, c.maxReplicas)
	case c.heartbeatTimeout < 5*time.Millisecond:
		return fmt.Errorf("%w: heartbeat timeout %v below 5ms", ErrInvalidOption, c.heartbeatTimeout)
	case c.electionTimeout < c.heartbeatTimeout:
		return fmt.Errorf("%w: election timeout %v below heartbeat timeout %v", ErrInvalidOption, c.electionTimeout, c.heartbeatTimeout)
	case c.expireAfter < c.heartbeatTimeout:
		return fmt.Errorf("%w: expiry grace %v below heartbeat timeout %v", ErrInvalidOption, c.expireAfter, c.heartbeatTimeout)
	}
	for _, p := range c.peers {
		if p == "" {
			return fmt.Errorf("%w: empty peer address", ErrInvalidOption)
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return fmt.Errorf("%w: peer address %q: %w", ErrInvalidOption, p, err)
		}
	}
	switch {
	case c.bootstrapExpect < 0:
		return fmt.Errorf("%w: bootstrap-expect %d is negative", ErrInvalidOption, c.bootstrapExpect)
	case c.bootstrapExpect > 1 && len(c.peers) == 0:
		return fmt.Errorf("%w: bootstrap-expect %d needs peers to find the others through", ErrInvalidOption, c.bootstrapExpect)
	case c.bootstrapExpect > maxBootstrapExpect:
		return fmt.Errorf("%w: bootstrap-expect %d above %d", ErrInvalidOption, c.bootstrapExpect, maxBootstrapExpect)
	}
	return nil
}

// WithNodeID sets this node's ID (required).
func WithNodeID(id string) Option { return optionFunc(func(c *config) { c.nodeID = id }) }

// WithDataDir keeps the Raft log (raft.db, BoltDB) and snapshots in dir.
// Without it everything is in memory and a restarted node starts empty.
func WithDataDir(dir string) Option { return optionFunc(func(c *config) { c.dataDir = dir }) }

// WithPeers lists members to join through; any one live member is enough.
// Without peers, a node with no existing state bootstraps a new cluster.
func WithPeers(addrs ...string) Option {
	return optionFunc(func(c *config) { c.peers = append([]string(nil), addrs...) })
}

// WithLogger sets the logger (default: silent). Raft logs through it.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithMaxVoters bounds the Raft voters (default 5); further members join as
// non-voters holding a full replica.
func WithMaxVoters(n int) Option { return optionFunc(func(c *config) { c.maxVoters = n }) }

// WithMaxReplicas bounds the members that hold the registry through Raft
// (default 9: the voters and up to 4 non-voters). Every further member is
// a client: it is not in the Raft configuration, keeps its copy of the
// registry from one replica's Follow stream, sends its writes to the
// leader, and is failure-detected by the replicas it follows. When a
// replica dies, the leader promotes a client. n below the voters
// (WithMaxVoters) counts as the voters; 0 makes every member a replica.
// The leader's setting is the one that counts.
func WithMaxReplicas(n int) Option { return optionFunc(func(c *config) { c.maxReplicas = n }) }

// replicaLimit is how many members the leader keeps in the Raft
// configuration (0: no limit).
func (c *config) replicaLimit() int {
	if c.maxReplicas == 0 {
		return 0
	}
	return max(c.maxReplicas, c.maxVoters)
}

// WithTimeouts sets Raft's heartbeat and election timeouts (defaults 500ms
// each). The leader lease is half the heartbeat timeout.
func WithTimeouts(heartbeat, election time.Duration) Option {
	return optionFunc(func(c *config) { c.heartbeatTimeout, c.electionTimeout = heartbeat, election })
}

// WithExpireAfter sets how long the leader tolerates failed heartbeats to a
// member before it expires the member and removes its receivers (default
// 3s).
func WithExpireAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.expireAfter = d })
}

// WithBootstrapExpect makes a node with no state wait until n nodes with
// the same setting see each other through their peers, then form one
// cluster of them (see the package documentation, "Forming a cluster").
// A node that finds an existing cluster joins it instead. 0 (the default):
// a node without peers bootstraps alone, one with peers joins through
// them.
func WithBootstrapExpect(n int) Option { return optionFunc(func(c *config) { c.bootstrapExpect = n }) }

// withLookupHost replaces the DNS lookup of peer names (tests).
func withLookupHost(f func(ctx context.Context, host string) ([]string, error)) Option {
	return optionFunc(func(c *config) { c.lookupHost = f })
}
