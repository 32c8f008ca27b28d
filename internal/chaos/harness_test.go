package chaos

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/dchan-io/dchan/internal/netns"
	"github.com/dchan-io/dchan/internal/regmodel"
)

// envDuration reads a duration from the environment, or returns def.
func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, s, err)
	}
	return d
}

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, s, err)
	}
	return n
}

// newRand returns the test's random source, seeded from DCHAN_CHAOS_SEED or
// the clock, and logs the seed so that a failing schedule can be replayed.
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DCHAN_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DCHAN_CHAOS_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("seed %d (DCHAN_CHAOS_SEED=%d replays the schedule of faults)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>1|1))
}

// buildNode builds the chaosnode command into a temporary directory.
//
// It is built without -race unless DCHAN_CHAOS_RACE=1: five race-enabled
// processes on two cores slow Raft's heartbeats enough to turn the suite
// into a test of the machine's load, and the library's code paths run
// under the race detector in every other package's tests anyway.
func buildNode(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building needs the go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "chaosnode")
	args := []string{"build", "-o", bin}
	if os.Getenv("DCHAN_CHAOS_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "./chaosnode")
	cmd := exec.Command(goBin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build chaosnode: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n addresses on the loopback IP ip with ports that were
// free a moment ago (listened on, then closed). A node restarted after a
// crash gets the same address again. Each test uses its own loopback IP
// (127.0.0.2, 127.0.0.3, ...): what else listens on 127.0.0.1:0 — fault
// proxies, other packages' tests — cannot take a port a killed node is
// about to listen on again.
func freePorts(t *testing.T, ip string, n int) []string {
	t.Helper()
	var lns []net.Listener
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return addrs
}

// proc is one node, across its incarnations (each start is one OS process).
type proc struct {
	id      string
	addr    string      // the address the others dial
	listen  string      // the address it listens on; "" means addr
	host    *netns.Host // the host it runs on; nil: this machine
	dataDir string
	args    func(inc int) []string // flags besides -id, -listen, -data, -peers, -sender

	mu      sync.Mutex
	inc     int // incarnations started
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{} // closed once the current process's output is read and it was waited for
	up      bool
	stopped bool
	paused  bool
}

// sender returns the identity the current incarnation stamps into values.
func (p *proc) sender() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s.%d", p.id, p.inc)
}

// cluster runs chaosnode processes and collects what they report.
type cluster struct {
	t     *testing.T
	bin   string
	dir   string
	procs []*proc
	led   *ledger
	// peers, if set, gives each start's -peers; by default the first
	// node's first start bootstraps and every other start lists all the
	// other nodes.
	peers func(p *proc, inc int) []string
	// upWithin bounds each start's wait for UP (0: 30s).
	upWithin time.Duration
}

func newCluster(t *testing.T, bin string, led *ledger, ip string, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: bin, dir: t.TempDir(), led: led}
	for i, addr := range freePorts(t, ip, n) {
		id := fmt.Sprintf("n%d", i+1)
		c.procs = append(c.procs, &proc{id: id, addr: addr, dataDir: filepath.Join(c.dir, id)})
	}
	t.Cleanup(func() {
		c.killAll()
		if t.Failed() || os.Getenv("DCHAN_CHAOS_KEEP_LOGS") == "1" {
			c.keepLogs()
		}
	})
	return c
}

// start starts the next incarnation of p and waits until it reports UP.
// The first node's first incarnation bootstraps; every other start joins
// through all the other nodes (unless c.peers says otherwise).
func (c *cluster) start(p *proc) {
	c.t.Helper()
	c.launch(p)
	within := c.upWithin
	if within == 0 {
		within = 30 * time.Second
	}
	c.waitUp(p, within)
}

