package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/remoting"
)

// Registry is one node's replica of the cluster registry: members and
// named receivers, replicated by Raft over the node's remoting Endpoint.
// Reads are served from the local replica; writes go to the leader.
//
// Create it with New before the Endpoint starts (it registers its RPC
// service), then Start it once the Endpoint serves.
type Registry struct {
	cfg         config
	log         *zap.Logger
	ep          *remoting.Endpoint
	fsm         *fsm
	incarnation atomic.Uint64 // a rejoin after expiry moves it on
	onRejoin    func()        // called after such a rejoin; set before Start
	joined      atomic.Bool   // Start has completed
	disc        discovery     // forming a cluster with bootstrap-expect
	serving     bool          // the health status last reported; watchHealth's
	rejoining   atomic.Bool   // a rejoin's join was sent and not yet seen committed
	counters    counters      // Metrics' counts and timings
	batch       *batcher      // the leader's receiver writes, committed in batches
	client      clientRole    // this node as a registry client (client.go)
	heard       heardSet      // when followers last beat (client.go)

	// confMu serialises the leader's membership changes: a join (addMember)
	// and a health reconciliation must not interleave, or a node that
	// rejoins while its previous incarnation is being expired is taken out
	// of the configuration after its join.
	confMu sync.Mutex

	mu      sync.Mutex
	raft    *raft.Raft
	closers []func() error
	started bool
	closed  bool

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares a registry on ep and registers its RPC service. ep must not
// be started yet.
func New(ep *remoting.Endpoint, opts ...Option) (*Registry, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if ep == nil {
		return nil, fmt.Errorf("%w: nil endpoint", ErrInvalidOption)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:    cfg,
		log:    cfg.logger.Named("registry"),
		ep:     ep,
		fsm:    newFSM(),
		ctx:    ctx,
		cancel: cancel,
	}
	r.batch = newBatcher(r)
	// The start time in nanoseconds: a restart of the node always has a
	// higher incarnation than the run before.
	r.incarnation.Store(uint64(time.Now().UnixNano()))
	r.registerService(ep.Registrar())
	return r, nil
}

// ID returns this node's ID.
func (r *Registry) ID() string { return r.cfg.nodeID }

// Incarnation returns this run's incarnation.
func (r *Registry) Incarnation() uint64 { return r.incarnation.Load() }

// OnRejoin sets fn to run after this node, expired by the cluster while it
// was cut off, has rejoined under a new incarnation: its previous
// registrations are gone, and fn should register again what it still
// serves. fn runs on a goroutine of its own, one per rejoin (a run may
// overlap the next rejoin's); Close waits for it, and ends the registry
// writes it makes. Set it before Start.
func (r *Registry) OnRejoin(fn func()) { r.onRejoin = fn }

// State returns the local replica's current state: lock-free, never
// changes once returned.
func (r *Registry) State() *State { return r.fsm.current() }

// Lookup returns the receivers of name from the local replica. The slice is
// shared: do not modify it.
func (r *Registry) Lookup(name string) []Receiver { return r.fsm.current().Receivers(name) }

// Watch returns a channel signalled when the receivers of name change, and
// a function that stops watching. A signal comes once the change is visible
// through State and Lookup. Signals coalesce (the channel has a buffer of
// one and a signal that finds it full is dropped), so a slow watcher never
// holds the replica back: subscribe, read, then wait for the next signal
// and read again. The stop function is idempotent and does not close the
// channel.
func (r *Registry) Watch(name string) (<-chan struct{}, func()) { return r.fsm.watch(name) }

// WatchAll is Watch for every change: of any name's receivers or of the
// member table (a join, a new address, an expiry, a promotion).
func (r *Registry) WatchAll() (<-chan struct{}, func()) { return r.fsm.watchAll() }

// WatchMembers is Watch for changes of the member table only (a join, a
// new address, an expiry, a promotion, a leave), not of names.
func (r *Registry) WatchMembers() (<-chan struct{}, func()) { return r.fsm.watchMembers() }

// Resolve implements remoting.Resolver from the member table.
func (r *Registry) Resolve(node string) (string, error) {
	m, ok := r.fsm.current().Member(node)
	if !ok {
		return "", fmt.Errorf("%w: %q", remoting.ErrUnknownNode, node)
	}
	return m.Addr, nil
}

// Start opens the Raft log, then bootstraps a new cluster (no peers, no
// state), rejoins (existing state) or joins through a peer, and returns
// once this node's membership under its current incarnation is committed
// and visible in the local replica.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.started {
		r.mu.Unlock()
		return nil
	}
	r.started = true
	r.mu.Unlock()

	rf, hasState, err := r.openRaft()
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = rf.Shutdown().Error()
		return ErrClosed
	}
	r.raft = rf
	r.mu.Unlock()

	r.wg.Add(3)
	go r.watchHealth()
	go r.batch.run()
	go r.reportHeard()

	self := raft.Server{ID: raft.ServerID(r.cfg.nodeID), Address: raft.ServerAddress(r.ep.AdvertiseAddr())}
	switch {
	case hasState:
		r.log.Info("restarting with existing state; rejoining")
	case r.cfg.bootstrapExpect > 0:
		if err := r.discover(ctx, rf); err != nil {
			return err
		}
	case len(r.cfg.peers) == 0:
		r.log.Info("no peers: bootstrapping a new cluster")
		if err := rf.BootstrapCluster(raft.Configuration{Servers: []raft.Server{self}}).Error(); err != nil {
			return fmt.Errorf("registry: bootstrap: %w", err)
		}
	}

	if err := r.join(ctx, r.self()); err != nil {
		return err
	}
	// The join is committed; wait until the local replica has applied it.
	for {
		if m, ok := r.fsm.current().Member(r.cfg.nodeID); ok && m.Incarnation == r.Incarnation() {
			r.joined.Store(true)
			return nil
		}
		ch, stop := r.fsm.watchMembers()
		if m, ok := r.fsm.current().Member(r.cfg.nodeID); ok && m.Incarnation == r.Incarnation() {
			stop()
			r.joined.Store(true)
			return nil
		}
		select {
		case <-ch:
			stop()
		case <-ctx.Done():
			stop()
			return fmt.Errorf("%w: waiting for the join to replicate: %w", ErrUnavailable, ctx.Err())
		case <-r.ctx.Done():
			stop()
			return ErrClosed
		}
	}
}

