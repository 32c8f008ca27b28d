package channel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/channel/internal/gossip"
	"github.com/dchan-io/dchan/registry"
)

// subLog records what one subscriber received, per publisher.
type subLog struct {
	node string
	mu   sync.Mutex
	seqs map[string][]int // publisher (Order.Sender) → sequences in arrival order
	n    atomic.Int64
	done chan struct{}
}

// subscribeAll subscribes to name on each node and records into subLogs
// until the channels close.
func subscribeAll(t *testing.T, nodes []*Node, name string, buf int) ([]*subLog, []CloseFunc) {
	t.Helper()
	logs := make([]*subLog, len(nodes))
	closers := make([]CloseFunc, len(nodes))
	for i, n := range nodes {
		ch, closeFn, err := n.Subscribe(name, buf)
		require.NoError(t, err)
		logs[i], closers[i] = record(n.ID(), ch), closeFn
	}
	t.Cleanup(func() {
		for i, c := range closers {
			_ = c()
			<-logs[i].done
		}
	})
	return logs, closers
}

func record(node string, ch <-chan any) *subLog {
	l := &subLog{node: node, seqs: make(map[string][]int), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for v := range ch {
			o := v.(Order)
			l.mu.Lock()
			l.seqs[o.Sender] = append(l.seqs[o.Sender], o.Seq)
			l.mu.Unlock()
			l.n.Add(1)
		}
	}()
	return l
}

func (l *subLog) get(pub string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.seqs[pub]...)
}

// waitSubscribers waits until every node's replica lists want broadcast
// receivers of name.
func waitSubscribers(t *testing.T, nodes []*Node, name string, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			got := 0
			for _, r := range n.reg.Lookup(name) {
				if r.Mode == registry.Broadcast {
					got++
				}
			}
			if got != want {
				return false
			}
		}
		return true
	}, waitFor, 10*time.Millisecond)
}

// publishSeq publishes Order{pub, 1..count} on n, pausing every so often if
// pace > 0, and closes the publisher.
func publishSeq(t *testing.T, n *Node, name, pub string, count int, pace time.Duration) {
	t.Helper()
	out, closeOut, err := n.Publish(name, 16)
	require.NoError(t, err)
	for i := 1; i <= count; i++ {
		out <- Order{Sender: pub, Seq: i}
		if pace > 0 && i%10 == 0 {
			time.Sleep(pace)
		}
	}
	require.NoError(t, closeOut())
}

// assertInOrder checks that seqs strictly increase (no duplicate, no
// reordering) and returns how many there are.
func assertInOrder(t *testing.T, who string, seqs []int) {
	t.Helper()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("%s: sequence %d after %d (duplicate or reordered)", who, seqs[i], seqs[i-1])
		}
	}
}

func broadcastTotals(nodes []*Node) (sent, delivered, digests, grafts uint64) {
	for _, n := range nodes {
		s := n.Stats()
		sent += s.Broadcast.Sent
		digests += s.Broadcast.Digests
		grafts += s.Broadcast.Grafts
		delivered += s.Received
	}
	return
}