// launch starts the next incarnation of p without waiting for it to join.
func (c *cluster) launch(p *proc) {
	c.t.Helper()
	p.mu.Lock()
	p.inc++
	inc := p.inc
	listen := p.listen
	if listen == "" {
		listen = p.addr
	}
	args := []string{"-id", p.id, "-listen", listen, "-data", p.dataDir, "-sender", fmt.Sprintf("%s.%d", p.id, inc)}
	switch {
	case c.peers != nil:
		if peers := c.peers(p, inc); len(peers) > 0 {
			args = append(args, "-peers", strings.Join(peers, ","))
		}
	case !(p == c.procs[0] && inc == 1):
		var peers []string
		for _, q := range c.procs {
			if q != p {
				peers = append(peers, q.addr)
			}
		}
		args = append(args, "-peers", strings.Join(peers, ","))
	}
	if p.args != nil {
		args = append(args, p.args(inc)...)
	}
	logf, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", p.id, inc)))
	if err != nil {
		p.mu.Unlock()
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	if p.host != nil {
		cmd = p.host.Command(c.bin, args...)
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.mu.Unlock()
		c.t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		p.mu.Unlock()
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.cmd, p.stdin, p.exited, p.up, p.stopped, p.paused = cmd, stdin, exited, false, false, false
	p.mu.Unlock()

	// The event lines too, for a failure's diagnosis (keepLogs keeps them).
	outf, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("%s.%d.out", p.id, inc)))
	if err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(exited)
		defer outf.Close()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "UP "):
				p.mu.Lock()
				p.up = true
				p.mu.Unlock()
			case strings.HasPrefix(line, "STOPPED"):
				p.mu.Lock()
				p.stopped = true
				p.mu.Unlock()
			}
			_, _ = fmt.Fprintf(outf, "%d %s\n", time.Now().UnixMicro(), line)
			c.led.handle(p.id, line)
		}
		_ = cmd.Wait()
		_ = logf.Close()
	}()
}

// waitUp waits until p's current incarnation reports UP.
func (c *cluster) waitUp(p *proc, within time.Duration) {
	c.t.Helper()
	p.mu.Lock()
	inc, exited := p.inc, p.exited
	p.mu.Unlock()
	if !c.waitFor(within, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.up }) {
		select {
		case <-exited:
			c.t.Fatalf("%s.%d exited before joining; log:\n%s", p.id, inc, c.logTail(p, inc))
		default:
		}
		c.t.Fatalf("%s.%d did not join within %v; log:\n%s", p.id, inc, within, c.logTail(p, inc))
	}
}

// keepLogs copies the nodes' logs out of the test's temporary directory,
// which is about to be removed, so that a failure can be diagnosed.
func (c *cluster) keepLogs() {
	dst, err := os.MkdirTemp("", "dchan-chaos-"+strings.ReplaceAll(c.t.Name(), "/", "_")+"-")
	if err != nil {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(c.dir, "registry-history.*"))
	outs, _ := filepath.Glob(filepath.Join(c.dir, "*.out"))
	for _, f := range append(append(logs, more...), outs...) {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600)
		}
	}
	c.t.Logf("node logs kept in %s", dst)
}

func (c *cluster) logTail(p *proc, inc int) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", p.id, inc)))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill sends SIGKILL to p's current process and waits until it is gone and
// its output read.
func (c *cluster) kill(p *proc) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// signal sends sig (SIGSTOP, SIGCONT) to p's current process.
func (c *cluster) signal(p *proc, sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
		p.paused = sig == syscall.SIGSTOP
	}
}

// command writes one command line to p's standard input.
func (c *cluster) command(p *proc, cmd string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdin != nil {
		_, _ = io.WriteString(p.stdin, cmd+"\n")
	}
}

// stopAll asks every node to stop sending and waits until each reported
// that all its handles are resolved.
func (c *cluster) stopAll(within time.Duration) {
	c.t.Helper()
	for _, p := range c.procs {
		c.command(p, "stop")
	}
	if !c.waitFor(within, func() bool {
		for _, p := range c.procs {
			p.mu.Lock()
			s := p.stopped
			p.mu.Unlock()
			if !s {
				return false
			}
		}
		return true
	}) {
		c.t.Fatalf("senders did not resolve their handles within %v", within)
	}
}

