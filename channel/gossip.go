package channel

import (
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/registry"
	"github.com/dchan-io/dchan/remoting"
)

// gossipActorName is the ID of every node's gossip actor, the one address
// broadcast traffic goes to. Actor names beginning "dchan." are the node's.
const gossipActorName = "dchan.gossip"

// gossipConfig tunes broadcast. The defaults suit a LAN.
type gossipConfig struct {
	fanout      int           // children per hop; 0: ⌊log2 N⌋+1 for N participating nodes
	tick        time.Duration // anti-entropy period: digests, gap checks, expiry
	digestPeers int           // nodes each name's digest goes to per tick
	activeFor   time.Duration // digests continue this long after a node's last graft or join answered; joins are kept this long
	gapWait     time.Duration // how long values wait behind a missing one before it is given up
	cacheFor    time.Duration // how long a node keeps values to answer grafts
	cacheMax    int           // values kept per origin
	holdMax     int           // values waiting behind gaps per origin
	dedupeFor   time.Duration // an origin's dedupe state outlives its last value by this
	outboxMax   int           // messages queued per peer
	downFor     time.Duration // after a failed send, a peer's queue is rerouted for this long
	sendTimeout time.Duration // a send waiting longer for credit counts as failed

	// drop, in tests, loses a message silently, as a lossy link would.
	drop func(from, to string) bool
}

func defaultGossipConfig() gossipConfig {
	return gossipConfig{
		tick:        200 * time.Millisecond,
		digestPeers: 2,
		activeFor:   3 * time.Second,
		gapWait:     3 * time.Second,
		cacheFor:    10 * time.Second,
		cacheMax:    4096,
		holdMax:     4096,
		dedupeFor:   2 * time.Minute,
		outboxMax:   1024,
		downFor:     time.Second,
		sendTimeout: 5 * time.Second,
	}
}

// gossip is a node's broadcast engine.
//
// A published value goes down a tree that its publisher lays out over the
// nodes with subscribers of the name, as the publisher's registry replica
// knows them: the nodes, sorted and rotated to start after the publisher,
// are cut into fanout contiguous groups; the first node of each group is a
// child, and the message to it carries the rest of its group, which it cuts
// the same way. Every node therefore gets each value once, in ⌈log_f N⌉
// hops, with N−1 messages for N nodes. A child that cannot be reached
// hands its group to the group's next node.
//
// What the tree misses — a node that died after accepting a value, a lost
// message — anti-entropy repairs: as long as a publisher's values are
// cached (and while nodes catch up), each node sends every tick a digest
// (the highest sequence it holds per publisher) to a few random nodes of
// the name; a node missing sequences asks the digest's
// sender for them (a graft) and gets them from its cache. A node that holds
// none of a publisher's values (the head of its subtree died before passing
// any on, or a link lost them all) cannot tell which it misses: it asks the
// publisher's node to join, and gets its share from the first sequence the
// publisher counted it in.
//
// Each node delivers a publisher's values to its local subscribers in
// sequence order, at most once: a value behind a missing one waits for it
// (for at most gapWait, then the gap is given up and counted as lost), a
// value already delivered is a duplicate and dropped.
type gossip struct {
	n    *Node
	cfg  gossipConfig
	self actor.PID

	mu       sync.Mutex
	rand     *rand.Rand
	subs     map[string][]*receiver // local subscribers by name
	origins  map[originKey]*originState
	joins    map[originKey]*joinWait // publishers announced by digests, none of whose values came
	outboxes map[string]*outbox
}

type originKey struct {
	name   string
	origin origin
}

// originState is what a node knows of one publisher's values for one name.
type originState struct {
	own       bool       // this node's publisher: only its cache is used
	pub       *publisher // own: the publisher, which knows where each node's share begins
	closed    bool       // own: the publisher closed
	next      uint64     // next sequence to deliver
	max       uint64     // highest sequence held
	held      map[uint64]bvalue
	heldSince time.Time // when delivery began waiting for next
	want      uint64    // highest sequence a digest announced, not yet here
	pulls     uint64    // grafts sent for gaps
	wantAt    time.Time // when it was announced
	fromTree  uint64    // values that came down the tree (not repairs)
	wantTree  uint64    // fromTree, then
	last      time.Time // last value
	served    time.Time // last graft or join answered: a node is still catching up
	cache     valueCache
}

