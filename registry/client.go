package registry

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/remoting"
)

// Registry clients (WithMaxReplicas). The leader keeps at most the replica
// limit of members in the Raft configuration; a node that joins beyond it
// is a client:
//
//   - its member record has Client set, and it is in no Raft
//     configuration (its Raft runs idle, for a promotion);
//   - it keeps its copy of the registry from one replica's Follow stream
//     (follow.go), so its copy is always a State some replica applied,
//     moving forward only, and its reads stay local;
//   - it sends its writes and Syncs to the leader, whose address the
//     join, the replicas' beats and their refusals name;
//   - it beats on its Follow stream; each replica reports the followers
//     it heard to the leader once a beat interval (the Heard RPC), and the
//     leader expires a client no replica heard from within the grace;
//   - when a replica is gone, the leader adds a live client to the Raft
//     configuration as a non-voter and commits its record without Client:
//     the client stops following, and Raft brings its copy on.

// methodHeard is the RPC by which a replica tells the leader which
// followers it heard from: a count (uvarint) and that many node IDs. The
// leader accepts it from members of its Raft configuration only.
const methodHeard = "/" + serviceName + "/Heard"

// maxHeard bounds the node IDs of one Heard request.
const maxHeard = 1 << 16

// clientRole is this node's side of being a client.
type clientRole struct {
	on     atomic.Bool            // this node is a client now
	leader atomic.Pointer[string] // the leader's address as last named to it

	mu   sync.Mutex
	fl   *follower
	stop func() // stops fl's goroutine and waits for it; nil when none runs
}

// heardSet is when each follower was last heard from: by this replica on
// its Follow streams, or, on the leader, as replicas reported.
type heardSet struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (h *heardSet) note(id string) {
	if id == "" {
		return
	}
	h.noteAt(id, time.Now())
}

func (h *heardSet) noteAt(id string, at time.Time) {
	h.mu.Lock()
	if h.last == nil {
		h.last = make(map[string]time.Time)
	}
	if at.After(h.last[id]) {
		h.last[id] = at
	}
	h.mu.Unlock()
}

// get returns when id was last heard from (zero: never).
func (h *heardSet) get(id string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last[id]
}

// since returns the IDs heard from after t, and forgets those not heard
// from since before forget.
func (h *heardSet) since(t, forget time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for id, at := range h.last {
		switch {
		case at.After(t):
			ids = append(ids, id)
		case at.Before(forget):
			delete(h.last, id)
		}
	}
	return ids
}

// beatEvery is how often a follower beats, a replica beats back and
// reports what it heard: a sixth of the expiry grace, so that a client is
// expired within about the grace and two intervals of its last beat.
func (r *Registry) beatEvery() time.Duration {
	return max(r.cfg.expireAfter/6, 10*time.Millisecond)
}

// IsClient reports whether this node is a registry client now: outside the
// Raft configuration, following a replica (WithMaxReplicas).
func (r *Registry) IsClient() bool { return r.client.on.Load() }

// lastContact is when this node last heard from the cluster: from the
// leader through Raft, or from a replica's Follow stream.
func (r *Registry) lastContact(rf *raft.Raft) time.Time {
	t := rf.LastContact()
	r.client.mu.Lock()
	fl := r.client.fl
	r.client.mu.Unlock()
	if fl != nil {
		if f := fl.lastContact(); f.After(t) {
			t = f
		}
	}
	return t
}

// inContact reports whether this replica leads or heard from the leader
// within the grace: whether its copy is one to hand followers.
func (r *Registry) inContact() bool {
	rf, err := r.raftNode()
	if err != nil {
		return false
	}
	return rf.State() == raft.Leader || time.Since(rf.LastContact()) <= r.cfg.expireAfter
}

// setLeaderHint records the leader's address as named to this client.
func (r *Registry) setLeaderHint(addr string) {
	if addr == "" || r.isSelf(addr) {
		return
	}
	if p := r.client.leader.Load(); p == nil || *p != addr {
		r.client.leader.Store(&addr)
	}
}

