package remoting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/hostaddr"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/raftrpc"
	"github.com/dchan-io/dchan/remoting/internal/security"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// maxFrame bounds one gRPC message in either direction: a batch of
// envelopes (maxBatchBytes, or one message of up to maxMessageSize alone),
// a Raft AppendEntries (at most 1024 small registry entries) or snapshot
// chunk (256 KiB), a registry RPC. gRPC checks a message's length prefix
// against it before it allocates for the message, so a peer, even one
// with the token, cannot make the node allocate more per message. At
// least minFrame; framing overhead beyond the larger of the two sizes is
// a few bytes per record.
func maxFrame(cfg config) int {
	return max(minFrame, max(cfg.maxBatchBytes, cfg.maxMessageSize)+64<<10)
}

const minFrame = 4 << 20

// maxStreams bounds the concurrent RPCs and streams of one connection: a
// peer runs a message stream, a Raft pipeline, a snapshot and a handful of
// registry calls at once.
const maxStreams = 128

// HTTP/2 flow-control windows of dchan's connections, per stream and per
// connection. Fixed windows turn off gRPC's bandwidth estimation, which
// otherwise answers nearly every data frame of a one-way message stream
// with a PING on the reverse path: for a request and its reply (which
// travel on two connections) that was two extra writes and two extra reads
// per round trip. The stream window holds a full batch (maxBatchBytes, 1
// MiB by default) several times over.
const (
	grpcStreamWindow = 4 << 20
	grpcConnWindow   = 16 << 20
)

// Keepalive. A connection whose peer went silent without closing it (a
// host cut off, a blackholed route) must be closed and re-dialled soon,
// not when TCP's retransmission backoff, grown over the silence, next
// tries: a node back after a long cut would otherwise stay unreachable for
// seconds on a connection that looks open, and be expired again. gRPC sets
// TCP_USER_TIMEOUT to keepaliveTimeout on every connection it dials or
// accepts, so one whose sent bytes stay unacknowledged that long is
// aborted; pings every keepaliveTime find idle connections that died.
// The server accepts pings as often as keepaliveMinTime and closes
// connections that ping more often (too_many_pings).
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
	keepaliveMinTime = 5 * time.Second
)

const (
	serviceName    = "dchan.remoting.v1.Remoting"
	messagesMethod = "/" + serviceName + "/Messages"
)

// Endpoint is a node's network presence: one gRPC server on one listen
// address, and one client connection per peer address, shared by actor
// message streams and by Raft. It implements actor.Remote.
//
// Create it with New, register extra services (Raft) with Registrar, then
// Start. Close stops it.
type Endpoint struct {
	sys   *actor.System
	cfg   config
	log   *zap.Logger
	codec Codec
	// checker is codec's Checker, if it has one.
	checker Checker
	guard   *security.Guard
	raft    *raftrpc.Transport
	lis     net.Listener
	health  *health.Server
	// advertise is the address peers dial (see WithAdvertiseAddr).
	advertise string
	server    *grpc.Server

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[string]*peer // by address
	// known holds the same peers for sends, which look them up without mu;
	// last is the one the latest lookup found.
	known   sync.Map
	last    atomic.Pointer[peer]
	started bool
	closed  bool

	stats stats
	wire  wireSet
}

var _ actor.Remote = (*Endpoint)(nil)

