package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/remoting"
)

// Forming a cluster with bootstrap-expect (WithBootstrapExpect).
//
// Nodes started with the same setting n and no state discover each other
// through their peers (a fixed list or a DNS name that lists them all):
// every round, each asks every address it knows (Hello) and learns the
// nodes each one has heard from directly. Once a node has heard directly
// from n nodes, it takes the n lowest IDs among them as the candidate
// configuration; only the lowest of those, the seed, acts. It asks each
// other candidate to agree (Propose): a candidate agrees when it is not in
// a cluster, has promised no other seed, and knows of no node outside the
// set with a lower ID than one inside; agreeing, it promises the seed for
// promiseTTL. With every agreement in hand the seed bootstraps Raft with
// the whole set; the others receive the configuration from the leader the
// set elects and then join as usual. Promises are exclusive, so two seeds
// cannot both gather a node that is in both their sets; a seed that misses
// one agreement releases the others and tries again the next round. A node
// that hears from a member of an existing cluster stops and joins it.
//
// This forms exactly one cluster when the nodes that start together can
// all reach each other, whatever their timing; it cannot prevent two
// disjoint groups of n that never hear of each other (2n nodes given only
// half of the addresses each, say) from forming two.

const (
	discoverHello   byte = 1
	discoverPropose byte = 2
	discoverRelease byte = 3

	// maxBootstrapExpect bounds WithBootstrapExpect and a proposed set.
	maxBootstrapExpect = 16
	// maxView bounds the nodes one Hello reply lists.
	maxView = 256

	// discoverInterval spaces discovery rounds (with ±25% jitter).
	discoverInterval = 200 * time.Millisecond
	// discoverLogEvery spaces the progress lines of a node that waits.
	discoverLogEvery = 5 * time.Second
)

// discovery is a node's state while it forms a cluster. Guarded by mu.
type discovery struct {
	mu   sync.Mutex
	view map[string]*viewEntry // node ID → what this node knows of it
	// promise is the seed this node agreed to (or itself, while it
	// proposes), until it expires.
	promise      string
	promiseSet   []peerInfo
	promiseUntil time.Time
	bootstrapped bool   // this node bootstrapped the cluster as its seed
	via          string // a member of the existing cluster this node found
}

type viewEntry struct {
	addr   string
	direct time.Time // when this node last heard from it directly (zero: never)
}

type peerInfo struct{ id, addr string }

// discoverReq is a Discover request.
type discoverReq struct {
	kind   byte
	expect int
	from   peerInfo
	set    []peerInfo // Propose and Release: the proposed set
}

// discoverReply is a Discover reply.
type discoverReply struct {
	clustered bool   // the node is in a cluster: join it
	leader    string // the leader it knows of, if clustered
	expect    int
	self      peerInfo
	view      []peerInfo // nodes it heard from directly, recently
	agree     bool       // Propose: it agreed and promised
	reason    string     // Propose: why it did not agree
}

func (q discoverReq) encode() []byte {
	w := bin.Writer{}
	w.Byte(q.kind)
	w.Uvarint(uint64(q.expect))
	w.Str(q.from.id)
	w.Str(q.from.addr)
	w.Uvarint(uint64(len(q.set)))
	for _, p := range q.set {
		w.Str(p.id)
		w.Str(p.addr)
	}
	return w.B
}

func decodeDiscoverReq(b []byte) (discoverReq, error) {
	rd := bin.NewReader(b, ErrMalformed)
	q := discoverReq{kind: rd.Byte(), expect: int(min(rd.Uvarint(), maxBootstrapExpect+1))}
	q.from = peerInfo{rd.Str("node ID", MaxIDLen), rd.Str("address", MaxAddrLen)}
	n := rd.Count("set", 2)
	if n > maxBootstrapExpect {
		rd.Fail("set of %d nodes, limit %d", n, maxBootstrapExpect)
	}
	for i := 0; i < n && rd.Err() == nil; i++ {
		q.set = append(q.set, peerInfo{rd.Str("node ID", MaxIDLen), rd.Str("address", MaxAddrLen)})
	}
	rd.End()
	if rd.Err() == nil && (q.kind < discoverHello || q.kind > discoverRelease) {
		rd.Fail("unknown discover request kind %d", q.kind)
	}
	return q, rd.Err()
}

