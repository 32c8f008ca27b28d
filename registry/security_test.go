package registry

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/internal/bin"
)

// The attacks of a member on the others through the registry's RPCs: n3,
// a member in good standing, sends the leader writes about n2. Each test
// reproduces one; each is refused with ErrPermissionDenied and changes
// nothing.

// attackFixture is a 3-node cluster, its leader, the victim (n2's node)
// and the attacker (n3's).
func attackFixture(t *testing.T) (leader, victim, attacker *testNode) {
	t.Helper()
	nodes := startCluster(t, 3)
	leader = waitLeaderOf(t, nodes...)
	for _, n := range nodes {
		switch n.id {
		case "n2":
			victim = n
		case "n3":
			attacker = n
		}
	}
	require.NoError(t, victim.reg.Register(ctxWithin(t, clusterWait), "svc", "$1", Queue))
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	return leader, victim, attacker
}

// sendAs calls method on the leader from attacker's endpoint, which
// declares attacker's ID.
func sendAs(t *testing.T, attacker, leader *testNode, method string, req []byte) error {
	t.Helper()
	_, err := attacker.reg.callReply(ctxWithin(t, clusterWait), leader.addr, method, req)
	return err
}

func encode(t *testing.T, cmd command) []byte {
	t.Helper()
	b, err := encodeCommand(cmd)
	require.NoError(t, err)
	return b
}

// unchanged asserts that the leader's view of the victim is what it was.
func unchanged(t *testing.T, leader, victim *testNode, before State) {
	t.Helper()
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	m, ok := leader.reg.State().Member(victim.id)
	require.True(t, ok, "the victim is still a member")
	was, _ := before.Member(victim.id)
	assert.Equal(t, was, m, "the victim's member record is unchanged")
	assert.Equal(t, before.Receivers("svc"), leader.reg.State().Receivers("svc"), "the victim's names are unchanged")
	found := false
	for _, s := range leader.reg.raft.GetConfiguration().Configuration().Servers {
		if s.ID == raft.ServerID(victim.id) {
			found = true
			assert.Equal(t, raft.ServerAddress(victim.reg.ep.AdvertiseAddr()), s.Address, "the victim's Raft address")
			assert.Equal(t, raft.Voter, s.Suffrage, "the victim is still a voter")
		}
	}
	assert.True(t, found, "the victim is still in the Raft configuration")
}

func TestForgedJoinForAnotherNodeIsRefused(t *testing.T) {
	leader, victim, attacker := attackFixture(t)
	before := *leader.reg.State()
	m, _ := before.Member(victim.id)
	// As a command through Apply, with the victim's incarnation, learned
	// through Member, and an address that redirects its traffic.
	forged := encode(t, joinCmd{Member: Member{ID: victim.id, Addr: "127.0.0.1:9", Incarnation: m.Incarnation}})
	require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, forged), ErrPermissionDenied)
	// As a join request.
	w := bin.Writer{}
	w.Str(victim.id)
	w.Str("127.0.0.1:9")
	w.Uvarint(m.Incarnation + 1)
	require.ErrorIs(t, sendAs(t, attacker, leader, methodJoin, w.B), ErrPermissionDenied)
	unchanged(t, leader, victim, before)
}

func TestForgedRegisterForAnotherNodeIsRefused(t *testing.T) {
	leader, victim, attacker := attackFixture(t)
	before := *leader.reg.State()
	m, _ := before.Member(victim.id)
	forged := encode(t, registerCmd{Name: "svc", Receiver: Receiver{Node: victim.id, ActorID: "$evil", Mode: Queue, Incarnation: m.Incarnation}})
	require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, forged), ErrPermissionDenied)
	forged = encode(t, unregisterCmd{Name: "svc", Node: victim.id, ActorID: "$1", Incarnation: m.Incarnation})
	require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, forged), ErrPermissionDenied)
	unchanged(t, leader, victim, before)
}

func TestForgedLeaveForAnotherNodeIsRefused(t *testing.T) {
	leader, victim, attacker := attackFixture(t)
	before := *leader.reg.State()
	m, _ := before.Member(victim.id)
	forged := encode(t, leaveCmd{Node: victim.id, Incarnation: m.Incarnation})
	require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, forged), ErrPermissionDenied)
	unchanged(t, leader, victim, before)
}

func TestLeaderOnlyCommandsAreRefusedOverRPC(t *testing.T) {
	leader, victim, attacker := attackFixture(t)
	before := *leader.reg.State()
	m, _ := before.Member(victim.id)
	for _, cmd := range []command{
		expireNodeCmd{Node: victim.id, Incarnation: m.Incarnation},
		setVoterCmd{Node: victim.id, Voter: false},
		setVoterCmd{Node: attacker.id, Voter: true}, // even about itself
	} {
		require.ErrorIs(t, sendAs(t, attacker, leader, methodApply, encode(t, cmd)), ErrPermissionDenied, "%T", cmd)
	}
	unchanged(t, leader, victim, before)
}

// TestOwnWritesStillWork: the checks let a node write for itself, through
// a follower's forward-free path (it goes to the leader itself).
func TestOwnWritesStillWork(t *testing.T) {
	leader, _, attacker := attackFixture(t)
	require.NoError(t, attacker.reg.Register(ctxWithin(t, clusterWait), "own", "$2", Queue))
	require.NoError(t, attacker.reg.Unregister(ctxWithin(t, clusterWait), "own", "$2"))
	require.NoError(t, leader.reg.Sync(ctxWithin(t, clusterWait)))
	assert.Empty(t, leader.reg.Lookup("own"))
}

// TestDataDirIsPrivate: a data dir that exists with open permissions (and
// what hashicorp/raft creates in it, snapshots/ at 0755) is made private
// to the node's user at start: directories 0700, files 0600.
func TestDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "old"), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "node-id"), []byte("n1\n"), 0o644))
	startTestNode(t, "n1", "", dir, nil)
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		assert.Equal(t, want, info.Mode().Perm(), path)
		return nil
	}))
	_, err := os.Stat(filepath.Join(dir, "snapshots"))
	require.NoError(t, err, "hashicorp/raft's snapshot directory was checked too")
}