// joinWait is a publisher that digests announce but none of whose values
// reached this node.
type joinWait struct {
	seen  time.Time // first announced
	asked time.Time // join last asked for
}

// valueCache keeps recent values of one origin to answer grafts.
type valueCache struct {
	vals  map[uint64]cached
	order []uint64 // insertion order, for eviction
}

type cached struct {
	bvalue
	at time.Time
}

// bvalue is a broadcast value with the registry version of the view its
// publisher routed it by: only subscribers registered by then get it.
type bvalue struct {
	v    any
	view uint64
}

func (c *valueCache) put(seq uint64, v bvalue, now time.Time, cfg *gossipConfig) {
	if c.vals == nil {
		c.vals = make(map[uint64]cached)
	}
	if _, ok := c.vals[seq]; ok {
		return
	}
	c.vals[seq] = cached{bvalue: v, at: now}
	c.order = append(c.order, seq)
	c.evict(now, cfg)
}

func (c *valueCache) evict(now time.Time, cfg *gossipConfig) {
	i := 0
	for ; i < len(c.order); i++ {
		e := c.vals[c.order[i]]
		if len(c.order)-i <= cfg.cacheMax && now.Sub(e.at) < cfg.cacheFor {
			break
		}
		delete(c.vals, c.order[i])
	}
	if i > 0 {
		c.order = slices.Delete(c.order, 0, i)
	}
}

func newGossip(n *Node, cfg gossipConfig) *gossip {
	return &gossip{
		n:        n,
		cfg:      cfg,
		rand:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		subs:     make(map[string][]*receiver),
		origins:  make(map[originKey]*originState),
		joins:    make(map[originKey]*joinWait),
		outboxes: make(map[string]*outbox),
	}
}

// start spawns the gossip actor and the anti-entropy ticker.
func (g *gossip) start() error {
	pid, err := g.n.sys.SpawnNamed(gossipActorName, func() actor.Actor {
		return actor.ReceiveFunc(g.receive)
	}, actor.WithMailboxSize(4096))
	if err != nil {
		return err
	}
	g.self = pid
	g.n.wg.Add(1)
	go g.ticker()
	return nil
}

func (g *gossip) receive(c *actor.Context) {
	t, ok := c.Message().(remoting.Tagged)
	if !ok {
		return // lifecycle messages
	}
	m, err := decodeGossip(t.Tag)
	if err != nil {
		g.n.log.Warn("dropped a gossip message", zap.String("from", c.Sender().Node), zap.Error(err))
		return
	}
	from := c.Sender().Node
	switch {
	case m.data != nil:
		g.onData(m.data, t.Value)
	case m.digest != nil:
		g.onDigest(from, m.digest)
	case m.graft != nil:
		g.onGraft(from, m.graft)
	case m.join != nil:
		g.onJoin(from, m.join)
	}
}

// onData delivers a value that arrived and passes it on to the nodes its
// header asks this node to cover.
func (g *gossip) onData(h *dataHeader, value any) {
	now := time.Now()
	v := bvalue{v: value, view: h.view}
	g.mu.Lock()
	defer g.mu.Unlock()
	key := originKey{h.name, h.origin}
	st := g.origins[key]
	if st == nil {
		st = &originState{next: max(h.first, 1)}
		g.origins[key] = st
		delete(g.joins, key)
	}
	if !st.own && !h.repair && h.first > st.next {
		// The publisher counts this node in from first on (it left the
		// publisher's view and came back, say): what came before was not
		// for it, so it is no gap.
		for s := range st.held {
			if s < h.first {
				delete(st.held, s)
			}
		}
		st.next = h.first
		g.drainHeld(key, st, now)
	}
	if !st.own {
		st.last = now
		if !h.repair {
			st.fromTree++
		}
		st.cache.put(h.seq, v, now, &g.cfg)
		g.accept(key, st, h.seq, v, h.repair, now)
		if h.hops > g.n.stats.bcast.maxHops.Load() {
			g.n.stats.bcast.maxHops.Store(h.hops)
		}
	}
	if h.repair || len(h.slice) == 0 {
		return
	}
	for _, group := range splitGroups(h.slice, int(h.fanout)) {
		child := *h
		child.hops++
		child.first, child.slice = group[0].first, group[1:]
		g.outboxLocked(group[0].node).push(outMsg{data: &child, value: value})
	}
}

