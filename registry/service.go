package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting"
)

// The registry's RPC service runs on the node's Endpoint (same port, same
// peer connections, same interceptors). Each method is unary, its request
// and reply raw bytes (rawcodec frames):
//
//	Apply     an encoded command (a write forwarded to the leader); empty
//	          reply, or for a batch each write's status (encodeResults)
//	Join      encodeJoinRequest (a node asking the leader to add it); reply:
//	          one byte, 1 when it joined as a client (client.go), else 0
//	Heard     node IDs: the followers a replica heard from (client.go)
//	Member    a node ID; decodeMemberStatus (how the leader sees that member)
//	Sync      empty; encodeVersion (the leader's version after a barrier)
//	Discover  discoverReq; discoverReply (forming a cluster, discovery.go)
//	Follow    a stream: the registry's entries for a follower (follow.go)
//
// A reply is a status byte (stOK...), the error's text unless the status
// is stOK, then the body (encodeReply, decodeReply). Apply, Join, Member
// and Sync are served by the leader only: another node refuses with the
// leader it knows of (stNotLeader), and the caller goes there itself; no
// node forwards a request on a caller's behalf.
const (
	serviceName    = "dchan.registry.v1.Registry"
	methodApply    = "/" + serviceName + "/Apply"
	methodJoin     = "/" + serviceName + "/Join"
	methodMember   = "/" + serviceName + "/Member"
	methodSync     = "/" + serviceName + "/Sync"
	methodDiscover = "/" + serviceName + "/Discover"
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

// statusOf is the status code that carries err to the caller.
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

// errorOf is the error a reply with status st and error text msg
// reports, matching the sentinel st stands for; rest is the reply's body.
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

// encodeReply encodes a handler's reply: err's status and text, or body.
// A not-leader refusal carries the leader's address as its body.
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

// rpcReply is a decoded reply: the error the peer reported, if any, and
// the body.
type rpcReply struct {
	err  error // the peer's refusal (matching its sentinel), or nil
	body []byte
}

// decodeReply decodes a reply that encodeReply encoded. Its error is about
// the bytes (ErrMalformed); the peer's own error is in the rpcReply.
func decodeReply(b []byte) (rpcReply, error) {
	r := bin.NewReader(b, ErrMalformed)
	st := r.Byte()
	var msg string
	if st != stOK {
		msg = r.Str("error", 4096)
	}
	if r.Err() != nil {
		return rpcReply{}, r.Err()
	}
	body := r.Rest()
	return rpcReply{err: errorOf(st, msg, body), body: body}, nil
}

// registerService registers the registry's RPC service on s, each method
// a unary handler over raw frames that runs behind the server's
// interceptors.
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
			unary("Heard", r.serveHeard),
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Follow",
			Handler:       r.serveFollow,
			ServerStreams: true,
			ClientStreams: true,
		}},
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
	b, err := r.call(ctx, addr, method, req)
	if err != nil {
		if p := r.client.leader.Load(); p != nil && *p == addr && r.client.on.Load() {
			// The leader a client went by is unreachable: ask the
			// replica it follows next (leaderAddr).
			r.client.leader.CompareAndSwap(p, nil)
		}
		return nil, err
	}
	reply, err := decodeReply(b)
	if err != nil {
		return nil, err
	}
	if nl, ok := reply.err.(*notLeaderError); ok && r.client.on.Load() {
		r.setLeaderHint(nl.leader)
	}
	return reply.body, reply.err
}

// serveApply commits a peer's write, on the leader only, if the peer may
// make it.
func (r *Registry) serveApply(ctx context.Context, req []byte) []byte {
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		// One hop only: the caller retries with its own view of the leader.
		return encodeReply(r.notLeader(), nil)
	}
	cmd, err := decodeCommand(req)
	if err != nil {
		return encodeReply(err, nil)
	}
	if err := authorize(cmd, remoting.PeerID(ctx)); err != nil {
		r.log.Warn("refused a peer's write", zap.String("peer", remoting.PeerID(ctx)), zap.Error(err))
		return encodeReply(err, nil)
	}
	if b, ok := cmd.(batchCmd); ok {
		// A peer's batch is committed as it came, one entry, and each of
		// its writes answered.
		errs, err := r.applyWrites(ctx, rf, req, len(b.Cmds))
		if err != nil {
			return encodeReply(err, nil)
		}
		return encodeReply(nil, encodeResults(errs))
	}
	return encodeReply(r.leaderApply(ctx, rf, req, cmd), nil)
}

