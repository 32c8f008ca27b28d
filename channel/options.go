package channel

import (
	"crypto/tls"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// DefaultDrainTimeout bounds Close.
const DefaultDrainTimeout = 10 * time.Second

// Codec encodes values for the wire; see remoting.Codec. The default is a
// gob codec of the types given with WithTypes.
type Codec = remoting.Codec

// Option configures a Node.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	nodeID     string
	listenAddr string
	advertise  string
	expect     int
	peers      []string
	dataDir    string
	types      []any
	codec      Codec
	logger     *zap.Logger
	serverTLS  *tls.Config
	clientTLS  *tls.Config
	token      string
	onFailure  func(name string, value any, err error)
	sweepEvery time.Duration

	gossip gossip.Config

	registryOpts []registry.Option // tests tune Raft timings
}

func defaultConfig() config {
	return config{listenAddr: "127.0.0.1:0", logger: zap.NewNop(), gossip: gossip.DefaultConfig(), sweepEvery: DefaultSweepInterval}
}

func (c *config) validate() error {
	switch {
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	case c.listenAddr == "":
		return fmt.Errorf("%w: empty listen address", ErrInvalidOption)
	case c.gossip.Fanout < 0:
		return fmt.Errorf("%w: negative gossip fanout %d", ErrInvalidOption, c.gossip.Fanout)
	case c.expect < 0:
		return fmt.Errorf("%w: bootstrap-expect %d is negative", ErrInvalidOption, c.expect)
	case c.expect > 1 && len(c.peers) == 0:
		return fmt.Errorf("%w: bootstrap-expect %d without peers: list the nodes (or a DNS name for them) with WithPeers", ErrInvalidOption, c.expect)
	case c.codec != nil && len(c.types) > 0:
		return fmt.Errorf("%w: WithTypes registers types with the default codec; register them with your own codec instead", ErrInvalidOption)
	}
	return nil
}

// WithNodeID sets the node's ID. Default: with a client certificate
// (WithTLS), the node its certificate names; else a random ID, persisted in
// the data dir so that a restarted node keeps it. With a certificate, an
// ID other than the one it names is refused.
func WithNodeID(id string) Option { return optionFunc(func(c *config) { c.nodeID = id }) }

// WithListenAddr sets the one address the node listens on, for messages and
// Raft alike. "127.0.0.1:0" (the default) picks a free port; Addr reports it.
func WithListenAddr(addr string) Option { return optionFunc(func(c *config) { c.listenAddr = addr }) }

// WithAdvertiseAddr sets the address other nodes dial to reach this one,
// recorded in the registry and the Raft configuration: use it when peers
// reach this node through an address it does not listen on (NAT, a
// container's published port) or when the host has several addresses.
// Default: the listen address; when listening on every interface
// ("0.0.0.0:7001", "[::]:7001", ":7001"), the host's single private IPv4
// address (or, failing that, its single other non-loopback IPv4 address)
// with the bound port, and New fails with ErrAdvertiseAddr, naming the
// candidates, when there are none or several. A host name is allowed (a
// StatefulSet pod's stable DNS name, say); without a port, or with port 0,
// the bound port is used.
func WithAdvertiseAddr(addr string) Option { return optionFunc(func(c *config) { c.advertise = addr }) }

// WithBootstrapExpect makes nodes started with the same peers and no data
// wait until n of them can see each other, then form exactly one cluster
// of them; a node that finds an existing cluster joins it instead. Start
// every node of a new cluster with the same n and the same WithPeers (a
// list of all of them, or a DNS name that resolves to all of them). New
// returns once the cluster has formed and this node joined it, or fails
// when ctx ends first. Without it (n = 0), a node with no peers bootstraps
// alone and one with peers joins through them.
func WithBootstrapExpect(n int) Option { return optionFunc(func(c *config) { c.expect = n }) }

// WithPeers lists members to join through: any one live member is enough.
// An entry is "host:port"; a host name is looked up again on every join
// attempt, and every address it resolves to is tried (a DNS name that
// lists every member, such as a Kubernetes headless Service, is the
// simplest peer list). None bootstraps a new cluster.
func WithPeers(addrs ...string) Option {
	return optionFunc(func(c *config) { c.peers = append([]string(nil), addrs...) })
}

// WithDataDir keeps the registry's Raft log (BoltDB) and snapshots, and the
// node ID, in dir. None: everything is in memory.
func WithDataDir(dir string) Option { return optionFunc(func(c *config) { c.dataDir = dir }) }