// accept delivers seq of st in order, holding it back behind a gap.
func (g *gossip) accept(key originKey, st *originState, seq uint64, v bvalue, repair bool, now time.Time) {
	bs := &g.n.stats.bcast
	if seq < st.next {
		bs.duplicates.Add(1)
		return
	}
	if _, ok := st.held[seq]; ok {
		bs.duplicates.Add(1)
		return
	}
	if repair {
		bs.repaired.Add(1)
	}
	st.max = max(st.max, seq)
	if seq > st.next {
		if st.held == nil {
			st.held = make(map[uint64]bvalue)
		}
		if len(st.held) == 0 {
			st.heldSince, st.pulls = now, 0
		}
		st.held[seq] = v
		if len(st.held) > g.cfg.holdMax {
			g.skipGap(key, st, now)
		}
		return
	}
	g.deliverLocked(key.name, v)
	st.next++
	g.drainHeld(key, st, now)
}

// drainHeld delivers the held values that follow next without a gap.
func (g *gossip) drainHeld(key originKey, st *originState, now time.Time) {
	for len(st.held) > 0 {
		v, ok := st.held[st.next]
		if !ok {
			st.heldSince, st.pulls = now, 0 // waiting on a new gap
			return
		}
		delete(st.held, st.next)
		g.deliverLocked(key.name, v)
		st.next++
	}
}

// skipGap gives up the values missing before the first held one.
func (g *gossip) skipGap(key originKey, st *originState, now time.Time) {
	first := uint64(0)
	for s := range st.held {
		if first == 0 || s < first {
			first = s
		}
	}
	if first == 0 {
		return
	}
	g.n.stats.bcast.lost.Add(first - st.next)
	g.n.log.Debug("gave up missing broadcast values", zap.String("name", key.name),
		zap.String("origin", key.origin.node), zap.Uint64("from", st.next), zap.Uint64("to", first-1))
	st.next = first
	g.drainHeld(key, st, now)
}

// deliverLocked offers v to every local subscriber of name that its
// publisher's view included; g.mu is held.
func (g *gossip) deliverLocked(name string, v bvalue) {
	for _, s := range g.subs[name] {
		if v.view >= s.since {
			s.offer(v.v)
		}
	}
}

// publish sends one value of a local publisher: to the local subscribers,
// then down the tree. It blocks while the first hops' queues are full.
func (g *gossip) publish(ctx context.Context, p *publisher, v any, track *pubTrack) error {
	now := time.Now()
	g.mu.Lock()
	p.seq++
	state := g.n.reg.State()
	h := dataHeader{name: p.name, origin: p.origin, seq: p.seq, hops: 1, view: state.Version()}
	bv := bvalue{v: v, view: h.view}
	st := g.origins[originKey{p.name, p.origin}]
	st.last, st.max = now, p.seq
	st.cache.put(p.seq, bv, now, &g.cfg)
	g.deliverLocked(p.name, bv)
	nodes := p.view(g.n, state)
	h.fanout = uint64(g.fanout(len(nodes) + 1))
	groups := splitGroups(nodes, int(h.fanout))
	obs := make([]*outbox, len(groups))
	for i, group := range groups {
		obs[i] = g.outboxLocked(group[0].node)
	}
	g.mu.Unlock()
	g.n.stats.bcast.published.Add(1)
	track.add(len(groups))
	for i, group := range groups {
		child := h
		child.first, child.slice = group[0].first, group[1:]
		if err := obs[i].pushWait(ctx, outMsg{data: &child, value: v, track: track}); err != nil {
			track.resolveN(len(groups)-i+1, err) // the rest and the publisher's share
			return err
		}
	}
	track.resolveN(1, nil) // the publisher's own share
	return nil
}

// fanout is the number of children per hop for n nodes.
func (g *gossip) fanout(n int) int {
	if g.cfg.fanout > 0 {
		return g.cfg.fanout
	}
	return max(bits.Len(uint(n)), 1)
}

