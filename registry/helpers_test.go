package registry

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// tb is what helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// view is everything observable about a State.
type view struct {
	Version uint64
	Members []Member
	Names   map[string][]Receiver
}

func observe(s *State) view {
	v := view{Version: s.Version(), Members: s.Members(), Names: map[string][]Receiver{}}
	for _, n := range s.Names() {
		v.Names[n] = append([]Receiver(nil), s.Receivers(n)...)
	}
	return v
}

func member(id string, inc uint64) Member {
	return Member{ID: id, Addr: id + ":7000", Incarnation: inc}
}

func queue(node, actorID string, inc uint64) Receiver {
	return Receiver{Node: node, ActorID: actorID, Mode: Queue, Incarnation: inc}
}

func broadcast(node, actorID string, inc uint64) Receiver {
	return Receiver{Node: node, ActorID: actorID, Mode: Broadcast, Incarnation: inc}
}

func join(id string, inc uint64) command {
	return joinCmd{Member: member(id, inc)}
}

func register(name string, r Receiver) command {
	return registerCmd{Name: name, Receiver: r}
}

// logEntry encodes cmd as the Raft log entry at index.
func logEntry(t tb, index uint64, cmd command) *raft.Log {
	t.Helper()
	b, err := encodeCommand(cmd)
	if err != nil {
		t.Fatalf("encode %#v: %v", cmd, err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

// applyAll applies cmds to s from index from+1 on and fails on a refusal.
func applyAll(t testing.TB, s *State, cmds ...command) *State {
	t.Helper()
	for _, c := range cmds {
		var res result
		s, res = s.apply(s.Version()+1, c)
		if res.Err != nil {
			t.Fatalf("setup %#v: %v", c, res.Err)
		}
	}
	return s
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// snapshot persists f's snapshot and returns its bytes.
func snapshot(t tb, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func restore(f *fsm, b []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(b)))
}

type raftLog struct {
	index uint64
	data  []byte
}

func (l raftLog) log() *raft.Log {
	return &raft.Log{Index: l.index, Term: 1, Type: raft.LogCommand, Data: l.data}
}