// converged asks every node for its registry view after a Sync, up to
// attempts times half a second apart until all views agree, and returns
// the distinct views of the last attempt with the nodes that reported
// each, or an error when a node did not answer within 20s.
func (c *cluster) converged(attempts int) (map[string][]string, error) {
	var views map[string][]string
	var err error
	for range attempts {
		if views, err = c.views(); err != nil || len(views) == 1 {
			return views, err
		}
		time.Sleep(500 * time.Millisecond) // the schedule of the check, not an assertion
	}
	return views, err
}

// views asks every node for its registry view after a Sync once.
func (c *cluster) views() (map[string][]string, error) {
	c.led.mu.Lock()
	clear(c.led.digests)
	c.led.mu.Unlock()
	for _, p := range c.procs {
		c.command(p, "digest")
	}
	if !c.waitFor(20*time.Second, func() bool {
		c.led.mu.Lock()
		defer c.led.mu.Unlock()
		return len(c.led.digests) == len(c.procs)
	}) {
		return nil, fmt.Errorf("not every node reported its registry view within 20s")
	}
	c.led.mu.Lock()
	defer c.led.mu.Unlock()
	views := make(map[string][]string)
	for node, d := range c.led.digests {
		if d == "sync-failed" {
			return nil, fmt.Errorf("%s could not Sync with the leader", node)
		}
		views[d] = append(views[d], node)
	}
	return views, nil
}

// quit closes p's current process gracefully and waits until it exited.
func (c *cluster) quit(p *proc) {
	c.t.Helper()
	c.command(p, "quit")
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		c.t.Fatalf("%s did not close within 20s", p.id)
	}
}

// quitAll closes every node gracefully, in reverse order, and waits for
// the processes to exit (killing any that take longer than 20s).
func (c *cluster) quitAll() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		c.signal(p, syscall.SIGCONT)
		c.command(p, "quit")
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		if exited == nil {
			continue
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			// SIGQUIT makes the Go runtime write every goroutine's stack
			// to the node's log before it exits.
			c.signal(p, syscall.SIGQUIT)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				c.kill(p)
			}
			c.t.Errorf("%s did not close within 20s; its goroutines are in %s", p.id,
				filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", p.id, p.inc)))
		}
	}
}

