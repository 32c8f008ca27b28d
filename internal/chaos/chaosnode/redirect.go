package main

import (
	"net"

	"google.golang.org/grpc/resolver"
)

// installRedirect makes this process's gRPC clients dial via instead of
// addr, for each addr → via in m; other targets resolve as they are. dchan
// dials peers by their plain "host:port" listen address, which gRPC resolves
// with its "dns" resolver: this replaces that resolver, process-wide, with
// one that maps the address first. The peer still sees its own address as
// the target, so only the path changes. Only IP literals are handled: the
// suite only ever dials 127.0.0.1.
func installRedirect(m map[string]string) {
	resolver.Register(redirectBuilder(m))
}

type redirectBuilder map[string]string

func (b redirectBuilder) Scheme() string { return "dns" }

func (b redirectBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addr := t.Endpoint()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "443")
	}
	if via, ok := b[addr]; ok {
		addr = via
	}
	if err := cc.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: addr}}}); err != nil {
		return nil, err
	}
	return nopResolver{}, nil
}

type nopResolver struct{}

func (nopResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (nopResolver) Close()                                {}