// New listens on the configured address and prepares the server. Nothing is
// served until Start.
func New(sys *actor.System, opts ...Option) (*Endpoint, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if sys == nil {
		return nil, fmt.Errorf("%w: nil actor system", ErrInvalidOption)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	codec := cfg.codec
	if codec == nil {
		gc, err := NewGobCodec()
		if err != nil {
			return nil, err
		}
		codec = gc
	}
	guard, err := security.New(security.Config{
		ServerTLS: cfg.serverTLS,
		ClientTLS: cfg.clientTLS,
		Token:     cfg.token,
		Protocol:  protocolOf(cfg),
		NodeID:    sys.Node(),
		Open:      []string{healthCheckMethod},
		Logger:    cfg.logger.Named("remoting"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	lis, err := net.Listen("tcp", cfg.listenAddr)
	if err != nil {
		return nil, fmt.Errorf("remoting: listen on %s: %w", cfg.listenAddr, err)
	}
	advertise, err := hostaddr.Advertise(lis.Addr().String(), cfg.advertiseAddr, hostaddr.HostAddrs)
	if err != nil {
		_ = lis.Close()
		return nil, fmt.Errorf("%w: listening on %s: %w (set the advertise address)", ErrAdvertiseAddr, lis.Addr(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		advertise: advertise,
		sys:       sys,
		cfg:       cfg,
		log:       cfg.logger.Named("remoting"),
		codec:     codec,
		guard:     guard,
		lis:       lis,
		ctx:       ctx,
		cancel:    cancel,
		peers:     make(map[string]*peer),
	}
	e.checker, _ = codec.(Checker)
	if cfg.token == "" && cfg.serverTLS == nil && !isLoopback(lis.Addr()) {
		e.log.Warn("listening beyond loopback without TLS or a cluster token: anyone who can reach this address can join the cluster, register, and read and send its messages; see docs/security.md",
			zap.String("listen", lis.Addr().String()))
	}
	// The guard's options come first: its token check must run before any
	// other interceptor and before every handler, Raft's included.
	serverOpts := append(guard.ServerOptions(),
		rawcodec.ServerOption(),
		grpc.MaxRecvMsgSize(maxFrame(cfg)),
		grpc.MaxSendMsgSize(maxFrame(cfg)),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(grpcConnWindow),
		grpc.WaitForHandlers(true),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
	)
	e.server = grpc.NewServer(serverOpts...)
	e.health = newHealth()
	healthpb.RegisterHealthServer(e.server, e.health)
	e.raft, err = raftrpc.New(raftrpc.Config{
		LocalAddr: raft.ServerAddress(advertise),
		Conn: func(_ context.Context, target raft.ServerAddress) (grpc.ClientConnInterface, error) {
			return e.Conn(string(target))
		},
		Logger: cfg.logger.Named("remoting"),
	})
	if err != nil {
		_ = lis.Close()
		cancel()
		return nil, err
	}
	e.raft.Register(e.server)
	e.server.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Messages",
			Handler:       func(_ any, s grpc.ServerStream) error { return e.serveMessages(s) },
			ServerStreams: true,
			ClientStreams: true,
		}},
	}, struct{}{})
	return e, nil
}

// isLoopback reports whether addr is a loopback address: only this host
// can connect to it.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// protocolOf is the protocol range cfg sets, by default this build's.
func protocolOf(cfg config) security.Protocol {
	if cfg.protocol != [2]int{} {
		return security.Protocol{Version: cfg.protocol[0], Min: cfg.protocol[1]}
	}
	return security.Protocol{Version: ProtocolVersion, Min: MinProtocolVersion}
}

// PeerID returns the node ID of the peer that opened the RPC or stream
// whose context ctx is (a handler's): the node its verified client
// certificate names, or, without client certificates, the ID it declared
// when it opened the RPC or stream, which it cannot change afterwards. ""
// when the peer declared none.
func PeerID(ctx context.Context) string { return security.PeerIdentity(ctx) }

// CertNodeID returns the node ID that the certificate a node presents to
// its peers (the first of client's Certificates) vouches for: the
// <node-id> of its URI SAN spiffe://<trust-domain>/dchan/<node-id>, or
// else its Common Name. "" when client has no certificate.
func CertNodeID(client *tls.Config) (string, error) { return security.ConfigIdentity(client) }

// IsIncompatible reports whether err, from an RPC to a peer, is the peer's
// refusal of this node's protocol version.
func IsIncompatible(err error) bool { return security.IsIncompatible(err) }

// Addr returns the bound listen address.
func (e *Endpoint) Addr() string { return e.lis.Addr().String() }

// AdvertiseAddr returns the address peers dial to reach this endpoint (see
// WithAdvertiseAddr). The Raft transport's local address is this one.
func (e *Endpoint) AdvertiseAddr() string { return e.advertise }

// RaftTransport returns the hashicorp/raft transport that runs over this
// endpoint's server and peer connections. Its address is AdvertiseAddr. The
// registry drives Raft with it; Close closes it.
func (e *Endpoint) RaftTransport() raft.Transport { return e.raft }

// Registrar returns the gRPC server for registering further services (the
// Raft transport) before Start.
func (e *Endpoint) Registrar() grpc.ServiceRegistrar { return e.server }

// Start serves the listener in a background goroutine stopped by Close.
func (e *Endpoint) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.started {
		return nil
	}
	e.started = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.server.Serve(e.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			e.log.Error("gRPC server stopped", zap.Error(err))
		}
	}()
	return nil
}