// killAll is the cleanup that leaves no child process behind.
func (c *cluster) killAll() {
	for _, p := range c.procs {
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// waitFor polls cond until it holds or within passes.
func (c *cluster) waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ledger is everything the processes reported.
type ledger struct {
	mu sync.Mutex
	// received counts each (name, sender, seq) handed to user code.
	received map[value]int
	// receivedBy records which receiver got each value.
	receivedBy map[value]string
	// last is the last seq each receiver saw from each sender on a name.
	last map[pairKey]uint64
	// fifo lists per-pair order violations.
	fifo []string
	// outcomes of WithMessage handles.
	confirmed, failed map[value]bool
	failures          map[string]int // error text → count
	maxLatency        time.Duration  // longest time to resolve a handle
	handles           []handle
	// registry write probes.
	probes map[string]probeResult
	// roles: each node's latest Raft state, and when it was reported.
	roles map[string]roleAt
	// resources per node: maxima of the S samples.
	maxGoroutines map[string]int
	maxHeap       map[string]uint64
	lines         int
	bad           []string
	// lin is the linearizability clients' history of registry operations.
	lin *linHistory
	// digests: each node's registry view after a Sync (the digest command).
	digests map[string]string
	// lastReceived: when each receiver last reported a value.
	lastReceived map[string]time.Time
	// expired lists the nodes a leader reported it expired (EXPIRED).
	expired []string
	// joinDrops lists the joins a leader reported dropped receivers of
	// the member's previous incarnation (JOINDROP node µs), as "node@time".
	joinDrops []string
}

type value struct {
	name, sender string
	seq          uint64
}

type pairKey struct{ receiver, name, sender string }

type handle struct {
	v       value
	ok      bool
	written time.Time
	latency time.Duration
	err     string
}

type probeResult struct {
	node    string
	ok      bool
	at      time.Time
	latency time.Duration
	err     string
}

type roleAt struct {
	role string
	at   time.Time
}

func newLedger() *ledger {
	return &ledger{
		received: make(map[value]int), receivedBy: make(map[value]string), last: make(map[pairKey]uint64),
		confirmed: make(map[value]bool), failed: make(map[value]bool), failures: make(map[string]int),
		probes: make(map[string]probeResult), roles: make(map[string]roleAt),
		maxGoroutines: make(map[string]int), maxHeap: make(map[string]uint64),
		lin: newLinHistory(), digests: make(map[string]string), lastReceived: make(map[string]time.Time),
	}
}

func (l *ledger) handle(node, line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	bad := func() { l.bad = append(l.bad, node+": "+line) }
	switch f[0] {
	case "R": // R receiver name sender seq
		if len(f) != 5 {
			bad()
			return
		}
		seq, err := strconv.ParseUint(f[4], 10, 64)
		if err != nil {
			bad()
			return
		}
		v := value{name: f[2], sender: f[3], seq: seq}
		l.received[v]++
		l.receivedBy[v] = f[1]
		k := pairKey{receiver: f[1], name: f[2], sender: f[3]}
		if prev, ok := l.last[k]; ok && seq <= prev {
			l.fifo = append(l.fifo, fmt.Sprintf("%s got %s/%s seq %d after %d", f[1], f[2], f[3], seq, prev))
		}
		l.last[k] = seq
		l.lastReceived[f[1]] = time.Now()
	case "M": // M name sender seq ok|err latency-µs written-µs error
		if len(f) != 8 {
			bad()
			return
		}
		seq, err1 := strconv.ParseUint(f[3], 10, 64)
		lat, err2 := strconv.ParseInt(f[5], 10, 64)
		at, err3 := strconv.ParseInt(f[6], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			bad()
			return
		}
		v := value{name: f[1], sender: f[2], seq: seq}
		h := handle{v: v, ok: f[4] == "ok", written: time.UnixMicro(at), latency: time.Duration(lat) * time.Microsecond, err: f[7]}
		l.handles = append(l.handles, h)
		if h.ok {
			l.confirmed[v] = true
		} else {
			l.failed[v] = true
			l.failures[errClass(h.err)]++
		}
		l.maxLatency = max(l.maxLatency, h.latency)
	case "W": // W tag ok|err unix-µs latency-µs error
		if len(f) != 6 {
			bad()
			return
		}
		at, err1 := strconv.ParseInt(f[3], 10, 64)
		lat, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil {
			bad()
			return
		}
		l.probes[f[1]] = probeResult{node: node, ok: f[2] == "ok", at: time.UnixMicro(at),
			latency: time.Duration(lat) * time.Microsecond, err: f[5]}
	case "ROLE":
		if len(f) != 2 {
			bad()
			return
		}
		l.roles[node] = roleAt{role: f[1], at: time.Now()}
	case "S": // S goroutines heap
		if len(f) != 3 {
			bad()
			return
		}
		g, err1 := strconv.Atoi(f[1])
		h, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			bad()
			return
		}
		l.maxGoroutines[node] = max(l.maxGoroutines[node], g)
		l.maxHeap[node] = max(l.maxHeap[node], h)
	case "LI", "LR", "EXPIRE", "EXPIRED", "EXPIRE_FAILED", "REJOINING", "REJOIN", "RESTORED", "RESTORE_FAILED":
		if !l.lin.line(f) {
			bad()
		}
		if f[0] == "EXPIRED" && len(f) > 1 {
			l.expired = append(l.expired, f[1])
		}
	case "JOINDROP": // JOINDROP node µs
		at, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if len(f) != 3 || err != nil {
			bad()
			return
		}
		l.joinDrops = append(l.joinDrops, f[1]+"@"+time.UnixMicro(at).Format("15:04:05.000000"))
	case "D": // D digest
		if len(f) != 2 {
			bad()
			return
		}
		l.digests[node] = f[1]
	case "UP", "STOPPED":
	default:
		bad()
	}
}

// receivedSince reports whether a receiver of node (an incarnation of it)
// reported a value after t. l.mu is held.
func (l *ledger) receivedSince(node string, t time.Time) bool {
	for receiver, at := range l.lastReceived {
		if strings.HasPrefix(receiver, node+".") && at.After(t) {
			return true
		}
	}
	return false
}

// confirmedWrittenAfter reports whether one of the last 200 handles was
// written after t and confirmed: the cluster takes values again.
func (l *ledger) confirmedWrittenAfter(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.handles[max(len(l.handles)-200, 0):] {
		if h.ok && h.written.After(t) {
			return true
		}
	}
	return false
}

// expiredNodes lists the nodes a leader reported it expired. l.mu is held.
func (l *ledger) expiredNodes() []string { return slices.Clone(l.expired) }

// killed records the kill of a process whose values and registrations
// carried owner (its sender identity).
func (l *ledger) killed(owner string) {
	l.linFault(linFault{kind: regmodel.Expire, owner: owner, at: time.Now()})
}

// linFault records, for the registry history, that a fault may have
// expired owner's registrations (regmodel.Expire) or that a heal may bring
// them back (regmodel.Restore).
func (l *ledger) linFault(f linFault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lin.fault(f)
}

// rejoinsInProgress counts the rejoins whose node has not reported its
// receivers registered again (RESTORED).
func (l *ledger) rejoinsInProgress() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, f := range l.lin.faults {
		if f.kind == regmodel.Restore && f.until.IsZero() {
			n++
		}
	}
	return n
}

