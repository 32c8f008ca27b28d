package faultproxy

import (
	"fmt"
	"net"
	"net/netip"
)

// loopbackAddr parses addr ("host:port") and returns it in canonical form if
// host is an IP literal in 127.0.0.0/8 or ::1. It never resolves names, so
// "localhost" is refused too: what it resolves to is not ours to check.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrNotLoopback, addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not an IP literal", ErrNotLoopback, addr)
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() || ip.Zone() != "" {
		return "", fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(ip.String(), port))
	if err != nil {
		return "", fmt.Errorf("%w: %q: bad port", ErrNotLoopback, addr)
	}
	return ap.String(), nil
}
