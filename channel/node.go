package channel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/channel/internal/report"
	"github.com/dchan-io/dchan/channel/internal/tally"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// Node is one process's membership in a dchan cluster: its actor system,
// its network endpoint and its replica of the registry. Create it with New;
// Close it when done.
type Node struct {
	id    string
	log   *zap.Logger
	sys   *actor.System
	ep    *remoting.Endpoint
	reg   *registry.Registry
	stats stats
	// routers holds one router per name ever sent to (a few hundred
	// bytes each, kept for the node's life), shared by the name's send
	// channels and SendContext calls: its turn and the receivers it
	// passes over are the node's, not each sender's.
	routers sync.Map // string → *router

	ctx    context.Context // cancelled when closing begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // sender pumps, typed adapters

	mu        sync.Mutex
	closed    bool
	closeErr  error
	closeDone chan struct{}
	receivers map[*receiver]struct{}
	pumps     map[flusher]struct{}      // Send, SendOf and Publish channels
	bcast     *gossip.Driver            // the broadcast engine
	bcastPID  actor.PID                 // its actor, the one address broadcast traffic goes to
	replies   *replies                  // the pending Requests
	failures  *report.Reporter[failure] // tells WithFailureHandler's handler
	wireQuiet tally.QuietSet            // the sweeper's own, of the wire counters
}