// linHistory returns the registry operations' history for porcupine, with
// how many of them have an unknown outcome and a summary of the faults.
func (l *ledger) linHistory() ([]porcupine.Operation, int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops, unknown := l.lin.history()
	return ops, unknown, l.lin.faultSummary()
}

// errClass shortens an error text to its sentinel's words, for counting.
func errClass(s string) string {
	for _, k := range []string{"node_lost", "timed_out", "no_receivers", "closed"} {
		if strings.Contains(s, k) {
			return strings.ReplaceAll(k, "_", " ")
		}
	}
	return s
}

// leader returns the node that most recently reported becoming leader and
// has not reported another state since.
func (l *ledger) leader() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	best, bestAt := "", time.Time{}
	for node, r := range l.roles {
		if r.role == "leader" && r.at.After(bestAt) {
			best, bestAt = node, r.at
		}
	}
	return best, best != ""
}

func (l *ledger) forgetRole(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.roles, node)
}

func (l *ledger) probe(tag string) (probeResult, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.probes[tag]
	return r, ok
}

// summary is what the assertions and the report use.
type summary struct {
	received, distinct, duplicates  int
	confirmed, failed               int
	confirmedNotReceived            int
	confirmedNotReceivedByName      map[string]int
	fifo                            []string
	maxGoroutines                   int
	maxHeap                         uint64
	maxLatency                      time.Duration
	failures                        map[string]int
	bad                             []string
	duplicateExamples, lostExamples []string
	receivedPerReceiver             map[string]int
}

func (l *ledger) summarize() summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := summary{
		confirmed: len(l.confirmed), failed: len(l.failed), fifo: slices.Clone(l.fifo),
		maxLatency: l.maxLatency, failures: make(map[string]int), bad: slices.Clone(l.bad),
		confirmedNotReceivedByName: make(map[string]int), receivedPerReceiver: make(map[string]int),
	}
	for k, v := range l.failures {
		s.failures[k] = v
	}
	for v, n := range l.received {
		s.received += n
		s.distinct++
		if n > 1 {
			s.duplicates += n - 1
			if len(s.duplicateExamples) < 5 {
				s.duplicateExamples = append(s.duplicateExamples, fmt.Sprintf("%s/%s/%d ×%d", v.name, v.sender, v.seq, n))
			}
		}
		s.receivedPerReceiver[l.receivedBy[v]] += n
	}
	for v := range l.confirmed {
		if l.received[v] == 0 {
			s.confirmedNotReceived++
			s.confirmedNotReceivedByName[v.name]++
			if len(s.lostExamples) < 5 {
				s.lostExamples = append(s.lostExamples, fmt.Sprintf("%s/%s/%d", v.name, v.sender, v.seq))
			}
		}
	}
	for _, g := range l.maxGoroutines {
		s.maxGoroutines = max(s.maxGoroutines, g)
	}
	for _, h := range l.maxHeap {
		s.maxHeap = max(s.maxHeap, h)
	}
	return s
}

