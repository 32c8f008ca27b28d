package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/zaphclog"
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
	fsm         *FSM
	incarnation atomic.Uint64 // a rejoin after expiry moves it on
	onRejoin    func()        // called after such a rejoin; set before Start
	joined      atomic.Bool   // Start has completed
	disc        discovery     // forming a cluster with bootstrap-expect
	serving     bool          // the health status last reported; watchHealth's
	rejoining   atomic.Bool   // a rejoin's join was sent and not yet seen committed

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
	inc := cfg.incarnation
	if inc == 0 {
		inc = uint64(time.Now().UnixNano())
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg:    cfg,
		log:    cfg.logger.Named("registry"),
		ep:     ep,
		fsm:    NewFSM(),
		ctx:    ctx,
		cancel: cancel,
	}
	r.incarnation.Store(inc)
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
func (r *Registry) State() *State { return r.fsm.Current() }

// Lookup returns the receivers of name from the local replica. The slice is
// shared: do not modify it.
func (r *Registry) Lookup(name string) []Receiver { return r.fsm.Current().Receivers(name) }

// Watch returns a channel signalled when the receivers of name change, and
// a function that stops watching.
func (r *Registry) Watch(name string) (<-chan struct{}, func()) { return r.fsm.Watch(name) }

// WatchAll returns a channel signalled on every change.
func (r *Registry) WatchAll() (<-chan struct{}, func()) { return r.fsm.WatchAll() }

// Resolve implements remoting.Resolver from the member table.
func (r *Registry) Resolve(node string) (string, error) {
	m, ok := r.fsm.Current().Member(node)
	if !ok {
		return "", fmt.Errorf("%w: %q", remoting.ErrUnknownNode, node)
	}
	return m.Addr, nil
}

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

	r.wg.Add(1)
	go r.watchHealth()

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
		if m, ok := r.fsm.Current().Member(r.cfg.nodeID); ok && m.Incarnation == r.Incarnation() {
			r.joined.Store(true)
			return nil
		}
		ch, stop := r.fsm.WatchAll()
		if m, ok := r.fsm.Current().Member(r.cfg.nodeID); ok && m.Incarnation == r.Incarnation() {
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

// openRaft opens the stores and starts Raft.
func (r *Registry) openRaft() (*raft.Raft, bool, error) {
	hlog := zaphclog.New(r.cfg.logger.Named("raft"))
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(r.cfg.nodeID)
	rc.HeartbeatTimeout = r.cfg.heartbeatTimeout
	rc.ElectionTimeout = r.cfg.electionTimeout
	rc.LeaderLeaseTimeout = r.cfg.heartbeatTimeout / 2
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold = 4096
	rc.TrailingLogs = 4096
	rc.Logger = hlog
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, false, fmt.Errorf("%w: raft: %w", ErrInvalidOption, err)
	}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if r.cfg.dataDir == "" {
		store := raft.NewInmemStore()
		logs, stable, snaps = store, store, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(r.cfg.dataDir, 0o700); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		if err := securePath(r.cfg.dataDir); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		if err := checkBoltFile(filepath.Join(r.cfg.dataDir, "raft.db")); err != nil {
			if errors.Is(err, bbolt.ErrTimeout) {
				err = fmt.Errorf("raft.db is locked (is another node using %s?): %w", r.cfg.dataDir, err)
			}
			return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(r.cfg.dataDir, "raft.db"),
			BoltOptions: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			if errors.Is(err, bbolt.ErrTimeout) {
				err = fmt.Errorf("raft.db is locked (is another node using %s?): %w", r.cfg.dataDir, err)
			}
			return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		r.addCloser(bolt.Close)
		fss, err := raft.NewFileSnapshotStoreWithLogger(r.cfg.dataDir, 2, hlog.Named("snapshots"))
		if err != nil {
			return nil, false, fmt.Errorf("%w: snapshots: %w", ErrDataDir, err)
		}
		// hashicorp/raft makes snapshots/ 0755.
		if err := securePath(r.cfg.dataDir); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
		}
		logs, stable, snaps = bolt, bolt, fss
	}
	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrDataDir, err)
	}
	tr := r.ep.RaftTransport()
	// A heartbeat's deadline is Raft's heartbeat timeout: the health
	// watcher learns of a follower that stops answering without closing
	// its connection (paused, its packets dropped) from the failed
	// heartbeats, and would otherwise see none until the transport's
	// general RPC timeout (10s) passed.
	if hb, ok := tr.(interface{ SetHeartbeatTimeout(time.Duration) }); ok {
		hb.SetHeartbeatTimeout(r.cfg.heartbeatTimeout)
	}
	rf, err := raft.NewRaft(rc, r.fsm, logs, stable, snaps, tr)
	if err != nil {
		return nil, false, fmt.Errorf("%w: raft: %w", ErrDataDir, err)
	}
	return rf, hasState, nil
}

// self is this node's member record under its current incarnation.
func (r *Registry) self() Member {
	return Member{ID: r.cfg.nodeID, Addr: r.ep.AdvertiseAddr(), Incarnation: r.Incarnation()}
}

func (r *Registry) addCloser(f func() error) {
	r.mu.Lock()
	r.closers = append(r.closers, f)
	r.mu.Unlock()
}

var _ hclog.Logger = zaphclog.New(nil)

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

// securePath makes dir and everything under it private to the node's user:
// directories 0700, files 0600. The data dir holds the registry and the
// node's ID; an existing directory keeps its mode through MkdirAll, and
// hashicorp/raft creates its snapshot directories 0755. Symbolic links are
// left alone (and not followed).
func securePath(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			mode = 0o700
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() == mode {
			return nil
		}
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("making %s private: %w", path, err)
		}
		return nil
	})
}

// checkBoltFile reads every page of an existing raft.db before Raft opens
// it. Bolt maps the file into memory and trusts it: a file cut short (a
// full disk, a bad copy) makes it read past the end of the mapping, which
// is a fault that kills the process, and a damaged page can make it
// panic. Here a fault or a panic is recovered (the read runs on a goroutine
// of its own with debug.SetPanicOnFault) and a file shorter than the pages
// its header counts is refused before any of them is read, so the node
// fails to start with a clear error instead.
func checkBoltFile(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return errors.New("raft.db is empty: the file was truncated")
	}
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("raft.db is damaged (reading it failed: %v)", p)
			}
		}()
		done <- walkBoltFile(path, st.Size())
	}()
	return <-done
}

// walkBoltFile opens the file as Raft's store will (read-write, which also
// loads the free-page list), reads every value, and closes it again before
// returning, so that the store finds the file lock free.
func walkBoltFile(path string, size int64) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("raft.db: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		if tx.Size() > size {
			return fmt.Errorf("raft.db is %d bytes but its pages reach byte %d: the file was truncated", size, tx.Size())
		}
		var sum byte
		var walk func(b *bbolt.Bucket) error
		walk = func(b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					if nested := b.Bucket(k); nested != nil {
						return walk(nested)
					}
					return nil
				}
				for _, c := range v {
					sum ^= c // read every byte: a page past the end faults here
				}
				return nil
			})
		}
		err := tx.ForEach(func(_ []byte, b *bbolt.Bucket) error { return walk(b) })
		_ = sum
		return err
	})
}