// WithTypes registers the types of the values sent through the node with
// the default gob codec. Pass a zero value of each, e.g.
// WithTypes(Order{}, &Invoice{}). Every node must register the same types.
func WithTypes(values ...any) Option {
	return optionFunc(func(c *config) { c.types = append(c.types, values...) })
}

// WithCodec replaces the default gob codec.
func WithCodec(codec Codec) Option { return optionFunc(func(c *config) { c.codec = codec }) }

// WithFailureHandler has h told of every value that fails with nobody to
// tell: a bare value (written to a Send or Publish channel without a
// Message) that failed — no receiver, its node lost, an encode error, a
// wrong type, the node closing — and every dead letter of the node's actor
// system (a message its target actor was gone for: then name is the
// receiver's, if it was one, and err wraps ErrGone). err matches the
// sentinels with errors.Is. A failure with a handle or a returned error
// (WithMessage, SendContext, Request) goes there instead.
//
// h runs on a goroutine of its own, one failure at a time, never on the
// value path: failures wait for it in a queue of up to 4,096; past that
// they are counted in Stats.FailuresUnreported and logged. Close returns
// once h has seen the failures of the node's shutdown (Shutdown: or its
// ctx ends); so h must not call Close or Shutdown itself.
func WithFailureHandler(h func(name string, value any, err error)) Option {
	return optionFunc(func(c *config) { c.onFailure = h })
}

// withSweepInterval sets how often the node forgets the counters and
// routers of quiet names (tests shorten it).
func withSweepInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.sweepEvery = d })
}

// WithLogger sets the logger (default: silent). Each subsystem logs under
// its own name.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithTLS secures every byte between nodes: server for accepted connections,
// client for dialled ones. Mutual TLS when server requires client
// certificates: then a node's identity is the one its certificate names
// (a URI SAN spiffe://<trust-domain>/dchan/<node-id>, or else its Common
// Name), and it can register, leave, join and send only as that node
// (docs/security.md).
func WithTLS(server, client *tls.Config) Option {
	return optionFunc(func(c *config) { c.serverTLS, c.clientTLS = server, client })
}

// WithToken sets a shared cluster secret checked on every RPC.
func WithToken(token string) Option { return optionFunc(func(c *config) { c.token = token }) }

// WithExpireAfter sets how long the Raft leader tolerates failed heartbeats
// to a node before it expires the node and removes its receivers (default
// 3s). Shorter detects dead nodes sooner; longer tolerates longer pauses.
func WithExpireAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.registryOpts = append(c.registryOpts, registry.WithExpireAfter(d)) })
}

// WithMaxReplicas bounds the nodes that hold the registry through Raft
// (default 9: 5 voters and up to 4 non-voters). Every further node is a
// registry client: it keeps its copy of the registry from one replica's
// stream, sends its registrations to the leader, and is failure-detected
// by the replicas; lookups stay local on every node. When a replica dies
// the leader promotes a client. 0 makes every node a replica (the Raft
// leader then replicates to all of them). The leader's setting counts
// (docs/architecture.md, "Toward 1,000 nodes").
func WithMaxReplicas(n int) Option {
	return optionFunc(func(c *config) { c.registryOpts = append(c.registryOpts, registry.WithMaxReplicas(n)) })
}

// WithRaftTimeouts sets the registry's Raft heartbeat and election timeouts
// (default 500ms each, for a LAN). Raise them on slow or loaded networks.
func WithRaftTimeouts(heartbeat, election time.Duration) Option {
	return optionFunc(func(c *config) {
		c.registryOpts = append(c.registryOpts, registry.WithTimeouts(heartbeat, election))
	})
}

// withRegistryOptions passes options to the registry (tests).
func withRegistryOptions(opts ...registry.Option) Option {
	return optionFunc(func(c *config) { c.registryOpts = append(c.registryOpts, opts...) })
}

// WithGossipFanout sets how many nodes each hop of a broadcast passes a
// value to. Default (0): ⌊log2 N⌋+1 for N nodes with subscribers of the
// name, so a value reaches all of them in about log N / log log N hops.
func WithGossipFanout(n int) Option { return optionFunc(func(c *config) { c.gossip.Fanout = n }) }

// withGossip tunes broadcast timings; tests use it.
func withGossip(f func(*gossip.Config)) Option { return optionFunc(func(c *config) { f(&c.gossip) }) }
