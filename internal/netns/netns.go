package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// MaxHosts is the most hosts one Net can have: a /24 holds addresses .1 to
// .254, and .254 is BridgeIP.
const MaxHosts = 253

// Config describes a Net.
type Config struct {
	// Hosts is the number of hosts (namespaces) to create, 1 to MaxHosts.
	Hosts int

	// Subnet is the first three octets of the IPv4 /24 to use, such as
	// "10.77.0": host i gets <Subnet>.i and BridgeIP is <Subnet>.254. Empty
	// picks a free 10.77.X: one that no other live Net of this process uses
	// and that overlaps no address or route of the root namespace.
	Subnet string
}

// Net is a set of hosts on one private subnet. Create it with New and
// release it with Close.
type Net struct {
	ip     ipTool
	id     string // dchn<pid>-<seq>, the prefix of every name below
	sw     string // switch namespace
	uplink string // root end of the root <-> switch veth
	subnet string // "10.77.X"
	hosts  []*Host

	mu     sync.Mutex
	closed bool
}

// Host is one network namespace of a Net, with one interface, eth0, on the
// Net's subnet.
type Host struct {
	// Name is the namespace's name, as listed by "ip netns list".
	Name string

	// IP is the host's address on eth0, such as "10.77.0.1".
	IP string

	net  *Net
	port string // the switch's end of the host's link, in the switch namespace
}

// New creates a Net as described in the package documentation: it removes
// the leftovers of dead processes, then creates a switch namespace holding a
// bridge, a link from the root namespace to it with address BridgeIP, and
// per host a namespace with lo and eth0 up, eth0 linked to the bridge. On
// failure it removes whatever it created.
func New(cfg Config) (*Net, error) {
	if cfg.Hosts < 1 || cfg.Hosts > MaxHosts {
		return nil, fmt.Errorf("netns: Hosts is %d, want 1 to %d", cfg.Hosts, MaxHosts)
	}
	var fixed netip.Prefix
	if cfg.Subnet != "" {
		p, err := parseSubnet(cfg.Subnet)
		if err != nil {
			return nil, err
		}
		fixed = p
	}
	ip, err := lookIP()
	if err != nil {
		return nil, err
	}

	id, err := reserveID(ip)
	if err != nil {
		return nil, err
	}
	n := &Net{ip: ip, id: id, sw: id + "-s", uplink: id + "-u"}
	if len(n.uplink) > maxIfName {
		n.release()
		return nil, fmt.Errorf("netns: interface name %q is longer than %d bytes", n.uplink, maxIfName)
	}
	if err := n.build(cfg.Hosts, fixed); err != nil {
		if cerr := n.Close(); cerr != nil {
			return nil, errors.Join(err, cerr)
		}
		return nil, err
	}
	return n, nil
}

// build creates the switch, the uplink and the hosts.
func (n *Net) build(hosts int, fixed netip.Prefix) error {
	steps := [][]string{
		{"netns", "add", n.sw},
		{"-n", n.sw, "link", "add", "name", "br0", "type", "bridge"},
		{"-n", n.sw, "link", "set", "dev", "br0", "addrgenmode", "none", "up"},
		{"link", "add", "name", n.uplink, "type", "veth", "peer", "name", "up", "netns", n.sw},
		{"-n", n.sw, "link", "set", "dev", "up", "master", "br0", "addrgenmode", "none", "up"},
		{"link", "set", "dev", n.uplink, "addrgenmode", "none", "up"},
	}
	if err := n.ip.runAll(steps); err != nil {
		return err
	}
	if err := n.assignSubnet(fixed); err != nil {
		return err
	}
	for i := 1; i <= hosts; i++ {
		h := &Host{
			Name: n.id + "-h" + strconv.Itoa(i),
			IP:   n.subnet + "." + strconv.Itoa(i),
			net:  n,
			port: "h" + strconv.Itoa(i),
		}
		steps := [][]string{
			{"netns", "add", h.Name},
			{"-n", n.sw, "link", "add", "name", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
			{"-n", n.sw, "link", "set", "dev", h.port, "master", "br0", "addrgenmode", "none", "up"},
			{"-n", h.Name, "addr", "add", h.IP + "/24", "dev", "eth0"},
			{"-n", h.Name, "link", "set", "dev", "eth0", "addrgenmode", "none", "up"},
			{"-n", h.Name, "link", "set", "dev", "lo", "up"},
		}
		if err := n.ip.runAll(steps); err != nil {
			return err
		}
		n.hosts = append(n.hosts, h)
	}
	return nil
}

// Hosts returns the Net's hosts; host i (from 0) has address <subnet>.i+1.
func (n *Net) Hosts() []*Host {
	return append([]*Host(nil), n.hosts...)
}

// BridgeIP returns <subnet>.254, the root namespace's address on the Net:
// every host reaches it, so the test process can serve hosts there.
func (n *Net) BridgeIP() string {
	return n.subnet + ".254"
}

// Close kills the processes still running in the Net's namespaces
// (including those started with Command), deletes the namespaces, the root
// namespace's interface and the /etc/netns directories written by
// SetResolvConf. It tries every step whatever fails and returns the joined
// errors. Only the first call does anything; later calls return nil. Do not
// start commands on the Net's hosts while Close runs.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	err := sweep(n.ip, func(name string) bool { return belongsTo(name, n.id) })
	n.release()
	if err != nil {
		return fmt.Errorf("netns: closing %s: %w", n.id, err)
	}
	return nil
}

