package netns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary re-executes itself inside a namespace as a helper
// process: helperMode says what to do, helperArg with what.
const (
	helperMode = "DCHAN_NETNS_HELPER"
	helperArg  = "DCHAN_NETNS_HELPER_ARG"
	echoPort   = "7000"
	dialWait   = time.Second
)

// TestHelperProcess is not a test: run by a helper command, it serves
// echo on helperArg ("echo"), dials the echo server at helperArg and prints
// "ok" or "fail: <error>" ("dial"), prints the file helperArg ("cat"), or
// waits for the end of its standard input ("wait").
func TestHelperProcess(t *testing.T) {
	arg := os.Getenv(helperArg)
	switch os.Getenv(helperMode) {
	case "":
		return
	case "echo":
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("ready")
		for {
			c, err := ln.Accept()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			go func() {
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	case "dial":
		if err := echoOnce(arg); err != nil {
			fmt.Println("fail:", err)
		} else {
			fmt.Println("ok")
		}
	case "wait":
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "cat":
		data, err := os.ReadFile(arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, _ = os.Stdout.Write(data)
	}
	os.Exit(0)
}

// echoOnce dials the echo server at addr and checks one round trip.
func echoOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, dialWait)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(dialWait)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping\n" {
		return fmt.Errorf("echo returned %q", buf)
	}
	return nil
}

// helper returns the command that runs this binary as a helper in h.
func helper(h *Host, mode, arg string) *exec.Cmd {
	cmd := h.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperMode+"="+mode, helperArg+"="+arg,
		// Under -race a process sleeps a second at exit unless told not to.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return cmd
}

// helperOutput runs a helper to completion and returns what it printed.
func helperOutput(t *testing.T, h *Host, mode, arg string) string {
	t.Helper()
	cmd := helper(h, mode, arg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s %s in %s: %v\n%s", mode, arg, h.Name, err, stderr.String())
	}
	return string(out)
}

// dialFrom has h check one echo round trip with addr.
func dialFrom(t *testing.T, h *Host, addr string) error {
	t.Helper()
	out := strings.TrimSpace(helperOutput(t, h, "dial", addr))
	if out == "ok" {
		return nil
	}
	return errors.New(out)
}

// proc is a helper process that runs until killed.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
}

