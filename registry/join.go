package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Join attempts are spaced by a backoff that starts at joinBackoffMin and
// doubles up to joinBackoffMax: fast while a cluster forms, one attempt
// (and at most one log line) a second while a node waits for an absent
// cluster.
const (
	joinBackoffMin = 20 * time.Millisecond
	joinBackoffMax = time.Second
	// joinQuietFor is how long failed join attempts are logged at Info
	// before Warn.
	joinQuietFor = 5 * time.Second
	// lookupTimeout bounds one DNS lookup of a peer name.
	lookupTimeout = 2 * time.Second
)

// join asks the leader to add m to the Raft configuration and the member
// table, and returns once that is committed. Each attempt goes to the
// leader this node knows of, else to every address its peers resolve to
// (configured peers are looked up in DNS again on every attempt, so a
// name that lists all members, such as a Kubernetes headless service,
// keeps working as pods come and go) and every member of its replica, in
// turn, until one of them answers. Every attempt that fails is logged
// with the addresses tried and why; when ctx ends, the error names them.
func (r *Registry) join(ctx context.Context, m Member) error {
	req := encodeJoinRequest(m)
	backoff := joinBackoffMin
	var last attemptErrors
	began := time.Now()
	for attempt := 1; ; attempt++ {
		err := r.joinAttempt(ctx, m, req, &last)
		if err == nil {
			if attempt > 1 {
				r.log.Info("joined the cluster", zap.Int("attempts", attempt))
			}
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("registry: join: %w", err)
		}
		if len(last) > 0 {
			r.logAttempt(attempt, time.Since(began), last)
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, joinBackoffMax)
		case <-ctx.Done():
			if len(last) == 0 {
				return fmt.Errorf("%w: join: %w (no leader elected among this node's servers)", ErrUnavailable, ctx.Err())
			}
			return fmt.Errorf("%w: join: %w; %s", ErrUnavailable, ctx.Err(), last)
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}

// joinAttempt is one round of join: it returns nil once the join is
// committed, a non-retryable error to give up on, or a retryable one, in
// which case tried holds what each address answered.
func (r *Registry) joinAttempt(ctx context.Context, m Member, req []byte, tried *attemptErrors) error {
	*tried = (*tried)[:0]
	rf, err := r.raftNode()
	if err != nil {
		return err
	}
	if rf.State() == raft.Leader {
		actx, cancel := context.WithTimeout(ctx, r.attemptTimeout())
		defer cancel()
		_, err := r.addMember(actx, rf, m) // the leader is a replica
		if err == nil {
			r.becomeReplica()
		}
		return err
	}
	var targets []string
	if addr, ok := r.leaderAddr(); ok && !r.isSelf(addr) {
		targets = append(targets, addr)
	}
	peers, lookupErrs := r.peerAddrs(ctx)
	for _, addr := range peers {
		if !slices.Contains(targets, addr) {
			targets = append(targets, addr)
		}
	}
	*tried = append(*tried, lookupErrs...)
	if len(targets) == 0 {
		// No one to ask: a node that bootstrapped waits for an election
		// among the servers it knows.
		return r.notLeader()
	}
	for i := 0; i < len(targets); i++ {
		addr := targets[i]
		actx, cancel := context.WithTimeout(ctx, r.attemptTimeout())
		body, err := r.callReply(actx, addr, methodJoin, req)
		cancel()
		if err == nil {
			client, err := decodeJoinReply(body)
			if err != nil {
				return fmt.Errorf("the join reply of %s: %w", addr, err)
			}
			if client {
				r.becomeClient(addr)
			} else {
				r.becomeReplica()
			}
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("through %s: %w", addr, err)
		}
		tried.add(addr, err)
		// A member that does not lead names the leader: go there next.
		var nl *notLeaderError
		if errors.As(err, &nl) && nl.leader != "" && !r.isSelf(nl.leader) && !slices.Contains(targets, nl.leader) {
			targets = append(targets[:i+1], append([]string{nl.leader}, targets[i+1:]...)...)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errNotLeader
}

// logAttempt logs a failed join attempt: at Info while the join is young
// (nodes that start together wait a moment for each other and for their
// first election), at Warn once it has taken longer than joinQuietFor.
func (r *Registry) logAttempt(attempt int, waited time.Duration, tried attemptErrors) {
	log := r.log.Warn
	if waited < joinQuietFor {
		log = r.log.Info
	}
	log("join attempt failed; retrying", zap.Int("attempt", attempt), zap.String("tried", tried.String()))
}

// attemptErrors is what each address answered in one join attempt.
type attemptErrors []addrErr

type addrErr struct {
	addr string
	err  error
}

func (a *attemptErrors) add(addr string, err error) { *a = append(*a, addrErr{addr, err}) }

func (a attemptErrors) String() string {
	parts := make([]string, len(a))
	for i, e := range a {
		parts[i] = e.addr + ": " + describe(e.err)
	}
	return "tried " + strings.Join(parts, "; ")
}

// describe says in a few words why a call to a peer failed: the cause a
// gRPC status wraps ("dial tcp 10.0.0.9:7001: connect: connection
// refused"), "token refused", or the peer's own error.
func describe(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unauthenticated:
		return "token refused (" + msg + ")"
	case codes.DeadlineExceeded:
		return "no answer in time"
	case codes.Canceled:
		return "cancelled"
	}
	// "connection error: desc = \"transport: Error while dialing: dial tcp
	// ...: connect: connection refused\"" → "dial tcp ...: connect: ...".
	if i := strings.Index(msg, "dial tcp"); i >= 0 {
		return strings.TrimSuffix(msg[i:], `"`)
	}
	return msg
}

// knownPeers returns the addresses to join through: the configured peers,
// each name looked up again, then the other members of this node's
// replica and the nodes it met while forming the cluster. This node's own addresses are left out.
func (r *Registry) knownPeers(ctx context.Context) []string {
	peers, _ := r.peerAddrs(ctx)
	return peers
}

// peerAddrs is knownPeers that also returns the configured peers whose
// names did not resolve, each with its error.
func (r *Registry) peerAddrs(ctx context.Context) ([]string, attemptErrors) {
	var (
		peers []string
		errs  attemptErrors
	)
	add := func(addr string) {
		if !r.isSelf(addr) && !slices.Contains(peers, addr) {
			peers = append(peers, addr)
		}
	}
	for _, p := range r.cfg.peers {
		addrs, err := r.resolve(ctx, p)
		if err != nil {
			errs.add(p, err)
		}
		for _, a := range addrs {
			add(a)
		}
	}
	for _, m := range r.fsm.current().Members() {
		if m.ID != r.cfg.nodeID {
			add(m.Addr)
		}
	}
	// Nodes met while forming the cluster (bootstrap-expect).
	r.disc.mu.Lock()
	if r.disc.via != "" {
		add(r.disc.via)
	}
	for id, v := range r.disc.view {
		if id != r.cfg.nodeID {
			add(v.addr)
		}
	}
	r.disc.mu.Unlock()
	return peers, errs
}

// resolve turns a configured peer, "host:port", into addresses to dial:
// itself when host is an IP address, else one address per IP its name
// resolves to now.
func (r *Registry) resolve(ctx context.Context, peer string) ([]string, error) {
	host, port, err := net.SplitHostPort(peer)
	if err != nil {
		return nil, fmt.Errorf("peer address %q: %w", peer, err)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{peer}, nil
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := r.cfg.lookupHost(lctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("lookup %s: no such host", host)
		}
		return nil, fmt.Errorf("lookup %s: %w", host, err)
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		addrs = append(addrs, net.JoinHostPort(ip, port))
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// isSelf reports whether addr is one of this node's own addresses.
func (r *Registry) isSelf(addr string) bool {
	return addr == r.ep.AdvertiseAddr() || addr == r.ep.Addr()
}
