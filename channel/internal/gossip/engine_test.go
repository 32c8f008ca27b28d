package gossip

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// sim runs engines of several nodes in one goroutine, passing their
// messages synchronously, in order, with an optional loss.
type sim struct {
	mem     *members
	engines map[string]*Engine
	got     map[string][]any // node → values delivered, in order
	now     time.Time
	drop    func(from, to string) bool
	sent    int // data messages passed between nodes
}

type inflight struct {
	from, to string
	header   []byte
	value    any
	data     bool
}

func newSim(_ require.TestingT, n int, cfg Config) *sim {
	s := &sim{mem: newMembers(), engines: map[string]*Engine{}, got: map[string][]any{}, now: t0}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%02d", i)
		s.mem.live[id] = true
		e := NewEngine(id, cfg, s.mem, nil, nil, rand.New(rand.NewPCG(uint64(i), 7)))
		s.engines[id] = e
	}
	return s
}

func (s *sim) nodes() []string {
	ids := make([]string, 0, len(s.engines))
	for id := range s.engines {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// subscribeAll subscribes every node to name.
func (s *sim) subscribeAll(name string) {
	for _, id := range s.nodes() {
		s.engines[id].Subscribe(name)
		s.mem.subscribe(name, id)
	}
}

// collect takes every engine's Ready, records deliveries, and returns the
// messages to pass.
func (s *sim) collect(extra ...Send) []inflight {
	var out []inflight
	add := func(from string, sends []Send) {
		for _, snd := range sends {
			m := inflight{from: from, to: snd.To, value: snd.m.value, header: snd.m.tag}
			if snd.m.data != nil {
				m.header, m.data = snd.m.data.encode(), true
			}
			out = append(out, m)
		}
	}
	for _, id := range s.nodes() {
		rd := s.engines[id].Ready()
		s.got[id] = append(s.got[id], values(rd)...)
		add(id, rd.Sends)
	}
	return out
}

// run passes messages until none is left.
func (s *sim) run(t require.TestingT, pending []inflight) {
	for len(pending) > 0 {
		m := pending[0]
		pending = pending[1:]
		if s.drop != nil && s.drop(m.from, m.to) {
			continue
		}
		if m.data {
			s.sent++
		}
		e := s.engines[m.to]
		if e == nil {
			continue // a node that is gone
		}
		require.NoError(t, e.Step(m.from, m.header, m.value, s.now))
		pending = append(pending, s.collect()...)
	}
}

// publish publishes values 1..count on a new publisher of name at node.
func (s *sim) publish(t require.TestingT, node, name string, count int) {
	e := s.engines[node]
	p := e.AddPublisher(name, 42, s.now)
	for v := 1; v <= count; v++ {
		first := e.Publish(p, v, s.now)
		var msgs []inflight
		for _, snd := range first {
			msgs = append(msgs, inflight{from: node, to: snd.To, header: snd.m.data.encode(), value: v, data: true})
		}
		s.run(t, append(s.collect(), msgs...))
	}
}

// tick advances the clock by d and ticks every engine, passing what they
// say.
func (s *sim) tick(t require.TestingT, d time.Duration) {
	s.now = s.now.Add(d)
	for _, id := range s.nodes() {
		s.engines[id].Tick(s.now)
	}
	s.run(t, s.collect())
}

func seq(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// TestTreeReachesEveryNodeOnceInOrder: for any cluster size and fanout,
// every value reaches every subscriber exactly once, in publish order,
// with one message per node beside the publisher.
func TestTreeReachesEveryNodeOnceInOrder(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 70).Draw(rt, "nodes")
		cfg := DefaultConfig()
		cfg.Fanout = rapid.IntRange(0, 6).Draw(rt, "fanout")
		count := rapid.IntRange(1, 5).Draw(rt, "values")
		s := newSim(rt, n, cfg)
		s.subscribeAll("news")
		pub := s.nodes()[rapid.IntRange(0, n-1).Draw(rt, "publisher")]
		s.publish(rt, pub, "news", count)
		for _, id := range s.nodes() {
			if !slices.Equal(s.got[id], seq(count)) {
				rt.Fatalf("%s got %v, want 1..%d", id, s.got[id], count)
			}
		}
		if s.sent != (n-1)*count {
			rt.Fatalf("%d data messages for %d values to %d nodes, want %d", s.sent, count, n, (n-1)*count)
		}
	})
}

