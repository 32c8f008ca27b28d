package registry

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dchan-io/dchan/internal/hist"
)

// fsm is the registry's Raft state machine. It holds the current State
// behind an atomic pointer: current is one atomic load, so reads from the
// local replica never wait for Apply, and Apply never waits for readers.
//
// fsm implements raft.FSM and raft.BatchingFSM. It starts no goroutine and
// holds no resources; it needs no closing.
type fsm struct {
	seed    maphash.Seed // hash layout of every State this fsm makes
	state   atomic.Pointer[State]
	mu      sync.Mutex // serializes Apply, ApplyBatch and Restore
	watches watchSet
	moved   chan struct{} // closed and replaced when the version moves; under mu
	// applyTime times each Apply and ApplyBatch (Metrics.FSMApply).
	applyTime hist.Histogram
	// applied is the command entries applied last, for followers
	// (Follow); under mu.
	applied appliedLog
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.BatchingFSM = (*fsm)(nil)
)

// newFSM returns an fsm holding the empty registry at version 0.
func newFSM() *fsm {
	f := &fsm{seed: maphash.MakeSeed(), moved: make(chan struct{})}
	f.state.Store(&State{seed: f.seed})
	return f
}

// waitVersion returns once the current State's version is at least v, or
// with ctx's error. Unlike watch it also sees entries that changed
// nothing (a refused command still advances the version).
func (f *fsm) waitVersion(ctx context.Context, v uint64) error {
	for {
		f.mu.Lock()
		moved, cur := f.moved, f.state.Load().Version()
		f.mu.Unlock()
		if cur >= v {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// publish makes s the current State and wakes waitVersion; f.mu is held.
func (f *fsm) publish(s *State) {
	f.state.Store(s)
	close(f.moved)
	f.moved = make(chan struct{})
}

// follow returns what a follower at version v needs now: the entries
// applied after v, or, when some of them are no longer held, the current
// State to send whole (and no entries); and a channel closed when the
// version next moves.
func (f *fsm) follow(v uint64) (snap *State, entries []appliedEntry, moved <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.state.Load()
	if cur.Version() <= v {
		return nil, nil, f.moved
	}
	held, ok := f.applied.since(v)
	if !ok {
		return cur, nil, f.moved
	}
	return nil, slices.Clone(held), f.moved
}

// keepApplied turns on or off keeping the applied entries for followers
// (off on a registry client, which serves none).
func (f *fsm) keepApplied(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied.off == !on {
		return
	}
	f.applied.keep(on, f.state.Load().Version())
}

// current returns the latest applied State. It takes no lock and allocates
// nothing; the State it returns never changes.
func (f *fsm) current() *State { return f.state.Load() }

// Apply decodes and applies one committed log entry, publishes the new
// State, then signals the watchers of what changed. It returns the entry's
// result (a result value, also when the entry does not decode: then
// result.Err wraps ErrMalformed or ErrUnsupportedVersion). Raft hands it
// back through ApplyFuture.Response (see Registry.applyResult):
//
//	res := future.Response().(result)
func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l != nil && l.Index <= f.state.Load().Version() {
		return result{} // applied already (see ApplyBatch)
	}
	defer f.timeApply(time.Now())
	next, res := applyEntry(f.state.Load(), l, nil)
	if l != nil {
		f.applied.add(l.Index, l.Data)
	}
	f.publish(next)
	f.watches.notify(res)
	return res
}

func (f *fsm) timeApply(start time.Time) { f.applyTime.Observe(time.Since(start)) }

// ApplyBatch applies a batch of committed entries, publishes the final
// State once, then signals watchers. Entries other than commands
// (configuration changes) are skipped with a nil response and do not
// advance the version, as with Apply, which Raft never calls for them.
//
// Entries at or below the current version are skipped too: a client
// promoted to replica has applied them from a replica's Follow stream
// before Raft replays them (from its first index, or after a snapshot
// older than what the client holds).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.timeApply(time.Now())
	out := make([]any, len(logs))
	s := f.state.Load()
	results := make([]result, 0, len(logs))
	var e treeEdit // the States between entries are not published
	for i, l := range logs {
		if l == nil || l.Type != raft.LogCommand || l.Index <= s.Version() {
			continue
		}
		var res result
		s, res = applyEntry(s, l, &e)
		f.applied.add(l.Index, l.Data)
		out[i] = res
		results = append(results, res)
	}
	f.publish(s)
	for _, res := range results {
		f.watches.notify(res)
	}
	return out
}

// applyEntry returns the state after the log entry l, and what changed.
// Tree nodes e made are written in place (e may be nil).
func applyEntry(s *State, l *raft.Log, e *treeEdit) (*State, result) {
	if l == nil {
		return s, result{Err: fmt.Errorf("%w: nil log entry", ErrInvalidCommand)}
	}
	cmd, err := decodeCommand(l.Data)
	if err != nil {
		return s.successor(l.Index), result{Err: fmt.Errorf("entry %d: %w", l.Index, err)}
	}
	return s.applyEdit(e, l.Index, cmd)
}

// Snapshot captures the current State. It copies nothing: the State is
// immutable, and Persist encodes it while Apply goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.current()}, nil
}

// Restore replaces the state with the snapshot read from rc, closes rc, and
// signals every watcher. A snapshot that fails to decode or to verify
// returns an error wrapping ErrCorruptSnapshot and leaves the state as it
// was. A snapshot older than the current State is read and dropped: the
// State moves forward only (a promoted client may hold more than the
// leader's last snapshot; Raft then replays the entries after it, which
// Apply skips up to the current version).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readSnapshot(rc, f.seed)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Version() <= f.state.Load().Version() && f.state.Load().Version() > 0 {
		return nil
	}
	f.applied.reset(s.Version())
	f.publish(s)
	f.watches.notifyAll()
	return nil
}

// watch subscribes to changes of the receivers of name. The returned
// channel receives a signal after each Apply (or Restore) that changed
// them, once the new State is visible through current. Signals coalesce:
// the channel has a buffer of one and a signal that finds it full is
// dropped, so a slow watcher never blocks Apply and costs constant memory.
// Subscribe first, then read current, then wait for the next signal:
//
//	ch, cancel := f.watch("orders")
//	defer cancel()
//	for {
//		route(f.current().Receivers("orders"))
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// cancel removes the subscription; it is idempotent and does not close the
// channel.
func (f *fsm) watch(name string) (<-chan struct{}, func()) {
	return f.watches.add(name, watchName)
}

// watchAll is watch for any change: of any name's receivers or of the
// member table (a join, a new address, an expiry, a promotion).
func (f *fsm) watchAll() (<-chan struct{}, func()) {
	return f.watches.add("", watchAll)
}

// watchMembers is watch for changes of the member table only.
func (f *fsm) watchMembers() (<-chan struct{}, func()) {
	return f.watches.add("", watchMembers)
}