// Command returns a command that runs name with args inside the host's
// namespace, through "ip netns exec". The caller starts and waits for it as
// for any exec.Cmd; Close kills it if it still runs then. The command sees
// the host's network only, and /etc/resolv.conf as set by SetResolvConf.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(string(h.net.ip), append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// LinkDown cuts the host off: the switch's end of its link goes down, and
// every packet to or from the host is dropped silently until LinkUp. The
// host's own interface stays up and keeps its address.
func (h *Host) LinkDown() error {
	_, err := h.net.ip.run("-n", h.net.sw, "link", "set", "dev", h.port, "down")
	return err
}

// LinkUp heals a host cut off by LinkDown; it does nothing to a host whose
// link is up.
func (h *Host) LinkUp() error {
	_, err := h.net.ip.run("-n", h.net.sw, "link", "set", "dev", h.port, "up")
	return err
}

// SetResolvConf writes content to /etc/netns/<Name>/resolv.conf, which "ip
// netns exec" bind-mounts over /etc/resolv.conf for the commands it starts:
// commands started by Command after this call see content as their
// /etc/resolv.conf. Close removes the file.
func (h *Host) SetResolvConf(content string) error {
	dir := filepath.Join(etcNetns, h.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("netns: resolv.conf of %s: %w", h.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		return fmt.Errorf("netns: resolv.conf of %s: %w", h.Name, err)
	}
	return nil
}

// Available reports whether New can work here: Linux, root, iproute2's ip
// on PATH, and the kernel letting it create a namespace, a bridge and a
// veth pair, and run a command inside the namespace (it tries, and removes
// what it made). When it cannot, reason says why.
func Available() (ok bool, reason string) {
	if runtime.GOOS != "linux" {
		return false, "netns: network namespaces need Linux, this is " + runtime.GOOS
	}
	if uid := os.Geteuid(); uid != 0 {
		return false, fmt.Sprintf("netns: network namespaces need root, euid is %d", uid)
	}
	ip, err := lookIP()
	if err != nil {
		return false, err.Error()
	}
	registry.Lock()
	defer registry.Unlock()
	probe := namePrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-probe"
	err = ip.runAll([][]string{
		{"netns", "add", probe},
		{"netns", "exec", probe, string(ip), "link", "set", "dev", "lo", "up"},
		{"-n", probe, "link", "add", "name", "br0", "type", "bridge"},
		{"-n", probe, "link", "add", "name", "a", "type", "veth", "peer", "name", "b"},
	})
	cerr := sweep(ip, func(name string) bool { return belongsTo(name, probe) })
	if err = errors.Join(err, cerr); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// parseSubnet parses a Config.Subnet such as "10.77.0" into its /24.
func parseSubnet(s string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(s + ".0")
	if err != nil || strings.Count(s, ".") != 2 || !addr.Is4() {
		return netip.Prefix{}, fmt.Errorf("netns: Subnet %q is not three IPv4 octets such as \"10.77.0\"", s)
	}
	return netip.PrefixFrom(addr, 24), nil
}

// subnetString turns a /24 back into its Config.Subnet form.
func subnetString(p netip.Prefix) string {
	b := p.Addr().As4()
	return fmt.Sprintf("%d.%d.%d", b[0], b[1], b[2])
}