// TestAntiEntropyRepairsALossyTree: with 20% of all messages lost
// (values, digests, grafts, joins), digests and grafts bring every node
// every value, in order, once.
func TestAntiEntropyRepairsALossyTree(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, 30).Draw(rt, "nodes")
		seed := rapid.Uint64().Draw(rt, "seed")
		rng := rand.New(rand.NewPCG(seed, 3))
		cfg := DefaultConfig()
		cfg.GapWait = time.Hour // what is measured is whether repair completes
		cfg.CacheFor = time.Hour
		s := newSim(rt, n, cfg)
		s.subscribeAll("news")
		lossy := true
		s.drop = func(string, string) bool { return lossy && rng.Float64() < 0.2 }
		const count = 20
		s.publish(rt, "n01", "news", count)
		lossy = false
		for range 100 {
			s.tick(rt, cfg.Tick)
			done := true
			for _, id := range s.nodes() {
				done = done && len(s.got[id]) == count
			}
			if done {
				break
			}
		}
		for _, id := range s.nodes() {
			if !slices.Equal(s.got[id], seq(count)) {
				rt.Fatalf("%s got %v after repair", id, s.got[id])
			}
		}
	})
}

// TestValuesBehindAGapWaitThenGoOnInOrder: a value that arrives before a
// missing one waits for it; when it comes, both are delivered in order.
// A gap not filled within GapWait is given up and counted lost.
func TestValuesBehindAGapWaitThenGoOnInOrder(t *testing.T) {
	mem := newMembers("n1", "n2")
	e := newTestEngine("n2", mem)
	e.Subscribe("x")
	data := func(seq uint64) []byte {
		return (&dataHeader{name: "x", origin: origin{"n1", 9}, seq: seq, hops: 1, fanout: 1, first: 1}).encode()
	}
	require.NoError(t, e.Step("n1", data(2), "b", t0))
	require.NoError(t, e.Step("n1", data(3), "c", t0))
	assert.Empty(t, values(e.Ready()), "2 and 3 wait for 1")
	require.NoError(t, e.Step("n1", data(1), "a", t0))
	assert.Equal(t, []any{"a", "b", "c"}, values(e.Ready()))

	require.NoError(t, e.Step("n1", data(5), "e", t0))
	e.Tick(t0.Add(e.cfg.GapWait - time.Millisecond))
	assert.Empty(t, values(e.Ready()), "5 waits for 4 until GapWait")
	e.Tick(t0.Add(e.cfg.GapWait))
	assert.Equal(t, []any{"e"}, values(e.Ready()), "4 is given up")
	assert.Equal(t, uint64(1), e.stats.Lost.Load())
	require.NoError(t, e.Step("n1", data(4), "d", t0))
	assert.Empty(t, values(e.Ready()), "4 comes too late: a duplicate of what was given up")
}

