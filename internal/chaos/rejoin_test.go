package chaos

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dchan-io/dchan/internal/faultproxy"
)

// The tests in this file reproduce bugs the suite found in the library,
// fixed since; docs/reliability.md describes each.

// TestRestartAroundExpiryRejoins kills a node and restarts it, on the same
// address and data dir, around the moment the leader expires its previous
// incarnation (grace 2s). Every restart must join.
func TestRestartAroundExpiryRejoins(t *testing.T) {
	t.Parallel()
	bin := buildNode(t)
	c := newCluster(t, bin, newLedger(), "127.0.0.4", 3)
	for _, p := range c.procs {
		p.args = func(int) []string { return []string{"-expire", "2s", "-join-timeout", "20s"} }
		c.start(p)
	}
	victim := c.procs[2]
	downs := []time.Duration{1800, 2200, 3000}
	if os.Getenv("DCHAN_CHAOS_DURATION") != "" {
		downs = []time.Duration{1800, 2000, 2200, 2500, 3000, 4000, 5000}
	}
	for _, down := range downs {
		c.kill(victim)
		time.Sleep(down * time.Millisecond) // the schedule, not an assertion
		t.Logf("restarting %s after %v down", victim.id, down*time.Millisecond)
		c.start(victim) // fails the test if it does not join within 30s
		time.Sleep(3 * time.Second)
	}
	c.quitAll()
}

// TestBootstrapNodeRejoinsAfterExpiry cuts the node that bootstrapped the
// cluster (started without WithPeers) off for longer than the grace, heals,
// and expects every node, that one included, to commit a registry write
// again.
func TestBootstrapNodeRejoinsAfterExpiry(t *testing.T) {
	t.Parallel()
	bin := buildNode(t)
	nw := faultproxy.NewNetwork()
	t.Cleanup(func() { _ = nw.Close() })
	led := newLedger()
	c := newCluster(t, bin, led, "127.0.0.5", 3)
	addrs := make(map[string]string)
	for _, p := range c.procs {
		addrs[p.id] = p.addr
		var redirect []string
		for _, q := range c.procs {
			if q != p {
				l, err := nw.Link(p.id, q.addr)
				if err != nil {
					t.Fatal(err)
				}
				redirect = append(redirect, q.addr+"="+l.Addr())
			}
		}
		p.args = func(int) []string { return []string{"-expire", "1s", "-redirect", strings.Join(redirect, ",")} }
	}
	for _, p := range c.procs {
		c.start(p)
	}
	cut := map[string]string{"n1": addrs["n1"]}
	rest := map[string]string{"n2": addrs["n2"], "n3": addrs["n3"]}
	if err := nw.Partition(cut, rest); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // longer than the grace: n1 is expired
	if err := nw.Reconnect(cut, rest); err != nil {
		t.Fatal(err)
	}
	if pending, _ := settle(c, led, "after-heal", 20*time.Second); len(pending) > 0 {
		t.Errorf("nodes that did not commit a write within 20s of the heal: %v", pending)
	}
	c.quitAll()
}