func (p discoverReply) encode() []byte {
	w := bin.Writer{}
	w.Bool(p.clustered)
	w.Str(p.leader)
	w.Uvarint(uint64(p.expect))
	w.Str(p.self.id)
	w.Str(p.self.addr)
	w.Uvarint(uint64(len(p.view)))
	for _, v := range p.view {
		w.Str(v.id)
		w.Str(v.addr)
	}
	w.Bool(p.agree)
	w.Str(p.reason)
	return w.B
}

func decodeDiscoverReply(b []byte) (discoverReply, error) {
	rd := bin.NewReader(b, ErrMalformed)
	p := discoverReply{clustered: rd.Bool(), leader: rd.Str("leader", MaxAddrLen)}
	p.expect = int(min(rd.Uvarint(), maxBootstrapExpect+1))
	p.self = peerInfo{rd.Str("node ID", MaxIDLen), rd.Str("address", MaxAddrLen)}
	n := rd.Count("view", 2)
	if n > maxView {
		rd.Fail("view of %d nodes, limit %d", n, maxView)
	}
	for i := 0; i < n && rd.Err() == nil; i++ {
		p.view = append(p.view, peerInfo{rd.Str("node ID", MaxIDLen), rd.Str("address", MaxAddrLen)})
	}
	p.agree = rd.Bool()
	p.reason = rd.Str("reason", 1024)
	rd.End()
	return p, rd.Err()
}

// promiseTTL is how long an agreement to a seed holds: well beyond the
// election the seed's set needs once it bootstraps, after which the
// promised node is in the cluster and refuses everyone anyway.
func (r *Registry) promiseTTL() time.Duration {
	return max(5*time.Second, 10*r.cfg.electionTimeout)
}

// staleAfter is how long a node counts another it has not heard from
// directly among those that can form the cluster.
func (r *Registry) staleAfter() time.Duration { return max(3*time.Second, 4*r.cfg.electionTimeout) }

// hasConfiguration reports whether this node's Raft has a configuration:
// it bootstrapped, or a leader has replicated one to it.
func hasConfiguration(rf *raft.Raft) bool {
	cf := rf.GetConfiguration()
	return cf.Error() == nil && len(cf.Configuration().Servers) > 0
}

// serveDiscover answers Hello, Propose and Release.
func (r *Registry) serveDiscover(ctx context.Context, req []byte) []byte {
	q, err := decodeDiscoverReq(req)
	if err != nil {
		return encodeReply(err, nil)
	}
	if caller := remoting.PeerID(ctx); q.from.id != caller {
		return encodeReply(fmt.Errorf("%w: %s may not speak for node %q", ErrPermissionDenied, describeCaller(caller), q.from.id), nil)
	}
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	d := &r.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	reply := discoverReply{expect: r.cfg.bootstrapExpect, self: r.selfInfo()}
	if d.bootstrapped || hasConfiguration(rf) || r.joined.Load() {
		reply.clustered = true
		reply.leader, _ = r.leaderAddr()
		reply.reason = "in a cluster already"
		return encodeReply(nil, reply.encode())
	}
	if r.cfg.bootstrapExpect == 0 || q.expect != r.cfg.bootstrapExpect {
		reply.reason = fmt.Sprintf("bootstrap-expect %d here, %d there", r.cfg.bootstrapExpect, q.expect)
		return encodeReply(nil, reply.encode())
	}
	if q.from.id != r.cfg.nodeID {
		d.heard(q.from, now)
	}
	switch q.kind {
	case discoverPropose:
		reply.agree, reply.reason = r.consider(q, now)
	case discoverRelease:
		if d.promise == q.from.id {
			d.promise, d.promiseSet = "", nil
		}
	}
	reply.view = d.recent(now, r.staleAfter())
	return encodeReply(nil, reply.encode())
}

// consider decides a Propose: it agrees, and promises, unless this node
// promised another seed or knows a node the set should have held instead.
// d.mu is held.
func (r *Registry) consider(q discoverReq, now time.Time) (bool, string) {
	d := &r.disc
	if d.promise != "" && d.promise != q.from.id && now.Before(d.promiseUntil) {
		return false, fmt.Sprintf("promised to %s", d.promise)
	}
	in := make(map[string]bool, len(q.set))
	highest := ""
	for _, p := range q.set {
		in[p.id] = true
		highest = max(highest, p.id)
	}
	if len(q.set) != r.cfg.bootstrapExpect || !in[r.cfg.nodeID] || !in[q.from.id] {
		return false, "a set that does not hold this node and the seed, or of the wrong size"
	}
	for id, v := range d.view {
		if !in[id] && id < highest && now.Sub(v.direct) <= r.staleAfter() {
			return false, fmt.Sprintf("knows %s, which belongs in the set", id)
		}
	}
	d.promise, d.promiseSet, d.promiseUntil = q.from.id, slices.Clone(q.set), now.Add(r.promiseTTL())
	return true, ""
}