func TestBroadcastEverySubscriberGetsEveryValueOnceInPublishOrder(t *testing.T) {
	for _, size := range []int{10, 30} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			if size > 10 && testing.Short() {
				t.Skip("short")
			}
			nodes := startCluster(t, size, patientGossip())
			logs, _ := subscribeAll(t, nodes, "news", 2048)
			waitSubscribers(t, nodes, "news", size)

			const perPublisher = 300
			var wg sync.WaitGroup
			for _, p := range []int{0, size / 2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					publishSeq(t, nodes[p], "news", nodes[p].ID(), perPublisher, 0)
				}()
			}
			wg.Wait()
			for _, l := range logs {
				if !assert.Eventually(t, func() bool { return l.n.Load() >= 2*perPublisher }, patientWait, 5*time.Millisecond,
					"%s got fewer than %d", l.node, 2*perPublisher) {
					for _, p := range []int{0, size / 2} {
						t.Logf("%s: %d values from %s", l.node, len(l.get(nodes[p].ID())), nodes[p].ID())
					}
					for _, n := range nodes {
						t.Logf("%s: %+v", n.ID(), n.Stats().Broadcast)
					}
					for _, n := range nodes {
						if n.ID() == l.node {
							t.Log(gossipState(n, nodes))
						}
					}
					t.FailNow()
				}
			}
			time.Sleep(100 * time.Millisecond) // a duplicate would show up by now
			for _, l := range logs {
				for _, p := range []int{0, size / 2} {
					got := l.get(nodes[p].ID())
					require.Len(t, got, perPublisher, "%s from %s", l.node, nodes[p].ID())
					for i, s := range got {
						require.Equal(t, i+1, s, "%s from %s: value %d out of order", l.node, nodes[p].ID(), i)
					}
				}
			}
			sent, delivered, digests, grafts := broadcastTotals(nodes)
			var dups, repaired, maxHops uint64
			for _, n := range nodes {
				b := n.Stats().Broadcast
				dups += b.Duplicates
				repaired += b.Repaired
				maxHops = max(maxHops, b.MaxHops)
			}
			t.Logf("%d nodes: %d deliveries, %d value messages (%.2f per delivery), %d digests, %d grafts, %d duplicates, %d repaired, max %d hops",
				size, delivered, sent, float64(sent)/float64(delivered), digests, grafts, dups, repaired, maxHops)
			if grafts == 0 {
				// (Under a heavy load a repair can race the tree; its
				// duplicate is then dropped, as checked above.)
				assert.Zero(t, dups, "without faults the tree sends each value to each node once")
			}
		})
	}
}

// patientGossip gives broadcast repair longer than the tests wait
// (patientWait): values stay cached, gaps stay open and digests go on
// that long. With 30 nodes
// under -race on 2 cores, on a machine that also runs other tests, a hop
// can wait for credit past SendTimeout: its group then goes to the next
// node, later values reach the node by another path before the earlier
// ones are repaired, and the default GapWait (3 s) gave the earlier ones
// up before their repair came (then counted as lost, and their late copies
// as duplicates). What these tests check is that delivery completes, in
// order and once, not how fast. (Seen with eight busy loops beside the
// test: a publisher's cache expired, after the default 10 s, before a
// subscriber's join reached it.)
func patientGossip() Option {
	return withGossip(func(c *gossip.Config) {
		c.GapWait = patientWait + waitFor
		c.CacheFor = patientWait + waitFor
	})
}

// patientWait is how long the broadcast tests wait for delivery to
// complete after the last value is published.
const patientWait = 3 * waitFor

func TestBroadcastNoDuplicatesWhenLinksDropMessages(t *testing.T) {
	for _, size := range []int{10, 30} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) { testLossyBroadcast(t, size) })
	}
}