// redialParams re-dial a broken peer connection with a backoff capped at a
// second, not gRPC's default two minutes: a restarted node must be reachable
// again well within the registry's expiry grace (3 s by default), or its
// leader expires it although it is back.
var redialParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 2 * time.Second,
}

// Conn returns the shared client connection to addr, dialling it on first
// use. gRPC re-dials a broken connection with exponential backoff (capped
// at a second).
func (e *Endpoint) Conn(addr string) (grpc.ClientConnInterface, error) {
	p, err := e.peer(addr)
	if err != nil {
		return nil, err
	}
	return p.conn, nil
}

func (e *Endpoint) peer(addr string) (*peer, error) {
	// Peers are never forgotten (a closed Endpoint closes them, and sends
	// to them fail), so the last one found stays right for its address.
	if p := e.last.Load(); p != nil && p.addr == addr {
		return p, nil
	}
	if p, ok := e.known.Load(addr); ok {
		e.last.Store(p.(*peer))
		return p.(*peer), nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	if p, ok := e.peers[addr]; ok {
		return p, nil
	}
	dialOpts := append(e.guard.DialOptions(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxFrame(e.cfg)), grpc.MaxCallSendMsgSize(maxFrame(e.cfg))),
		grpc.WithConnectParams(redialParams),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(grpcStreamWindow),
		grpc.WithInitialConnWindowSize(grpcConnWindow),
	)
	if e.cfg.dialer != nil {
		dialOpts = append(dialOpts, grpc.WithContextDialer(e.cfg.dialer))
	}
	conn, err := grpc.NewClient(addr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("remoting: dial %s: %w", addr, err)
	}
	p := &peer{e: e, addr: addr, conn: conn}
	e.peers[addr] = p
	e.known.Store(addr, p)
	return p, nil
}

// ResetPeer fails the message stream to addr: its unconfirmed messages fail
// with ErrNodeLost at once, and the next send opens a new stream. The owner
// calls it when the cluster declares the node at addr dead — a node that
// stopped answering without closing its connections (paused, cut off by a
// firewall) would otherwise hold its senders' handles until it answers.
func (e *Endpoint) ResetPeer(addr string) {
	e.mu.Lock()
	p := e.peers[addr]
	e.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	s := p.out
	p.mu.Unlock()
	if s != nil {
		s.fail(fmt.Errorf("%w: %s was declared dead", ErrNodeLost, addr))
	}
}

// Send implements actor.Remote: it delivers msg to the actor at to on
// another node, blocking while the link has no credit (backpressure) until
// ctx ends. It returns once the message is queued for the wire; delivery is
// at most once and not confirmed (use SendTracked for confirmation). A
// value the codec refuses up front fails Send with ErrEncode; one that
// fails to encode later (see the package doc) becomes a dead letter.
func (e *Endpoint) Send(ctx context.Context, to, from actor.PID, msg any) error {
	return e.SendTracked(ctx, to, from, msg, nil)
}

