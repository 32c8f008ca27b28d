package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting"
)

const (
	serviceName  = "dchan.registry.v1.Registry"
	methodApply  = "/" + serviceName + "/Apply"
	methodJoin   = "/" + serviceName + "/Join"
	methodMember = "/" + serviceName + "/Member"
	methodSync   = "/" + serviceName + "/Sync"
)

// Status codes of registry RPC replies; they carry sentinels across nodes.
const (
	stOK byte = iota
	stNotLeader
	stInvalid
	stUnknownMember
	stExpired
	stStale
	stOther
	stDenied
)

func statusOf(err error) byte {
	switch {
	case err == nil:
		return stOK
	case errors.Is(err, errNotLeader):
		return stNotLeader
	case errors.Is(err, ErrInvalidCommand):
		return stInvalid
	case errors.Is(err, ErrUnknownMember):
		return stUnknownMember
	case errors.Is(err, ErrMemberExpired):
		return stExpired
	case errors.Is(err, ErrStaleIncarnation):
		return stStale
	case errors.Is(err, ErrPermissionDenied):
		return stDenied
	default:
		return stOther
	}
}

func errorOf(st byte, msg string, rest []byte) error {
	var base error
	switch st {
	case stOK:
		return nil
	case stNotLeader:
		// The body names the leader the peer knows of, if any.
		return &notLeaderError{leader: string(rest)}
	case stInvalid:
		base = ErrInvalidCommand
	case stUnknownMember:
		base = ErrUnknownMember
	case stExpired:
		base = ErrMemberExpired
	case stStale:
		base = ErrStaleIncarnation
	case stDenied:
		base = ErrPermissionDenied
	default:
		return &remoteError{msg: msg}
	}
	if msg == "" {
		return base
	}
	return &remoteError{base: base, msg: msg}
}

// remoteError is an error a peer reported: its text as the peer wrote it
// (which names the sentinel already), matching the sentinel, if it has
// one, with errors.Is on this side too.
type remoteError struct {
	base error
	msg  string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.base }

// notLeaderError is the refusal of a node that does not lead. It names
// the leader that node knows of, if any, so that the caller can go there
// and its log and error say where it went.
type notLeaderError struct{ leader string }

func (e *notLeaderError) Error() string {
	if e.leader == "" {
		return errNotLeader.Error() + " (no leader known)"
	}
	return errNotLeader.Error() + " (leader: " + e.leader + ")"
}

func (e *notLeaderError) Is(target error) bool { return target == errNotLeader }

// notLeader is this node's refusal of a leader's work.
func (r *Registry) notLeader() error {
	addr, _ := r.leaderAddr()
	return &notLeaderError{leader: addr}
}

func encodeReply(err error, body []byte) []byte {
	w := bin.Writer{B: []byte{statusOf(err)}}
	if err != nil {
		w.Str(err.Error())
	}
	var nl *notLeaderError
	if errors.As(err, &nl) && body == nil {
		body = []byte(nl.leader)
	}
	w.B = append(w.B, body...)
	return w.B
}

// decodeReply returns the reply's error and the rest of its bytes.
func decodeReply(b []byte) (error, []byte, error) {
	r := bin.NewReader(b, ErrMalformed)
	st := r.Byte()
	var msg string
	if st != stOK {
		msg = r.Str("error", 4096)
	}
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	rest := r.Rest()
	return errorOf(st, msg, rest), rest, nil
}

func (r *Registry) registerService(s grpc.ServiceRegistrar) {
	unary := func(name string, h func(ctx context.Context, req []byte) []byte) grpc.MethodDesc {
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawcodec.Frame)
				if err := dec(in); err != nil {
					return nil, err
				}
				handle := func(ctx context.Context, req any) (any, error) {
					return &rawcodec.Frame{Data: h(ctx, req.(*rawcodec.Frame).Data)}, nil
				}
				if interceptor == nil {
					return handle(ctx, in)
				}
				// The server's interceptors (the cluster-token check) run
				// before the handler, as for every dchan RPC.
				info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/" + name}
				return interceptor(ctx, in, info, handle)
			},
		}
	}
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			unary("Apply", r.serveApply),
			unary("Join", r.serveJoin),
			unary("Member", r.serveMember),
			unary("Sync", r.serveSync),
			unary("Discover", r.serveDiscover),
		},
	}, struct{}{})
}

// call invokes a registry RPC on the node at addr.
func (r *Registry) call(ctx context.Context, addr, method string, req []byte) ([]byte, error) {
	conn, err := r.ep.Conn(addr)
	if err != nil {
		return nil, err
	}
	var out rawcodec.Frame
	if err := conn.Invoke(ctx, method, &rawcodec.Frame{Data: req}, &out, rawcodec.CallOption()); err != nil {
		if remoting.IsIncompatible(err) {
			return nil, fmt.Errorf("%w: %s: %s", remoting.ErrIncompatiblePeer, addr, status.Convert(err).Message())
		}
		return nil, err
	}
	return out.Data, nil
}

