// Package netns builds throwaway networks of Linux network namespaces for
// tests that run each dchan node as a separate OS process on its own
// "host": its own network stack, its own IP address on a private /24, its
// own loopback, and a link to the others that a test can cut and heal.
//
// It is a normal package (it does not import "testing") so that any dchan
// test suite can use it; nothing in production code should. It drives the
// ip command of iproute2 and needs Linux and root. Tests check Available
// first and skip when it reports false:
//
//	if ok, reason := netns.Available(); !ok {
//		t.Skip(reason)
//	}
//	n, err := netns.New(netns.Config{Hosts: 3})
//	if err != nil {
//		t.Fatal(err)
//	}
//	t.Cleanup(func() {
//		if err := n.Close(); err != nil {
//			t.Error(err)
//		}
//	})
//	h := n.Hosts()[0]
//	cmd := h.Command(nodeBinary, "-listen", h.IP+":7000") // runs inside h's namespace
//
// # Topology
//
// New creates, for a subnet S (10.77.X by default, X chosen free):
//
//	root namespace         switch namespace <id>-s        host namespace <id>-h<i>
//	<id>-u S.254/24 ───────── up ── br0 ── h<i> ───────────── eth0 S.<i>/24, lo
//	                  veth          (one h<i> per host)  veth
//
// Every host reaches every other host's IP, and BridgeIP (S.254), which is
// an address of the root namespace: a test may serve something there (a
// listener opened by the test process itself, a DNS server) for all hosts.
// The root namespace reaches every host's IP through the same link. Nothing
// is routed beyond S: a host has no default route, and its 127.0.0.1 is its
// own, so it cannot see listeners on the machine's loopback.
//
// The bridge lives in a namespace of its own, not in the root namespace, so
// that the machine's firewall never filters traffic between hosts (with
// br_netfilter loaded and a FORWARD policy of DROP, as Docker sets up, a
// bridge in the root namespace would silently drop it). Only traffic to and
// from BridgeIP passes the root namespace's firewall, as local input.
// New changes no sysctl.
//
// # Faults
//
// LinkDown takes down the switch's end of a host's link: the host keeps its
// interface and address (it sees NO-CARRIER) and its packets are dropped
// silently, in both directions, like a cut cable or a dead switch port. TCP
// therefore sees a blackhole: connects and writes time out, open
// connections stall without a reset, and after LinkUp they resume,
// retransmitting what was lost. Taking down the host's own end instead
// would make its connects fail at once with "network is unreachable",
// which is not what a partition looks like to the peers.
//
// # Names and leftovers
//
// Every namespace and root interface is named dchn<pid>-<seq>-<kind>, where
// pid is the creating process's id in base 36, seq tells apart the Nets of
// one process, and kind is s (switch), u (uplink) or h<i> (host i). Close
// kills every process still running in the Net's namespaces, then deletes
// its root interface, its namespaces and the /etc/netns/<name> directories
// written by SetResolvConf; it carries on past failures and reports them
// all. New first removes what a dead process left the same way, so a test
// run killed half way does not break the next one (its nodes still running
// in those namespaces are killed too); the leftovers of live processes are
// left alone, and so, until it ends, are those of a dead process whose pid
// a live one has taken.
//
// Command runs programs through "ip netns exec", which also bind-mounts
// every file of /etc/netns/<name> over /etc for the programs it starts:
// that is how SetResolvConf gives one host its own /etc/resolv.conf.
package netns
