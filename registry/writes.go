package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/remoting"
)

// attemptTimeout bounds one attempt of a forwarded write or lookup: long
// enough for a commit on a loaded cluster, short enough to move on from a
// stalled leader soon after an election could replace it.
func (r *Registry) attemptTimeout() time.Duration {
	return max(4*r.cfg.electionTimeout, time.Second)
}

// retry runs attempt against the leader until it succeeds, fails for a
// reason other than leadership, or ctx ends (ErrUnavailable) or the
// registry closes (ErrClosed).
func (r *Registry) retry(ctx context.Context, what string, attempt func(ctx context.Context) error) error {
	backoff := 10 * time.Millisecond
	var last error
	for {
		// Each attempt has its own deadline: a leader that stops answering
		// without closing its connections (paused, blackholed) must not hold
		// the write after the others have elected a new one.
		actx, cancel := context.WithTimeout(ctx, r.attemptTimeout())
		err := attempt(actx)
		stalled := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		if !retryable(err) && !stalled {
			return err
		}
		last = err
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 200*time.Millisecond)
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w (last attempt: %v)", ErrUnavailable, what, ctx.Err(), last)
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}

// retryable reports whether an attempt that failed with err may succeed
// against another leader or later: a refusal of the command, or of this
// node's credentials, will not.
func retryable(err error) bool {
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied) {
		return false // a peer that refuses our credentials will not change its mind
	}
	if errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrUnknownMember) ||
		errors.Is(err, ErrMemberExpired) || errors.Is(err, ErrStaleIncarnation) ||
		errors.Is(err, ErrClosed) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupportedVersion) ||
		errors.Is(err, remoting.ErrIncompatiblePeer) || errors.Is(err, ErrPermissionDenied) {
		return false
	}
	return true // not leader, no leader, leadership lost, leader unreachable
}

// applyCommand commits cmd through the leader: on the leader itself, or
// forwarded to it, retried across elections until ctx ends.
func (r *Registry) applyCommand(ctx context.Context, cmd command) error {
	data, err := encodeCommand(cmd)
	if err != nil {
		return err
	}
	return r.retry(ctx, "apply", func(ctx context.Context) error {
		if batched(cmd) {
			return r.batch.submit(ctx, cmd)
		}
		rf, err := r.raftNode()
		if err != nil {
			return err
		}
		if rf.State() == raft.Leader {
			return r.leaderApply(ctx, rf, data, cmd)
		}
		addr, ok := r.leaderAddr()
		if !ok {
			return r.notLeader()
		}
		_, err = r.callReply(ctx, addr, methodApply, data)
		return err
	})
}

// leaderApply commits a command on the leader: a receiver write in the
// next batch (batcher), any other in an entry of its own. A leaveCmd also
// takes the node out of the Raft configuration.
func (r *Registry) leaderApply(ctx context.Context, rf *raft.Raft, data []byte, cmd command) error {
	if batched(cmd) {
		return r.batch.submit(ctx, cmd)
	}
	if err := r.applyLocal(ctx, rf, data); err != nil {
		return err
	}
	leave, ok := cmd.(leaveCmd)
	if !ok || leave.Node == r.cfg.nodeID || !r.inConfiguration(rf, leave.Node) {
		return nil // the leader itself hands over leadership before leaving; a client is in no configuration
	}
	if err := r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(leave.Node), 0, 0)); err != nil {
		return fmt.Errorf("%w: %w", errNotLeader, err)
	}
	return nil
}

// applyLocal applies data on this node, which must be the leader.
func (r *Registry) applyLocal(ctx context.Context, rf *raft.Raft, data []byte) error {
	_, err := r.applyResult(ctx, rf, data)
	return err
}

// applyResult is applyLocal that also returns what the entry changed.
func (r *Registry) applyResult(ctx context.Context, rf *raft.Raft, data []byte) (result, error) {
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	start := time.Now()
	f := rf.Apply(data, timeout)
	err := r.waitFuture(ctx, f)
	if err == nil {
		r.counters.apply.Observe(time.Since(start))
	}
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return result{}, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		return result{}, err
	}
	res, ok := f.Response().(result)
	if !ok {
		return result{}, fmt.Errorf("registry: unexpected apply response %T", f.Response())
	}
	return res, res.Err
}