// startEcho starts an echo server on 0.0.0.0:echoPort in h, waits until it
// listens, and kills it at cleanup.
func startEcho(t *testing.T, h *Host) *proc {
	t.Helper()
	p := &proc{cmd: helper(h, "echo", "0.0.0.0:"+echoPort), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		line = <-ready
	}
	if line != "ready\n" {
		_ = p.cmd.Process.Kill()
		err := p.cmd.Wait()
		t.Fatalf("echo helper in %s did not start: %v\n%s", h.Name, err, p.stderr.String())
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// exited reports whether p ends within d.
func (p *proc) exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// rootEcho serves echo in the test process (the root namespace) on host
// and a free port, until cleanup.
func rootEcho(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// newNet skips the test when namespaces are unavailable, and otherwise
// returns a new Net closed at cleanup.
func newNet(t *testing.T, cfg Config) *Net {
	t.Helper()
	if ok, reason := Available(); !ok {
		t.Skip(reason)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func addr(ip string) string { return net.JoinHostPort(ip, echoPort) }

func mustIP(t *testing.T) ipTool {
	t.Helper()
	ip, err := lookIP()
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

func TestNames(t *testing.T) {
	id := netID(4194304, 46655) // the largest pid_max, the largest 3-digit seq
	if got := len(id + "-u"); got > maxIfName {
		t.Errorf("uplink name %q is %d bytes", id+"-u", got)
	}
	for _, name := range []string{id, id + "-u", id + "-s", id + "-h253"} {
		pid, got, ok := parseName(name)
		if !ok || pid != 4194304 || got != id {
			t.Errorf("parseName(%q) = %d, %q, %v; want 4194304, %q, true", name, pid, got, ok, id)
		}
		if !belongsTo(name, id) {
			t.Errorf("belongsTo(%q, %q) = false", name, id)
		}
	}
	for _, name := range []string{"eth0", "dchn", "dchnab", "dchn-1-u", "dchn0-1-u", "dchn!!-1-u", "dchnab--u"} {
		if _, _, ok := parseName(name); ok {
			t.Errorf("parseName(%q) accepted a name we never make", name)
		}
	}
	if belongsTo(netID(5, 10)+"-s", netID(5, 1)) {
		t.Error("Net 1's names include Net 10's")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Hosts: 0},
		{Hosts: MaxHosts + 1},
		{Hosts: 1, Subnet: "10.77"},
		{Hosts: 1, Subnet: "10.77.0.0/24"},
		{Hosts: 1, Subnet: "10.77.256"},
		{Hosts: 1, Subnet: "::1"},
	} {
		if n, err := New(cfg); err == nil {
			_ = n.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestSubnets(t *testing.T) {
	t.Parallel()
	// An explicit subnet, one that another run of this test is not using.
	var fixed *Net
	for i := range 256 {
		subnet := fmt.Sprintf("10.78.%d", (os.Getpid()+i)%256)
		n, err := New(Config{Hosts: 2, Subnet: subnet})
		if err != nil && strings.Contains(err.Error(), "already used") {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Error(err)
			}
		})
		fixed = n
		break
	}
	if fixed == nil {
		t.Fatal("no subnet 10.78.X is free")
	}
	if got, want := fixed.BridgeIP(), fixed.subnet+".254"; got != want || !strings.HasPrefix(got, "10.78.") {
		t.Errorf("BridgeIP = %s, want %s", got, want)
	}
	for i, h := range fixed.Hosts() {
		if want := fmt.Sprintf("%s.%d", fixed.subnet, i+1); h.IP != want {
			t.Errorf("host %d has IP %s, want %s", i, h.IP, want)
		}
	}
	if n, err := New(Config{Hosts: 1, Subnet: fixed.subnet}); err == nil {
		_ = n.Close()
		t.Errorf("two Nets got subnet %s", fixed.subnet)
	} else {
		t.Log(err)
	}
	if n, err := New(Config{Hosts: 1, Subnet: "127.0.0"}); err == nil {
		_ = n.Close()
		t.Error("New took subnet 127.0.0, which lo's 127.0.0.1/8 covers")
	} else {
		t.Log(err)
	}

	a := newNet(t, Config{Hosts: 1})
	b := newNet(t, Config{Hosts: 1})
	if a.subnet == b.subnet || !strings.HasPrefix(a.subnet, "10.77.") || !strings.HasPrefix(b.subnet, "10.77.") {
		t.Errorf("automatic subnets %s and %s", a.subnet, b.subnet)
	}

	// A host routes only its own subnet: nothing can leave the Net.
	out, err := a.Hosts()[0].Command(string(a.ip), "-4", "route", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if routes := lines(out); len(routes) != 1 || !strings.HasPrefix(routes[0], a.subnet+".0/24 dev eth0 ") {
		t.Errorf("routes inside a host: %q", routes)
	}
}

func TestHostToHost(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 3})
	hs := n.Hosts()
	for _, h := range hs {
		startEcho(t, h)
	}
	for _, from := range hs {
		for _, to := range hs {
			if err := dialFrom(t, from, addr(to.IP)); err != nil {
				t.Errorf("%s -> %s: %v", from.IP, to.IP, err)
			}
		}
		// The root namespace reaches every host too.
		if err := echoOnce(addr(from.IP)); err != nil {
			t.Errorf("root -> %s: %v", from.IP, err)
		}
	}
}

func TestHostToBridgeIP(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 2})
	at := rootEcho(t, n.BridgeIP())
	for _, h := range n.Hosts() {
		if err := dialFrom(t, h, at); err != nil {
			t.Errorf("%s -> %s: %v", h.IP, at, err)
		}
	}
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 1})
	h := n.Hosts()[0]
	loopback := rootEcho(t, "127.0.0.1")
	if err := echoOnce(loopback); err != nil {
		t.Fatalf("root namespace cannot reach its own %s: %v", loopback, err)
	}
	err := dialFrom(t, h, loopback)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("from inside %s, the root's %s gave %v; want connection refused", h.Name, loopback, err)
	}

	out, err := h.Command(string(n.ip), "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, l := range lines(out) {
		name, _, _ := strings.Cut(strings.TrimSuffix(strings.Fields(l)[1], ":"), "@")
		links = append(links, name)
	}
	if !slices.Equal(links, []string{"lo", "eth0"}) {
		t.Errorf("interfaces inside a host: %q", links)
	}
}