// callReply invokes a registry RPC and decodes its reply: the error the
// remote side reported (as a sentinel), or the reply's body.
func (r *Registry) callReply(ctx context.Context, addr, method string, req []byte) ([]byte, error) {
	reply, err := r.call(ctx, addr, method, req)
	if err != nil {
		return nil, err
	}
	rerr, body, derr := decodeReply(reply)
	if derr != nil {
		return nil, derr
	}
	return body, rerr
}

// leaderAddr returns the current leader's address, if one is known.
func (r *Registry) leaderAddr() (string, bool) {
	rf, err := r.raftNode()
	if err != nil {
		return "", false
	}
	addr, _ := rf.LeaderWithID()
	return string(addr), addr != ""
}

// retry runs attempt against the leader until it succeeds, fails for a
// reason other than leadership, or ctx ends.
// attemptTimeout bounds one attempt of a forwarded write or lookup: long
// enough for a commit on a loaded cluster, short enough to move on from a
// stalled leader soon after an election could replace it.
func (r *Registry) attemptTimeout() time.Duration {
	return max(4*r.cfg.electionTimeout, time.Second)
}

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

// applyCommand commits cmd through the leader and returns its result.
func (r *Registry) applyCommand(ctx context.Context, cmd Command) error {
	data, err := EncodeCommand(cmd)
	if err != nil {
		return err
	}
	return r.retry(ctx, "apply", func(ctx context.Context) error {
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

// applyLocal applies data on this node, which must be the leader.
func (r *Registry) applyLocal(ctx context.Context, rf *raft.Raft, data []byte) error {
	_, err := r.applyResult(ctx, rf, data)
	return err
}

// applyResult is applyLocal that also returns what the entry changed.
func (r *Registry) applyResult(ctx context.Context, rf *raft.Raft, data []byte) (Result, error) {
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := rf.Apply(data, timeout)
	if err := r.waitFuture(ctx, f); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return Result{}, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		return Result{}, err
	}
	res, ok := f.Response().(Result)
	if !ok {
		return Result{}, fmt.Errorf("registry: unexpected apply response %T", f.Response())
	}
	return res, res.Err
}

func (r *Registry) serveApply(ctx context.Context, req []byte) []byte {
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		// One hop only: the caller retries with its own view of the leader.
		return encodeReply(r.notLeader(), nil)
	}
	cmd, err := DecodeCommand(req)
	if err != nil {
		return encodeReply(err, nil)
	}
	if err := authorize(cmd, remoting.PeerID(ctx)); err != nil {
		r.log.Warn("refused a peer's write", zap.String("peer", remoting.PeerID(ctx)), zap.Error(err))
		return encodeReply(err, nil)
	}
	return encodeReply(r.leaderApply(ctx, rf, req, cmd), nil)
}

// authorize refuses a write that a peer may not have the leader commit:
// one about another node than the peer itself, and the commands only the
// leader issues (a join goes through the Join RPC, where it is checked
// the same way; expiry and promotion are the leader's decisions).
func authorize(cmd Command, caller string) error {
	var about string
	switch c := cmd.(type) {
	case Register:
		about = c.Receiver.Node
	case Unregister:
		about = c.Node
	case Leave:
		about = c.Node
	default:
		return fmt.Errorf("%w: %s may not send a %T; only the leader issues it", ErrPermissionDenied, describeCaller(caller), cmd)
	}
	if about != caller {
		return fmt.Errorf("%w: %s may not write for node %q", ErrPermissionDenied, describeCaller(caller), about)
	}
	return nil
}

func describeCaller(caller string) string {
	if caller == "" {
		return "a peer without a node ID"
	}
	return fmt.Sprintf("node %q", caller)
}

// leaderApply commits a command on the leader. A Leave also takes the node
// out of the Raft configuration.
func (r *Registry) leaderApply(ctx context.Context, rf *raft.Raft, data []byte, cmd Command) error {
	if err := r.applyLocal(ctx, rf, data); err != nil {
		return err
	}
	leave, ok := cmd.(Leave)
	if !ok || leave.Node == r.cfg.nodeID {
		return nil // the leader itself hands over leadership before leaving
	}
	if err := r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(leave.Node), 0, 0)); err != nil {
		return fmt.Errorf("%w: %w", errNotLeader, err)
	}
	return nil
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
		err := r.applyCommand(ctx, Register{Name: name, Receiver: Receiver{
			Node: r.cfg.nodeID, ActorID: actorID, Mode: mode, Incarnation: inc,
		}})
		if !errors.Is(err, ErrMemberExpired) && !errors.Is(err, ErrStaleIncarnation) {
			return err
		}
		if m, ok := r.fsm.Current().Member(r.cfg.nodeID); ok && m.Incarnation > r.Incarnation() {
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
	return r.applyCommand(ctx, Unregister{Name: name, Node: r.cfg.nodeID, ActorID: actorID, Incarnation: r.Incarnation()})
}

