package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dchan-io/dchan/internal/faultproxy"
)

// Timings of the partition rounds.
const (
	partCut        = 4 * time.Second // how long a cut or pause lasts
	partExpire     = time.Second     // channel.WithExpireAfter: the grace
	partTimeout    = 30 * time.Second
	majorityWithin = 3 * time.Second // a majority commits a write again within this of the cut
	// graceSlack is what failure detection may take beyond the grace
	// before a handle in flight to a cut node fails.
	graceSlack = 1500 * time.Millisecond
)

// Fault modes of a round.
const (
	modeDisconnect = "disconnect" // every link between the sides reset, both ways
	modeBlackhole  = "blackhole"  // links kept open, nothing forwarded either way
	modeOneWay     = "one-way"    // the cut side's bytes to the others dropped; theirs still arrive
	modePause      = "pause"      // the cut nodes SIGSTOPped
)

type round struct {
	n        int
	mode     string
	cut      []string // node IDs on the cut side (the leader first)
	rest     []string
	majority []string // the side with a quorum, if any
	minority []string
	faultAt  time.Time // just before the fault was applied
	cutAt    time.Time
	healAt   time.Time
	// recovered is how long after the cut the side with a quorum first
	// committed a write: the election, when the leader was cut off.
	recovered time.Duration
}

