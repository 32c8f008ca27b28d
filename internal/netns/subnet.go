package netns

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// subnetAttempts bounds how often New retries when another process claims
// the subnet it picked at the same moment.
const subnetAttempts = 8

// rootEntry is an address or route of the root namespace.
type rootEntry struct {
	prefix netip.Prefix
	dev    string
	what   string // for error messages
}

// assignSubnet chooses the Net's subnet (fixed, or a free 10.77.X when fixed
// is the zero Prefix) and gives the uplink its BridgeIP. Choosing and
// assigning are not atomic across processes, so it checks afterwards that
// no other interface took the same subnet meanwhile, and if one did, gives
// the address back and picks again.
func (n *Net) assignSubnet(fixed netip.Prefix) error {
	avoid := make(map[netip.Prefix]bool)
	for range subnetAttempts {
		p, err := n.pickSubnet(fixed, avoid)
		if err != nil {
			return err
		}
		bridge := n.subnet + ".254/24"
		if _, err := n.ip.run("addr", "add", bridge, "dev", n.uplink); err != nil {
			return err
		}
		entries, err := n.ip.rootEntries()
		if err != nil {
			return err
		}
		clash := conflict(entries, p, n.uplink)
		if clash == "" {
			return nil
		}
		if fixed.IsValid() {
			return fmt.Errorf("netns: subnet %s is also used by %s", p, clash)
		}
		if _, err := n.ip.run("addr", "del", bridge, "dev", n.uplink); err != nil {
			return err
		}
		avoid[p] = true
	}
	return fmt.Errorf("netns: no subnet left free after %d attempts: other processes keep taking them", subnetAttempts)
}

// pickSubnet chooses a subnet no other live Net of this process uses and no
// address or route of the root namespace overlaps, and records it as the
// Net's.
func (n *Net) pickSubnet(fixed netip.Prefix, avoid map[netip.Prefix]bool) (netip.Prefix, error) {
	registry.Lock()
	defer registry.Unlock()
	entries, err := n.ip.rootEntries()
	if err != nil {
		return netip.Prefix{}, err
	}
	taken := make(map[string]bool)
	for id, s := range registry.live {
		if id != n.id {
			taken[s] = true
		}
	}
	free := func(p netip.Prefix) (bool, string) {
		if taken[subnetString(p)] {
			return false, "another Net of this process"
		}
		if clash := conflict(entries, p, n.uplink); clash != "" {
			return false, clash
		}
		return !avoid[p], "another process"
	}
	choose := func(p netip.Prefix) (netip.Prefix, error) {
		n.subnet = subnetString(p)
		registry.live[n.id] = n.subnet
		return p, nil
	}

	if fixed.IsValid() {
		if ok, clash := free(fixed); !ok {
			return netip.Prefix{}, fmt.Errorf("netns: subnet %s is already used by %s", fixed, clash)
		}
		return choose(fixed)
	}
	start := rand.IntN(256) // spreads concurrent test processes apart
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(start + i), 0}), 24)
		if ok, _ := free(p); ok {
			return choose(p)
		}
	}
	return netip.Prefix{}, fmt.Errorf("netns: every subnet 10.77.0.0/16 is in use; set Config.Subnet")
}

// conflict describes the first entry, on an interface other than except,
// that overlaps p, or returns "". Any overlapping address counts (the
// machine is on that network); routes count unless they are shorter than
// /8, so that a VPN's 0.0.0.0/1 does not rule out everything while its
// 10.0.0.0/8 keeps test traffic from being mistaken for its own.
func conflict(entries []rootEntry, p netip.Prefix, except string) string {
	for _, e := range entries {
		if e.dev == except || !e.prefix.Overlaps(p) {
			continue
		}
		if e.what == "route" && e.prefix.Bits() < 8 {
			continue
		}
		return fmt.Sprintf("%s %s on %s", e.what, e.prefix, e.dev)
	}
	return ""
}

// rootEntries lists the IPv4 addresses and main-table routes of the root
// namespace.
func (ip ipTool) rootEntries() ([]rootEntry, error) {
	var entries []rootEntry
	out, err := ip.run("-o", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	for _, line := range lines(out) {
		// "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\ ..."
		f := strings.Fields(line)
		if len(f) < 4 || f[2] != "inet" {
			continue
		}
		p, err := netip.ParsePrefix(f[3])
		if err != nil {
			continue
		}
		dev, _, _ := strings.Cut(f[1], "@")
		entries = append(entries, rootEntry{prefix: p, dev: dev, what: "address"})
	}

	out, err = ip.run("-o", "-4", "route", "show")
	if err != nil {
		return nil, err
	}
	for _, line := range lines(out) {
		// "192.0.2.0/24 dev eth0 proto kernel ...", "blackhole 10.1.0.0/16", "default via ..."
		f := strings.Fields(line)
		if len(f) > 1 && isRouteType(f[0]) {
			f = f[1:]
		}
		if f[0] == "default" {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			continue
		}
		e := rootEntry{prefix: p, what: "route"}
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "dev" {
				e.dev = f[i+1]
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// isRouteType reports whether word is a route type, which "ip route show"
// prints before the destination of all but unicast routes.
func isRouteType(word string) bool {
	switch word {
	case "unicast", "local", "broadcast", "multicast", "throw",
		"unreachable", "prohibit", "blackhole", "nat", "anycast":
		return true
	}
	return false
}
