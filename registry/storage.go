package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/dchan-io/dchan/internal/zaphclog"
)

// openRaft opens the stores (in memory, or raft.db and snapshots in the
// data dir) and starts Raft, which logs through zap. It also reports whether
// the stores hold a previous run's log or snapshot.
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

// Raft logs through an hclog adapter over the registry's zap logger.
var _ hclog.Logger = zaphclog.New(nil)

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