func (r *Registry) serveJoin(ctx context.Context, req []byte) []byte {
	m, err := decodeJoinRequest(req)
	if err != nil {
		return encodeReply(err, nil)
	}
	if caller := remoting.PeerID(ctx); m.ID != caller {
		err := fmt.Errorf("%w: %s may not join as node %q", ErrPermissionDenied, describeCaller(caller), m.ID)
		r.log.Warn("refused a peer's join", zap.String("peer", caller), zap.Error(err))
		return encodeReply(err, nil)
	}
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		// The joining node goes to the leader named here itself: a
		// forwarded join would reach the leader under this node's identity.
		return encodeReply(r.notLeader(), nil)
	}
	return encodeReply(r.addMember(ctx, rf, m), nil)
}

// addMember runs on the leader: it adds m to the Raft configuration, as a
// voter while there are fewer than maxVoters, and commits Join.
func (r *Registry) addMember(ctx context.Context, rf *raft.Raft, m Member) error {
	r.confMu.Lock()
	defer r.confMu.Unlock()
	cf := rf.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("%w: %w", errNotLeader, err)
	}
	voters, voter, known, sameAddr := 0, false, false, false
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == raft.ServerID(m.ID) {
			known = true
			sameAddr = s.Address == raft.ServerAddress(m.Addr)
			voter = s.Suffrage == raft.Voter
		}
	}
	if known && !sameAddr && m.ID != r.cfg.nodeID {
		// Another node restarted on another address. Raft could update the
		// address in place, but replication then races on the peer's
		// address (hashicorp/raft#681), so take it out and add it back.
		if err := r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(m.ID), 0, 0)); err != nil {
			return fmt.Errorf("%w: %w", errNotLeader, err)
		}
		if voter {
			voters--
		}
		known = false
	}
	if !known || !sameAddr {
		// Adding a server that is already there updates its address in
		// place, keeping its suffrage: that is how the leader moves its own
		// entry (removing itself first is impossible for a sole voter, and
		// it replicates to no one, so the race above cannot happen).
		var f raft.IndexFuture
		if voter || (!known && voters < r.cfg.maxVoters) {
			voter = true
			f = rf.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, 0)
		} else {
			f = rf.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, 0)
		}
		if err := r.waitFuture(ctx, f); err != nil {
			return fmt.Errorf("%w: %w", errNotLeader, err)
		}
	}
	m.Voter = voter
	data, err := EncodeCommand(Join{Member: m})
	if err != nil {
		return err
	}
	return r.applyLocal(ctx, rf, data)
}

// LookupLinearizable returns the receivers of name as of a moment between
// the call and the return: a Sync, then a read of the local replica.
func (r *Registry) LookupLinearizable(ctx context.Context, name string) ([]Receiver, error) {
	if err := r.Sync(ctx); err != nil {
		return nil, err
	}
	return r.Lookup(name), nil
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
	if err := r.fsm.WaitVersion(ctx, version); err != nil {
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
	return r.fsm.Current().Version(), nil
}

func (r *Registry) serveSync(ctx context.Context, req []byte) []byte {
	if len(req) != 0 {
		return encodeReply(fmt.Errorf("%w: sync request of %d bytes, want none", ErrMalformed, len(req)), nil)
	}
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		return encodeReply(r.notLeader(), nil)
	}
	v, err := r.leaderVersion(ctx, rf)
	if err != nil {
		return encodeReply(err, nil)
	}
	return encodeReply(nil, encodeVersion(v))
}

func encodeVersion(v uint64) []byte {
	w := bin.Writer{}
	w.Uvarint(v)
	return w.B
}

// decodeVersion decodes serveSync's reply body.
func decodeVersion(b []byte) (uint64, error) {
	rd := bin.NewReader(b, ErrMalformed)
	v := rd.Uvarint()
	rd.End()
	return v, rd.Err()
}

// leaderRequest decodes a request holding one string and checks that this
// node leads; otherwise it returns the reply to send instead.
func (r *Registry) leaderRequest(req []byte, what string, maxLen int) (arg string, rf *raft.Raft, refusal []byte) {
	rd := bin.NewReader(req, ErrMalformed)
	arg = rd.Str(what, maxLen)
	rd.End()
	if rd.Err() != nil {
		return "", nil, encodeReply(rd.Err(), nil)
	}
	rf, err := r.raftNode()
	if err != nil {
		return "", nil, encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		return "", nil, encodeReply(r.notLeader(), nil)
	}
	return arg, rf, nil
}