// SendTracked is Send with a confirmation: done is called exactly once, with
// nil when the target's mailbox accepted the message, or with the reason it
// was not (ErrNodeLost, actor.ErrNotFound, actor.ErrStopped, ErrEncode or
// ErrTooLarge from the writer's encoding, ...). If SendTracked itself
// returns an error, done is not called.
func (e *Endpoint) SendTracked(ctx context.Context, to, from actor.PID, msg any, done func(error)) error {
	return e.sendTracked(ctx, to, from, msg, done, 0)
}

// TrySendTracked is SendTracked that never waits for credit: without
// credit for the link it returns an error wrapping ErrNoCredit (asking the
// receiver for credit if the link is new, so a later try may succeed).
// Routers use it to prefer receivers with free credit.
func (e *Endpoint) TrySendTracked(to, from actor.PID, msg any, done func(error)) error {
	return e.sendTracked(e.ctx, to, from, msg, done, sendTry)
}

// Outcomes receives the outcomes of messages sent with SendMany, several
// at a time: each call reports msgs that all had the outcome err — nil
// when their target's mailbox accepted them, else the reason it did not
// (as for SendTracked). One call may cover several targets; the messages
// of one target come in the order they were sent.
// Consecutive acceptances are reported in one call, so a sender that uses
// one Outcomes for all its SendMany calls pays one call per acknowledgement
// rather than one per message. The function may run on a stream's
// goroutines, several at once; it must not block, and must not keep msgs
// (its array is reused) — only its elements.
type Outcomes struct {
	report  func(msgs []any, err error)
	payload func(msg any) any // what goes on the wire for msg; nil: msg
	tracked bool              // acceptances reported at once (NewTrackedOutcomes)
}

// NewOutcomes returns an Outcomes that reports to f.
func NewOutcomes(f func(msgs []any, err error)) *Outcomes { return &Outcomes{report: f} }

// NewTrackedOutcomes returns an Outcomes for messages whose senders wait
// on each outcome: the receiver reports the acceptances of each frame at
// once, as for SendTracked, rather than up to AckDelay later. payload, if
// not nil, gives what SendMany encodes for each message it is passed
// (a handle's value, say), while f hears of the messages themselves.
func NewTrackedOutcomes(f func(msgs []any, err error), payload func(msg any) any) *Outcomes {
	return &Outcomes{report: f, payload: payload, tracked: true}
}

// Wraps reports whether o was made with a payload function: whether what
// goes to the receiver differs from the messages o reports.
func (o *Outcomes) Wraps() bool { return o.payload != nil }

// Payload returns what goes to the receiver for msg: payload(msg) for an
// Outcomes made with one, else msg. A sender that delivers some messages
// itself (locally) hands the receiver this.
func (o *Outcomes) Payload(msg any) any {
	if o.payload == nil {
		return msg
	}
	return o.payload(msg)
}

// Report calls o's function: for a sender that settles some messages
// itself (ones it delivered locally, say) and reports them the same way.
func (o *Outcomes) Report(msgs []any, err error) { o.report(msgs, err) }

// SendMany queues msgs for the actor at to, in order, for a sender that
// sends many and can wait a little for their outcomes, which out receives.
// The receiver reports acceptances together, when an eighth of the link's
// window has gathered or at most AckDelay after, not with the frame each
// arrived in; a refusal it reports at once.
//
// SendMany waits, until ctx ends, for credit (and room in the stream's
// queue) for the first message only; it then queues as many of the others as
// the link's credit lets through and returns how many it queued, n. If it
// queued fewer than all, the error says why msgs[n] was not: ErrNoCredit
// (send the rest later, or elsewhere), ErrEncode (the codec refuses msgs[n];
// the ones after it may be sent), or the stream's failure. out hears only of
// messages SendMany queued.
func (e *Endpoint) SendMany(ctx context.Context, to, from actor.PID, msgs []any, out *Outcomes) (int, error) {
	return e.sendMany(ctx, to, from, msgs, out, 0)
}

