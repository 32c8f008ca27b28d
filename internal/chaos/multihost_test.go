package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dchan-io/dchan/internal/netns"
)

// The multi-host suite: every node runs as its own process on its own
// "host", a network namespace the test creates with an address that exists
// only there (internal/netns), listening on 0.0.0.0 as on a VM or in a
// container, with nothing but the detected address to advertise. It needs
// root and iproute2, and skips without them.

// nodePort is the port every node listens on, on its own host.
const nodePort = "7001"

// newHosts creates n hosts, or skips the test when namespaces cannot be
// made here.
func newHosts(t *testing.T, n int) *netns.Net {
	t.Helper()
	if ok, reason := netns.Available(); !ok {
		t.Skip("multi-host tests need network namespaces: " + reason)
	}
	nw, err := netns.New(netns.Config{Hosts: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Error(err)
		}
	})
	return nw
}

// newHostCluster places one chaosnode per host, listening on 0.0.0.0.
func newHostCluster(t *testing.T, bin string, led *ledger, nw *netns.Net) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: bin, dir: t.TempDir(), led: led}
	for i, h := range nw.Hosts() {
		id := fmt.Sprintf("n%d", i+1)
		c.procs = append(c.procs, &proc{id: id, addr: net.JoinHostPort(h.IP, nodePort), listen: "0.0.0.0:" + nodePort,
			host: h, dataDir: filepath.Join(c.dir, id)})
	}
	t.Cleanup(func() {
		c.killAll()
		if t.Failed() || os.Getenv("DCHAN_CHAOS_KEEP_LOGS") == "1" {
			c.keepLogs()
		}
	})
	return c
}

// buildPingpong builds cmd/pingpong into a temporary directory.
func buildPingpong(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building needs the go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pingpong")
	cmd := exec.Command(goBin, "build", "-o", bin, "../../cmd/pingpong")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build pingpong: %v\n%s", err, out)
	}
	return bin
}

// pingpongRun is one pingpong process on a host.
type pingpongRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
	took           time.Duration
}

func startPingpong(t *testing.T, h *netns.Host, bin string, args ...string) *pingpongRun {
	t.Helper()
	r := &pingpongRun{cmd: h.Command(bin, args...), done: make(chan error, 1)}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	start := time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := r.cmd.Wait()
		r.took = time.Since(start)
		r.done <- err
	}()
	return r
}

func (r *pingpongRun) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(within):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("pingpong %v still running after %v; stderr:\n%s", r.cmd.Args, within, r.stderr.String())
		return nil
	}
}