// authorize refuses a write that a peer may not have the leader commit:
// one about another node than the peer itself, and the commands only the
// leader issues (a join goes through the Join RPC, where it is checked
// the same way; expiry and promotion are the leader's decisions).
func authorize(cmd command, caller string) error {
	var about string
	switch c := cmd.(type) {
	case registerCmd:
		about = c.Receiver.Node
	case unregisterCmd:
		about = c.Node
	case leaveCmd:
		about = c.Node
	case batchCmd:
		for _, sub := range c.Cmds {
			if err := authorize(sub, caller); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("%w: %s may not send a %T; only the leader issues it", ErrPermissionDenied, describeCaller(caller), cmd)
	}
	if about != caller {
		return fmt.Errorf("%w: %s may not write for node %q", ErrPermissionDenied, describeCaller(caller), about)
	}
	return nil
}

// describeCaller names the calling peer in a refusal.
func describeCaller(caller string) string {
	if caller == "" {
		return "a peer without a node ID"
	}
	return fmt.Sprintf("node %q", caller)
}

// serveJoin adds the calling peer as a member, on the leader only.
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
	client, err := r.addMember(ctx, rf, m)
	if err != nil {
		return encodeReply(err, nil)
	}
	return encodeReply(nil, encodeJoinReply(client))
}

// encodeJoinReply encodes serveJoin's reply body: whether the node joined
// as a client.
func encodeJoinReply(client bool) []byte {
	w := bin.Writer{}
	w.Bool(client)
	return w.B
}

// decodeJoinReply decodes serveJoin's reply body; an empty one (a leader
// from before clients) means a replica.
func decodeJoinReply(b []byte) (client bool, err error) {
	if len(b) == 0 {
		return false, nil
	}
	rd := bin.NewReader(b, ErrMalformed)
	client = rd.Bool()
	rd.End()
	return client, rd.Err()
}

// serveSync answers, on the leader only, the version of its State once a
// barrier has committed (see Sync).
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

// serveMember answers, on the leader only, how the cluster sees a member:
// whether it is one, its incarnation and status.
func (r *Registry) serveMember(_ context.Context, req []byte) []byte {
	id, _, refusal := r.leaderRequest(req, "node ID", MaxIDLen)
	if refusal != nil {
		return refusal
	}
	w := bin.Writer{}
	m, ok := r.fsm.current().Member(id)
	w.Bool(ok)
	w.Uvarint(m.Incarnation)
	w.Byte(byte(m.Status))
	return encodeReply(nil, w.B)
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

// decodeMemberStatus decodes serveMember's reply body.
func decodeMemberStatus(b []byte) (present bool, incarnation uint64, status MemberStatus, err error) {
	rd := bin.NewReader(b, ErrMalformed)
	present, incarnation, status = rd.Bool(), rd.Uvarint(), MemberStatus(rd.Byte())
	rd.End()
	return present, incarnation, status, rd.Err()
}

// encodeJoinRequest encodes the request of the Join RPC: the member to add.
func encodeJoinRequest(m Member) []byte {
	w := bin.Writer{}
	w.Str(m.ID)
	w.Str(m.Addr)
	w.Uvarint(m.Incarnation)
	return w.B
}

// decodeJoinRequest decodes serveJoin's request.
func decodeJoinRequest(b []byte) (Member, error) {
	rd := bin.NewReader(b, ErrMalformed)
	m := Member{ID: rd.Str("node ID", MaxIDLen), Addr: rd.Str("address", MaxAddrLen), Incarnation: rd.Uvarint()}
	rd.End()
	return m, rd.Err()
}