// splitGroups cuts nodes into at most fanout contiguous groups of sizes
// differing by at most one.
func splitGroups(nodes []hop, fanout int) [][]hop {
	k := min(max(fanout, 1), len(nodes))
	if k == 0 {
		return nil
	}
	groups := make([][]hop, 0, k)
	size, extra := len(nodes)/k, len(nodes)%k
	for i := 0; i < k; i++ {
		n := size
		if i < extra {
			n++
		}
		groups = append(groups, nodes[:n:n])
		nodes = nodes[n:]
	}
	return groups
}

// participants returns the other nodes with broadcast receivers of name
// in rs, sorted and rotated to begin after self (so that publishers on
// different nodes lay out different trees).
func participants(rs []registry.Receiver, self string) []string {
	nodes := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.Mode == registry.Broadcast && r.Node != self {
			nodes = append(nodes, r.Node)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	i, _ := slices.BinarySearch(nodes, self)
	return append(nodes[i:len(nodes):len(nodes)], nodes[:i]...)
}

// ticker runs anti-entropy every tick until the node stops.
func (g *gossip) ticker() {
	defer g.n.wg.Done()
	t := time.NewTicker(g.cfg.tick)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			g.tick(now)
		case <-g.n.ctx.Done():
			return
		}
	}
}

// tick gives up old gaps, expires old state, and sends digests of the
// publishers whose values are still cached or being caught up on.
func (g *gossip) tick(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	digests := make(map[string][]digestEntry)
	for key, st := range g.origins {
		if len(st.held) > 0 {
			if now.Sub(st.heldSince) >= g.cfg.gapWait {
				g.skipGap(key, st, now)
			} else if now.After(st.heldSince.Add(g.cfg.tick << min(st.pulls, 5))) {
				// Pull after a tick, then after 2, 4, 8... more: an answer
				// may be slow to come on a loaded node.
				g.pullGap(key, st)
			}
		}
		st.cache.evict(now, &g.cfg)
		idle := now.Sub(st.last)
		switch {
		case st.own && st.closed && idle >= g.cfg.cacheFor:
			// A closed publisher's cache can help nobody any more.
			delete(g.origins, key)
			continue
		case !st.own && idle >= g.cfg.dedupeFor && len(st.held) == 0:
			delete(g.origins, key)
			continue
		}
		// Digests go on as long as the values are cached, for a graft
		// could be answered, so a node that missed a quiet publisher's
		// last values still learns of them; and while nodes still catch
		// up: their grafts are answered a share at a time, and a node
		// that has had one share learns of the next from a digest.
		if (idle < g.cfg.cacheFor || now.Sub(st.served) < g.cfg.activeFor) && st.max > 0 {
			digests[key.name] = append(digests[key.name], digestEntry{name: key.name, origin: key.origin, max: st.max})
		}
	}
	for key, j := range g.joins {
		if now.Sub(j.seen) >= g.cfg.activeFor && now.Sub(j.asked) >= g.cfg.activeFor {
			delete(g.joins, key)
		}
	}
	byPeer := make(map[string][]digestEntry)
	for name, entries := range digests {
		nodes := participants(g.n.reg.Lookup(name), g.n.id)
		for range min(g.cfg.digestPeers, len(nodes)) {
			i := g.rand.IntN(len(nodes))
			peer := nodes[i]
			nodes[i] = nodes[len(nodes)-1]
			nodes = nodes[:len(nodes)-1]
			byPeer[peer] = append(byPeer[peer], entries...)
		}
	}
	for peer, entries := range byPeer {
		for len(entries) > 0 {
			n := min(len(entries), maxDigestEntries)
			g.outboxLocked(peer).offer(outMsg{tag: encodeDigest(entries[:n])})
			g.n.stats.bcast.digests.Add(1)
			entries = entries[n:]
		}
	}
	g.forgetGoneOutboxes()
}

