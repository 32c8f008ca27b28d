package raftrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/security"
)

// Transport is a raft.Transport over gRPC. Create it with New, register it
// on the node's gRPC server with Register, hand it to raft.NewRaft, and
// Close it after raft has shut down (raft calls Close itself through
// raft.WithClose when it shuts down).
type Transport struct {
	localAddr   raft.ServerAddress
	conn        func(context.Context, raft.ServerAddress) (grpc.ClientConnInterface, error)
	timeout     time.Duration
	maxInFlight int
	heartbeat   atomic.Int64 // the deadline of a heartbeat, in ns
	logger      *zap.Logger

	consumeCh chan raft.RPC

	heartbeatMu sync.Mutex
	heartbeatFn func(raft.RPC)

	// ctx is cancelled by Close: it bounds every outgoing call and stream,
	// and done (its Done channel) releases every handler waiting for Raft.
	ctx    context.Context
	cancel context.CancelFunc
	done   <-chan struct{}

	mu        sync.Mutex
	closed    bool
	pipelines map[*pipeline]struct{}
	wg        sync.WaitGroup // pipeline receive loops
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

// New returns a Transport for cfg, or an error wrapping ErrInvalidConfig.
// It starts no goroutine.
func New(cfg Config) (*Transport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		localAddr:   cfg.LocalAddr,
		conn:        cfg.Conn,
		timeout:     cfg.Timeout,
		maxInFlight: cfg.MaxInFlight,
		logger:      cfg.Logger.Named("raftrpc"),
		consumeCh:   make(chan raft.RPC),
		ctx:         ctx,
		cancel:      cancel,
		done:        ctx.Done(),
		pipelines:   make(map[*pipeline]struct{}),
	}
	t.heartbeat.Store(int64(DefaultHeartbeatTimeout))
	return t, nil
}

// SetHeartbeatTimeout bounds each heartbeat RPC (default
// DefaultHeartbeatTimeout; values ≤ 0 are ignored). The registry sets it
// to Raft's heartbeat timeout. A heartbeat carries nothing but the
// leader's term, so its deadline can be that short: a follower that does
// not answer one within it is unresponsive, and the error makes Raft
// report the follower failed (raft.FailedHeartbeatObservation) at once.
// A follower that stops answering without closing its connection — a
// paused process, a link that drops packets — would otherwise be reported
// only after Config.Timeout, and the registry's failure detector, which
// listens for those reports, would not see it fail sooner.
func (t *Transport) SetHeartbeatTimeout(d time.Duration) {
	if d > 0 {
		t.heartbeat.Store(int64(d))
	}
}

// Register registers the Raft service ("dchan.raft.v1.Raft") on s. The
// server must use rawcodec.ServerOption. Register at most once per server.
func (t *Transport) Register(s grpc.ServiceRegistrar) {
	s.RegisterService(serviceDesc(), t)
}

// Close stops the transport: outgoing calls and pipelines fail with
// ErrTransportShutdown, handlers waiting for Raft answer their peers with
// an Unavailable status, and the pipelines' goroutines have exited when
// Close returns. It is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	pipes := make([]*pipeline, 0, len(t.pipelines))
	for p := range t.pipelines {
		pipes = append(pipes, p)
	}
	t.mu.Unlock()

	t.cancel()
	for _, p := range pipes {
		_ = p.Close()
	}
	t.wg.Wait()
	return nil
}

// Consumer returns the channel on which incoming RPCs are delivered.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumeCh }

// LocalAddr returns Config.LocalAddr.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.localAddr }

// SetHeartbeatHandler sets the fast path for heartbeats: they are handed
// to cb on the gRPC handler's goroutine instead of the Consumer channel,
// so they are not queued behind disk-bound AppendEntries.
func (t *Transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	t.heartbeatMu.Lock()
	defer t.heartbeatMu.Unlock()
	t.heartbeatFn = cb
}

// EncodePeer returns the address's bytes: peers are known by address.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer is the inverse of EncodePeer.
func (t *Transport) DecodePeer(buf []byte) raft.ServerAddress {
	return raft.ServerAddress(buf)
}

// AppendEntries sends one AppendEntries RPC to target.
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	timeout := t.timeout
	if isHeartbeat(args) {
		timeout = time.Duration(t.heartbeat.Load())
	}
	return t.call(target, methodAppendEntries, args, resp, timeout)
}

// RequestVote sends one RequestVote RPC to target.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, methodRequestVote, args, resp, t.timeout)
}

// RequestPreVote sends one RequestPreVote RPC to target.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, methodRequestPreVote, args, resp, t.timeout)
}

// TimeoutNow sends one TimeoutNow RPC to target, starting a leadership
// transfer to it.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, methodTimeoutNow, args, resp, t.timeout)
}