func (r *Registry) selfInfo() peerInfo {
	return peerInfo{r.cfg.nodeID, r.ep.AdvertiseAddr()}
}

// heard records that this node heard from p directly. d.mu is held.
func (d *discovery) heard(p peerInfo, now time.Time) {
	if d.view == nil {
		d.view = make(map[string]*viewEntry)
	}
	d.view[p.id] = &viewEntry{addr: p.addr, direct: now}
}

// learn records p, heard of through another node. d.mu is held.
func (d *discovery) learn(p peerInfo) {
	if d.view == nil {
		d.view = make(map[string]*viewEntry)
	}
	if _, ok := d.view[p.id]; !ok && len(d.view) < maxView {
		d.view[p.id] = &viewEntry{addr: p.addr}
	}
}

// recent lists the nodes heard from directly within stale, by ID. Entries
// never heard from directly, or not for a long time, are forgotten.
// d.mu is held.
func (d *discovery) recent(now time.Time, stale time.Duration) []peerInfo {
	var out []peerInfo
	for id, v := range d.view {
		switch {
		case now.Sub(v.direct) <= stale:
			out = append(out, peerInfo{id, v.addr})
		case !v.direct.IsZero() && now.Sub(v.direct) > 4*stale:
			delete(d.view, id)
		}
	}
	slices.SortFunc(out, func(a, b peerInfo) int { return strings.Compare(a.id, b.id) })
	return out
}