func TestLinkDownUp(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 2})
	h1, h2 := n.Hosts()[0], n.Hosts()[1]
	startEcho(t, h1)
	startEcho(t, h2)
	bridge := rootEcho(t, n.BridgeIP())

	// A connection open across the cut, from the root namespace to h2.
	conn, err := net.DialTimeout("tcp", addr(h2.IP), dialWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	roundTrip := func(msg string, wait time.Duration) error {
		if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("read %q, want %q", buf, msg)
		}
		return nil
	}
	if _, err := conn.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip("before\n", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := h2.LinkDown(); err != nil {
		t.Fatal(err)
	}
	// Every way in or out of h2 is a blackhole: dials time out, they do
	// not fail at once.
	for what, err := range map[string]error{
		"h1 -> h2":     dialFrom(t, h1, addr(h2.IP)),
		"h2 -> h1":     dialFrom(t, h2, addr(h1.IP)),
		"h2 -> bridge": dialFrom(t, h2, bridge),
		"root -> h2":   echoOnce(addr(h2.IP)),
	} {
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s with h2's link down: %v; want a timeout", what, err)
		}
	}
	if err := dialFrom(t, h1, bridge); err != nil {
		t.Errorf("h1 -> bridge with h2's link down: %v", err)
	}
	// The open connection stalls: no reset, no data.
	if _, err := conn.Write([]byte("during\n")); err != nil {
		t.Fatalf("write with h2's link down: %v", err)
	}
	if err := roundTrip("during\n", time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with h2's link down: %v; want a timeout", err)
	}

	if err := h2.LinkUp(); err != nil {
		t.Fatal(err)
	}
	if err := h2.LinkUp(); err != nil {
		t.Fatalf("second LinkUp: %v", err)
	}
	for what, err := range map[string]error{
		"h1 -> h2":     dialFrom(t, h1, addr(h2.IP)),
		"h2 -> h1":     dialFrom(t, h2, addr(h1.IP)),
		"h2 -> bridge": dialFrom(t, h2, bridge),
		"root -> h2":   echoOnce(addr(h2.IP)),
	} {
		if err != nil {
			t.Errorf("%s after LinkUp: %v", what, err)
		}
	}
	// TCP retransmits what the cut swallowed: the open connection resumes.
	if err := roundTrip("during\n", 30*time.Second); err != nil {
		t.Errorf("open connection after LinkUp: %v", err)
	}
}

func TestSetResolvConf(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 2})
	h1, h2 := n.Hosts()[0], n.Hosts()[1]
	root, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{
		"nameserver " + n.BridgeIP() + "\nsearch dchan.test\n",
		"nameserver " + n.BridgeIP() + "\noptions ndots:1\n", // a second call replaces the first
	} {
		if err := h1.SetResolvConf(content); err != nil {
			t.Fatal(err)
		}
		if got := helperOutput(t, h1, "cat", "/etc/resolv.conf"); got != content {
			t.Errorf("h1 sees /etc/resolv.conf %q, want %q", got, content)
		}
	}
	if got := helperOutput(t, h2, "cat", "/etc/resolv.conf"); got != string(root) {
		t.Errorf("h2 sees /etc/resolv.conf %q, want the root's %q", got, root)
	}
	if now, err := os.ReadFile("/etc/resolv.conf"); err != nil || !bytes.Equal(now, root) {
		t.Errorf("the root's /etc/resolv.conf changed: %q, %v", now, err)
	}
}