// pullGap asks for the values missing before the held ones: from the
// publisher's node (whose cache has them all) and, every other tick, from a
// random node of the name, in case the publisher's node is gone; g.mu is
// held.
func (g *gossip) pullGap(key originKey, st *originState) {
	var missing []uint64
	for s := st.next; s < st.max && len(missing) < maxGraftSeqs; s++ { // st.max is held
		if _, ok := st.held[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return
	}
	st.pulls++
	from := key.origin.node
	if st.pulls%2 == 0 {
		nodes := participants(g.n.reg.Lookup(key.name), g.n.id)
		if len(nodes) == 0 {
			return
		}
		from = nodes[g.rand.IntN(len(nodes))]
	}
	req := graftRequest{name: key.name, origin: key.origin, seqs: missing}
	g.outboxLocked(from).offer(outMsg{tag: req.encode()})
	g.n.stats.bcast.grafts.Add(1)
}

// onDigest asks the digest's sender for the values this node misses.
func (g *gossip) onDigest(from string, entries []digestEntry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range entries {
		if len(g.subs[e.name]) == 0 {
			continue // nobody here wants them
		}
		key := originKey{e.name, e.origin}
		st := g.origins[key]
		if st == nil {
			g.askToJoin(key)
			continue
		}
		if st.own || e.max < st.next {
			continue
		}
		// A value a digest announces may still be on its way down the
		// tree: ask only for what was already announced a tick ago, and
		// not while the tree keeps bringing values (a busy link can be
		// seconds behind its digests; a value lost before others arrive
		// leaves a gap, which pullGap asks for). Values that come by
		// repair do not count: a node far behind catches up by grafts.
		now := time.Now()
		if st.want == 0 || st.want < st.next {
			st.want, st.wantAt, st.wantTree = e.max, now, st.fromTree
			continue
		}
		if now.Sub(st.wantAt) < g.cfg.tick {
			continue
		}
		if st.fromTree > st.wantTree {
			st.wantAt, st.wantTree = now, st.fromTree
			continue
		}
		upTo := st.want
		st.want, st.wantAt = e.max, now
		var missing []uint64
		for s := st.next; s <= upTo && len(missing) < maxGraftSeqs; s++ {
			if _, ok := st.held[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			continue
		}
		req := graftRequest{name: e.name, origin: e.origin, seqs: missing}
		g.outboxLocked(from).offer(outMsg{tag: req.encode()})
		g.n.stats.bcast.grafts.Add(1)
	}
}

// askToJoin asks the publisher's node for this node's share of its values,
// once a digest has announced the publisher for a tick (its first value may
// be on its way down the tree) and then at most every few ticks until a
// value comes; g.mu is held.
func (g *gossip) askToJoin(key originKey) {
	if key.origin.node == g.n.id {
		return // this node's own publisher, closed and forgotten
	}
	if _, ok := g.n.reg.State().Member(key.origin.node); !ok {
		return // not a node of the cluster: nobody to ask
	}
	now := time.Now()
	j := g.joins[key]
	if j == nil {
		g.joins[key] = &joinWait{seen: now}
		return
	}
	if now.Sub(j.seen) < g.cfg.tick || now.Sub(j.asked) < 4*g.cfg.tick {
		return
	}
	j.asked = now
	req := joinRequest{name: key.name, origin: key.origin}
	g.outboxLocked(key.origin.node).offer(outMsg{tag: req.encode()})
	g.n.stats.bcast.grafts.Add(1)
}

// onJoin sends a node that asks to join one of this node's publishers the
// values meant for it that the cache still holds: from the first sequence
// the publisher counted it in (or the oldest still cached, which the
// answer then names as the node's first: what the cache dropped is gone),
// at most a quarter of an outbox per answer. Once the node holds values of
// the publisher, digests and grafts bring it the rest.
func (g *gossip) onJoin(from string, req *joinRequest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.origins[originKey{req.name, req.origin}]
	if st == nil || st.pub == nil {
		return
	}
	first, ok := st.pub.joined[from]
	if !ok {
		return // not in the publisher's view: none of its values were meant for it
	}
	if len(st.cache.order) > 0 {
		first = max(first, st.cache.order[0])
	}
	now, limit := time.Now(), max(g.cfg.outboxMax/4, 1)
	for seq := first; seq <= st.pub.seq && seq < first+uint64(limit); seq++ {
		c, ok := st.cache.vals[seq]
		if !ok {
			continue
		}
		h := &dataHeader{name: req.name, origin: req.origin, seq: seq, fanout: 1, first: first, repair: true, view: c.view}
		if g.outboxLocked(from).offer(outMsg{data: h, value: c.v}) {
			st.served = now
		}
	}
}

// onGraft sends the asked-for values this node still holds.
func (g *gossip) onGraft(from string, req *graftRequest) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.origins[originKey{req.name, req.origin}]
	if st == nil {
		return
	}
	now := time.Now()
	for _, seq := range req.seqs {
		c, ok := st.cache.vals[seq]
		if !ok {
			continue
		}
		h := &dataHeader{name: req.name, origin: req.origin, seq: seq, fanout: 1, repair: true, view: c.view}
		if g.outboxLocked(from).offer(outMsg{data: h, value: c.v}) {
			st.served = now
		}
	}
}

// undeliverable handles a message that did not reach peer: a value error
// fails it; otherwise the group it was to cover goes to the group's next
// node instead.
func (g *gossip) undeliverable(peer string, m outMsg, err error) {
	if m.data == nil || g.n.ctx.Err() != nil {
		return
	}
	if errors.Is(err, remoting.ErrEncode) || errors.Is(err, remoting.ErrTooLarge) {
		g.n.stats.failed(m.data.name, false, 1)
		g.n.log.Warn("broadcast value not sent", zap.String("name", m.data.name), zap.Error(err))
		// Nor can it ever be: do not offer it to grafts again.
		g.mu.Lock()
		if st := g.origins[originKey{m.data.name, m.data.origin}]; st != nil {
			delete(st.cache.vals, m.data.seq)
		}
		g.mu.Unlock()
		return
	}
	g.n.log.Debug("broadcast hop failed; its group goes to the next node", zap.String("peer", peer),
		zap.String("name", m.data.name), zap.Error(err))
	if m.data.repair || len(m.data.slice) == 0 {
		return // anti-entropy covers the node itself
	}
	h := *m.data
	next := h.slice[0]
	h.first, h.slice = next.first, h.slice[1:]
	g.n.stats.bcast.rerouted.Add(1)
	g.mu.Lock()
	ob := g.outboxLocked(next.node)
	g.mu.Unlock()
	ob.push(outMsg{data: &h, value: m.value})
}

// addSubscriber and removeSubscriber keep the local subscriber lists.
func (g *gossip) addSubscriber(s *receiver) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subs[s.name] = append(slices.Clip(g.subs[s.name]), s)
}