// testLossyBroadcast loses 20% of all gossip messages (values, digests,
// grafts) silently and checks that no subscriber sees a duplicate or a
// reordering, and that anti-entropy brings coverage to 100%.
func testLossyBroadcast(t *testing.T, size int) {
	const perPublisher = 400
	var seeded sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	var dropped atomic.Int64
	lossy := withGossip(func(c *gossip.Config) {
		c.Drop = func(from, to string) bool {
			seeded.Lock()
			defer seeded.Unlock()
			if rng.Float64() < 0.2 {
				dropped.Add(1)
				return true
			}
			return false
		}
	})
	// On a loaded machine repair took over 10 s: patientGossip.
	nodes := startCluster(t, size, patientGossip(), lossy)
	logs, _ := subscribeAll(t, nodes, "lossy", 4096)
	waitSubscribers(t, nodes, "lossy", size)

	publishSeq(t, nodes[0], "lossy", "p", perPublisher, time.Millisecond)
	// Anti-entropy fills the gaps the lossy links left.
	ok := assert.Eventually(t, func() bool {
		for _, l := range logs[1:] {
			if l.n.Load() < perPublisher {
				return false
			}
		}
		return true
	}, patientWait, 10*time.Millisecond)
	total, lost, repaired := 0, uint64(0), uint64(0)
	for i, l := range logs {
		got := l.get("p")
		assertInOrder(t, l.node, got)
		total += len(got)
		lost += nodes[i].Stats().Broadcast.Lost
		repaired += nodes[i].Stats().Broadcast.Repaired
	}
	sent, delivered, digests, grafts := broadcastTotals(nodes)
	t.Logf("20%% of messages dropped (%d): coverage %.2f%% (%d of %d deliveries; %d lost, %d repaired); %d value messages (%.2f per delivery), %d digests, %d grafts",
		dropped.Load(), 100*float64(total)/float64(size*perPublisher), total, size*perPublisher, lost, repaired,
		sent, float64(sent)/float64(delivered), digests, grafts)
	if !ok {
		for i, l := range logs {
			got := l.get("p")
			t.Logf("%s: %d values, %+v", l.node, len(got), nodes[i].Stats().Broadcast)
			if len(got) < perPublisher {
				t.Logf("%s misses %v; %s", l.node, missingSeqs(got, perPublisher), gossipState(nodes[i], nodes))
			}
		}
	}
	require.True(t, ok, "every subscriber gets every value once anti-entropy has run")
}

func TestBroadcastContinuesWhenANodeDiesMidGossip(t *testing.T) {
	const size, count = 10, 1500
	nodes := startCluster(t, size, WithGossipFanout(2)) // a deep tree: the dead node has a subtree
	logs, _ := subscribeAll(t, nodes, "ticks", 4096)
	waitSubscribers(t, nodes, "ticks", size)

	// The publisher's tree for 9 peers and fanout 2: the first child of each
	// half covers four nodes. Kill one of them mid-stream.
	view := gossip.Participants(bcastMembership{nodes[0]}, "ticks", nodes[0].ID())
	victim := view[0]
	var victimNode *Node
	for _, n := range nodes {
		if n.ID() == victim {
			victimNode = n
		}
	}
	go func() {
		require.Eventually(t, func() bool { return logsOf(logs, victim).n.Load() >= count/3 }, waitFor, time.Millisecond)
		kill(victimNode)
	}()
	publishSeq(t, nodes[0], "ticks", "p", count, time.Millisecond)
	for _, l := range logs {
		if l.node == victim {
			continue
		}
		assert.Eventually(t, func() bool { return len(l.get("p")) == count }, waitFor, 10*time.Millisecond)
		require.Equal(t, count, len(l.get("p")), "%s's values", l.node)
		assertInOrder(t, l.node, l.get("p"))
	}
	var rerouted, repaired uint64
	for _, n := range nodes {
		rerouted += n.Stats().Broadcast.Rerouted
		repaired += n.Stats().Broadcast.Repaired
	}
	t.Logf("%s died after %d values; %d hops rerouted, %d values repaired", victim, len(logsOf(logs, victim).get("p")), rerouted, repaired)
}

// publishPastALostHead starts size nodes with a subscriber each (buffers
// of buf) and a chain for a tree (fanout 1: n1 → view[0] → view[1] → ...),
// then publishes count values on n1 while every message from n1 to the
// chain's head is lost (to every node, with all): nobody but n1 gets any
// of them from the tree. It returns once n1 has sent them all, with the
// links restored.
func publishPastALostHead(t *testing.T, size, count, buf int, all bool) ([]*Node, []*subLog) {
	t.Helper()
	var cut atomic.Bool
	var head atomic.Value // the publisher's first child
	nodes := startCluster(t, size, WithGossipFanout(1), withGossip(func(c *gossip.Config) {
		c.Drop = func(from, to string) bool {
			h, _ := head.Load().(string)
			return cut.Load() && from == "n1" && (all || to == h)
		}
	}))
	logs, _ := subscribeAll(t, nodes, "lost", buf)
	waitSubscribers(t, nodes, "lost", size)
	head.Store(gossip.Participants(bcastMembership{nodes[0]}, "lost", "n1")[0])
	cut.Store(true)
	publishSeq(t, nodes[0], "lost", "p", count, 0)
	require.Eventually(t, func() bool { return nodes[0].Stats().Broadcast.Sent >= uint64(count) }, waitFor, time.Millisecond,
		"n1's outbox sent every value")
	cut.Store(false)
	return nodes, logs
}