// discover runs the discovery rounds until this node is in a cluster's
// configuration (its seed bootstrapped one with it, or it bootstrapped one
// as the seed) or hears of an existing cluster. The join that follows goes
// through the nodes met here (knownPeers).
func (r *Registry) discover(ctx context.Context, rf *raft.Raft) error {
	self := r.selfInfo()
	r.disc.mu.Lock()
	r.disc.heard(self, time.Now())
	r.disc.mu.Unlock()
	n := r.cfg.bootstrapExpect
	r.log.Info("waiting for the nodes to bootstrap with", zap.Int("bootstrap_expect", n), zap.Strings("peers", r.cfg.peers))
	var (
		lastLog  time.Time
		lastSeen []peerInfo
		tried    attemptErrors
	)
	for {
		if hasConfiguration(rf) {
			return nil
		}
		if via := r.helloRound(ctx, &tried); via != "" {
			r.log.Info("found an existing cluster; joining it", zap.String("via", via))
			return nil
		}
		r.disc.mu.Lock()
		r.disc.heard(self, time.Now())
		seen := r.disc.recent(time.Now(), r.staleAfter())
		r.disc.mu.Unlock()
		if len(seen) >= n && seen[0].id == self.id {
			ok, err := r.propose(ctx, rf, seen[:n])
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		if !slices.Equal(seen, lastSeen) || time.Since(lastLog) > discoverLogEvery {
			fields := []zap.Field{zap.Int("seen", len(seen)), zap.Int("bootstrap_expect", n), zap.String("nodes", describePeers(seen))}
			if len(tried) > 0 {
				fields = append(fields, zap.String("unreachable", tried.String()))
			}
			r.log.Info("discovering nodes to bootstrap with", fields...)
			lastSeen, lastLog = seen, time.Now()
		}
		wait := discoverInterval/2 + rand.N(discoverInterval)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			msg := fmt.Sprintf("saw %d of the %d expected nodes (%s)", len(seen), n, describePeers(seen))
			if len(tried) > 0 {
				msg += "; " + tried.String()
			}
			return fmt.Errorf("%w: bootstrap-expect: %w; %s", ErrUnavailable, ctx.Err(), msg)
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}

// helloRound asks every address this node knows of and merges what they
// know. If one of them is in a cluster already it returns that one's
// address, recorded among the nodes to join through.
func (r *Registry) helloRound(ctx context.Context, tried *attemptErrors) string {
	*tried = (*tried)[:0]
	targets, lookupErrs := r.peerAddrs(ctx)
	*tried = append(*tried, lookupErrs...)
	req := discoverReq{kind: discoverHello, expect: r.cfg.bootstrapExpect, from: r.selfInfo()}.encode()
	mismatched := false
	for _, addr := range targets {
		reply, err := r.discoverCall(ctx, addr, req)
		if err != nil {
			tried.add(addr, err)
			continue
		}
		if reply.self.id == r.cfg.nodeID {
			continue // this node under another of its addresses
		}
		if reply.clustered {
			r.disc.mu.Lock()
			r.disc.via = addr
			r.disc.mu.Unlock()
			return addr
		}
		if reply.expect != r.cfg.bootstrapExpect {
			if !mismatched {
				r.log.Warn("a peer expects another number of nodes; not counting it",
					zap.String("peer", reply.self.id), zap.String("addr", addr),
					zap.Int("its_bootstrap_expect", reply.expect), zap.Int("bootstrap_expect", r.cfg.bootstrapExpect))
			}
			mismatched = true
			continue
		}
		r.disc.mu.Lock()
		r.disc.heard(reply.self, time.Now())
		for _, p := range reply.view {
			if p.id != r.cfg.nodeID {
				r.disc.learn(p)
			}
		}
		r.disc.mu.Unlock()
	}
	return ""
}

// propose runs one proposal of set, whose lowest ID is this node's: it
// reports true once this node bootstrapped the cluster.
func (r *Registry) propose(ctx context.Context, rf *raft.Raft, set []peerInfo) (bool, error) {
	d := &r.disc
	d.mu.Lock()
	now := time.Now()
	if d.promise != "" && d.promise != r.cfg.nodeID && now.Before(d.promiseUntil) {
		d.mu.Unlock()
		return false, nil // it agreed to another seed: let that one finish
	}
	d.promise, d.promiseSet, d.promiseUntil = r.cfg.nodeID, set, now.Add(r.promiseTTL())
	d.mu.Unlock()

	req := discoverReq{kind: discoverPropose, expect: r.cfg.bootstrapExpect, from: r.selfInfo(), set: set}.encode()
	var agreed []string
	refusal := ""
	for _, p := range set[1:] {
		reply, err := r.discoverCall(ctx, p.addr, req)
		switch {
		case err != nil:
			refusal = fmt.Sprintf("%s at %s: %s", p.id, p.addr, describe(err))
		case !reply.agree:
			refusal = fmt.Sprintf("%s at %s: %s", p.id, p.addr, reply.reason)
		default:
			agreed = append(agreed, p.addr)
			continue
		}
		break
	}

	d.mu.Lock()
	ok := refusal == "" && d.promise == r.cfg.nodeID && time.Now().Before(d.promiseUntil) && !hasConfiguration(rf)
	if ok {
		d.bootstrapped = true
	} else {
		d.promise, d.promiseSet = "", nil
	}
	d.mu.Unlock()
	if !ok {
		r.log.Info("bootstrap proposal not agreed; trying again", zap.String("set", describePeers(set)), zap.String("refused_by", refusal))
		release := discoverReq{kind: discoverRelease, expect: r.cfg.bootstrapExpect, from: r.selfInfo(), set: set}.encode()
		for _, addr := range agreed {
			_, _ = r.discoverCall(ctx, addr, release)
		}
		return false, nil
	}

	// The first replicaLimit nodes of the set form the Raft configuration;
	// the others, agreed but left out, find the cluster formed in their
	// next discovery round and join it as registry clients, as any node
	// joining a configuration at the limit does.
	replicas := set
	if limit := r.cfg.replicaLimit(); limit > 0 && len(set) > limit {
		replicas = set[:limit]
	}
	servers := make([]raft.Server, len(replicas))
	for i, p := range replicas {
		suffrage := raft.Voter
		if i >= r.cfg.maxVoters {
			suffrage = raft.Nonvoter
		}
		servers[i] = raft.Server{ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.addr), Suffrage: suffrage}
	}
	r.log.Info("bootstrapping the cluster", zap.String("servers", describePeers(replicas)),
		zap.String("clients", describePeers(set[len(replicas):])))
	if err := rf.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return false, fmt.Errorf("registry: bootstrap with %s: %w", describePeers(replicas), err)
	}
	return true, nil
}

// discoverCall sends one Discover request to addr.
func (r *Registry) discoverCall(ctx context.Context, addr string, req []byte) (discoverReply, error) {
	actx, cancel := context.WithTimeout(ctx, r.attemptTimeout())
	defer cancel()
	body, err := r.callReply(actx, addr, methodDiscover, req)
	if err != nil {
		return discoverReply{}, err
	}
	return decodeDiscoverReply(body)
}

func describePeers(ps []peerInfo) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.id + "@" + p.addr
	}
	return strings.Join(parts, ", ")
}
