package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// Bounds on each node process during the churn and partition tests. A
// node with a few names, three senders' links and Raft runs well under a
// hundred goroutines and a few MiB of heap; the bounds leave room for
// bursts (reconnects, a snapshot) while catching growth per value, per
// kill or per round.
const (
	maxNodeGoroutines = 400
	maxNodeHeap       = 64 << 20
)

const churnBuf = 16 // receiver and send channel buffer in the churn test

// TestCrashChurn runs five node processes, SIGKILLs one of three of them
// every few seconds and restarts it on the same address and data dir,
// while three senders send stamped values (half of them WithMessage) to two
// names and register and unregister names of their own.
//
//   - "churn" is received on n4 and n5, which are never killed: every value
//     whose handle reported success must be received exactly once.
//   - "churn-k" is received on n4 and on n3, which is killed like the
//     senders: a confirmed value may then be lost in n3's buffer (memory),
//     but at most the buffer plus the value being handed over per kill of n3.
//
// For both: no value received twice, per (sender, receiver) sequence
// strictly increasing, goroutines and heap of every process bounded.
func TestCrashChurn(t *testing.T) {
	t.Parallel()
	duration := envDuration(t, "DCHAN_CHAOS_DURATION", 30*time.Second)
	minGap, maxGap := 3*time.Second, 6*time.Second
	if duration >= 5*time.Minute {
		minGap, maxGap = 5*time.Second, 15*time.Second
	}
	rng := newRand(t)
	bin := buildNode(t)
	led := newLedger()
	c := newCluster(t, bin, led, "127.0.0.2", 5)
	// The grace is longer than a node stays down, so that a restarted node
	// rejoins before the leader expires it: a restart that overlaps the
	// expiry of its previous incarnation can leave it outside the Raft
	// configuration (see TestRestartAroundExpiryRejoins).
	// DCHAN_CHAOS_ANY_DOWNTIME=1 shortens the grace to 2s and keeps nodes
	// down for 0–6s, to run into that.
	anyDowntime := os.Getenv("DCHAN_CHAOS_ANY_DOWNTIME") == "1"
	expire := "10s"
	if anyDowntime {
		expire = "2s"
	}
	common := []string{"-buf", fmt.Sprint(churnBuf), "-timeout", "5s", "-expire", expire, "-lin-every", "100ms"}
	sender := func(inc int) []string {
		return append(common, "-send", "churn,churn-k", "-rate", "100", "-message-every", "2",
			"-registry-churn", "500ms")
	}
	c.procs[0].args = sender
	c.procs[1].args = sender
	c.procs[2].args = func(inc int) []string { return append(sender(inc), "-receive", "churn-k") }
	c.procs[3].args = func(int) []string { return append(common, "-receive", "churn,churn-k") }
	c.procs[4].args = func(int) []string { return append(common, "-receive", "churn") }
	for _, p := range c.procs {
		c.start(p)
	}

	killable := c.procs[:3]
	kills := make(map[string]int)
	start := time.Now()
	var lastRestart time.Time
	for time.Since(start) < duration {
		gap := minGap + time.Duration(rng.Int64N(int64(maxGap-minGap)))
		time.Sleep(gap) // the schedule of faults, not an assertion
		victim := killable[rng.IntN(len(killable))]
		led.killed(victim.sender())
		c.kill(victim)
		led.forgetRole(victim.id)
		kills[victim.id]++
		time.Sleep(downtime(rng)) // the schedule of faults, not an assertion
		c.start(victim)
		lastRestart = time.Now()
	}
	// Liveness: values are confirmed again after the last restart.
	recovered := c.waitFor(15*time.Second, func() bool { return led.confirmedWrittenAfter(lastRestart) })
	c.stopAll(30 * time.Second)
	checkConverged(t, c)
	if !c.waitFor(20*time.Second, func() bool { return led.confirmedReceived("churn") }) {
		t.Errorf("confirmed values of \"churn\" still not received 20s after the senders stopped")
	}
	c.quitAll()

	checkRegistryHistory(t, c, led)
	s := led.summarize()
	totalKills := 0
	for _, n := range kills {
		totalKills += n
	}
	t.Logf("churn: %v, %d kills %v; handles: %d confirmed, %d failed %v (slowest %v); received %d (%d distinct) %v; "+
		"duplicates %d; confirmed not received: %v; FIFO violations %d; max goroutines %d, max heap %.1f MiB per process",
		time.Since(start).Round(time.Second), totalKills, kills, s.confirmed, s.failed, s.failures, s.maxLatency,
		s.received, s.distinct, s.receivedPerReceiver, s.duplicates, s.confirmedNotReceivedByName, len(s.fifo),
		s.maxGoroutines, float64(s.maxHeap)/(1<<20))

	checkCommon(t, s)
	if n := s.confirmedNotReceivedByName["churn"]; n > 0 {
		t.Errorf("%d confirmed values of \"churn\" (receivers never killed) were never received, e.g. %v", n, s.lostExamples)
	}
	if n, bound := s.confirmedNotReceivedByName["churn-k"], kills["n3"]*(churnBuf+2); n > bound {
		t.Errorf("%d confirmed values of \"churn-k\" lost, more than n3's buffer+2 per kill of n3 (%d kills: %d)", n, kills["n3"], bound)
	}
	if totalKills == 0 {
		t.Errorf("no node was killed: the test checked nothing")
	}
	if !recovered {
		t.Errorf("no value written after the last restart was confirmed within 15s: the cluster did not recover")
	}
}

// downtime is how long a killed node stays down: 0–2s, less than the
// grace (10s), or 0–6s with DCHAN_CHAOS_ANY_DOWNTIME=1 (grace 2s).
func downtime(rng *rand.Rand) time.Duration {
	if os.Getenv("DCHAN_CHAOS_ANY_DOWNTIME") == "1" {
		return time.Duration(rng.Int64N(int64(6 * time.Second)))
	}
	return time.Duration(rng.Int64N(int64(2 * time.Second)))
}