// Close stops Raft and closes the log, without leaving the cluster (see
// Leave). Idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closed = true
	rf := r.raft
	closers := r.closers
	r.mu.Unlock()
	r.cancel()
	var errs []error
	if rf != nil {
		if err := rf.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	r.wg.Wait()
	for _, c := range closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// self is this node's member record under its current incarnation.
func (r *Registry) self() Member {
	return Member{ID: r.cfg.nodeID, Addr: r.ep.AdvertiseAddr(), Incarnation: r.Incarnation()}
}

// raftNode returns the running Raft, or ErrClosed, or ErrUnavailable
// before Start has opened it.
func (r *Registry) raftNode() (*raft.Raft, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.raft == nil {
		return nil, fmt.Errorf("%w: not started", ErrUnavailable)
	}
	return r.raft, nil
}

// leaderAddr returns the current leader's address, if one is known.
func (r *Registry) leaderAddr() (string, bool) {
	rf, err := r.raftNode()
	if err != nil {
		return "", false
	}
	if addr, _ := rf.LeaderWithID(); addr != "" {
		return string(addr), true
	}
	// A client's Raft hears from no leader: it goes by the address the
	// join, the replicas' beats and refusals named, else asks the replica
	// it follows, which names the leader in its refusal.
	if !r.client.on.Load() {
		return "", false
	}
	if p := r.client.leader.Load(); p != nil && *p != "" {
		return *p, true
	}
	r.client.mu.Lock()
	fl := r.client.fl
	r.client.mu.Unlock()
	if fl != nil {
		if p := fl.following.Load(); p != nil {
			return *p, true
		}
	}
	return "", false
}

// addCloser adds f to what Close calls once Raft has shut down (the log
// store).
func (r *Registry) addCloser(f func() error) {
	r.mu.Lock()
	r.closers = append(r.closers, f)
	r.mu.Unlock()
}