// waitFuture is f.Error() that also returns when ctx ends (ctx's error)
// or the registry closes (ErrClosed). hashicorp/raft leaves a future
// unanswered when Raft shuts down while the future is queued, or committed
// but not yet applied; f.Error() then waits forever, and with it whatever
// waits for the caller (a handler that Endpoint.Close waits for, the
// health watcher that Close waits for). In that case the goroutine waiting
// here stays blocked; nothing waits for it.
func (r *Registry) waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.ctx.Done():
		return ErrClosed
	}
}

// Register records a receiver of name on this node, committed through the
// leader. It returns once the write is committed, or fails with
// ErrUnavailable once ctx ends without a commit.
//
// While the cluster counts this node as expired (it was cut off for longer
// than the grace), no registration of it can commit: Register then waits
// for the node to rejoin under a new incarnation (the health watcher does
// that once it reaches the cluster again) and registers under that one,
// until ctx ends.
func (r *Registry) Register(ctx context.Context, name, actorID string, mode Mode) error {
	for {
		inc := r.Incarnation()
		err := r.applyCommand(ctx, registerCmd{Name: name, Receiver: Receiver{
			Node: r.cfg.nodeID, ActorID: actorID, Mode: mode, Incarnation: inc,
		}})
		if !errors.Is(err, ErrMemberExpired) && !errors.Is(err, ErrStaleIncarnation) {
			return err
		}
		if m, ok := r.fsm.current().Member(r.cfg.nodeID); ok && m.Incarnation > r.Incarnation() {
			// A newer incarnation of this node ID than ours: not a rejoin
			// of this process (another process uses the same ID).
			return err
		}
		if werr := r.waitIncarnation(ctx, inc); werr != nil {
			return fmt.Errorf("%w (while: %w)", werr, err)
		}
	}
}

// waitIncarnation returns once this node's incarnation is no longer inc
// (it rejoined) or after a poll interval (its join may be committing), or
// ErrUnavailable when ctx ends, or ErrClosed.
func (r *Registry) waitIncarnation(ctx context.Context, inc uint64) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	poll := time.NewTimer(r.cfg.heartbeatTimeout)
	defer poll.Stop()
	for r.Incarnation() == inc {
		select {
		case <-tick.C:
		case <-poll.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting to rejoin the cluster: %w", ErrUnavailable, ctx.Err())
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
	return nil
}

// Unregister removes this node's receiver actorID from name.
func (r *Registry) Unregister(ctx context.Context, name, actorID string) error {
	return r.applyCommand(ctx, unregisterCmd{Name: name, Node: r.cfg.nodeID, ActorID: actorID, Incarnation: r.Incarnation()})
}

// Sync returns once this replica holds every write the cluster committed
// before Sync was called: it asks the leader to confirm its leadership
// (a barrier through the log) and for the version it has applied, then
// waits until the local State reaches that version. A read of the local
// replica (State, Lookup) made after Sync returns is linearizable: it
// sees every write that completed before Sync was called, and nothing
// that was not committed. It fails with ErrUnavailable when no leader
// answers before ctx ends.
func (r *Registry) Sync(ctx context.Context) error {
	var version uint64
	err := r.retry(ctx, "sync", func(ctx context.Context) error {
		rf, err := r.raftNode()
		if err != nil {
			return err
		}
		if rf.State() == raft.Leader {
			version, err = r.leaderVersion(ctx, rf)
			return err
		}
		addr, ok := r.leaderAddr()
		if !ok {
			return r.notLeader()
		}
		body, err := r.callReply(ctx, addr, methodSync, nil)
		if err != nil {
			return err
		}
		version, err = decodeVersion(body)
		return err
	})
	if err != nil {
		return err
	}
	if err := r.fsm.waitVersion(ctx, version); err != nil {
		return fmt.Errorf("%w: sync: waiting for version %d to replicate: %w", ErrUnavailable, version, err)
	}
	return nil
}

// leaderVersion is the version of the leader's State once a barrier has
// committed: every write committed before the call is applied in it.
func (r *Registry) leaderVersion(ctx context.Context, rf *raft.Raft) (uint64, error) {
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	if err := r.waitFuture(ctx, rf.Barrier(timeout)); err != nil {
		return 0, fmt.Errorf("%w: %w", errNotLeader, err)
	}
	return r.fsm.current().Version(), nil
}

// LookupLinearizable returns the receivers of name as of a moment between
// the call and the return: a Sync, then a read of the local replica.
func (r *Registry) LookupLinearizable(ctx context.Context, name string) ([]Receiver, error) {
	if err := r.Sync(ctx); err != nil {
		return nil, err
	}
	return r.Lookup(name), nil
}
