package remoting

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
)

// countFSM counts applied entries.
type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) applied() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return noSnapshot{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type noSnapshot struct{}

func (noSnapshot) Persist(s raft.SnapshotSink) error { return s.Close() }
func (noSnapshot) Release()                          {}

type raftMember struct {
	*node
	raft  *raft.Raft
	trans raft.Transport
	fsm   *countFSM
}

// TestRaftOverEndpoint runs hashicorp/raft over the Endpoint's own gRPC
// server and per-peer connections: the same port and connection that carry
// actor messages.
func TestRaftOverEndpoint(t *testing.T) {
	resolver := StaticResolver{}
	members := make([]*raftMember, 3)
	for i := range members {
		name := fmt.Sprintf("r%d", i+1)
		sys, err := actor.NewSystem(actor.WithNode(name))
		require.NoError(t, err)
		ep, err := New(sys, WithResolver(resolver))
		require.NoError(t, err)
		trans := ep.RaftTransport()
		require.NoError(t, ep.Start())
		resolver[name] = ep.Addr()
		members[i] = &raftMember{node: &node{name: name, sys: sys, ep: ep}, trans: trans, fsm: &countFSM{}}
	}
	var servers []raft.Server
	for _, m := range members {
		servers = append(servers, raft.Server{ID: raft.ServerID(m.name), Address: raft.ServerAddress(m.ep.Addr())})
	}
	for _, m := range members {
		cfg := raft.DefaultConfig()
		cfg.LocalID = raft.ServerID(m.name)
		cfg.HeartbeatTimeout = 200 * time.Millisecond
		cfg.ElectionTimeout = 200 * time.Millisecond
		cfg.LeaderLeaseTimeout = 100 * time.Millisecond
		cfg.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		r, err := raft.NewRaft(cfg, m.fsm, store, store, raft.NewInmemSnapshotStore(), m.trans)
		require.NoError(t, err)
		m.raft = r
		require.NoError(t, r.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	}
	stop := func(m *raftMember) {
		require.NoError(t, m.raft.Shutdown().Error())
		m.node.stop(t)
	}
	defer func() {
		for _, m := range members {
			if m != nil {
				stop(m)
			}
		}
	}()

	leader := applyAll(t, members, 1000)
	waitApplied(t, members, 1000)

	// Lose the leader: the other two elect a new one and go on.
	for i, m := range members {
		if m == leader {
			stop(m)
			members[i] = nil
		}
	}
	var rest []*raftMember
	for _, m := range members {
		if m != nil {
			rest = append(rest, m)
		}
	}
	applyAll(t, rest, 100)
	waitApplied(t, rest, 1100)
}

// applyAll applies n entries, pipelined, through the leader of members and
// returns it. An entry whose leader lost its leadership meanwhile (a loaded
// machine misses a 200 ms heartbeat now and then) is applied again through
// the next leader, so members may apply it twice: waitApplied counts at
// least n.
func applyAll(t *testing.T, members []*raftMember, n int) *raftMember {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pending := n; pending > 0; {
		require.True(t, time.Now().Before(deadline), "%d of %d entries not applied", pending, n)
		leader := waitRaftLeader(t, members)
		futures := make([]raft.ApplyFuture, pending)
		for i := range futures {
			futures[i] = leader.raft.Apply([]byte{byte(i)}, 5*time.Second)
		}
		pending = 0
		for _, f := range futures {
			if err := f.Error(); err != nil {
				if !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrEnqueueTimeout) {
					require.NoError(t, err)
				}
				pending++
			}
		}
		if pending == 0 {
			return leader
		}
		t.Logf("%d entries lost with the leadership of %s; applying them again", pending, leader.name)
	}
	return nil
}

func waitRaftLeader(t *testing.T, members []*raftMember) *raftMember {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range members {
			if m.raft.State() == raft.Leader {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader elected")
	return nil
}

func waitApplied(t *testing.T, members []*raftMember, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, m := range members {
			if m.fsm.applied() < n {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
}