// Leave removes this node's receivers and membership and takes it out of the
// Raft configuration, handing leadership over first if it leads. After
// Leave, Close the registry.
func (r *Registry) Leave(ctx context.Context) error {
	rf, err := r.raftNode()
	if err != nil {
		return err
	}
	if rf.State() == raft.Leader && r.otherVoters(rf) > 0 {
		if err := r.waitFuture(ctx, rf.LeadershipTransfer()); err != nil {
			r.log.Debug("leadership transfer before leave failed", zap.Error(err))
		}
	}
	if err := r.applyCommand(ctx, Leave{Node: r.cfg.nodeID, Incarnation: r.Incarnation()}); err != nil {
		return err
	}
	if rf.State() == raft.Leader {
		// Still leading: the last voter, or the transfer failed. A sole
		// voter has no cluster to leave; otherwise step out ourselves.
		if r.otherVoters(rf) == 0 {
			return nil
		}
		return r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(r.cfg.nodeID), 0, 0))
	}
	return nil // the leader removed us when it committed the Leave
}

func (r *Registry) otherVoters(rf *raft.Raft) int {
	cf := rf.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(r.cfg.nodeID) {
			n++
		}
	}
	return n
}

// serveMember answers, on the leader only, how the cluster sees a member:
// whether it is one, its incarnation and status.
func (r *Registry) serveMember(_ context.Context, req []byte) []byte {
	id, _, refusal := r.leaderRequest(req, "node ID", MaxIDLen)
	if refusal != nil {
		return refusal
	}
	w := bin.Writer{}
	m, ok := r.fsm.Current().Member(id)
	w.Bool(ok)
	w.Uvarint(m.Incarnation)
	w.Byte(byte(m.Status))
	return encodeReply(nil, w.B)
}

// expiredByCluster asks the members this node knows whether the leader still
// counts it as a member under its current incarnation. It reports true only
// on a leader's positive answer that it does not.
func (r *Registry) expiredByCluster(ctx context.Context) bool {
	w := bin.Writer{}
	w.Str(r.cfg.nodeID)
	for _, addr := range r.knownPeers(ctx) {
		body, err := r.callReply(ctx, addr, methodMember, w.B)
		if err != nil {
			continue // not the leader, or unreachable
		}
		present, inc, st, err := decodeMemberStatus(body)
		if err != nil {
			return false
		}
		return !present || inc != r.Incarnation() || st != Alive
	}
	return false
}

// rejoin brings back a node the cluster expired while it was cut off: it
// joins under a new incarnation (its old registrations are gone) and tells
// the owner through OnRejoin.
//
// A join that fails on this side may still have been committed (its reply
// was lost): the rejoin then stays pending, and the health watcher
// finishes it (finishRejoin) once the replica shows this incarnation as a
// live member, or tries again.
func (r *Registry) rejoin(ctx context.Context) error {
	r.rejoining.Store(true)
	r.incarnation.Store(max(uint64(time.Now().UnixNano()), r.Incarnation()+1))
	if err := r.join(ctx, r.self()); err != nil {
		return err
	}
	r.finishRejoin()
	return nil
}

// rejoinLanded reports a pending rejoin whose join the replica shows
// committed.
func (r *Registry) rejoinLanded() bool {
	if !r.rejoining.Load() {
		return false
	}
	m, ok := r.fsm.Current().Member(r.cfg.nodeID)
	return ok && m.Incarnation == r.Incarnation() && m.Status == Alive
}

// finishRejoin ends a rejoin whose join is committed: it tells the owner.
func (r *Registry) finishRejoin() {
	if !r.rejoining.Swap(false) {
		return
	}
	r.log.Info("rejoined the cluster after expiry", zap.Uint64("incarnation", r.Incarnation()))
	if r.onRejoin != nil {
		// On its own goroutine: fn registers again, which may wait (the
		// node may be cut off again at once), and the health watcher, which
		// called rejoin, must go on watching meanwhile — it is what notices
		// the next expiry and rejoins.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.onRejoin()
		}()
	}
}

// decodeMemberStatus decodes serveMember's reply body.
func decodeMemberStatus(b []byte) (present bool, incarnation uint64, status MemberStatus, err error) {
	rd := bin.NewReader(b, ErrMalformed)
	present, incarnation, status = rd.Bool(), rd.Uvarint(), MemberStatus(rd.Byte())
	rd.End()
	return present, incarnation, status, rd.Err()
}

// decodeJoinRequest decodes serveJoin's request.
func decodeJoinRequest(b []byte) (Member, error) {
	rd := bin.NewReader(b, ErrMalformed)
	m := Member{ID: rd.Str("node ID", MaxIDLen), Addr: rd.Str("address", MaxAddrLen), Incarnation: rd.Uvarint()}
	rd.End()
	return m, rd.Err()
}
