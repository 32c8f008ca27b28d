package gossip

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// members is a fake Membership: live members, and who subscribes to what.
type members struct {
	version uint64
	live    map[string]bool
	subs    map[string][]string // name → subscribing nodes
}

func newMembers(nodes ...string) *members {
	m := &members{version: 1, live: map[string]bool{}, subs: map[string][]string{}}
	for _, n := range nodes {
		m.live[n] = true
	}
	return m
}

func (m *members) subscribe(name string, nodes ...string) {
	m.subs[name] = append(m.subs[name], nodes...)
	slices.Sort(m.subs[name])
	m.subs[name] = slices.Compact(m.subs[name])
	m.version++
}

func (m *members) Version() uint64 { return m.version }

func (m *members) Subscribers(name string) []string { return slices.Clone(m.subs[name]) }

func (m *members) Member(node string) bool { return m.live[node] }

// newTestEngine returns node self's engine over mem, with a fixed random
// source.
func newTestEngine(self string, mem Membership) *Engine {
	return NewEngine(self, DefaultConfig(), mem, nil, nil, rand.New(rand.NewPCG(1, 2)))
}

// idleDriver returns a driver whose senders never start (it is closed):
// the test takes from its queues itself.
func idleDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	d, err := NewDriver("n1", cfg, Deps{Membership: newMembers("n1", "n2"), Transport: nopTransport{}})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	return d
}

type nopTransport struct{}

func (nopTransport) Send(context.Context, string, []byte, any, bool, func(error)) error { return nil }

// sendsTo groups what rd asks to send by peer, decoding data headers.
func dataSends(rd Ready) map[string][]*dataHeader {
	out := map[string][]*dataHeader{}
	for _, s := range rd.Sends {
		if s.m.data != nil {
			out[s.To] = append(out[s.To], s.m.data)
		}
	}
	return out
}

func values(rd Ready) []any {
	var out []any
	for _, d := range rd.Deliveries {
		out = append(out, d.Value)
	}
	return out
}

var t0 = time.Unix(1_700_000_000, 0)