// confirmedReceived reports whether every confirmed value of name has been
// received.
func (l *ledger) confirmedReceived(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for v := range l.confirmed {
		if v.name == name && l.received[v] == 0 {
			return false
		}
	}
	return true
}

// checkConverged asserts that, once the traffic has stopped, every node's
// view of the registry after a Sync is the same. (Registrations made again
// by nodes that rejoined after the last heal may still be committing:
// views taken while they do may differ, so up to 10 views are taken.)
func checkConverged(t *testing.T, c *cluster) {
	t.Helper()
	views, err := c.converged(10)
	switch {
	case err != nil:
		t.Error(err)
	case len(views) != 1:
		t.Errorf("the nodes' registry views differ after a Sync: %v", views)
	default:
		for v, nodes := range views {
			t.Logf("replicas converged: %d nodes, one view of %d entries", len(nodes), strings.Count(v, ",")+1)
		}
	}
}

// checkRegistryHistory checks the linearizability clients' history with
// porcupine (after the processes have quit).
func checkRegistryHistory(t *testing.T, c *cluster, led *ledger) {
	t.Helper()
	ops, unknown, faults := led.linHistory()
	led.mu.Lock()
	drops := slices.Clone(led.joinDrops)
	led.mu.Unlock()
	start := time.Now()
	lin, visual := checkLinearizable(ops, c.dir)
	t.Logf("registry history: %d operations (%d with unknown outcome; %s; %d joins dropped receivers of a previous incarnation %v), %v in %v",
		len(ops), unknown, faults, len(drops), drops, lin, time.Since(start).Round(time.Millisecond))
	if lin != porcupine.Ok {
		// The kept logs (keepLogs) hold each process's event lines
		// (n*.out, each line after its arrival time in µs) and
		// registry-history.txt, which ends with the first operation at
		// which the history stops being linearizable.
		t.Errorf("the registry history is not linearizable (%v): %s", lin, visual)
	}
	if len(ops) < 100 {
		t.Errorf("only %d registry operations: the linearizability check checked little", len(ops))
	}
}

// checkCommon asserts what every process-level test asserts: no unparsable
// line, no duplicate, per-pair FIFO, goroutines and heap per process
// within their bounds.
func checkCommon(t *testing.T, s summary) {
	t.Helper()
	checkCommonWithin(t, s, maxNodeGoroutines)
}

// checkCommonWithin is checkCommon with maxGoroutines per process: a node
// of a large cluster holds a connection, with its goroutines, per peer.
func checkCommonWithin(t *testing.T, s summary, maxGoroutines int) {
	t.Helper()
	if len(s.bad) > 0 {
		t.Errorf("unparsable lines: %q", s.bad[:min(len(s.bad), 5)])
	}
	if s.duplicates > 0 {
		t.Errorf("at most once: %d duplicates, e.g. %v", s.duplicates, s.duplicateExamples)
	}
	if len(s.fifo) > 0 {
		t.Errorf("per-pair FIFO: %d violations, e.g. %s", len(s.fifo), strings.Join(s.fifo[:min(len(s.fifo), 5)], "; "))
	}
	if s.maxGoroutines > maxGoroutines {
		t.Errorf("a node process reached %d goroutines (bound %d)", s.maxGoroutines, maxGoroutines)
	}
	if s.maxHeap > maxNodeHeap {
		t.Errorf("a node process reached %.1f MiB heap in use (bound %d MiB)", float64(s.maxHeap)/(1<<20), maxNodeHeap>>20)
	}
}