// TestBroadcastRepairsANodeThatNeverSawAPublisher: values lost on their way
// to a subtree's head leave the whole subtree without any value of that
// publisher. Its nodes cannot tell from a digest where their share begins;
// they ask the publisher's node, which knows, and get every value.
func TestBroadcastRepairsANodeThatNeverSawAPublisher(t *testing.T) {
	const count = 50
	nodes, logs := publishPastALostHead(t, 4, count, 4096, false)
	for _, l := range logs[1:] {
		assert.Eventually(t, func() bool { return len(l.get("p")) == count }, waitFor, 10*time.Millisecond)
		got := l.get("p")
		require.Len(t, got, count, "%s's values", l.node)
		assertInOrder(t, l.node, got)
	}
	t.Logf("the chain's head after repair: %+v", nodes[1].Stats().Broadcast)
}

// TestBroadcastRepairsAQuietPublishersLastValues: a node cut off while a
// publisher sends its last values, and for longer than the name stays
// busy after them, still gets them once the cut heals, for as long as
// they are cached: digests go on while values are. (Before, they stopped
// 3 s after the last value, and such a node waited for the publisher's
// next value to learn what it had missed.)
func TestBroadcastRepairsAQuietPublishersLastValues(t *testing.T) {
	const count = 20
	var cut atomic.Bool
	cut.Store(true)
	nodes := startCluster(t, 3, withGossip(func(c *gossip.Config) {
		c.CacheFor = 8 * time.Second
		c.Drop = func(from, to string) bool { return to == "n3" && cut.Load() }
	}))
	const quietFor = 3500 * time.Millisecond // past the 3 s after which digests used to stop
	logs, _ := subscribeAll(t, nodes, "quiet", 64)
	waitSubscribers(t, nodes, "quiet", 3)
	publishSeq(t, nodes[0], "quiet", "p", count, 0)
	require.Eventually(t, func() bool { return len(logs[1].get("p")) == count }, waitFor, 10*time.Millisecond)

	time.Sleep(quietFor) // the publisher has gone quiet
	require.Empty(t, logs[2].get("p"), "n3 is cut off")
	cut.Store(false)
	assert.Eventually(t, func() bool { return len(logs[2].get("p")) == count }, waitFor, 10*time.Millisecond)
	got := logs[2].get("p")
	assertInOrder(t, "n3", got)
	t.Logf("n3 got %d of %d after %v of quiet; %+v", len(got), count, quietFor, nodes[2].Stats().Broadcast)
}

// TestBroadcastJoinStartsAtWhatThePublishersCacheHolds: when the start of
// a node's share has left the publisher's cache (4,096 values), a join
// brings the node what the cache still holds, and digests the rest, rather
// than nothing. (Every message from n1 is lost while it publishes, digests
// included, so that no node begins to catch up while the cache still
// moves.)
func TestBroadcastJoinStartsAtWhatThePublishersCacheHolds(t *testing.T) {
	const count = 6000
	_, logs := publishPastALostHead(t, 4, count, 8192, true)
	for _, l := range logs[1:] {
		assert.Eventually(t, func() bool { s := l.get("p"); return len(s) > 0 && s[len(s)-1] == count },
			waitFor, 10*time.Millisecond)
		got := l.get("p")
		require.NotEmpty(t, got, "%s's values", l.node)
		require.Equal(t, count, got[len(got)-1], "%s's last value, of %d", l.node, len(got))
		assertInOrder(t, l.node, got)
		// From where it begins, the node's share is whole.
		assert.Equal(t, count-got[0]+1, len(got), "%s: a gap in what it got", l.node)
	}
}

