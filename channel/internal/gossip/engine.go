package gossip

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Bounds on what a peer's messages can make an engine hold or send.
const (
	// MaxFanout bounds the children a hop passes a value to, whatever
	// fanout the message asks for.
	MaxFanout = 64
	// MaxOriginsPerNode bounds the publishers of one node an engine
	// tracks (values, held values, cache): a peer naming ever new
	// publishers of a node cannot grow the engine without end.
	MaxOriginsPerNode = 1024
)

// Membership is the engine's view of the cluster, read from the node's
// registry replica.
type Membership interface {
	// Version is the replica's version: it grows with every change.
	Version() uint64
	// Subscribers returns the distinct nodes other than this one with
	// subscribers of name, sorted.
	Subscribers(name string) []string
	// Member reports whether node is a live member of the cluster.
	Member(node string) bool
}

// Engine is one node's broadcast protocol, without goroutines, clock or
// network: its callers pass in what arrives (Step), the time (Tick) and
// what is published (Publish), and take out what to send and what to
// deliver (Ready). It is not safe for concurrent use; Driver serialises
// it.
//
// A published value goes down a tree that its publisher lays out over the
// nodes with subscribers of the name, as the publisher's registry replica
// knows them: the nodes, sorted and rotated to start after the publisher,
// are cut into fanout contiguous groups; the first node of each group is a
// child, and the message to it carries the rest of its group, which it cuts
// the same way. Every node therefore gets each value once, in ⌈log_f N⌉
// hops, with N−1 messages for N nodes. A child that cannot be reached
// hands its group to the group's next node (Undeliverable).
//
// What the tree misses — a node that died after accepting a value, a lost
// message — anti-entropy repairs: as long as a publisher's values are
// cached (and while nodes catch up), each node sends every tick a digest
// (the highest sequence it holds per publisher) to a few random nodes of
// the name; a node missing sequences asks the digest's sender for them (a
// graft) and gets them from its cache. A node that holds none of a
// publisher's values (the head of its subtree died before passing any on,
// or a link lost them all) cannot tell which it misses: it asks the
// publisher's node to join, and gets its share from the first sequence the
// publisher counted it in.
//
// Each node delivers a publisher's values to its local subscribers in
// sequence order, at most once: a value behind a missing one waits for it
// (for at most GapWait, then the gap is given up and counted as lost), a
// value already delivered is a duplicate and dropped.
//
// A peer is trusted to follow the protocol no further than it must be: a
// value is passed on only to distinct live members, to at most MaxFanout
// children, and once per value however often it arrives; at most MaxOriginsPerNode
// publishers of one node are tracked, and only of live members.
type Engine struct {
	self    string
	cfg     Config
	mem     Membership
	stats   *Counters
	log     *zap.Logger
	rand    *rand.Rand
	subs    map[string]int // local subscribers by name
	origins map[originKey]*originState
	perNode map[string]int          // tracked origins by origin node
	joins   map[originKey]*joinWait // publishers announced by digests, none of whose values came
	rd      Ready
}

// Ready is what an engine has to say since it was last asked: messages to
// send, in order, and values to deliver to local subscribers, in order.
type Ready struct {
	Sends      []Send
	Deliveries []Delivery
	// Failed lists the published values that can never be sent (the
	// transport refused the value itself).
	Failed []Failure
}

// Failure is a published value that can never be sent, and why.
type Failure struct {
	Name  string
	Value any
	Err   error
}

// Send is one message for a peer's engine.
type Send struct {
	To string
	m  outMsg
	// Tree: the message is the tree's (a forward, a publisher's first hop),
	// not anti-entropy's (digest, graft, join, repair).
	Tree bool
}

// Delivery is a value for the local subscribers of Name that were in its
// publisher's view: those subscribed as of registry version View.
type Delivery struct {
	Name  string
	Value any
	View  uint64
}

type originKey struct {
	name   string
	origin origin
}

