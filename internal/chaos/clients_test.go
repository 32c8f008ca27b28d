package chaos

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestClientChurn runs node processes of which only five hold the
// registry through Raft (-max-replicas 5: the voters); every other node is
// a registry client. Nodes other than the first three are SIGKILLed one
// after the other and restarted on the same address after up to twice the
// grace, often after the leader expired them (grace 2s; beyond 20 nodes
// 8s, with Raft's timeouts 1s and 2s): clients, and replicas whose
// place a client takes (promotion). Meanwhile each of them sends stamped
// values (half WithMessage) to "churn", received on two of the first three
// (never killed), and registers and closes private names; every node runs
// a linearizability client. DCHAN_CHAOS_NODES sets the number of processes
// (default 10; the long form: 200), DCHAN_CHAOS_DURATION the churn's
// length (default 30s).
//
// It asserts: every node's registry view agrees at the end, and shows the
// clients as clients; every confirmed value is received exactly once, in
// per-pair order; the registry history is linearizable, client expiries
// and rejoins included; goroutines and heap of every process stay
// bounded; values are confirmed again after the last restart.
func TestClientChurn(t *testing.T) {
	t.Parallel()
	size := envInt(t, "DCHAN_CHAOS_NODES", 10)
	duration := envDuration(t, "DCHAN_CHAOS_DURATION", 30*time.Second)
	const replicas = 5
	if size < replicas+2 {
		t.Fatalf("DCHAN_CHAOS_NODES=%d: at least %d (%d replicas, 2 clients)", size, replicas+2, replicas)
	}
	rng := newRand(t)
	bin := buildNode(t)
	led := newLedger()
	c := newCluster(t, bin, led, "127.0.0.6", size)
	// Nodes join through the first three only: a restarted node must not
	// need a killed one to be up.
	c.peers = func(p *proc, inc int) []string {
		if p == c.procs[0] && inc == 1 {
			return nil
		}
		var peers []string
		for _, q := range c.procs[:3] {
			if q != p {
				peers = append(peers, q.addr)
			}
		}
		return peers
	}
	// The whole cluster sends about 400 values a second, makes about 50
	// linearizability operations and 20 private registrations a second,
	// whatever its size.
	rate := max(400/size, 5)
	linEvery := max(200*time.Millisecond, time.Duration(size)*20*time.Millisecond)
	// Names to operate on grow with the cluster too: the checker searches
	// each name's history on its own, and a long one of a name many nodes
	// share with kills among them is more than it can search in time.
	linNames := max(2, size/10)
	churnEvery := max(time.Second, time.Duration(size)*50*time.Millisecond) // private names: about 20 a second
	common := []string{"-max-replicas", fmt.Sprint(replicas), "-buf", "16", "-timeout", "10s",
		"-lin-every", linEvery.String(), "-lin-names", fmt.Sprint(linNames)}
	grace := 2 * time.Second
	if size <= 20 {
		common = append(common, "-expire", "2s", "-stats", "2s")
	} else {
		// Hundreds of processes on a few cores: Raft's and the failure
		// detector's timings of a loaded WAN, so that the test measures
		// the library rather than the machine's run queue.
		grace = 8 * time.Second
		common = append(common, "-expire", grace.String(), "-heartbeat", "1s", "-election", "2s", "-stats", "10s",
			"-join-timeout", "3m")
		c.upWithin = 3 * time.Minute
	}
	for i, p := range c.procs {
		switch {
		case i == 0:
			p.args = func(int) []string { return common }
		case i < 3:
			p.args = func(int) []string { return append(common, "-receive", "churn") }
		default:
			p.args = func(int) []string {
				return append(common, "-send", "churn", "-rate", fmt.Sprint(rate), "-message-every", "2",
					"-registry-churn", churnEvery.String())
			}
		}
	}
	started := time.Now()
	for _, p := range c.procs {
		c.start(p)
	}
	t.Logf("%d processes up in %v", size, time.Since(started).Round(time.Millisecond))

	killable := c.procs[3:]
	kills := 0
	start := time.Now()
	var lastRestart time.Time
	for time.Since(start) < duration {
		time.Sleep(time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))) // the schedule of faults
		victim := killable[rng.IntN(len(killable))]
		led.killed(victim.sender())
		c.kill(victim)
		kills++
		time.Sleep(time.Duration(rng.Int64N(int64(2 * grace)))) // down for up to twice the grace: often expired
		c.start(victim)
		lastRestart = time.Now()
	}
	recovered := c.waitFor(15*time.Second, func() bool { return led.confirmedWrittenAfter(lastRestart) })
	c.stopAll(30 * time.Second)
	checkConverged(t, c)
	if views, err := c.views(); err == nil {
		for v := range views {
			if n := strings.Count(v, ":true:false:true"); n != size-replicas {
				t.Errorf("%d live clients in the view, want %d: %s", n, size-replicas, v)
			}
			break
		}
	}
	if !c.waitFor(20*time.Second, func() bool { return led.confirmedReceived("churn") }) {
		t.Errorf("confirmed values of \"churn\" still not received 20s after the senders stopped")
	}
	c.quitAll()

	checkRegistryHistory(t, c, led)
	s := led.summarize()
	led.mu.Lock()
	expiries := len(led.expiredNodes())
	led.mu.Unlock()
	t.Logf("client churn: %d nodes (%d replicas), %v, %d kills; expiries: %d; handles: %d confirmed, %d failed %v (slowest %v); "+
		"received %d (%d distinct); duplicates %d; confirmed not received %d; FIFO violations %d; max goroutines %d, max heap %.1f MiB per process",
		size, replicas, time.Since(start).Round(time.Second), kills, expiries, s.confirmed, s.failed, s.failures, s.maxLatency,
		s.received, s.distinct, s.duplicates, s.confirmedNotReceived, len(s.fifo), s.maxGoroutines, float64(s.maxHeap)/(1<<20))

	// Beyond the small cluster's bound, a connection's goroutines per peer.
	checkCommonWithin(t, s, maxNodeGoroutines+8*size)
	if s.confirmedNotReceived > 0 {
		t.Errorf("%d confirmed values never received, e.g. %v", s.confirmedNotReceived, s.lostExamples)
	}
	if kills == 0 || s.confirmed == 0 {
		t.Errorf("%d kills, %d values confirmed: the test checked nothing", kills, s.confirmed)
	}
	if !recovered {
		t.Errorf("no value written after the last restart was confirmed within 15s: the cluster did not recover")
	}
}