// TestUndeliverableHopGoesToTheGroupsNextNode: a child that cannot be
// reached hands its group to the group's next node.
func TestUndeliverableHopGoesToTheGroupsNextNode(t *testing.T) {
	mem := newMembers("n1", "n2", "n3", "n4")
	mem.subscribe("x", "n2", "n3", "n4")
	e := newTestEngine("n1", mem)
	e.cfg.Fanout = 1
	p := e.AddPublisher("x", 1, t0)
	first := e.Publish(p, "v", t0)
	require.Len(t, first, 1)
	assert.Equal(t, "n2", first[0].To)
	e.Ready()
	e.Undeliverable("n2", first[0], fmt.Errorf("%w: gone", ErrUnreachable))
	rd := e.Ready()
	require.Len(t, rd.Sends, 1)
	assert.Equal(t, "n3", rd.Sends[0].To)
	assert.Equal(t, []hop{{"n4", 1}}, rd.Sends[0].m.data.slice)
	e.Undeliverable("n2", first[0], fmt.Errorf("%w: cannot encode", ErrValue))
	rd = e.Ready()
	assert.Empty(t, rd.Sends, "a value that cannot be sent is sent nowhere")
	require.Len(t, rd.Failed, 1)
	assert.Equal(t, "x", rd.Failed[0].Name)
	assert.ErrorIs(t, rd.Failed[0].Err, ErrValue)
}

// The attacks of a member on the engine's bounds. Each sends what an
// honest node never would.

// TestForwardingGoesToDistinctLiveMembersOnly: a data message whose slice
// names one node 4,094 times (and nodes that are not members) makes its
// recipient pass the value on once to that node, and to no one else.
func TestForwardingGoesToDistinctLiveMembersOnly(t *testing.T) {
	mem := newMembers("n1", "n2", "n3")
	e := newTestEngine("n2", mem)
	e.Subscribe("x")
	h := &dataHeader{name: "x", origin: origin{"n1", 9}, seq: 1, hops: 1, fanout: 4096, first: 1}
	for range maxGossipSlice - 2 {
		h.slice = append(h.slice, hop{node: "n3", first: 1})
	}
	h.slice = append(h.slice, hop{node: "stranger", first: 1}, hop{node: "n2", first: 1})
	require.NoError(t, e.Step("n1", h.encode(), make([]byte, 1<<20), t0))
	sends := dataSends(e.Ready())
	assert.Len(t, sends["n3"], 1, "one copy to n3")
	assert.Empty(t, sends["stranger"], "none to a node that is not a member")
	assert.Empty(t, sends["n2"], "none to itself")
	assert.Len(t, sends, 1)
}

// TestFanoutIsCapped: a message asking a hop for a million children gets
// MaxFanout of them, each covering its share of the rest.
func TestFanoutIsCapped(t *testing.T) {
	mem := newMembers("n1", "n2")
	h := &dataHeader{name: "x", origin: origin{"n1", 9}, seq: 1, hops: 1, fanout: 1 << 20, first: 1}
	for i := range 500 {
		node := fmt.Sprintf("m%03d", i)
		mem.live[node] = true
		h.slice = append(h.slice, hop{node: node, first: 1})
	}
	e := newTestEngine("n2", mem)
	require.NoError(t, e.Step("n1", h.encode(), "v", t0))
	sends := dataSends(e.Ready())
	assert.Len(t, sends, MaxFanout)
	covered := 0
	for _, hs := range sends {
		covered += 1 + len(hs[0].slice)
	}
	assert.Equal(t, 500, covered, "every node is still covered, further down")
}

// TestDuplicatesAreNeverForwarded: a value that arrives again, with a
// slice, is neither delivered nor passed on again; nor is a value of this
// node's own publisher that comes back.
func TestDuplicatesAreNeverForwarded(t *testing.T) {
	mem := newMembers("n1", "n2", "n3")
	mem.subscribe("x", "n2", "n3")
	e := newTestEngine("n2", mem)
	e.Subscribe("x")
	h := &dataHeader{name: "x", origin: origin{"n1", 9}, seq: 1, hops: 1, fanout: 1, first: 1, slice: []hop{{"n3", 1}}}
	require.NoError(t, e.Step("n1", h.encode(), "v", t0))
	rd := e.Ready()
	assert.Len(t, dataSends(rd)["n3"], 1)
	assert.Equal(t, []any{"v"}, values(rd))
	for range 100 {
		require.NoError(t, e.Step("n1", h.encode(), "v", t0))
	}
	rd = e.Ready()
	assert.Empty(t, rd.Sends, "a duplicate is not passed on")
	assert.Empty(t, rd.Deliveries)
	assert.Equal(t, uint64(100), e.stats.Duplicates.Load())

	p := e.AddPublisher("x", 5, t0)
	own := &dataHeader{name: "x", origin: p.origin, seq: 1, hops: 1, fanout: 1, first: 1, slice: []hop{{"n3", 1}}}
	require.NoError(t, e.Step("n3", own.encode(), "mine", t0))
	assert.Empty(t, e.Ready().Sends, "its own value, sent back, is not passed on")
}