// TestPartitionRounds runs five node processes whose every connection goes
// through its own fault proxy (one per ordered pair of nodes), and for each
// round cuts the leader and 0–3 other nodes off from the rest for 4s —
// links reset, blackholed both ways, blackholed one way, or the cut
// processes paused with SIGSTOP — then heals and waits until every node
// commits a write again. Every node sends WithMessage values (30s timeout)
// to "part", which every node receives.
//
// It asserts: no value is received twice and per-pair order holds; every
// confirmed value is received (nobody dies, so no buffer is lost); no node
// on a side without a quorum reports a committed write before the heal;
// a side with a quorum commits a write within 3s of the cut; a handle
// written at the cut, by a sender on the quorum side, resolves within the
// grace plus 1.5s (its receiver may be cut off: it must fail, not hang
// until the heal); no handle runs into its timeout; goroutines and heap of
// every process stay bounded.
func TestPartitionRounds(t *testing.T) {
	t.Parallel()
	rounds := envInt(t, "DCHAN_CHAOS_ROUNDS", 4)
	rng := newRand(t)
	bin := buildNode(t)
	nw := faultproxy.NewNetwork()
	t.Cleanup(func() { _ = nw.Close() })
	led := newLedger()
	c := newCluster(t, bin, led, "127.0.0.3", 5)
	byID := make(map[string]*proc)
	for _, p := range c.procs {
		byID[p.id] = p
		var redirect []string
		for _, q := range c.procs {
			if q == p {
				continue
			}
			l, err := nw.Link(p.id, q.addr)
			if err != nil {
				t.Fatal(err)
			}
			redirect = append(redirect, q.addr+"="+l.Addr())
		}
		p.args = func(inc int) []string {
			if p == c.procs[0] && inc == 1 {
				return []string{"-redirect", strings.Join(redirect, ",")}
			}
			return []string{"-redirect", strings.Join(redirect, ","), "-receive", "part", "-send", "part",
				"-rate", "50", "-message-every", "1", "-timeout", partTimeout.String(),
				"-expire", partExpire.String(), "-buf", "16", "-lin-every", "100ms"}
		}
	}
	for _, p := range c.procs {
		c.start(p)
	}
	// The bootstrap node knows no peers, and a node without peers that the
	// cluster expired during a cut never rejoins (see
	// TestBootstrapNodeRejoinsAfterExpiry): restart it, gracefully, with
	// peers before the traffic begins.
	c.quit(c.procs[0])
	led.forgetRole(c.procs[0].id)
	c.start(c.procs[0])

	var done []round
	var violations []string
	rejoinErrors := 0
	start := time.Now()
	for i := range rounds {
		r := planRound(t, rng, c, led, i)
		t.Logf("round %d: %s, cut %v from %v", i, r.mode, r.cut, r.rest)
		r.faultAt = time.Now()
		applyFault(t, c, nw, byID, &r, true)
		r.cutAt = time.Now()
		for _, p := range c.procs {
			if r.mode == modePause && slices.Contains(r.cut, p.id) {
				continue
			}
			c.command(p, fmt.Sprintf("probe r%d-%s", i, p.id))
		}
		time.Sleep(partCut) // the schedule of the fault, not an assertion
		r.healAt = time.Now()
		applyFault(t, c, nw, byID, &r, false)
		var late []string
		r.recovered, late = checkRoundWrites(c, led, r)
		violations = append(violations, late...)
		// Settle: every node commits a write again before the next round.
		// A write that fails while its node rejoins (after it was expired
		// during the cut) is retried.
		settled, errs := settle(c, led, fmt.Sprintf("s%d", i), 30*time.Second)
		rejoinErrors += errs
		if len(settled) > 0 {
			t.Fatalf("round %d: not every node committed a write within 30s of the heal: %v", i, settled)
		}
		done = append(done, r)
	}
	c.stopAll(partTimeout + 10*time.Second)
	checkConverged(t, c)
	if !c.waitFor(20*time.Second, func() bool { return led.confirmedReceived("part") }) {
		t.Errorf("confirmed values still not received 20s after the senders stopped")
	}
	// A rejoin still registering its receivers again when the processes
	// quit would leave its Restores open in the history (they may happen
	// any time after), which the checker's search pays for dearly: let
	// the last rejoin finish first.
	if !c.waitFor(30*time.Second, func() bool { return led.rejoinsInProgress() == 0 }) {
		t.Logf("%d rejoins still registering receivers again 30s after the senders stopped", led.rejoinsInProgress())
	}
	c.quitAll()

	checkRegistryHistory(t, c, led)

	graceViolations, graceChecked, slowest := checkGrace(led, done)
	violations = append(violations, graceViolations...)
	s := led.summarize()
	var faults []string
	for _, r := range done {
		faults = append(faults, fmt.Sprintf("%s×%d", r.mode, len(r.cut)))
	}
	t.Logf("partitions: %v, %d rounds %v; handles: %d confirmed, %d failed %v (slowest %v); received %d (%d distinct); "+
		"duplicates %d; confirmed not received %d; FIFO violations %d; handles at a cut checked for the grace: %d (slowest %v); "+
		"writes failed while their node rejoined after the heal: %d; max goroutines %d, max heap %.1f MiB per process",
		time.Since(start).Round(time.Second), len(done), faults, s.confirmed, s.failed, s.failures, s.maxLatency,
		s.received, s.distinct, s.duplicates, s.confirmedNotReceived, len(s.fifo), graceChecked, slowest,
		rejoinErrors, s.maxGoroutines, float64(s.maxHeap)/(1<<20))

	checkCommon(t, s)
	if s.confirmedNotReceived > 0 {
		t.Errorf("%d confirmed values never received, e.g. %v", s.confirmedNotReceived, s.lostExamples)
	}
	if n := s.failures["timed out"]; n > 0 {
		t.Errorf("%d handles ran into their %v timeout instead of resolving", n, partTimeout)
	}
	for _, v := range violations {
		t.Error(v)
	}
	if s.confirmed == 0 {
		t.Errorf("no value confirmed: the test checked nothing")
	}
}