// originState is what a node knows of one publisher's values for one name.
type originState struct {
	own       bool       // this node's publisher: only its cache is used
	pub       *Publisher // own: the publisher, which knows where each node's share begins
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

// bvalue is a broadcast value with the registry version of the view its
// publisher routed it by: only subscribers registered by then get it.
type bvalue struct {
	v    any
	view uint64
}

// Publisher is one of this node's publishers: a name and the sequence of
// the values published to it.
type Publisher struct {
	name   string
	origin origin
	seq    uint64 // last sequence published

	// the participants as of membership version version, and the first
	// sequence of each
	version uint64
	hops    []hop
	joined  map[string]uint64
}

// Name returns the name the publisher publishes to.
func (p *Publisher) Name() string { return p.name }

// NewEngine returns the engine of node self.
func NewEngine(self string, cfg Config, mem Membership, stats *Counters, log *zap.Logger, rng *rand.Rand) *Engine {
	if log == nil {
		log = zap.NewNop()
	}
	if stats == nil {
		stats = new(Counters)
	}
	return &Engine{
		self:    self,
		cfg:     cfg,
		mem:     mem,
		stats:   stats,
		log:     log,
		rand:    rng,
		subs:    make(map[string]int),
		origins: make(map[originKey]*originState),
		perNode: make(map[string]int),
		joins:   make(map[originKey]*joinWait),
	}
}

// Ready returns what the engine produced since the last call, and forgets
// it.
func (e *Engine) Ready() Ready {
	rd := e.rd
	e.rd = Ready{}
	return rd
}

func (e *Engine) send(to string, m outMsg, tree bool) {
	e.rd.Sends = append(e.rd.Sends, Send{To: to, m: m, Tree: tree})
}

func (e *Engine) deliver(name string, v bvalue) {
	e.rd.Deliveries = append(e.rd.Deliveries, Delivery{Name: name, Value: v.v, View: v.view})
}

// Subscribe and Unsubscribe count this node's subscribers of name: digests
// of names nobody here subscribes to are ignored.
func (e *Engine) Subscribe(name string) { e.subs[name]++ }

// Unsubscribe undoes one Subscribe of name.
func (e *Engine) Unsubscribe(name string) {
	if e.subs[name]--; e.subs[name] <= 0 {
		delete(e.subs, name)
	}
}

// AddPublisher starts a publisher of name on this node; pub tells it from
// the node's other publishers (a random number, so that a restarted node's
// publishers are new ones).
func (e *Engine) AddPublisher(name string, pub uint64, now time.Time) *Publisher {
	p := &Publisher{name: name, origin: origin{node: e.self, pub: pub}}
	e.origins[originKey{name, p.origin}] = &originState{own: true, pub: p, last: now}
	return p
}

// ClosePublisher marks p closed; Tick forgets it once its cache can help
// nobody (after CacheFor).
func (e *Engine) ClosePublisher(p *Publisher, now time.Time) {
	if st := e.origins[originKey{p.name, p.origin}]; st != nil {
		st.closed = true
		st.last = now
	}
}

// Publish publishes v on p: it delivers v to the local subscribers and
// returns the messages to the first hops, which the caller sends as the
// tree's (waiting for room, as a publisher may).
func (e *Engine) Publish(p *Publisher, v any, now time.Time) []Send {
	p.seq++
	version := e.mem.Version()
	h := dataHeader{name: p.name, origin: p.origin, seq: p.seq, hops: 1, view: version}
	bv := bvalue{v: v, view: version}
	st := e.origins[originKey{p.name, p.origin}]
	st.last, st.max = now, p.seq
	st.cache.put(p.seq, bv, now, &e.cfg)
	e.deliver(p.name, bv)
	nodes := e.view(p, version)
	h.fanout = uint64(e.fanout(len(nodes) + 1))
	groups := splitGroups(nodes, int(h.fanout))
	sends := make([]Send, 0, len(groups))
	for _, group := range groups {
		child := h
		child.first, child.slice = group[0].first, group[1:]
		sends = append(sends, Send{To: group[0].node, m: outMsg{data: &child, value: v}, Tree: true})
	}
	e.stats.Published.Add(1)
	return sends
}

// view returns the nodes, other than this one, with subscribers of p's
// name, each with the first sequence meant for it; it is recomputed only
// when the membership changed. p.seq is the sequence being published.
func (e *Engine) view(p *Publisher, version uint64) []hop {
	if p.version == version && p.joined != nil {
		return p.hops
	}
	p.version = version
	nodes := rotate(e.mem.Subscribers(p.name), e.self)
	hops := make([]hop, len(nodes))
	joined := make(map[string]uint64, len(nodes))
	for i, node := range nodes {
		first, ok := p.joined[node]
		if !ok {
			first = p.seq // a newcomer: from this value on
		}
		joined[node] = first
		hops[i] = hop{node: node, first: first}
	}
	p.joined, p.hops = joined, hops
	return hops
}

// fanout is the number of children per hop for n nodes.
func (e *Engine) fanout(n int) int {
	if e.cfg.Fanout > 0 {
		return min(e.cfg.Fanout, MaxFanout)
	}
	return min(max(bits.Len(uint(n)), 1), MaxFanout)
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

// rotate returns sorted, distinct nodes without self, rotated to begin
// after self (so that publishers on different nodes lay out different
// trees).
func rotate(sorted []string, self string) []string {
	nodes := slices.DeleteFunc(slices.Clone(sorted), func(n string) bool { return n == self })
	i, _ := slices.BinarySearch(nodes, self)
	return append(nodes[i:len(nodes):len(nodes)], nodes[:i]...)
}

// Participants returns the nodes with subscribers of name that a node
// lays its trees over: the others, sorted and rotated to begin after self.
func Participants(mem Membership, name, self string) []string {
	return rotate(mem.Subscribers(name), self)
}

// Step applies one message from peer from (the node its stream
// authenticated): m is the message's header bytes, value the value a data
// message carries. A header that does not decode is dropped with an error.
func (e *Engine) Step(from string, header []byte, value any, now time.Time) error {
	m, err := decodeGossip(header)
	if err != nil {
		return err
	}
	switch {
	case m.data != nil:
		e.onData(m.data, value, now)
	case m.digest != nil:
		e.onDigest(from, m.digest, now)
	case m.graft != nil:
		e.onGraft(from, m.graft, now)
	case m.join != nil:
		e.onJoin(from, m.join, now)
	}
	return nil
}

// track returns the state of key, creating it for a value or announcement
// of a live member's publisher while that node has fewer than
// MaxOriginsPerNode tracked; nil when it may not be tracked.
func (e *Engine) track(key originKey, first uint64) *originState {
	if st := e.origins[key]; st != nil {
		return st
	}
	node := key.origin.node
	if node == e.self || !e.mem.Member(node) || e.perNode[node] >= MaxOriginsPerNode {
		e.stats.Refused.Add(1)
		return nil
	}
	st := &originState{next: max(first, 1)}
	e.origins[key] = st
	e.perNode[node]++
	delete(e.joins, key)
	return st
}

func (e *Engine) forget(key originKey) {
	delete(e.origins, key)
	if !e.originOwn(key) {
		if e.perNode[key.origin.node]--; e.perNode[key.origin.node] <= 0 {
			delete(e.perNode, key.origin.node)
		}
	}
}

func (e *Engine) originOwn(key originKey) bool { return key.origin.node == e.self }

// onData delivers a value that arrived and passes it on to the nodes its
// header asks this node to cover.
func (e *Engine) onData(h *dataHeader, value any, now time.Time) {
	v := bvalue{v: value, view: h.view}
	key := originKey{h.name, h.origin}
	st := e.track(key, h.first)
	if st == nil {
		return
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
		e.drainHeld(key, st, now)
	}
	if st.own {
		return // a value of this node's own publisher came back: never passed on
	}
	st.last = now
	if !h.repair {
		st.fromTree++
	}
	st.cache.put(h.seq, v, now, &e.cfg)
	e.accept(key, st, h.seq, v, h.repair, now)
	e.stats.noteHops(h.hops)
	if h.repair || len(h.slice) == 0 || !st.cache.forward(h.seq) {
		// A repair covers only its recipient. A value passed on down the
		// tree once is not passed on again, whatever slice it comes
		// with; one that came first by repair is, when the tree brings
		// it, for the nodes below this one wait for it.
		return
	}
	for _, group := range splitGroups(e.coverable(h.slice), min(int(h.fanout), MaxFanout)) {
		child := *h
		child.hops++
		child.first, child.slice = group[0].first, group[1:]
		e.send(group[0].node, outMsg{data: &child, value: value}, true)
	}
}

// coverable returns the nodes of a received slice this node may pass a
// value on to: live members, each once, never itself, in the slice's
// order (a peer must not make it send one value many times, or anywhere).
func (e *Engine) coverable(slice []hop) []hop {
	out := make([]hop, 0, len(slice))
	seen := make(map[string]struct{}, len(slice))
	for _, h := range slice {
		if _, dup := seen[h.node]; dup || h.node == e.self || !e.mem.Member(h.node) {
			continue
		}
		seen[h.node] = struct{}{}
		out = append(out, h)
	}
	return out
}

// accept delivers seq of st in order, holding it back behind a gap.
func (e *Engine) accept(key originKey, st *originState, seq uint64, v bvalue, repair bool, now time.Time) {
	if seq < st.next {
		e.stats.Duplicates.Add(1)
		return
	}
	if _, ok := st.held[seq]; ok {
		e.stats.Duplicates.Add(1)
		return
	}
	if repair {
		e.stats.Repaired.Add(1)
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
		if len(st.held) > e.cfg.HoldMax {
			e.skipGap(key, st, now)
		}
		return
	}
	e.deliver(key.name, v)
	st.next++
	e.drainHeld(key, st, now)
}

// drainHeld delivers the held values that follow next without a gap.
func (e *Engine) drainHeld(key originKey, st *originState, now time.Time) {
	for len(st.held) > 0 {
		v, ok := st.held[st.next]
		if !ok {
			st.heldSince, st.pulls = now, 0 // waiting on a new gap
			return
		}
		delete(st.held, st.next)
		e.deliver(key.name, v)
		st.next++
	}
}

// skipGap gives up the values missing before the first held one.
func (e *Engine) skipGap(key originKey, st *originState, now time.Time) {
	first := uint64(0)
	for s := range st.held {
		if first == 0 || s < first {
			first = s
		}
	}
	if first == 0 {
		return
	}
	e.stats.Lost.Add(first - st.next)
	e.log.Debug("gave up missing broadcast values", zap.String("name", key.name),
		zap.String("origin", key.origin.node), zap.Uint64("from", st.next), zap.Uint64("to", first-1))
	st.next = first
	e.drainHeld(key, st, now)
}

// Tick gives up old gaps, expires old state, and sends digests of the
// publishers whose values are still cached or being caught up on.
func (e *Engine) Tick(now time.Time) {
	digests := make(map[string][]digestEntry)
	for key, st := range e.origins {
		if len(st.held) > 0 {
			if now.Sub(st.heldSince) >= e.cfg.GapWait {
				e.skipGap(key, st, now)
			} else if now.After(st.heldSince.Add(e.cfg.Tick << min(st.pulls, 5))) {
				// Pull after a tick, then after 2, 4, 8... more: an answer
				// may be slow to come on a loaded node.
				e.pullGap(key, st)
			}
		}
		st.cache.evict(now, &e.cfg)
		idle := now.Sub(st.last)
		switch {
		case st.own && st.closed && idle >= e.cfg.CacheFor:
			// A closed publisher's cache can help nobody any more.
			e.forget(key)
			continue
		case !st.own && idle >= e.cfg.DedupeFor && len(st.held) == 0:
			e.forget(key)
			continue
		}
		// Digests go on as long as the values are cached, for a graft
		// could be answered, so a node that missed a quiet publisher's
		// last values still learns of them; and while nodes still catch
		// up: their grafts are answered a share at a time, and a node
		// that has had one share learns of the next from a digest.
		if (idle < e.cfg.CacheFor || now.Sub(st.served) < e.cfg.ActiveFor) && st.max > 0 {
			digests[key.name] = append(digests[key.name], digestEntry{name: key.name, origin: key.origin, max: st.max})
		}
	}
	for key, j := range e.joins {
		if now.Sub(j.seen) >= e.cfg.ActiveFor && now.Sub(j.asked) >= e.cfg.ActiveFor {
			delete(e.joins, key)
		}
	}
	byPeer := make(map[string][]digestEntry)
	names := make([]string, 0, len(digests))
	for name := range digests {
		names = append(names, name)
	}
	sort.Strings(names) // the same random choices for the same state: replayable
	for _, name := range names {
		nodes := Participants(e.mem, name, e.self)
		for range min(e.cfg.DigestPeers, len(nodes)) {
			i := e.rand.IntN(len(nodes))
			peer := nodes[i]
			nodes[i] = nodes[len(nodes)-1]
			nodes = nodes[:len(nodes)-1]
			byPeer[peer] = append(byPeer[peer], digests[name]...)
		}
	}
	peers := make([]string, 0, len(byPeer))
	for peer := range byPeer {
		peers = append(peers, peer)
	}
	sort.Strings(peers)
	for _, peer := range peers {
		entries := byPeer[peer]
		for len(entries) > 0 {
			n := min(len(entries), maxDigestEntries)
			e.send(peer, outMsg{tag: encodeDigest(entries[:n])}, false)
			e.stats.Digests.Add(1)
			entries = entries[n:]
		}
	}
}

// pullGap asks for the values missing before the held ones: from the
// publisher's node (whose cache has them all) and, every other tick, from a
// random node of the name, in case the publisher's node is gone.
func (e *Engine) pullGap(key originKey, st *originState) {
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
		nodes := Participants(e.mem, key.name, e.self)
		if len(nodes) == 0 {
			return
		}
		from = nodes[e.rand.IntN(len(nodes))]
	}
	req := graftRequest{name: key.name, origin: key.origin, seqs: missing}
	e.send(from, outMsg{tag: req.encode()}, false)
	e.stats.Grafts.Add(1)
}

// onDigest asks the digest's sender for the values this node misses.
func (e *Engine) onDigest(from string, entries []digestEntry, now time.Time) {
	for _, d := range entries {
		if e.subs[d.name] == 0 {
			continue // nobody here wants them
		}
		key := originKey{d.name, d.origin}
		st := e.origins[key]
		if st == nil {
			e.askToJoin(key, now)
			continue
		}
		if st.own || d.max < st.next {
			continue
		}
		// A value a digest announces may still be on its way down the
		// tree: ask only for what was already announced a tick ago, and
		// not while the tree keeps bringing values (a busy link can be
		// seconds behind its digests; a value lost before others arrive
		// leaves a gap, which pullGap asks for). Values that come by
		// repair do not count: a node far behind catches up by grafts.
		if st.want == 0 || st.want < st.next {
			st.want, st.wantAt, st.wantTree = d.max, now, st.fromTree
			continue
		}
		if now.Sub(st.wantAt) < e.cfg.Tick {
			continue
		}
		if st.fromTree > st.wantTree {
			st.wantAt, st.wantTree = now, st.fromTree
			continue
		}
		upTo := st.want
		st.want, st.wantAt = d.max, now
		var missing []uint64
		for s := st.next; s <= upTo && len(missing) < maxGraftSeqs; s++ {
			if _, ok := st.held[s]; !ok {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			continue
		}
		req := graftRequest{name: d.name, origin: d.origin, seqs: missing}
		e.send(from, outMsg{tag: req.encode()}, false)
		e.stats.Grafts.Add(1)
	}
}

// askToJoin asks the publisher's node for this node's share of its values,
// once a digest has announced the publisher for a tick (its first value may
// be on its way down the tree) and then at most every few ticks until a
// value comes.
func (e *Engine) askToJoin(key originKey, now time.Time) {
	node := key.origin.node
	if node == e.self {
		return // this node's own publisher, closed and forgotten
	}
	if !e.mem.Member(node) {
		return // not a node of the cluster: nobody to ask
	}
	j := e.joins[key]
	if j == nil {
		if e.perNode[node] >= MaxOriginsPerNode || len(e.joins) >= MaxOriginsPerNode {
			e.stats.Refused.Add(1)
			return
		}
		e.joins[key] = &joinWait{seen: now}
		return
	}
	if now.Sub(j.seen) < e.cfg.Tick || now.Sub(j.asked) < 4*e.cfg.Tick {
		return
	}
	j.asked = now
	req := joinRequest(key)
	e.send(node, outMsg{tag: req.encode()}, false)
	e.stats.Grafts.Add(1)
}

// onJoin sends a node that asks to join one of this node's publishers the
// values meant for it that the cache still holds: from the first sequence
// the publisher counted it in (or the oldest still cached, which the
// answer then names as the node's first: what the cache dropped is gone),
// at most a quarter of an outbox per answer. Once the node holds values of
// the publisher, digests and grafts bring it the rest.
func (e *Engine) onJoin(from string, req *joinRequest, now time.Time) {
	st := e.origins[originKey{req.name, req.origin}]
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
	limit := max(e.cfg.OutboxMax/4, 1)
	for seq := first; seq <= st.pub.seq && seq < first+uint64(limit); seq++ {
		c, ok := st.cache.vals[seq]
		if !ok {
			continue
		}
		h := &dataHeader{name: req.name, origin: req.origin, seq: seq, fanout: 1, first: first, repair: true, view: c.view}
		e.send(from, outMsg{data: h, value: c.v}, false)
		st.served = now
	}
}

// onGraft sends the asked-for values this node still holds.
func (e *Engine) onGraft(from string, req *graftRequest, now time.Time) {
	st := e.origins[originKey{req.name, req.origin}]
	if st == nil {
		return
	}
	for _, seq := range req.seqs {
		c, ok := st.cache.vals[seq]
		if !ok {
			continue
		}
		h := &dataHeader{name: req.name, origin: req.origin, seq: seq, fanout: 1, repair: true, view: c.view}
		e.send(from, outMsg{data: h, value: c.v}, false)
		st.served = now
	}
}

// Undeliverable handles a message that did not reach peer (valueErr: the
// transport refused the value itself, which can never be sent): a value
// error fails the value; otherwise the group the message was to cover goes
// to the group's next node instead.
func (e *Engine) Undeliverable(peer string, s Send, err error) {
	m := s.m
	if m.data == nil {
		return
	}
	if errors.Is(err, ErrValue) {
		e.rd.Failed = append(e.rd.Failed, Failure{Name: m.data.name, Value: m.value, Err: err})
		e.log.Warn("broadcast value not sent", zap.String("name", m.data.name), zap.Error(err))
		// Nor can it ever be: do not offer it to grafts again.
		if st := e.origins[originKey{m.data.name, m.data.origin}]; st != nil {
			st.cache.drop(m.data.seq)
		}
		return
	}
	e.log.Debug("broadcast hop failed; its group goes to the next node", zap.String("peer", peer),
		zap.String("name", m.data.name), zap.Error(err))
	if m.data.repair || len(m.data.slice) == 0 {
		return // anti-entropy covers the node itself
	}
	h := *m.data
	next := h.slice[0]
	h.first, h.slice = next.first, h.slice[1:]
	e.stats.Rerouted.Add(1)
	e.send(next.node, outMsg{data: &h, value: m.value}, true)
}

// Dump describes the engine's state, for tests and debugging.
func (e *Engine) Dump() string {
	var b strings.Builder
	keys := make([]originKey, 0, len(e.origins))
	for k := range e.origins {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].origin.node < keys[j].origin.node
	})
	for _, key := range keys {
		st := e.origins[key]
		fmt.Fprintf(&b, "%s holds %s/%s: next %d, max %d, held %d, want %d, pulls %d\n",
			e.self, key.name, key.origin.node, st.next, st.max, len(st.held), st.want, st.pulls)
		if st.pub != nil {
			fmt.Fprintf(&b, "  publisher at %d; counts in %v; cache from %v\n", st.pub.seq, st.pub.joined, st.cache.order[:min(1, len(st.cache.order))])
		}
	}
	for key, j := range e.joins {
		fmt.Fprintf(&b, "%s waits to join %s/%s: seen %v, asked %v\n", e.self, key.name, key.origin.node, j.seen, j.asked)
	}
	return b.String()
}