// TestBroadcastRepairsThroughABusyLink: a publisher that publishes faster
// than its link carries keeps its queue to the child full, with the link
// seconds behind the digests. A value lost on that link is still
// repaired (anti-entropy has a queue of its own, sent in turn with the
// tree's), and the values still on their way are not asked for again
// (no graft while values keep arriving).
func TestBroadcastRepairsThroughABusyLink(t *testing.T) {
	var calls atomic.Int64
	nodes := startCluster(t, 2, withGossip(func(c *gossip.Config) {
		c.Drop = func(from, to string) bool {
			if from != "n1" || to != "n2" {
				return false
			}
			time.Sleep(500 * time.Microsecond) // a slow link
			return calls.Add(1) == 1000        // and one value lost on it
		}
	}))
	logs, _ := subscribeAll(t, nodes, "busy", 1<<16)
	waitSubscribers(t, nodes, "busy", 2)
	out, closeOut, err := nodes[0].Publish("busy", 16)
	require.NoError(t, err)
	count := 0
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		count++
		out <- Order{Sender: "p", Seq: count}
	}
	require.NoError(t, closeOut())
	assert.Eventually(t, func() bool { return len(logs[1].get("p")) == count }, waitFor, 10*time.Millisecond)
	got := logs[1].get("p")
	require.Equal(t, count, len(got), "n2's values")
	assertInOrder(t, "n2", got)
	s := nodes[1].Stats().Broadcast
	t.Logf("%d values over a busy link; n2: %+v", count, s)
	assert.Positive(t, s.Repaired, "the lost value came by repair")
	assert.Less(t, s.Duplicates, uint64(count/10), "values on their way were not asked for again")
}

// TestBroadcastForgetsTheQueuesOfNodesThatLeft: a node keeps a gossip queue
// per peer; once a peer has left the cluster, or crashed and been declared
// dead, and its queue is idle, the queue is dropped, so a long-lived node
// does not keep one for every node that ever left.
func TestBroadcastForgetsTheQueuesOfNodesThatLeft(t *testing.T) {
	nodes := startCluster(t, 4)
	subscribeAll(t, nodes, "news", 16)
	waitSubscribers(t, nodes, "news", 4)
	publishSeq(t, nodes[0], "news", "p", 10, 0)
	hasQueue := func(peer string) bool {
		return slices.Contains(nodes[0].bcast.Peers(), peer)
	}
	require.True(t, hasQueue("n3") && hasQueue("n4"), "n1 gossiped to n3 and n4")
	require.NoError(t, nodes[2].Close()) // leaves
	kill(nodes[3])                       // crashes: expired after a second
	// n4 is gone once the leader expires it: a second after the kill, or
	// later if leadership moves meanwhile (on a loaded machine).
	require.Eventually(t, func() bool { return !hasQueue("n3") && !hasQueue("n4") }, patientWait, 50*time.Millisecond,
		"n1 dropped its queues to n3 and n4 once they were gone and the queues idled; queues to %v", nodes[0].bcast.Peers())
	assert.True(t, hasQueue("n2"), "the queue to a member stays")
}

// gossipState describes what n's gossip engine holds for each publisher,
// and where each publisher counts n in, for a failure's log.
// missingSeqs returns the sequences 1..count that got lacks (got is in
// order).
func missingSeqs(got []int, count int) []int {
	var missing []int
	i := 0
	for s := 1; s <= count; s++ {
		if i < len(got) && got[i] == s {
			i++
			continue
		}
		missing = append(missing, s)
	}
	return missing
}

func gossipState(n *Node, nodes []*Node) string {
	var b strings.Builder
	b.WriteString(n.bcast.Dump())
	for _, p := range nodes {
		if p != n {
			fmt.Fprintf(&b, "on %s:\n%s", p.ID(), p.bcast.Dump())
		}
	}
	return b.String()
}