// planRound picks the cut side: the current leader and 0–3 others, and a
// fault mode.
func planRound(t *testing.T, rng *rand.Rand, c *cluster, led *ledger, i int) round {
	t.Helper()
	var leader string
	if !c.waitFor(15*time.Second, func() bool {
		var ok bool
		leader, ok = led.leader()
		return ok
	}) {
		t.Fatalf("round %d: no leader reported within 15s", i)
	}
	modes := partitionModes(t)
	r := round{n: i, mode: modes[rng.IntN(len(modes))]}
	r.cut = []string{leader}
	var others []string
	for _, p := range c.procs {
		if p.id != leader {
			others = append(others, p.id)
		}
	}
	rng.Shuffle(len(others), func(a, b int) { others[a], others[b] = others[b], others[a] })
	k := rng.IntN(4)
	r.cut = append(r.cut, others[:k]...)
	r.rest = others[k:]
	switch {
	case len(r.rest) >= 3:
		r.majority, r.minority = r.rest, r.cut
	case len(r.cut) >= 3 && r.mode != modePause && r.mode != modeOneWay:
		// One way, the cut side cannot reach the others but they reach it:
		// which side keeps the quorum depends on timing, so neither is
		// asserted beyond "a side without a quorum never commits".
		r.majority, r.minority = r.cut, r.rest
	case r.mode == modeOneWay:
		r.minority = nil
	default:
		r.minority = r.rest
	}
	if r.mode == modePause {
		r.minority = slices.DeleteFunc(slices.Clone(r.minority), func(id string) bool { return slices.Contains(r.cut, id) })
	}
	return r
}

// applyFault cuts (on) or heals (!on) the round's fault.
func applyFault(t *testing.T, c *cluster, nw *faultproxy.Network, byID map[string]*proc, r *round, on bool) {
	t.Helper()
	if r.mode == modePause {
		sig := syscall.SIGCONT
		if on {
			sig = syscall.SIGSTOP
		}
		for _, id := range r.cut {
			c.signal(byID[id], sig)
		}
		return
	}
	for _, a := range r.cut {
		for _, b := range r.rest {
			ab, err := nw.Link(a, byID[b].addr)
			if err != nil {
				t.Fatal(err)
			}
			ba, err := nw.Link(b, byID[a].addr)
			if err != nil {
				t.Fatal(err)
			}
			if !on {
				ab.Reconnect()
				ab.Heal()
				ba.Reconnect()
				ba.Heal()
				continue
			}
			switch r.mode {
			case modeDisconnect:
				ab.Disconnect()
				ba.Disconnect()
			case modeBlackhole:
				ab.Blackhole(faultproxy.Both)
				ba.Blackhole(faultproxy.Both)
			case modeOneWay: // bytes from the cut side to the rest are dropped
				ab.Blackhole(faultproxy.ClientToServer)
				ba.Blackhole(faultproxy.ServerToClient)
			}
		}
	}
}

// checkRoundWrites checks the round's write probes: none committed on a
// side without a quorum before the heal, and one committed on the side
// with the quorum within majorityWithin of the cut. It returns how long
// after the cut that side first committed (-1 or 0: it did not, or there
// is no such side) and the violations.
func checkRoundWrites(c *cluster, led *ledger, r round) (time.Duration, []string) {
	var out []string
	for _, id := range r.minority {
		tag := fmt.Sprintf("r%d-%s", r.n, id)
		// The probe may commit after the heal; before it, never.
		c.waitFor(time.Second, func() bool { _, ok := led.probe(tag); return ok })
		if res, ok := led.probe(tag); ok && res.ok && res.at.Before(r.healAt) {
			out = append(out, fmt.Sprintf("round %d (%s): %s, on the side without a quorum, committed a write %v after the cut, before the heal",
				r.n, r.mode, id, res.at.Sub(r.cutAt).Round(time.Millisecond)))
		}
	}
	if len(r.majority) > 0 {
		first := time.Duration(-1)
		var each []string
		for _, id := range r.majority {
			res, ok := led.probe(fmt.Sprintf("r%d-%s", r.n, id))
			switch {
			case !ok:
				each = append(each, id+": pending at the heal")
			case !res.ok:
				each = append(each, id+": "+res.err)
			default:
				d := res.at.Sub(r.cutAt)
				each = append(each, fmt.Sprintf("%s: %v", id, d.Round(time.Millisecond)))
				if first < 0 || d < first {
					first = d
				}
			}
		}
		if first < 0 || first > majorityWithin {
			out = append(out, fmt.Sprintf("round %d (%s, cut %v): the side with the quorum %v did not commit a write within %v of the cut (%s)",
				r.n, r.mode, r.cut, r.majority, majorityWithin, strings.Join(each, ", ")))
		}
		return first, out
	}
	return 0, out
}