// subscribed waits until this node's replica shows r's registration and
// sets r.since to that version: publishers route by views at least that
// new only once they know r.
func (g *gossip) subscribed(ctx context.Context, r *receiver) error {
	for {
		changed, stop := g.n.reg.Watch(r.name)
		state := g.n.reg.State()
		for _, rc := range state.Receivers(r.name) {
			if rc.Node == g.n.id && rc.ActorID == r.pid.ID {
				stop()
				g.mu.Lock()
				r.since = state.Version()
				g.mu.Unlock()
				return nil
			}
		}
		select {
		case <-changed:
			stop()
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
}

func (g *gossip) removeSubscriber(s *receiver) {
	g.mu.Lock()
	defer g.mu.Unlock()
	subs := slices.DeleteFunc(slices.Clone(g.subs[s.name]), func(x *receiver) bool { return x == s })
	if len(subs) == 0 {
		delete(g.subs, s.name)
		return
	}
	g.subs[s.name] = subs
}

func (g *gossip) addPublisher(p *publisher) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.origins[originKey{p.name, p.origin}] = &originState{own: true, pub: p, last: time.Now()}
}

// removePublisher marks a publisher closed; tick forgets it once its cache
// can help nobody (after cacheFor).
func (g *gossip) removePublisher(p *publisher) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.origins[originKey{p.name, p.origin}]; st != nil {
		st.closed = true
		st.last = time.Now()
	}
}

// forgetGoneOutboxes drops the idle outboxes of nodes that are not (or no
// longer) live members of the cluster, so that the map does not keep one
// for every node that ever left or crashed, or that a peer's message
// named; g.mu is held.
func (g *gossip) forgetGoneOutboxes() {
	state := g.n.reg.State()
	for peer, ob := range g.outboxes {
		if m, ok := state.Member(peer); ok && m.Status != registry.Expired {
			continue
		}
		ob.mu.Lock()
		idle := !ob.running && ob.idleLocked()
		ob.mu.Unlock()
		if idle {
			delete(g.outboxes, peer)
		}
	}
}

// outboxLocked returns peer's outbox, creating it; g.mu is held.
func (g *gossip) outboxLocked(peer string) *outbox {
	ob := g.outboxes[peer]
	if ob == nil {
		ob = &outbox{g: g, peer: peer, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
		g.outboxes[peer] = ob
	}
	return ob
}