// New starts a node and returns once it has joined the cluster through
// WithPeers, or bootstrapped a new one without peers.
func New(ctx context.Context, opts ...Option) (*Node, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	id, err := nodeID(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.logger.With(zap.String("node", id))
	codec := cfg.codec
	if codec == nil {
		gc, err := remoting.NewGobCodec(append([]any{Call{}, Ref{}}, cfg.types...)...)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
		codec = gc
	}
	var n *Node
	failures := newFailureReporter(cfg.onFailure, func(pid actor.PID) string { return n.receiverName(pid) }, log.Named("channel"))
	sysOpts := []actor.Option{actor.WithNode(id), actor.WithLogger(log)}
	if cfg.onFailure != nil {
		sysOpts = append(sysOpts, actor.WithDeadLetterHandler(func(dl actor.DeadLetter) { failures.Report(deadLetter(dl)) }))
	}
	sys, err := actor.NewSystem(sysOpts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	n = &Node{
		id:        id,
		log:       log.Named("channel"),
		sys:       sys,
		failures:  failures,
		closeDone: make(chan struct{}),
		receivers: make(map[*receiver]struct{}),
		pumps:     make(map[flusher]struct{}),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	failures.Start()
	// abort undoes what New started before the endpoint and registry exist
	// (after that, teardown does).
	abort := func() {
		if n.bcast != nil {
			n.bcast.Close()
		}
		_ = sys.Shutdown(context.Background())
		n.cancel()
		failures.Stop(context.Background())
	}
	bcast, err := gossip.NewDriver(id, cfg.gossip, gossip.Deps{
		Membership: bcastMembership{n},
		Transport:  bcastTransport{n},
		Counters:   &n.stats.bcast,
		Logger:     log.Named("broadcast"),
		Failed: func(f gossip.Failure) {
			n.stats.failed(f.Name, false, f.Err, 1)
			n.failures.Report(failure{name: f.Name, value: f.Value, err: f.Err})
		},
	})
	if err != nil {
		abort()
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	n.bcast = bcast
	epOpts := []remoting.Option{
		remoting.WithListenAddr(cfg.listenAddr),
		remoting.WithAdvertiseAddr(cfg.advertise),
		remoting.WithCodec(codec),
		remoting.WithLogger(log),
		remoting.WithResolver(resolver{n}),
		remoting.WithToken(cfg.token),
		// A Receive's buffer bounds its mailbox; its senders' links still
		// get a window worth a network round trip (docs/operations.md).
		remoting.WithMinWindow(minLinkWindow),
	}
	if cfg.serverTLS != nil || cfg.clientTLS != nil {
		epOpts = append(epOpts, remoting.WithTLS(cfg.serverTLS, cfg.clientTLS))
	}
	ep, err := remoting.New(sys, epOpts...)
	if err != nil {
		abort()
		return nil, fmt.Errorf("channel: %w", err)
	}
	regOpts := append([]registry.Option{
		registry.WithNodeID(id),
		registry.WithPeers(cfg.peers...),
		registry.WithBootstrapExpect(cfg.expect),
		registry.WithLogger(log),
	}, cfg.registryOpts...)
	if cfg.dataDir != "" {
		regOpts = append(regOpts, registry.WithDataDir(cfg.dataDir))
	}
	reg, err := registry.New(ep, regOpts...)
	if err != nil {
		_ = ep.Close()
		abort()
		return nil, fmt.Errorf("channel: %w", err)
	}
	n.ep, n.reg = ep, reg
	reg.OnRejoin(n.reregister)
	if err := n.startReplies(); err != nil {
		n.teardown(context.Background())
		return nil, fmt.Errorf("channel: %w", err)
	}
	if err := n.startBroadcast(); err != nil {
		n.teardown(context.Background())
		return nil, fmt.Errorf("channel: %w", err)
	}
	n.wg.Add(1)
	go n.watchMembers()
	n.wg.Go(func() { n.sweepLoop(cfg.sweepEvery) })
	sys.SetRemote(ep)
	if err := ep.Start(); err != nil {
		n.teardown(context.Background())
		return nil, fmt.Errorf("channel: %w", err)
	}
	if err := reg.Start(ctx); err != nil {
		n.teardown(context.Background())
		return nil, fmt.Errorf("channel: joining the cluster: %w", err)
	}
	return n, nil
}

// minLinkWindow is the least credit window a sender gets for a receiver,
// whatever its buffer. A window must cover what a sender can write during
// one trip around the credit loop (a frame out, its acknowledgement back);
// across processes a sender writes up to about 2 M small values a second,
// so 2048 values last a millisecond. With a
// receiver of buffer 1024, one-way throughput across processes read a
// median of 0.94x raw gRPC + gob over 19 runs alternated with a least
// window of 1024, which read 0.87x (bench/, oneway-1024). At buffer 128
// the two read 0.655x and 0.695x (six runs each, within noise).
const minLinkWindow = 2048

// nodeID returns the configured ID, or the one the node's certificate
// names, or the one persisted in the data dir, or a new random one
// (persisted if there is a data dir). With a certificate, the ID must be
// the one it names: peers take the node for the node its certificate
// names.
func nodeID(cfg config) (string, error) {
	certID, err := remoting.CertNodeID(cfg.clientTLS)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	if cfg.nodeID == "" {
		cfg.nodeID = certID
	}
	if cfg.nodeID != "" {
		if len(cfg.nodeID) > registry.MaxIDLen || strings.ContainsAny(cfg.nodeID, "/ ") {
			return "", fmt.Errorf("%w: node ID %q", ErrInvalidOption, cfg.nodeID)
		}
		if certID != "" && certID != cfg.nodeID {
			return "", fmt.Errorf("%w: node ID %q, but the node's certificate names %q: peers would take it for %q", ErrInvalidOption, cfg.nodeID, certID, certID)
		}
		return cfg.nodeID, nil
	}
	if cfg.dataDir == "" {
		return uuid.NewString(), nil
	}
	path := filepath.Join(cfg.dataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %w", registry.ErrDataDir, err)
	}
	id := uuid.NewString()
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return "", fmt.Errorf("%w: %w", registry.ErrDataDir, err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("%w: %w", registry.ErrDataDir, err)
	}
	return id, nil
}

// resolver maps node IDs to addresses through the registry (which exists
// only after remoting.New, hence the indirection).
type resolver struct{ n *Node }

func (r resolver) Resolve(node string) (string, error) { return r.n.reg.Resolve(node) }

// ID returns the node's ID.
func (n *Node) ID() string { return n.id }

// Addr returns the bound listen address.
func (n *Node) Addr() string { return n.ep.Addr() }

// AdvertiseAddr returns the address other nodes dial to reach this one (see
// WithAdvertiseAddr).
func (n *Node) AdvertiseAddr() string { return n.ep.AdvertiseAddr() }

// Actors returns the node's actor system, for advanced users.
func (n *Node) Actors() *actor.System { return n.sys }

// Close shuts the node down gracefully, bounded by DefaultDrainTimeout.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDrainTimeout)
	defer cancel()
	return n.Shutdown(ctx)
}

// Shutdown shuts the node down gracefully, bounded by ctx: senders flush
// what they hold, the node's receivers and membership are removed from the
// registry and it leaves the Raft configuration, receivers let their users
// drain what they accepted, then everything stops. Past ctx, what remains is
// stopped at once. Idempotent: later calls wait for the first and return
// its result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		select {
		case <-n.closeDone:
			return n.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.closed = true
	// Probes and load balancers see NOT_SERVING from here on.
	n.ep.Drain()
	pumps := make([]flusher, 0, len(n.pumps))
	for p := range n.pumps {
		pumps = append(pumps, p)
	}
	n.mu.Unlock()

	var errs []error
	for _, p := range pumps {
		_ = p.Close(ctx)
	}
	if err := n.reg.Leave(ctx); err != nil {
		errs = append(errs, fmt.Errorf("leaving the cluster: %w", err))
	}
	n.mu.Lock()
	receivers := make([]*receiver, 0, len(n.receivers))
	for r := range n.receivers {
		receivers = append(receivers, r)
	}
	n.mu.Unlock()
	for _, r := range receivers {
		r.stop()
	}
	n.teardownWith(ctx, &errs)
	n.closeErr = errors.Join(errs...)
	close(n.closeDone)
	return n.closeErr
}

func (n *Node) teardown(ctx context.Context) {
	var errs []error
	n.teardownWith(ctx, &errs)
}

func (n *Node) teardownWith(ctx context.Context, errs *[]error) {
	// Broadcast first: it offers values to subscribers, whose channels
	// close as their actors stop.
	n.bcast.Close()
	if err := n.sys.Shutdown(ctx); err != nil {
		*errs = append(*errs, err)
	}
	n.cancel()
	if n.reg != nil {
		if err := n.reg.Close(); err != nil {
			*errs = append(*errs, err)
		}
	}
	if err := n.ep.Shutdown(ctx); err != nil {
		*errs = append(*errs, err)
	}
	// Actors stopped hard by a late shutdown: make sure none is left.
	_ = n.sys.Shutdown(context.Background())
	n.wg.Wait()
	n.failures.Stop(ctx) // after every failure of the shutdown, within ctx
}

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

func validName(name string) error {
	if name == "" || len(name) > registry.MaxNameLen {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// watchMembers fails the in-flight values to every node the cluster
// declares dead (guarantee 7): a node that stopped answering without
// closing its connections would otherwise hold its senders' handles until
// it answers again or they time out.
func (n *Node) watchMembers() {
	defer n.wg.Done()
	alive := make(map[string]string) // node ID → address
	for {
		changed, stop := n.reg.WatchMembers()
		now := make(map[string]string)
		for _, m := range n.reg.State().Members() {
			if m.Status == registry.Alive && m.ID != n.id {
				now[m.ID] = m.Addr
			}
		}
		for id, addr := range alive {
			if _, ok := now[id]; !ok {
				n.log.Debug("failing values in flight to a node declared dead", zap.String("peer", id))
				n.ep.ResetPeer(addr)
				n.replies.FailNode(id, fmt.Errorf("%w: %s was declared dead", ErrNodeLost, id))
			}
		}
		alive = now
		select {
		case <-changed:
			stop()
		case <-n.ctx.Done():
			stop()
			return
		}
	}
}