// leftovers returns the namespaces, root interfaces and /etc/netns entries
// whose names belong to id.
func leftovers(t *testing.T, ip ipTool, id string) []string {
	t.Helper()
	nss, err := ip.namespaces()
	if err != nil {
		t.Fatal(err)
	}
	links, err := ip.rootLinks()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, name := range append(nss, links...) {
		if belongsTo(name, id) {
			found = append(found, name)
		}
	}
	dirs, _ := os.ReadDir(etcNetns)
	for _, d := range dirs {
		if belongsTo(d.Name(), id) {
			found = append(found, filepath.Join(etcNetns, d.Name()))
		}
	}
	return found
}

func TestClose(t *testing.T) {
	t.Parallel()
	n := newNet(t, Config{Hosts: 2})
	h := n.Hosts()[0]
	if err := h.SetResolvConf("nameserver " + n.BridgeIP() + "\n"); err != nil {
		t.Fatal(err)
	}
	p := startEcho(t, h)
	if got := leftovers(t, n.ip, n.id); len(got) != 5 { // 2 hosts and the switch, the uplink, 1 /etc/netns dir
		t.Fatalf("before Close: %q", got)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.exited(10 * time.Second) {
		t.Error("Close left a process started with Command running")
	}
	if got := leftovers(t, n.ip, n.id); len(got) != 0 {
		t.Errorf("Close left %q", got)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := h.Command("true").Run(); err == nil {
		t.Error("a command ran in a closed Net's host")
	}
}

// TestNewSweepsLeftovers is not parallel: it plants leftovers of this
// process that a parallel New would sweep while they are being planted.
func TestNewSweepsLeftovers(t *testing.T) {
	if ok, reason := Available(); !ok {
		t.Skip(reason)
	}
	ip := mustIP(t)
	gone := exec.Command(string(ip), "-V")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := gone.Process.Pid
	if processAlive(deadPid) {
		t.Skipf("pid %d was reused already", deadPid)
	}
	owner := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	owner.Env = append(os.Environ(), helperMode+"=wait")
	stdin, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = owner.Wait()
	})
	dead := netID(deadPid, 0)            // a killed test run's Net
	mine := netID(os.Getpid(), 46655)    // a Net of this process that Close failed to remove
	alive := netID(owner.Process.Pid, 0) // a Net of a live process: not ours to touch
	t.Cleanup(func() {
		for _, id := range []string{dead, mine, alive} {
			if err := sweep(ip, func(name string) bool { return belongsTo(name, id) }); err != nil {
				t.Error(err)
			}
		}
	})

	orphanHost := &Host{Name: dead + "-h1", net: &Net{ip: ip}}
	err = ip.runAll([][]string{
		{"netns", "add", orphanHost.Name},
		{"link", "add", "name", dead + "-u", "type", "veth", "peer", "name", "eth0", "netns", orphanHost.Name},
		{"-n", orphanHost.Name, "link", "set", "dev", "lo", "up"},
		{"link", "add", "name", mine + "-u", "type", "veth", "peer", "name", mine + "-x"},
		{"netns", "add", alive + "-h1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := orphanHost.SetResolvConf("nameserver 10.77.0.254\n"); err != nil {
		t.Fatal(err)
	}
	orphan := startEcho(t, orphanHost) // a node the killed run left running

	n := newNet(t, Config{Hosts: 1})
	for _, id := range []string{dead, mine} {
		if got := leftovers(t, ip, id); len(got) != 0 {
			t.Errorf("New left %q", got)
		}
	}
	if got := leftovers(t, ip, alive); !slices.Equal(got, []string{alive + "-h1"}) {
		t.Errorf("New swept a live process's namespace: left %q", got)
	}
	if !orphan.exited(10 * time.Second) {
		t.Error("New left a process running in a dead process's namespace")
	}
	if got := leftovers(t, ip, n.id); len(got) != 3 { // a host, the switch, the uplink
		t.Errorf("the new Net has %q", got)
	}
}