// call performs one unary RPC within timeout.
func (t *Transport) call(target raft.ServerAddress, method string, args, resp any, timeout time.Duration) error {
	if t.ctx.Err() != nil {
		return fmt.Errorf("raftrpc: %s to %s: %w", method, target, ErrTransportShutdown)
	}
	req, err := encodeMessage(nil, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	cc, err := t.conn(ctx, target)
	if err != nil {
		return t.callErr(method, target, fmt.Errorf("connection: %w", err))
	}
	var out rawcodec.Frame
	if err := cc.Invoke(ctx, fullMethod(method), &rawcodec.Frame{Data: req}, &out, rawcodec.CallOption()); err != nil {
		return t.callErr(method, target, err)
	}
	remoteMsg, err := decodeResponse(out.Data, resp)
	if err != nil {
		return fmt.Errorf("raftrpc: %s response from %s: %w", method, target, err)
	}
	if remoteMsg != "" {
		return fmt.Errorf("raftrpc: %s to %s: %w", method, target, remoteError(remoteMsg))
	}
	return nil
}

// callErr wraps a failed call's error; a call cut short by Close reports
// ErrTransportShutdown.
func (t *Transport) callErr(method string, target raft.ServerAddress, err error) error {
	if t.ctx.Err() != nil {
		return fmt.Errorf("raftrpc: %s to %s: %w (%v)", method, target, ErrTransportShutdown, err)
	}
	return fmt.Errorf("raftrpc: %s to %s: %w", method, target, err)
}

// errShutdownStatus is what a handler returns to its peer when the
// transport closes under it.
func errShutdownStatus() error {
	return status.Error(codes.Unavailable, ErrTransportShutdown.Error())
}

// malformed logs and returns the status for a request that did not decode.
func (t *Transport) malformed(method string, err error) error {
	t.logger.Warn("rejecting malformed request", zap.String("method", method), zap.Error(err))
	return status.Error(codes.InvalidArgument, err.Error())
}

// checkSender refuses a request whose header names another server than
// the node that sent it (security.PeerIdentity): Raft takes the header's
// ID for the sender's, and a member must not vote, campaign or replicate
// in another's name. Without an established identity (a Transport used
// outside a node's endpoint) there is nothing to check.
func (t *Transport) checkSender(ctx context.Context, req any) error {
	peer := security.PeerIdentity(ctx)
	h, ok := req.(raft.WithRPCHeader)
	if peer == "" || !ok {
		return nil
	}
	if id := h.GetRPCHeader().ID; string(id) != peer {
		t.logger.Warn("refusing a Raft request in another server's name", zap.String("peer", peer), zap.ByteString("header_id", id))
		return status.Errorf(codes.PermissionDenied, "raftrpc: node %q sent a request as server %q", peer, id)
	}
	return nil
}

// isHeartbeat mirrors raft's NetworkTransport: an AppendEntries with
// nothing but the leader's term and address.
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leaderAddr := req.Addr
	if len(leaderAddr) == 0 {
		//lint:ignore SA1019 as raft's NetworkTransport does, for peers before protocol 3
		leaderAddr = req.Leader
	}
	return req.Term != 0 && leaderAddr != nil &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// deliver hands rpc to Raft: to the heartbeat handler when heartbeat is
// set and one is installed, else on the Consumer channel.
func (t *Transport) deliver(ctx context.Context, rpc raft.RPC, heartbeat bool) error {
	if heartbeat {
		t.heartbeatMu.Lock()
		fn := t.heartbeatFn
		t.heartbeatMu.Unlock()
		if fn != nil {
			fn(rpc)
			return nil
		}
	}
	select {
	case t.consumeCh <- rpc:
		return nil
	case <-t.done:
		return errShutdownStatus()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// await waits for Raft's response on respCh.
func (t *Transport) await(ctx context.Context, respCh <-chan raft.RPCResponse) (raft.RPCResponse, error) {
	select {
	case resp := <-respCh:
		return resp, nil
	case <-t.done:
		return raft.RPCResponse{}, errShutdownStatus()
	case <-ctx.Done():
		return raft.RPCResponse{}, status.FromContextError(ctx.Err()).Err()
	}
}

// handle delivers a decoded request to Raft and encodes its answer.
func (t *Transport) handle(ctx context.Context, req, zeroResp any) ([]byte, error) {
	if err := t.checkSender(ctx, req); err != nil {
		return nil, err
	}
	heartbeat := false
	if ae, ok := req.(*raft.AppendEntriesRequest); ok {
		heartbeat = isHeartbeat(ae)
	}
	respCh := make(chan raft.RPCResponse, 1)
	if err := t.deliver(ctx, raft.RPC{Command: req, RespChan: respCh}, heartbeat); err != nil {
		return nil, err
	}
	resp, err := t.await(ctx, respCh)
	if err != nil {
		return nil, err
	}
	out, err := encodeResponse(resp.Response, resp.Error, zeroResp)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return out, nil
}

// serveUnary serves AppendEntries, RequestVote, RequestPreVote and
// TimeoutNow: req and zeroResp are fresh values of the method's types.
func (t *Transport) serveUnary(ctx context.Context, method string, in *rawcodec.Frame, req, zeroResp any) (*rawcodec.Frame, error) {
	if err := decodeMessage(in.Data, req); err != nil {
		return nil, t.malformed(method, err)
	}
	out, err := t.handle(ctx, req, zeroResp)
	if err != nil {
		return nil, err
	}
	return &rawcodec.Frame{Data: out}, nil
}

// servePipeline serves one AppendEntries pipeline stream: requests are
// handled one at a time, so responses leave in request order.
func (t *Transport) servePipeline(stream grpc.ServerStream) error {
	ctx := stream.Context()
	for {
		var in rawcodec.Frame
		if err := stream.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		req := new(raft.AppendEntriesRequest)
		if err := decodeMessage(in.Data, req); err != nil {
			return t.malformed(methodAppendEntriesPipeline, err)
		}
		out, err := t.handle(ctx, req, new(raft.AppendEntriesResponse))
		if err != nil {
			return err
		}
		if err := stream.SendMsg(&rawcodec.Frame{Data: out}); err != nil {
			return err
		}
	}
}
