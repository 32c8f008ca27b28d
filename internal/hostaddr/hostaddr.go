// Package hostaddr chooses the address a node advertises to its peers when
// it listens on every interface (0.0.0.0, [::], ":7001"): the host's single
// private IPv4 address, or failing that its single other non-loopback IPv4
// address, the way hashicorp/memberlist and Consul choose theirs. Where that
// is ambiguous it refuses, naming the candidates, rather than guess: a node
// that advertises an address its peers cannot reach joins a cluster that
// then cannot replicate to it.
package hostaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNoAddress: no single address can be chosen; the error names the
// candidates found.
var ErrNoAddress = errors.New("no single address to advertise")

// private holds the ranges taken for private: RFC 1918 and the shared
// address space of RFC 6598 (carrier-grade NAT, also used by some
// container networks), as memberlist's GetPrivateIP does.
var private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
}

// IsPrivate reports whether ip is in one of the private IPv4 ranges.
func IsPrivate(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range private {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Choose picks the address to advertise among addrs, the IP addresses of
// the host's interfaces that are up: the single private IPv4 address, or
// else the single global-unicast IPv4 address. Loopback, link-local,
// multicast and unspecified addresses are never chosen.
func Choose(addrs []netip.Addr) (netip.Addr, error) {
	var priv, public []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !a.Is4() || !a.IsGlobalUnicast() {
			continue
		}
		if IsPrivate(a) {
			priv = appendNew(priv, a)
		} else {
			public = appendNew(public, a)
		}
	}
	switch {
	case len(priv) == 1:
		return priv[0], nil
	case len(priv) > 1:
		return netip.Addr{}, fmt.Errorf("%w: several private IPv4 addresses (%s)", ErrNoAddress, join(priv))
	case len(public) == 1:
		return public[0], nil
	case len(public) > 1:
		return netip.Addr{}, fmt.Errorf("%w: no private IPv4 address and several others (%s)", ErrNoAddress, join(public))
	}
	return netip.Addr{}, fmt.Errorf("%w: the host has no IPv4 address other than loopback", ErrNoAddress)
}

func appendNew(s []netip.Addr, a netip.Addr) []netip.Addr {
	for _, b := range s {
		if a == b {
			return s
		}
	}
	return append(s, a)
}

func join(s []netip.Addr) string {
	parts := make([]string, len(s))
	for i, a := range s {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// HostAddrs returns the IP addresses of the host's interfaces that are up.
func HostAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of interface %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
	}
	return out, nil
}

// Advertise returns the address peers should dial for a node whose listener
// is bound to bound ("host:port"), given the advertise address the user set
// (empty for none).
//
//   - advertise set: it is used; a missing or zero port takes bound's port.
//     An unspecified IP (0.0.0.0, ::) is refused: no peer can dial it.
//   - bound on a specific IP: bound itself.
//   - bound on every interface: Choose over hostAddrs, with bound's port.
func Advertise(bound, advertise string, hostAddrs func() ([]netip.Addr, error)) (string, error) {
	bhost, bport, err := net.SplitHostPort(bound)
	if err != nil {
		return "", fmt.Errorf("bound address %q: %w", bound, err)
	}
	if advertise != "" {
		host, port, err := net.SplitHostPort(advertise)
		if err != nil {
			// No port: "10.0.0.5" or "node1.example.com".
			host, port = strings.Trim(advertise, "[]"), ""
		}
		if host == "" {
			return "", fmt.Errorf("advertise address %q has no host", advertise)
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
			return "", fmt.Errorf("advertise address %q is unspecified: peers cannot dial it", advertise)
		}
		if port == "" || port == "0" {
			port = bport
		}
		return net.JoinHostPort(host, port), nil
	}
	ip, err := netip.ParseAddr(bhost)
	if err != nil || !ip.IsUnspecified() {
		return bound, nil
	}
	addrs, err := hostAddrs()
	if err != nil {
		return "", err
	}
	chosen, err := Choose(addrs)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(chosen.String(), bport), nil
}