// TestMultiHostPingpongOnAnyAddress is the deployment experiment as a new
// user runs it: three hosts, pingpong -listen 0.0.0.0:7001 on each, the
// second and third joining the first by its address. Each node advertises
// its host's address, the cluster forms and plays, every process exits
// when its -d runs out. A join to an address where nothing listens exits
// non-zero within -join-timeout + 5 s, naming the address.
func TestMultiHostPingpongOnAnyAddress(t *testing.T) {
	nw := newHosts(t, 4)
	bin := buildPingpong(t)
	hosts := nw.Hosts()
	first := net.JoinHostPort(hosts[0].IP, nodePort)
	var runs []*pingpongRun
	for i, h := range hosts[:3] {
		args := []string{"-id", fmt.Sprintf("n%d", i+1), "-listen", "0.0.0.0:" + nodePort, "-d", fmt.Sprint(4+i) + "s", "-json"}
		if i > 0 {
			args = append(args, "-join", first)
		}
		runs = append(runs, startPingpong(t, h, bin, args...))
		if i == 0 {
			time.Sleep(300 * time.Millisecond) // let n1 bootstrap first, as the user would
		}
	}
	members := map[string]bool{}
	var firstReport []string
	for i, r := range runs {
		if err := r.wait(t, 30*time.Second); err != nil {
			t.Fatalf("n%d: %v\nstderr:\n%s", i+1, err, r.stderr.String())
		}
		var rep struct {
			Messages int64    `json:"messages"`
			Members  []string `json:"members"`
		}
		if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil {
			t.Fatalf("n%d: report %q: %v", i+1, r.stdout.String(), err)
		}
		if rep.Messages == 0 {
			t.Errorf("n%d played no round trip", i+1)
		}
		for _, m := range rep.Members {
			members[m] = true
		}
		if i == 0 {
			firstReport = rep.Members // n1 stops first, while all three are up
		}
		t.Logf("n%d: %d messages, exited after %v, members %v", i+1, rep.Messages, r.took.Round(time.Millisecond), rep.Members)
	}
	for i, h := range hosts[:3] {
		want := fmt.Sprintf("n%d@%s:%s (voter)", i+1, h.IP, nodePort)
		if !slices.Contains(firstReport, want) {
			t.Errorf("n1's report does not list %s: %v", want, firstReport)
		}
	}
	for m := range members {
		if strings.Contains(m, "0.0.0.0") || strings.Contains(m, "[::]") || strings.Contains(m, "127.0.0.1") {
			t.Errorf("a member advertises an address other hosts cannot dial: %s", m)
		}
	}

	// Nothing listens on the fourth host's port: connection refused.
	dead := net.JoinHostPort(hosts[3].IP, "7009")
	r := startPingpong(t, hosts[0], bin, "-id", "late", "-listen", "0.0.0.0:7002", "-join", dead, "-join-timeout", "3s", "-d", "1s")
	err := r.wait(t, 3*time.Second+5*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("a join to %s exited with %v, want a non-zero exit; stderr:\n%s", dead, err, r.stderr.String())
	}
	t.Logf("failed join exited %d after %v: %s", exit.ExitCode(), r.took.Round(time.Millisecond), lastLine(r.stderr.String()))
	if msg := lastLine(r.stderr.String()); !strings.Contains(msg, dead) || !strings.Contains(msg, "connection refused") {
		t.Errorf("the error does not name %s and the cause: %s", dead, msg)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// formWithBootstrapExpect starts every node of c at once with
// -bootstrap-expect and the given peers, waits until all are up, and
// checks that they form one cluster: after a Sync every node reports the
// same view, listing every node at its host's address.
func formWithBootstrapExpect(t *testing.T, c *cluster, peers []string, extra ...string) time.Duration {
	t.Helper()
	n := len(c.procs)
	c.peers = func(*proc, int) []string { return peers }
	for _, p := range c.procs {
		p.args = func(int) []string {
			return append([]string{"-bootstrap-expect", fmt.Sprint(n), "-receive", "work-" + p.id}, extra...)
		}
	}
	start := time.Now()
	for _, p := range c.procs {
		c.launch(p)
	}
	for _, p := range c.procs {
		c.waitUp(p, 30*time.Second)
	}
	formed := time.Since(start)
	views, err := c.converged(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 {
		t.Fatalf("the nodes formed more than one cluster, or disagree: %v", views)
	}
	for view := range views {
		for _, p := range c.procs {
			if want := fmt.Sprintf("m:%s@%s:true:", p.id, p.addr); !strings.Contains(view, want) {
				t.Errorf("the cluster's view lacks %s: %s", want, view)
			}
		}
	}
	return formed
}

// TestMultiHostBootstrapExpect: 3 and 5 hosts started at the same instant
// with -bootstrap-expect and every host's address as peers form exactly
// one cluster.
func TestMultiHostBootstrapExpect(t *testing.T) {
	bin := buildNode(t)
	rounds := envInt(t, "DCHAN_MULTIHOST_ROUNDS", 1)
	for _, n := range []int{3, 5} {
		for round := range rounds {
			t.Run(fmt.Sprintf("%d hosts/%d", n, round), func(t *testing.T) {
				nw := newHosts(t, n)
				c := newHostCluster(t, bin, newLedger(), nw)
				var peers []string
				for _, p := range c.procs {
					peers = append(peers, p.addr)
				}
				t.Logf("formed in %v", formWithBootstrapExpect(t, c, peers))
				c.quitAll()
			})
		}
	}
}

// TestMultiHostDNSPeers: five hosts whose only peer is a DNS name, served
// by a DNS server the test runs on the bridge's address (each host's
// resolv.conf names it), which resolves to every host, as a Kubernetes
// headless Service does. They find each other through it and form one
// cluster with -bootstrap-expect 5.
func TestMultiHostDNSPeers(t *testing.T) {
	bin := buildNode(t)
	nw := newHosts(t, 5)
	var ips []string
	for _, h := range nw.Hosts() {
		ips = append(ips, h.IP)
	}
	queries := serveDNS(t, nw.BridgeIP(), "dchan.test.", ips)
	for _, h := range nw.Hosts() {
		if err := h.SetResolvConf("nameserver " + nw.BridgeIP() + "\noptions timeout:1 attempts:2\n"); err != nil {
			t.Fatal(err)
		}
	}
	c := newHostCluster(t, bin, newLedger(), nw)
	t.Logf("formed in %v; %d DNS queries answered", formWithBootstrapExpect(t, c, []string{"dchan.test:" + nodePort}), queries())
	c.quitAll()
}

// serveDNS answers A queries for name with ips (and AAAA with nothing) on
// addr:53, UDP and TCP, until the test ends; it returns a count of the
// queries answered.
func serveDNS(t *testing.T, addr, name string, ips []string) func() int {
	t.Helper()
	var mu sync.Mutex
	count := 0
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		for _, q := range req.Question {
			if !strings.EqualFold(q.Name, name) {
				m.Rcode = dns.RcodeNameError
				continue
			}
			if q.Qtype != dns.TypeA {
				continue
			}
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.ParseIP(ip),
				})
			}
		}
		mu.Lock()
		count++
		mu.Unlock()
		_ = w.WriteMsg(m)
	})
	for _, proto := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: net.JoinHostPort(addr, "53"), Net: proto, Handler: handler, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("DNS server on %s/%s: %v", addr, proto, err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-errc
		})
	}
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}
}

