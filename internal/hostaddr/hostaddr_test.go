package hostaddr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		want  string // "" = error
		names []string
	}{
		{"one private", addrs("10.1.2.3", "fe80::1"), "10.1.2.3", nil},
		{"private over public", addrs("203.0.113.7", "192.168.1.10"), "192.168.1.10", nil},
		{"cgnat counts as private", addrs("100.64.3.4", "198.51.100.1"), "100.64.3.4", nil},
		{"one public", addrs("198.51.100.1", "::1", "fd00::2"), "198.51.100.1", nil},
		{"IPv4-mapped", addrs("::ffff:172.16.0.9"), "172.16.0.9", nil},
		{"same address twice", addrs("10.0.0.5", "10.0.0.5"), "10.0.0.5", nil},
		{"several private", addrs("10.0.0.5", "172.17.0.1"), "", []string{"10.0.0.5", "172.17.0.1"}},
		{"several public", addrs("198.51.100.1", "203.0.113.7"), "", []string{"198.51.100.1", "203.0.113.7"}},
		{"only loopback and link-local", addrs("127.0.0.1", "169.254.1.1", "fe80::1"), "", []string{"loopback"}},
		{"none", nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.addrs)
			if tc.want == "" {
				if !errors.Is(err, ErrNoAddress) {
					t.Fatalf("Choose = %v, %v; want ErrNoAddress", got, err)
				}
				for _, n := range tc.names {
					if !strings.Contains(err.Error(), n) {
						t.Fatalf("error %q does not name %q", err, n)
					}
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("Choose = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestAdvertise(t *testing.T) {
	host := func() ([]netip.Addr, error) { return addrs("10.77.0.3", "127.0.0.1"), nil }
	ambiguous := func() ([]netip.Addr, error) { return addrs("10.77.0.3", "10.88.0.3"), nil }
	for _, tc := range []struct {
		name, bound, advertise string
		hosts                  func() ([]netip.Addr, error)
		want                   string // "" = error
	}{
		{"specific listen address", "127.0.0.1:7001", "", host, "127.0.0.1:7001"},
		{"0.0.0.0 picks the private IP", "0.0.0.0:7001", "", host, "10.77.0.3:7001"},
		{"[::] picks the private IP", "[::]:7001", "", host, "10.77.0.3:7001"},
		{"0.0.0.0 with several private IPs", "0.0.0.0:7001", "", ambiguous, ""},
		{"explicit advertise wins", "0.0.0.0:7001", "10.88.0.3:7101", ambiguous, "10.88.0.3:7101"},
		{"advertise without port takes the bound one", "0.0.0.0:7001", "10.88.0.3", ambiguous, "10.88.0.3:7001"},
		{"advertise with port 0 takes the bound one", "0.0.0.0:7001", "10.88.0.3:0", ambiguous, "10.88.0.3:7001"},
		{"advertise a DNS name", "0.0.0.0:7001", "dchan-0.dchan.default.svc:7001", ambiguous, "dchan-0.dchan.default.svc:7001"},
		{"advertise IPv6", "[::]:7001", "[fd00::5]:7001", ambiguous, "[fd00::5]:7001"},
		{"advertise unspecified", "0.0.0.0:7001", "0.0.0.0:7001", host, ""},
		{"advertise unspecified IPv6", "0.0.0.0:7001", "[::]", host, ""},
		{"advertise only a port", "0.0.0.0:7001", ":7001", host, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Advertise(tc.bound, tc.advertise, tc.hosts)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Advertise = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Advertise = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestHostAddrsHasNoLoopback checks the live listing skips loopback
// interfaces, whatever else this machine has.
func TestHostAddrsHasNoLoopback(t *testing.T) {
	as, err := HostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.IsLoopback() {
			t.Fatalf("HostAddrs lists loopback address %v", a)
		}
	}
}