func logsOf(logs []*subLog, node string) *subLog {
	for _, l := range logs {
		if l.node == node {
			return l
		}
	}
	return nil
}

func TestBroadcastSlowSubscriberDoesNotStallPublisherOrOthers(t *testing.T) {
	nodes := startCluster(t, 3)
	slow, closeSlow, err := nodes[1].Subscribe("firehose", 4) // never read until the end
	require.NoError(t, err)
	defer closeSlow()
	fast, _ := subscribeAll(t, nodes[2:], "firehose", 4096)
	waitSubscribers(t, nodes, "firehose", 2)

	const count = 3000
	publishSeq(t, nodes[0], "firehose", "p", count, 0)
	require.Eventually(t, func() bool { return fast[0].n.Load() == count }, waitFor, 5*time.Millisecond)
	assertInOrder(t, "fast", fast[0].get("p"))
	require.Eventually(t, func() bool {
		return nodes[1].Stats().Names["firehose"].Dropped > 0 && nodes[1].Stats().Received >= count
	}, waitFor, 5*time.Millisecond, "the slow subscriber's node took every value, dropping the oldest")

	// The slow subscriber holds the newest values, in order.
	var got []int
	for len(slow) > 0 {
		got = append(got, (<-slow).(Order).Seq)
	}
	require.Len(t, got, 4)
	assertInOrder(t, "slow", got)
	assert.Equal(t, count, got[3], "the newest value survives; the oldest were dropped")
	t.Logf("slow subscriber: %d dropped, kept %v", nodes[1].Stats().Names["firehose"].Dropped, got)
}

func TestBroadcastSubscribersJoinAndLeaveWhilePublishing(t *testing.T) {
	const size, count = 10, 1500
	nodes := startCluster(t, size)
	// Steady subscribers on the first half; the others come and go.
	steady, _ := subscribeAll(t, nodes[:5], "churn", 4096)
	waitSubscribers(t, nodes, "churn", 5)

	stop := make(chan struct{})
	var churned []*subLog
	var cmu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes[5:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				ch, closeFn, err := n.Subscribe("churn", 4096)
				if !assert.NoError(t, err) {
					return
				}
				l := record(n.ID(), ch)
				cmu.Lock()
				churned = append(churned, l)
				cmu.Unlock()
				time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
				assert.NoError(t, closeFn())
				<-l.done
			}
		}()
	}
	// Publish count values, and on (up to waitFor) until a short-lived
	// subscription has received one: on a loaded machine subscribing may
	// take longer than count values.
	out, closeOut, err := nodes[0].Publish("churn", 16)
	require.NoError(t, err)
	someGot := func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		for _, l := range churned {
			if l.n.Load() > 0 {
				return true
			}
		}
		return false
	}
	published := 0
	for deadline := time.Now().Add(waitFor); published < count || !someGot() && time.Now().Before(deadline); {
		published++
		out <- Order{Sender: "p", Seq: published}
		if published%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	require.NoError(t, closeOut())
	close(stop)
	wg.Wait()
	for _, l := range steady {
		assert.Eventually(t, func() bool { return len(l.get("p")) == published }, waitFor, 10*time.Millisecond)
		require.Equal(t, published, len(l.get("p")), "steady %s's values", l.node)
		assertInOrder(t, l.node, l.get("p"))
	}
	joined := 0
	for _, l := range churned {
		got := l.get("p")
		assertInOrder(t, l.node, got)
		// Without faults a subscriber's values are contiguous: from some
		// point after it joined until it left.
		for i := 1; i < len(got); i++ {
			require.Equal(t, got[i-1]+1, got[i], "%s: a gap without a fault", l.node)
		}
		if len(got) > 0 {
			joined++
		}
	}
	t.Logf("%d values published; %d short-lived subscriptions, %d received values", published, len(churned), joined)
	assert.Positive(t, joined)
}