// TestPublishersTrackedPerNodeAreBounded: a member that sends values of
// ever new publishers (names, or publisher numbers) of one node makes the
// engine track at most MaxOriginsPerNode of them; values of nodes that are
// no members are not tracked at all. The heap stays flat.
func TestPublishersTrackedPerNodeAreBounded(t *testing.T) {
	mem := newMembers("n1", "n2")
	e := newTestEngine("n2", mem)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const attempts = 100_000
	for i := range attempts {
		h := &dataHeader{name: fmt.Sprintf("name-%d", i%50), origin: origin{"n1", uint64(i)}, seq: 1, hops: 1, fanout: 1, first: 1}
		require.NoError(t, e.Step("n1", h.encode(), "v", t0))
		e.Ready()
		stranger := &dataHeader{name: "x", origin: origin{fmt.Sprintf("ghost-%d", i), 1}, seq: 1, hops: 1, fanout: 1, first: 1}
		require.NoError(t, e.Step("n1", stranger.encode(), "v", t0))
		e.Ready()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d publishers announced, %d tracked; heap in use grew %d KiB", 2*attempts, len(e.origins), growth>>10)
	assert.Equal(t, MaxOriginsPerNode, len(e.origins))
	assert.Equal(t, uint64(2*attempts-MaxOriginsPerNode), e.stats.Refused.Load())
	assert.Less(t, growth, int64(16<<20))

	// Digests announcing ever new publishers do not grow the joins either.
	e.Subscribe("x")
	for i := range attempts {
		d := []digestEntry{{name: "x", origin: origin{"n1", uint64(attempts + i)}, max: 5}}
		require.NoError(t, e.Step("n1", encodeDigest(d), nil, t0))
	}
	assert.LessOrEqual(t, len(e.joins), MaxOriginsPerNode)
}

// TestAValueRepairedFirstIsStillPassedOnByTheTree: a node that got a value
// by repair before the tree brought it (its tree queue was slow) still
// passes it on to its subtree when the tree's message arrives, once.
func TestAValueRepairedFirstIsStillPassedOnByTheTree(t *testing.T) {
	mem := newMembers("n1", "n2", "n3")
	e := newTestEngine("n2", mem)
	e.Subscribe("x")
	repair := &dataHeader{name: "x", origin: origin{"n1", 9}, seq: 1, fanout: 1, first: 1, repair: true}
	require.NoError(t, e.Step("n1", repair.encode(), "v", t0))
	rd := e.Ready()
	assert.Equal(t, []any{"v"}, values(rd))
	assert.Empty(t, rd.Sends)
	tree := &dataHeader{name: "x", origin: origin{"n1", 9}, seq: 1, hops: 1, fanout: 1, first: 1, slice: []hop{{"n3", 1}}}
	require.NoError(t, e.Step("n1", tree.encode(), "v", t0))
	rd = e.Ready()
	assert.Empty(t, rd.Deliveries, "delivered once")
	assert.Len(t, dataSends(rd)["n3"], 1, "passed on to the subtree")
	require.NoError(t, e.Step("n1", tree.encode(), "v", t0))
	assert.Empty(t, e.Ready().Sends, "and not again")
}