// checkGrace checks the handles written around each cut by senders on the
// quorum side: each resolves within the grace plus graceSlack after that
// side has a leader again (its first committed write after the cut; the
// leader is always on the cut side, so an election comes first, and the
// grace runs from it). It returns the violations, how many handles it
// checked and the slowest.
func checkGrace(led *ledger, rounds []round) ([]string, int, time.Duration) {
	led.mu.Lock()
	defer led.mu.Unlock()
	var out []string
	checked := 0
	var slowest time.Duration
	for _, r := range rounds {
		if len(r.majority) == 0 || r.majority[0] != r.rest[0] || r.recovered <= 0 {
			continue // only rounds where the cut side is the minority (and the rest recovered: else a failure already)
		}
		bound := r.recovered + partExpire + graceSlack
		late := 0
		for _, h := range led.handles {
			node, _, _ := strings.Cut(h.v.sender, ".")
			if !slices.Contains(r.majority, node) || h.written.Before(r.cutAt.Add(-500*time.Millisecond)) ||
				h.written.After(r.cutAt.Add(500*time.Millisecond)) {
				continue
			}
			checked++
			slowest = max(slowest, h.latency)
			if h.latency > bound {
				late++
			}
		}
		if late > 0 {
			out = append(out, fmt.Sprintf("round %d (%s, cut %v for %v): %d handles written at the cut by the quorum side took longer than "+
				"its election %v + the grace %v + %v to resolve", r.n, r.mode, r.cut, partCut, late,
				r.recovered.Round(time.Millisecond), partExpire, graceSlack))
		}
	}
	return out, checked, slowest
}

// settle makes every node commit a registry write, retrying a write that
// failed, until all did or within passed. It returns the nodes that did
// not (with their last outcome) and how many writes failed on the way.
func settle(c *cluster, led *ledger, prefix string, within time.Duration) ([]string, int) {
	tags := make(map[string]string)
	attempt := 0
	issue := func(p *proc) {
		attempt++
		tags[p.id] = fmt.Sprintf("%s-%s-%d", prefix, p.id, attempt)
		c.command(p, "probe "+tags[p.id])
	}
	for _, p := range c.procs {
		issue(p)
	}
	failed := 0
	c.waitFor(within, func() bool {
		all := true
		for _, p := range c.procs {
			res, ok := led.probe(tags[p.id])
			switch {
			case !ok:
				all = false
			case !res.ok:
				all = false
				failed++
				issue(p)
			}
		}
		return all
	})
	var pending []string
	for _, p := range c.procs {
		if res, ok := led.probe(tags[p.id]); !ok || !res.ok {
			pending = append(pending, fmt.Sprintf("%s: %+v", p.id, res))
		}
	}
	return pending, failed
}

// partitionModes returns the fault modes rounds draw from:
// DCHAN_CHAOS_MODES (comma-separated), by default all four.
func partitionModes(t *testing.T) []string {
	all := []string{modeDisconnect, modeBlackhole, modeOneWay, modePause}
	env := os.Getenv("DCHAN_CHAOS_MODES")
	if env == "" || env == "all" {
		return all
	}
	modes := strings.Split(env, ",")
	for _, m := range modes {
		if !slices.Contains(all, m) {
			t.Fatalf("DCHAN_CHAOS_MODES: unknown mode %q (modes: %v)", m, all)
		}
	}
	return modes
}