func TestSubscribeAndPublishValidateArguments(t *testing.T) {
	nodes := startCluster(t, 1)
	_, _, err := nodes[0].Subscribe("", 1)
	assert.ErrorIs(t, err, ErrInvalidName)
	_, _, err = nodes[0].Subscribe("x", -1)
	assert.ErrorIs(t, err, ErrInvalidOption)
	_, _, err = nodes[0].Publish("", 1)
	assert.ErrorIs(t, err, ErrInvalidName)
	_, _, err = nodes[0].Publish("x", -1)
	assert.ErrorIs(t, err, ErrInvalidOption)
	require.NoError(t, nodes[0].Close())
	_, _, err = nodes[0].Subscribe("x", 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, _, err = nodes[0].Publish("x", 1)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestPublishHandleReportsAnUnencodableValue(t *testing.T) {
	nodes := startCluster(t, 2)
	logs, _ := subscribeAll(t, nodes[1:], "typed", 16)
	waitSubscribers(t, nodes, "typed", 1)
	out, closeOut, err := nodes[0].Publish("typed", 0)
	require.NoError(t, err)
	defer closeOut()
	type unregistered struct{ X int }
	bad := WithMessage(unregistered{1}, waitFor)
	out <- bad
	<-bad.Done()
	require.ErrorIs(t, bad.Err(), ErrEncode)
	good := WithMessage(Order{Sender: "p", Seq: 1}, waitFor)
	out <- good
	<-good.Done()
	require.NoError(t, good.Err())
	require.Eventually(t, func() bool { return logs[0].n.Load() == 1 }, waitFor, 5*time.Millisecond,
		"the bad value broke nothing for the next")
	// The bad value can never be sent: it is not kept to answer grafts.
	cached := func(seq uint64) bool { return nodes[0].bcast.OwnCached(seq) }
	// (Well before the cache's own expiry, 10 s.)
	assert.Eventually(t, func() bool { return !cached(1) }, 5*time.Second, 5*time.Millisecond, "the bad value left the cache")
	assert.True(t, cached(2), "the good value stays cached")
}

// TestSubscribeOfAndPublishOfCarryTypedValues: a typed publisher's values
// reach a typed subscriber on another node, in order; a value of another
// type, published on the same name untyped, is dropped and counted, and
// the typed stream goes on.
func TestSubscribeOfAndPublishOfCarryTypedValues(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := SubscribeOf[Order](nodes[1], "typed-news", 16)
	require.NoError(t, err)
	defer closeIn()
	waitSubscribers(t, nodes, "typed-news", 1)

	out, closeOut, err := PublishOf[Order](nodes[0], "typed-news", 16)
	require.NoError(t, err)
	defer closeOut()
	for i := 1; i <= 5; i++ {
		out <- Order{Sender: "p", Seq: i}
	}
	for i := 1; i <= 5; i++ {
		select {
		case o := <-in:
			assert.Equal(t, Order{Sender: "p", Seq: i}, o)
		case <-time.After(waitFor):
			t.Fatalf("order %d never arrived", i)
		}
	}

	untyped, closeUntyped, err := nodes[0].Publish("typed-news", 1)
	require.NoError(t, err)
	defer closeUntyped()
	untyped <- "not an order"
	out <- Order{Sender: "p", Seq: 6}
	select {
	case o := <-in:
		assert.Equal(t, 6, o.Seq, "the typed stream goes on past the wrong-typed value")
	case <-time.After(waitFor):
		t.Fatal("order 6 never arrived")
	}
	assert.Eventually(t, func() bool { return nodes[1].Stats().Names["typed-news"].Dropped == 1 },
		waitFor, 5*time.Millisecond, "the string is counted as dropped")
	assert.Len(t, in, 0, "nothing but Orders reached the typed subscriber")

	_, _, err = SubscribeOf[Order](nodes[1], "", 1)
	assert.ErrorIs(t, err, ErrInvalidName)
	_, _, err = PublishOf[Order](nodes[0], "typed-news", -1)
	assert.ErrorIs(t, err, ErrInvalidOption)
}