// healthInside asks a node for its health from its own host (through the
// host's loopback, so that the answer comes even while the host's link is
// down): it runs this test binary there as a probe.
func healthInside(t *testing.T, h *netns.Host) string {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^TestHealthProbeHelper$")
	cmd.Env = append(os.Environ(), "DCHAN_HEALTH_PROBE=127.0.0.1:"+nodePort)
	out, err := cmd.Output()
	if err != nil {
		return "error: " + err.Error()
	}
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "HEALTH "); ok {
			return s
		}
	}
	return "no answer: " + string(out)
}

// TestHealthProbeHelper is the probe healthInside runs; without
// DCHAN_HEALTH_PROBE it does nothing.
func TestHealthProbeHelper(t *testing.T) {
	addr := os.Getenv("DCHAN_HEALTH_PROBE")
	if addr == "" {
		return
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("HEALTH error", err)
		return
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		fmt.Println("HEALTH error", err)
		return
	}
	fmt.Println("HEALTH", resp.GetStatus())
}

// TestMultiHostCutOff takes a host's link down for 10 s while values flow
// to its receiver and to another: the host's receivers expire, handles of
// values in flight to it fail within the grace + 1.5 s, its health answers
// NOT_SERVING; after the heal it rejoins, answers SERVING and receives
// again. No value is delivered twice, none confirmed is lost, FIFO holds.
func TestMultiHostCutOff(t *testing.T) {
	const grace = 2 * time.Second
	cut := envDuration(t, "DCHAN_MULTIHOST_CUT", 10*time.Second)
	bin := buildNode(t)
	nw := newHosts(t, 3)
	led := newLedger()
	c := newHostCluster(t, bin, led, nw)
	for _, p := range c.procs {
		p.args = func(int) []string {
			// Raft at its production timings (chaosnode's own are faster),
			// whose leader lease rides out a loaded machine's hiccups: a
			// leader that steps down restarts failure detection.
			args := []string{"-expire", grace.String(), "-timeout", "8s", "-buf", "64", "-heartbeat", "500ms", "-election", "500ms"}
			if p.id == "n1" {
				return append(args, "-send", "work", "-rate", "400", "-message-every", "1")
			}
			return append(args, "-receive", "work")
		}
		c.start(p)
	}
	victim := c.procs[2]
	if !c.waitFor(10*time.Second, func() bool { return healthInside(t, victim.host) == "SERVING" }) {
		t.Fatalf("%s's health before the cut: %s", victim.id, healthInside(t, victim.host))
	}
	time.Sleep(2 * time.Second) // traffic flows to both receivers
	if err := victim.host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	notServing := time.Duration(0)
	for time.Since(cutAt) < cut {
		if notServing == 0 && healthInside(t, victim.host) == "NOT_SERVING" {
			notServing = time.Since(cutAt)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := victim.host.LinkUp(); err != nil {
		t.Fatal(err)
	}
	healAt := time.Now()
	if notServing == 0 {
		t.Errorf("%s never answered NOT_SERVING while cut off", victim.id)
	} else {
		t.Logf("%s NOT_SERVING %v after the cut (grace %v)", victim.id, notServing.Round(10*time.Millisecond), grace)
	}
	serving := c.waitFor(20*time.Second, func() bool { return healthInside(t, victim.host) == "SERVING" })
	if !serving {
		t.Errorf("%s not SERVING within 20s of the heal", victim.id)
	} else {
		t.Logf("%s SERVING %v after the heal", victim.id, time.Since(healAt).Round(10*time.Millisecond))
	}
	receivedAfterHeal := func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		return led.receivedSince(victim.id, healAt)
	}
	if !c.waitFor(20*time.Second, receivedAfterHeal) {
		t.Errorf("%s received nothing within 20s of the heal", victim.id)
	}
	c.stopAll(30 * time.Second)
	c.quitAll()

	s := led.summarize()
	checkCommon(t, s)
	if s.confirmedNotReceived > 0 {
		t.Errorf("%d confirmed values never received, e.g. %v", s.confirmedNotReceived, s.lostExamples)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	var late []string
	failedInFlight, slowest := 0, time.Duration(0)
	for _, h := range led.handles {
		resolved := h.written.Add(h.latency)
		if h.ok || resolved.Before(cutAt) || h.written.After(cutAt.Add(grace)) {
			continue
		}
		// Written before the cut was detected and failed after the cut:
		// in flight to the cut-off host.
		failedInFlight++
		took := resolved.Sub(cutAt)
		if h.written.After(cutAt) {
			took = h.latency
		}
		slowest = max(slowest, took)
		if took > grace+1500*time.Millisecond {
			late = append(late, fmt.Sprintf("%s/%d after %v (%s)", h.v.sender, h.v.seq, took, h.err))
		}
	}
	t.Logf("confirmed %d, failed %d (%d in flight at the cut, the slowest resolved %v after it), received %d; expired: %v",
		s.confirmed, s.failed, failedInFlight, slowest.Round(time.Millisecond), s.received, led.expiredNodes())
	if len(late) > 0 {
		t.Errorf("%d handles in flight to the cut-off host failed later than grace + 1.5 s, e.g. %v", len(late), late[:min(5, len(late))])
	}
	switch n := countOf(led.expiredNodes(), victim.id); n {
	case 0:
		t.Errorf("the leader never expired %s", victim.id)
	case 1:
	default:
		// Expired again after it rejoined: the connections to it stayed
		// stalled after the heal.
		t.Errorf("the leader expired %s %d times for one cut", victim.id, n)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestMultiHostRollingRestart restarts every node in turn, gracefully,
// with its data dir, while all of them send WithMessage values to a name
// all of them receive: no confirmed value is lost, none is delivered
// twice, FIFO holds, and registry writes keep committing throughout (the
// cluster never loses its quorum for longer than an election).
func TestMultiHostRollingRestart(t *testing.T) {
	bin := buildNode(t)
	nw := newHosts(t, 3)
	led := newLedger()
	c := newHostCluster(t, bin, led, nw)
	c.peers = func(p *proc, inc int) []string {
		var peers []string
		for _, q := range c.procs {
			peers = append(peers, q.addr)
		}
		return peers
	}
	for _, p := range c.procs {
		p.args = func(int) []string {
			return []string{"-bootstrap-expect", "3", "-send", "work", "-receive", "work", "-rate", "200", "-message-every", "1", "-timeout", "5s", "-buf", "32"}
		}
		c.launch(p)
	}
	for _, p := range c.procs {
		c.waitUp(p, 30*time.Second)
	}
	stopProbes := make(chan struct{})
	probesDone := make(chan []string)
	var restarting atomic.Pointer[proc]
	go func() { probesDone <- probeContinuously(c, led, &restarting, stopProbes) }()
	time.Sleep(2 * time.Second)
	for _, p := range c.procs {
		start := time.Now()
		restarting.Store(p)
		c.quit(p)
		c.launch(p)
		c.waitUp(p, 30*time.Second)
		restarting.Store(nil)
		t.Logf("%s restarted in %v", p.id, time.Since(start).Round(time.Millisecond))
		time.Sleep(2 * time.Second)
	}
	close(stopProbes)
	probes := <-probesDone
	c.stopAll(30 * time.Second)
	c.quitAll()

	s := led.summarize()
	// A graceful close refuses the values already on their way to the
	// closing receiver, and their senders route them again, to a receiver
	// that may have had later values of theirs by then: guarantee 3
	// exempts such values (docs/semantics.md). At most a receiver's buffer
	// of them per sender and restart can be on their way.
	rerouted := len(s.fifo)
	if bound := len(c.procs) * (len(c.procs) - 1) * 32; rerouted > bound {
		t.Errorf("%d values out of order, more than re-routing can explain (%d): e.g. %s", rerouted, bound, strings.Join(s.fifo[:min(5, rerouted)], "; "))
	}
	s.fifo = nil
	checkCommon(t, s)
	if s.confirmedNotReceived > 0 {
		t.Errorf("%d confirmed values never received, e.g. %v", s.confirmedNotReceived, s.lostExamples)
	}
	var worst time.Duration
	failed := 0
	for _, tag := range probes {
		r, ok := led.probe(tag)
		if !ok || !r.ok {
			failed++
			continue
		}
		worst = max(worst, r.latency)
	}
	t.Logf("confirmed %d, failed %d (%v), received %d, %d after later values (re-routed); %d registry writes, %d failed, slowest %v",
		s.confirmed, s.failed, s.failures, s.received, rerouted, len(probes), failed, worst.Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d of %d registry writes failed during the rolling restart", failed, len(probes))
	}
	if worst > 3*time.Second {
		t.Errorf("a registry write took %v: the cluster was without a quorum for longer than an election", worst)
	}
	if s.confirmed == 0 {
		t.Error("no value was confirmed")
	}
}

// probeContinuously issues a registry write every 250 ms, each at a node
// that is up (not the one being restarted), until stop; it returns the
// tags.
func probeContinuously(c *cluster, led *ledger, restarting *atomic.Pointer[proc], stop <-chan struct{}) []string {
	var tags []string
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			// Give the last writes time to report.
			c.waitFor(10*time.Second, func() bool {
				for _, tag := range tags {
					if _, ok := led.probe(tag); !ok {
						return false
					}
				}
				return true
			})
			return tags
		case <-tick.C:
		}
		for j := range c.procs {
			p := c.procs[(i+j)%len(c.procs)]
			if p == restarting.Load() {
				continue
			}
			p.mu.Lock()
			up := p.up && p.cmd != nil
			p.mu.Unlock()
			if up {
				tag := fmt.Sprintf("rolling-%d", i)
				tags = append(tags, tag)
				c.command(p, "probe "+tag)
				break
			}
		}
	}
}