// TrySendMany is SendMany that never waits: with no credit for the first
// message it returns 0 and an error wrapping ErrNoCredit (asking the
// receiver for credit if the link is new, so that a later try may
// succeed). Routers use it to prefer receivers with free credit.
func (e *Endpoint) TrySendMany(to, from actor.PID, msgs []any, out *Outcomes) (int, error) {
	return e.sendMany(e.ctx, to, from, msgs, out, sendTry)
}

func (e *Endpoint) sendMany(ctx context.Context, to, from actor.PID, msgs []any, out *Outcomes, mode sendMode) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if out == nil || out.report == nil {
		return 0, fmt.Errorf("send to %v: %w: SendMany without Outcomes (use NewOutcomes)", to, ErrInvalidOption)
	}
	p, err := e.peerOf(to)
	if err != nil {
		return 0, err
	}
	return p.sendMany(ctx, to, from, msgs, out, mode)
}

// AckDelay bounds how long a receiver holds back the acceptance of a
// message that nobody waits for promptly (Send, SendMany).
const AckDelay = 2 * time.Millisecond

// sendMode modifies a send.
type sendMode uint8

const (
	sendTry sendMode = 1 << iota // never wait for credit or queue space
)

func (e *Endpoint) sendTracked(ctx context.Context, to, from actor.PID, msg any, done func(error), mode sendMode) error {
	p, err := e.peerOf(to)
	if err != nil {
		return err
	}
	return p.send(ctx, to, from, msg, done, mode)
}

// peerOf returns the peer of to's node.
func (e *Endpoint) peerOf(to actor.PID) (*peer, error) {
	if e.cfg.resolver == nil {
		return nil, fmt.Errorf("send to %v: %w: no resolver", to, ErrUnknownNode)
	}
	addr, err := e.cfg.resolver.Resolve(to.Node)
	if err != nil {
		return nil, fmt.Errorf("send to %v: %w", to, err)
	}
	p, err := e.peer(addr)
	if err != nil {
		return nil, fmt.Errorf("send to %v: %w", to, err)
	}
	// The node's wire counters: looked up again only when p has none (new,
	// or ForgetWireStats dropped them) or another node took its address.
	if wc := p.wire.Load(); wc == nil || wc.node != to.Node {
		p.wire.Store(e.wire.of(to.Node))
	}
	return p, nil
}

// check refuses, before a send queues it, a message the stream's writer
// could not send: a tag over wire.MaxTagLen, or a value the codec's
// Checker refuses.
func (e *Endpoint) check(msg any) error {
	if t, ok := msg.(Tagged); ok {
		if len(t.Tag) > wire.MaxTagLen {
			return fmt.Errorf("%w: %d-byte tag, limit %d", ErrTooLarge, len(t.Tag), wire.MaxTagLen)
		}
		msg = t.Value
	}
	if e.checker == nil {
		return nil
	}
	return e.checker.Check(msg)
}

// Close stops the endpoint: outgoing streams are closed and their
// unconfirmed messages fail with ErrNodeLost, incoming streams end, the
// server stops, connections close, and every goroutine is waited for.
// Close is idempotent.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.Shutdown(ctx)
}

// Shutdown is Close bounded by ctx.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.wg.Wait()
		return nil
	}
	e.closed = true
	peers := make([]*peer, 0, len(e.peers))
	for _, p := range e.peers {
		peers = append(peers, p)
	}
	started := e.started
	e.mu.Unlock()

	e.health.Shutdown()
	e.cancel()
	_ = e.raft.Close()
	for _, p := range peers {
		p.close()
	}
	// Message streams live as long as their nodes, so a graceful stop
	// would wait for the peers to hang up: stop hard. Incoming streams end,
	// messages still in their overflow are dropped (their senders' handles
	// fail with ErrNodeLost), and Stop waits for every handler.
	stopped := make(chan struct{})
	go func() {
		e.server.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		<-stopped // handlers end promptly once their connections close
	}
	if !started {
		_ = e.lis.Close()
	}
	var errs []error
	for _, p := range peers {
		if err := p.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	e.wg.Wait()
	return errors.Join(errs...)
}