// becomeClient makes this node a client: it follows the replicas, first
// the leader that accepted its join.
func (r *Registry) becomeClient(leader string) {
	r.setLeaderHint(leader)
	r.client.mu.Lock()
	defer r.client.mu.Unlock()
	if !r.client.on.Swap(true) {
		r.log.Info("joined as a registry client: following a replica")
		r.fsm.keepApplied(false)
	}
	if r.client.stop != nil {
		return
	}
	fl := &follower{f: r.fsm, ep: r.ep, log: r.log, replicas: r.followTargets,
		beatEvery: r.beatEvery(), onLeader: r.setLeaderHint}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(done)
		fl.run(ctx)
	}()
	r.client.fl = fl
	r.client.stop = func() { cancel(); <-done }
}

// becomeReplica ends this node's client role, if it had one: Raft brings
// its copy on from here (the fsm skips the entries it has).
func (r *Registry) becomeReplica() {
	r.client.mu.Lock()
	stop := r.client.stop
	r.client.stop = nil
	wasClient := r.client.on.Swap(false)
	r.client.mu.Unlock()
	if stop != nil {
		stop()
	}
	if wasClient {
		r.fsm.keepApplied(true)
		r.log.Info("now a registry replica")
	}
}

// followTargets is where a client follows from, in the order to try: the
// replicas of its copy, starting at one its node ID picks (so that clients
// spread over the replicas), then the leader it knows of and its peers.
func (r *Registry) followTargets() []string {
	var reps []string
	for _, m := range r.fsm.current().Members() {
		if !m.Client && m.Status == Alive && m.ID != r.cfg.nodeID {
			reps = append(reps, m.Addr)
		}
	}
	if len(reps) > 0 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(r.cfg.nodeID))
		k := int(h.Sum32() % uint32(len(reps)))
		reps = append(reps[k:], reps[:k]...)
	}
	if p := r.client.leader.Load(); p != nil && !slices.Contains(reps, *p) {
		reps = append(reps, *p)
	}
	for _, a := range r.knownPeers(r.ctx) {
		if !slices.Contains(reps, a) {
			reps = append(reps, a)
		}
	}
	return reps
}

// reportHeard runs on every node: while it is a replica that does not
// lead, it tells the leader, once a beat interval, which followers it
// heard from since its last report.
func (r *Registry) reportHeard() {
	defer r.wg.Done()
	every := r.beatEvery()
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		ids := r.heard.since(last, now.Add(-4*r.cfg.expireAfter))
		if r.client.on.Load() || len(ids) == 0 {
			last = now
			continue
		}
		rf, err := r.raftNode()
		if err != nil || rf.State() == raft.Leader {
			last = now
			continue
		}
		addr, ok := r.leaderAddr()
		if !ok {
			continue // report them to the next leader
		}
		ctx, cancel := context.WithTimeout(r.ctx, every)
		_, err = r.callReply(ctx, addr, methodHeard, encodeHeard(ids))
		cancel()
		if err != nil {
			r.log.Debug("reporting heard followers failed", zap.String("leader", addr), zap.Error(err))
			continue
		}
		last = now
	}
}

// serveHeard takes a replica's report of the followers it heard from, on
// the leader only.
func (r *Registry) serveHeard(ctx context.Context, req []byte) []byte {
	ids, err := decodeHeard(req)
	if err != nil {
		return encodeReply(err, nil)
	}
	rf, err := r.raftNode()
	if err != nil {
		return encodeReply(err, nil)
	}
	if rf.State() != raft.Leader {
		return encodeReply(r.notLeader(), nil)
	}
	caller := remoting.PeerID(ctx)
	if !r.inConfiguration(rf, caller) {
		err := fmt.Errorf("%w: %s reported followers, and is not a replica", ErrPermissionDenied, describeCaller(caller))
		r.log.Warn("refused a report of heard followers", zap.String("peer", caller), zap.Error(err))
		return encodeReply(err, nil)
	}
	now := time.Now()
	for _, id := range ids {
		r.heard.noteAt(id, now)
	}
	return encodeReply(nil, nil)
}

// encodeHeard encodes a Heard request: up to maxHeard of ids, sorted.
func encodeHeard(ids []string) []byte {
	slices.Sort(ids)
	ids = ids[:min(len(ids), maxHeard)]
	w := bin.Writer{}
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		w.Str(id)
	}
	return w.B
}

