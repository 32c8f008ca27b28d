package raftrpc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
)

// recordFSM records the data of every applied command, in order.
type recordFSM struct {
	mu       sync.Mutex
	applied  [][]byte
	restores int
}

func (f *recordFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, bytes.Clone(l.Data))
	return len(f.applied)
}

func (f *recordFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &recordSnapshot{applied: append([][]byte(nil), f.applied...)}, nil
}

// Restore reads the uvarint-length-prefixed entries Persist wrote.
func (f *recordFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var applied [][]byte
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return fmt.Errorf("corrupt snapshot")
		}
		applied = append(applied, bytes.Clone(data[k:k+int(n)]))
		data = data[k+int(n):]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = applied
	f.restores++
	return nil
}

func (f *recordFSM) state() (applied [][]byte, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.applied...), f.restores
}

type recordSnapshot struct{ applied [][]byte }

func (s *recordSnapshot) Persist(sink raft.SnapshotSink) error {
	var b []byte
	for _, d := range s.applied {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	if _, err := sink.Write(b); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *recordSnapshot) Release() {}

// raftNode is a hashicorp/raft instance on its own gRPC server.
type raftNode struct {
	*testServer
	id   raft.ServerID
	raft *raft.Raft
	fsm  *recordFSM
	once sync.Once
}

func startRaftNode(t *testing.T, conns *connCache, id string, modify func(*raft.Config), opts ...grpc.ServerOption) *raftNode {
	t.Helper()
	s := startServer(t, conns, nil, opts...)
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	cfg.HeartbeatTimeout = 200 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.Logger = hclog.NewNullLogger()
	if modify != nil {
		modify(cfg)
	}
	n := &raftNode{testServer: s, id: cfg.LocalID, fsm: &recordFSM{}}
	r, err := raft.NewRaft(cfg, n.fsm, raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore(), s.trans)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = r
	t.Cleanup(n.shutdown)
	return n
}

// shutdown stops Raft (which closes the transport), then the server.
func (n *raftNode) shutdown() {
	n.once.Do(func() {
		_ = n.raft.Shutdown().Error()
		n.stop()
	})
}

func (n *raftNode) server() raft.Server {
	return raft.Server{ID: n.id, Address: n.addr}
}

// waitLeader waits until exactly one of nodes leads and all others know it.
func waitLeader(t *testing.T, nodes ...*raftNode) *raftNode {
	t.Helper()
	var leader *raftNode
	waitFor(t, 10*time.Second, "a leader", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if addr, _ := n.raft.LeaderWithID(); addr != leader.addr {
				return false
			}
		}
		return true
	})
	return leader
}

func entry(i int) []byte { return []byte(fmt.Sprintf("entry-%06d", i)) }

// applyRange applies entry(from)..entry(to-1) on leader, pipelined.
func applyRange(t *testing.T, leader *raftNode, from, to int) {
	t.Helper()
	futures := make([]raft.ApplyFuture, 0, to-from)
	for i := from; i < to; i++ {
		futures = append(futures, leader.raft.Apply(entry(i), 10*time.Second))
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatalf("apply %d: %v", from+i, err)
		}
	}
}

// waitApplied waits until every node's FSM holds exactly entry(0)..entry(n-1).
func waitApplied(t *testing.T, n int, nodes ...*raftNode) {
	t.Helper()
	for _, node := range nodes {
		waitFor(t, 10*time.Second, fmt.Sprintf("%s to apply %d entries", node.id, n), func() bool {
			applied, _ := node.fsm.state()
			return len(applied) >= n
		})
		applied, _ := node.fsm.state()
		if len(applied) != n {
			t.Fatalf("%s applied %d entries, want %d", node.id, len(applied), n)
		}
		for i, d := range applied {
			if !bytes.Equal(d, entry(i)) {
				t.Fatalf("%s: entry %d is %q, want %q", node.id, i, d, entry(i))
			}
		}
	}
}

// countStreams returns a server option counting the streams opened for
// method.
func countStreams(method string, n *atomic.Int32) grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod == fullMethod(method) {
			n.Add(1)
		}
		return handler(srv, ss)
	})
}

func TestRaftOverGRPC_ElectReplicateSurviveLeaderLoss(t *testing.T) {
	conns := newConnCache(t)
	var pipelines atomic.Int32
	nodes := []*raftNode{
		startRaftNode(t, conns, "n1", nil, countStreams(methodAppendEntriesPipeline, &pipelines)),
		startRaftNode(t, conns, "n2", nil, countStreams(methodAppendEntriesPipeline, &pipelines)),
		startRaftNode(t, conns, "n3", nil, countStreams(methodAppendEntriesPipeline, &pipelines)),
	}
	cluster := raft.Configuration{}
	for _, n := range nodes {
		cluster.Servers = append(cluster.Servers, n.server())
	}
	for _, n := range nodes {
		if err := n.raft.BootstrapCluster(cluster).Error(); err != nil {
			t.Fatalf("bootstrap %s: %v", n.id, err)
		}
	}

	leader := waitLeader(t, nodes...)
	applyRange(t, leader, 0, 1000)
	waitApplied(t, 1000, nodes...)
	if pipelines.Load() == 0 {
		t.Fatal("replication never used an AppendEntriesPipeline stream")
	}

	leader.shutdown()
	var rest []*raftNode
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	newLeader := waitLeader(t, rest...)
	applyRange(t, newLeader, 1000, 1100)
	waitApplied(t, 1100, rest...)
}

func TestRaftOverGRPC_LateJoinerCatchesUpBySnapshot(t *testing.T) {
	conns := newConnCache(t)
	small := func(c *raft.Config) {
		c.TrailingLogs = 10
		c.SnapshotThreshold = 50
	}
	n1 := startRaftNode(t, conns, "n1", small)
	if err := n1.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{n1.server()}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n1)

	// 300 entries of ~2 KiB make a snapshot of several 256 KiB chunks.
	pad := bytes.Repeat([]byte("x"), 2048)
	futures := make([]raft.ApplyFuture, 0, 300)
	want := make([][]byte, 0, 300)
	for i := range 300 {
		d := append(entry(i), pad...)
		want = append(want, d)
		futures = append(futures, n1.raft.Apply(d, 10*time.Second))
	}
	for _, f := range futures {
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	// n2 joins late: the entries it needs are compacted away, so the
	// leader must send the snapshot; count InstallSnapshot streams at n2.
	var snapshotRPCs atomic.Int32
	n2 := startRaftNode(t, conns, "n2", small, countStreams(methodInstallSnapshot, &snapshotRPCs))
	if err := n1.raft.AddVoter(n2.id, n2.addr, 0, 10*time.Second).Error(); err != nil {
		t.Fatalf("add voter: %v", err)
	}
	waitFor(t, 10*time.Second, "n2 to restore the snapshot and apply", func() bool {
		applied, restores := n2.fsm.state()
		return restores > 0 && len(applied) >= 300
	})
	applied, _ := n2.fsm.state()
	for i := range want {
		if !bytes.Equal(applied[i], want[i]) {
			t.Fatalf("n2 entry %d differs", i)
		}
	}
	if snapshotRPCs.Load() == 0 {
		t.Fatal("no InstallSnapshot RPC reached n2")
	}

	// Replication continues normally after the snapshot.
	if err := n1.raft.Apply([]byte("after"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n2 to apply the entry after the snapshot", func() bool {
		applied, _ := n2.fsm.state()
		return len(applied) == 301 && string(applied[300]) == "after"
	})
}