// decodeHeard decodes a Heard request.
func decodeHeard(b []byte) ([]string, error) {
	rd := bin.NewReader(b, ErrMalformed)
	n := rd.Count("node ID", 1)
	if n > maxHeard {
		return nil, fmt.Errorf("%w: %d node IDs in one report, at most %d", ErrMalformed, n, maxHeard)
	}
	ids := make([]string, 0, n)
	for range n {
		ids = append(ids, rd.Str("node ID", MaxIDLen))
	}
	rd.End()
	if rd.Err() != nil {
		return nil, rd.Err()
	}
	return ids, nil
}

// inConfiguration reports whether id is a server of the Raft configuration.
func (r *Registry) inConfiguration(rf *raft.Raft, id string) bool {
	if id == "" {
		return false
	}
	cf := rf.GetConfiguration()
	if cf.Error() != nil {
		return false
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == raft.ServerID(id) {
			return true
		}
	}
	return false
}

// expireClients runs on the leader (reconcile): it expires each client no
// replica has heard from within the grace, counted from when this leader
// first saw its incarnation at the latest.
func (r *Registry) expireClients(ctx context.Context, rf *raft.Raft, state *State, seen map[raft.ServerID]failure) {
	now := time.Now()
	for _, m := range state.Members() {
		if !m.Client || m.Status != Alive || m.ID == r.cfg.nodeID {
			continue
		}
		id := raft.ServerID(m.ID)
		if rec, ok := seen[id]; !ok || rec.incarnation != m.Incarnation {
			seen[id] = failure{since: now, incarnation: m.Incarnation}
		}
		last := r.heard.get(m.ID)
		if s := seen[id].since; s.After(last) {
			last = s
		}
		if now.Sub(last) <= r.cfg.expireAfter {
			continue
		}
		_, _ = r.expireMember(ctx, rf, m, now.Sub(last))
	}
}

// promoteClient runs on the leader (reconcile) while the Raft
// configuration holds fewer servers than the replica limit: it adds the
// live client heard from last as a non-voter, and commits its record
// without Client.
func (r *Registry) promoteClient(ctx context.Context, rf *raft.Raft, state *State, servers int) {
	limit := r.cfg.replicaLimit()
	if limit == 0 || servers >= limit {
		return
	}
	var best Member
	var bestAt time.Time
	for _, m := range state.Members() {
		if !m.Client || m.Status != Alive {
			continue
		}
		if at := r.heard.get(m.ID); time.Since(at) <= 2*r.beatEvery() && at.After(bestAt) {
			best, bestAt = m, at
		}
	}
	if best.ID == "" {
		return
	}
	if err := r.waitFuture(ctx, rf.AddNonvoter(raft.ServerID(best.ID), raft.ServerAddress(best.Addr), 0, 0)); err != nil {
		r.log.Warn("promoting a client failed", zap.String("node", best.ID), zap.Error(err))
		return
	}
	best.Client, best.Voter = false, false
	data, err := encodeCommand(joinCmd{Member: best})
	if err == nil {
		err = r.applyLocal(ctx, rf, data)
	}
	if err != nil {
		// Its record stays a client's (it rejoined or was expired since):
		// the server it no longer matches is removed as an orphan.
		r.log.Warn("promoting a client failed", zap.String("node", best.ID), zap.Error(err))
		return
	}
	r.log.Info("promoted a client to replica", zap.String("node", best.ID))
}

// clientPromoted ends the client role once this node's copy shows it
// promoted: its record, under its incarnation, without Client.
func (r *Registry) clientPromoted() {
	if !r.client.on.Load() {
		return
	}
	m, ok := r.fsm.current().Member(r.cfg.nodeID)
	if ok && m.Incarnation == r.Incarnation() && m.Status == Alive && !m.Client {
		r.becomeReplica()
	}
}

// clientExpired reports a client whose copy shows it expired, or replaced
// by another incarnation: time to ask the leader (expiredByCluster) and
// rejoin.
func (r *Registry) clientExpired() bool {
	if !r.client.on.Load() || !r.joined.Load() {
		return false
	}
	m, ok := r.fsm.current().Member(r.cfg.nodeID)
	return !ok || m.Incarnation != r.Incarnation() || m.Status != Alive
}
