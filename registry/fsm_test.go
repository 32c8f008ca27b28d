package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// sampleFSM returns an FSM that applied a few commands of every kind.
func sampleFSM(t testing.TB) *fsm {
	t.Helper()
	f := newFSM()
	cmds := []command{
		join("n1", 1), join("n2", 1), join("n3", 4),
		setVoterCmd{Node: "n1", Voter: true},
		register("a", queue("n1", "x", 1)),
		register("a", broadcast("n2", "x", 1)),
		register("b", queue("n3", "y", 4)),
		register("c", queue("n3", "z", 4)),
		expireNodeCmd{Node: "n3", Incarnation: 4},
		register("d", queue("n2", "w", 1)),
	}
	for i, c := range cmds {
		if res := f.Apply(logEntry(t, uint64(i+1), c)).(result); res.Err != nil {
			t.Fatalf("%#v: %v", c, res.Err)
		}
	}
	return f
}

func TestFSMApply(t *testing.T) {
	f := sampleFSM(t)
	s := f.current()
	if s.Version() != 10 {
		t.Fatalf("version = %d", s.Version())
	}
	if got := s.Names(); !reflect.DeepEqual(got, []string{"a", "d"}) {
		t.Fatalf("names = %q", got)
	}
	m, ok := s.Member("n3")
	if !ok || m.Status != Expired {
		t.Fatalf("n3 = %+v, %v", m, ok)
	}
}

func TestFSMApplyGarbage(t *testing.T) {
	f := sampleFSM(t)
	before := observe(f.current())
	for i, data := range [][]byte{nil, {0xff}, {1, 99}, {1, 3, 200}} {
		index := before.Version + uint64(i) + 1
		res, ok := f.Apply(raftLog{index, data}.log()).(result)
		if !ok || res.Err == nil || res.changed() {
			t.Fatalf("Apply(%x) = %+v", data, res)
		}
		if !errors.Is(res.Err, ErrMalformed) && !errors.Is(res.Err, ErrUnsupportedVersion) {
			t.Fatalf("Apply(%x): %v", data, res.Err)
		}
		want := before
		want.Version = index
		if got := observe(f.current()); !reflect.DeepEqual(got, want) {
			t.Fatalf("state changed:\n got %+v\nwant %+v", got, want)
		}
	}
	if res := f.Apply(nil).(result); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("Apply(nil) = %v", res.Err)
	}
}

func TestFSMApplyBatch(t *testing.T) {
	cmds := []command{
		join("n1", 1), register("a", queue("n1", "x", 1)),
		register("b", queue("n9", "x", 1)), // refused
		join("n1", 2),
	}
	one := newFSM()
	batched := newFSM()
	var logs []*raft.Log
	var want []any
	for i, c := range cmds {
		l := logEntry(t, uint64(2*i+1), c)
		want = append(want, one.Apply(l))
		logs = append(logs, l, &raft.Log{Index: uint64(2*i + 2), Type: raft.LogConfiguration})
		want = append(want, nil)
	}
	ch, cancel := batched.watch("a")
	defer cancel()
	got := batched.ApplyBatch(logs)
	if len(got) != len(want) {
		t.Fatalf("%d responses for %d logs", len(got), len(logs))
	}
	for i := range got {
		g, _ := got[i].(result)
		w, _ := want[i].(result)
		if (got[i] == nil) != (want[i] == nil) || errString(g.Err) != errString(w.Err) ||
			!reflect.DeepEqual(g.Names, w.Names) || g.Members != w.Members {
			t.Errorf("response %d = %#v, want %#v", i, got[i], want[i])
		}
	}
	if !reflect.DeepEqual(observe(one.current()), observe(batched.current())) {
		t.Fatalf("batched state differs:\n%+v\n%+v", observe(batched.current()), observe(one.current()))
	}
	select {
	case <-ch:
	default:
		t.Fatal("watcher of a not signalled by the batch")
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := sampleFSM(t)
	b := snapshot(t, f)

	g := newFSM() // another seed: another layout
	g.Apply(logEntry(t, 1, join("old", 1)))
	if err := restore(g, b); err != nil {
		t.Fatal(err)
	}
	if got, want := observe(g.current()), observe(f.current()); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(snapshot(t, g), b) {
		t.Fatal("snapshot of the restored state differs from the original")
	}
	// The restored FSM goes on like the original.
	next := logEntry(t, 11, register("a", queue("n1", "q", 1)))
	f.Apply(next)
	g.Apply(next)
	if !reflect.DeepEqual(observe(g.current()), observe(f.current())) {
		t.Fatal("diverged after restore")
	}

	// The empty state round-trips too.
	e := newFSM()
	if err := restore(e, snapshot(t, newFSM())); err != nil {
		t.Fatal(err)
	}
	if v := observe(e.current()); v.Version != 0 || len(v.Members) != 0 || len(v.Names) != 0 {
		t.Fatalf("restored empty: %+v", v)
	}
}

// A snapshot holds the state it was taken at, whatever is applied later.
func TestSnapshotIsPointInTime(t *testing.T) {
	f := sampleFSM(t)
	want := observe(f.current())
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	f.Apply(logEntry(t, 11, leaveCmd{Node: "n1"}))
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := restore(g, sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	if got := observe(g.current()); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestRestoreCorrupt(t *testing.T) {
	good := snapshot(t, sampleFSM(t))
	check := func(t *testing.T, name string, b []byte) {
		t.Helper()
		f := sampleFSM(t)
		before := observe(f.current())
		err := restore(f, b)
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("%s: Restore = %v, want ErrCorruptSnapshot", name, err)
		}
		if got := observe(f.current()); !reflect.DeepEqual(got, before) {
			t.Fatalf("%s: a failed Restore changed the state", name)
		}
	}
	t.Run("truncated", func(t *testing.T) {
		for n := range len(good) {
			check(t, "prefix", good[:n])
		}
	})
	t.Run("bit flips", func(t *testing.T) {
		for i := range good {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(good)
				b[i] ^= bit
				check(t, "flip", b)
			}
		}
	})
	t.Run("trailing", func(t *testing.T) { check(t, "trailing", append(bytes.Clone(good), 0)) })
	t.Run("garbage", func(t *testing.T) { check(t, "garbage", bytes.Repeat([]byte{0xff}, 64)) })
	t.Run("read error", func(t *testing.T) {
		f := newFSM()
		err := f.Restore(errReader{})
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("Restore = %v", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
func (errReader) Close() error             { return nil }

type failSink struct{ memSink }

func (s *failSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPersistError(t *testing.T) {
	snap, err := sampleFSM(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink failSink
	if err := snap.Persist(&sink); err == nil || !sink.cancelled || sink.closed {
		t.Fatalf("Persist = %v, cancelled=%v closed=%v", err, sink.cancelled, sink.closed)
	}
}

// Readers run lock-free against a writer (meaningful under -race).
func TestConcurrentReads(t *testing.T) {
	f := newFSM()
	f.Apply(logEntry(t, 1, join("n1", 1)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := f.current()
				for _, r := range s.Receivers("a") {
					if r.Node != "n1" {
						t.Errorf("bad receiver %+v", r)
						return
					}
				}
				_ = s.Names()
				_, _ = s.Member("n1")
			}
		})
	}
	for i := uint64(2); i < 2000; i += 2 {
		f.Apply(logEntry(t, i, register("a", queue("n1", "x"+itoa(int(i)), 1))))
		f.Apply(logEntry(t, i+1, unregisterCmd{Name: "b", Node: "n1", ActorID: "x"}))
	}
	close(stop)
	wg.Wait()
}

// Watching

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWatch(t *testing.T) {
	f := newFSM()
	f.Apply(logEntry(t, 1, join("n1", 1)))
	a, cancelA := f.watch("a")
	defer cancelA()
	a2, cancelA2 := f.watch("a")
	defer cancelA2()
	b, cancelB := f.watch("b")
	defer cancelB()
	all, cancelAll := f.watchAll()
	defer cancelAll()
	members, cancelMembers := f.watchMembers()
	defer cancelMembers()

	f.Apply(logEntry(t, 2, register("a", queue("n1", "x", 1))))
	if !signalled(a) || !signalled(a2) || !signalled(all) {
		t.Fatal("watchers of a not signalled")
	}
	if signalled(members) {
		t.Fatal("a name's change signalled the member watcher")
	}
	if signalled(b) {
		t.Fatal("watcher of b signalled by a change of a")
	}

	// No-ops and refusals signal nobody.
	f.Apply(logEntry(t, 3, register("a", queue("n1", "x", 1))))
	f.Apply(logEntry(t, 4, register("b", queue("n9", "x", 1))))
	f.Apply(logEntry(t, 5, unregisterCmd{Name: "b", Node: "n1", ActorID: "x"}))
	if signalled(a) || signalled(b) || signalled(all) {
		t.Fatal("signalled without a change")
	}

	// Member changes signal WatchAll and WatchMembers only.
	f.Apply(logEntry(t, 6, join("n2", 1)))
	if !signalled(all) || !signalled(members) || signalled(a) {
		t.Fatal("member change: wrong watchers signalled")
	}

	// Removing a node signals the names it had receivers under.
	f.Apply(logEntry(t, 7, expireNodeCmd{Node: "n1", Incarnation: 1}))
	if !signalled(a) || signalled(b) || !signalled(all) || !signalled(members) {
		t.Fatal("expiry: wrong watchers signalled")
	}

	// Cancelled watchers hear nothing; cancel is idempotent.
	cancelA()
	cancelA()
	f.Apply(logEntry(t, 8, register("a", queue("n2", "x", 1))))
	if signalled(a) || !signalled(a2) {
		t.Fatal("cancel did not stop the watcher, or stopped another")
	}

	// Restore signals everyone.
	g := sampleFSM(t)
	if err := restore(f, snapshot(t, g)); err != nil {
		t.Fatal(err)
	}
	if !signalled(a2) || !signalled(b) || !signalled(all) || !signalled(members) {
		t.Fatal("Restore did not signal every watcher")
	}
}

// A watcher that never reads does not slow Apply, and holds one signal.
func TestWatchSlowWatcher(t *testing.T) {
	f := newFSM()
	f.Apply(logEntry(t, 1, join("n1", 1)))
	ch, cancel := f.watch("a")
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(2); i < 2002; i++ {
			f.Apply(logEntry(t, i, register("a", queue("n1", "x"+itoa(int(i)), 1))))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Apply blocked on a watcher that does not read")
	}
	if len(ch) != 1 {
		t.Fatalf("%d pending signals, want 1", len(ch))
	}
}

// The state a watcher reads after a signal already has the change.
func TestWatchSeesNewState(t *testing.T) {
	f := newFSM()
	f.Apply(logEntry(t, 1, join("n1", 1)))
	ch, cancel := f.watch("a")
	defer cancel()
	const n = 200
	got := make(chan int, 1)
	go func() {
		seen := 0
		for seen < n {
			<-ch
			seen = len(f.current().Receivers("a"))
		}
		got <- seen
	}()
	for i := range n {
		f.Apply(logEntry(t, uint64(i+2), register("a", queue("n1", "x"+itoa(i), 1))))
	}
	select {
	case s := <-got:
		if s != n {
			t.Fatalf("watcher saw %d receivers, want %d", s, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watcher missed the last change")
	}
}

// TestWaitVersionSeesEntriesThatChangeNothing: a garbage entry or a refused
// command changes no name and no member, so watch does not fire, but it
// advances the version: waitVersion (what Registry.Sync waits with) must
// return for it.
func TestWaitVersionSeesEntriesThatChangeNothing(t *testing.T) {
	f := sampleFSM(t) // version 10
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.waitVersion(ctx, 10); err != nil {
		t.Fatalf("WaitVersion(reached) = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.waitVersion(ctx, 12) }()
	f.Apply(raftLog{11, []byte{0xff}}.log())
	select {
	case err := <-done:
		t.Fatalf("WaitVersion(12) returned %v at version 11", err)
	default:
	}
	res := f.Apply(logEntry(t, 12, unregisterCmd{Name: "nobody", Node: "n1", ActorID: "x"})).(result)
	if res.changed() {
		t.Fatalf("the unregistration of an unknown receiver changed the state: %+v", res)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitVersion(12) = %v", err)
	}

	short, cancelShort := context.WithCancel(context.Background())
	cancelShort()
	if err := f.waitVersion(short, 99); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitVersion with a cancelled ctx = %v", err)
	}
}

// TestTheStateMovesForwardOnly: entries at or below the current version,
// and snapshots older than it, change nothing. A client promoted to
// replica holds entries Raft then replays, after a snapshot that may be
// older than its copy.
func TestTheStateMovesForwardOnly(t *testing.T) {
	older := snapshot(t, newFSMAt(t, 4))
	f := sampleFSM(t) // version 10
	before := observe(f.current())
	for _, index := range []uint64{3, 10} {
		res := f.Apply(logEntry(t, index, register("late", queue("n1", "x", 1)))).(result)
		if res.changed() || res.Err != nil {
			t.Fatalf("entry %d at version 10: %+v", index, res)
		}
	}
	out := f.ApplyBatch([]*raft.Log{
		logEntry(t, 9, register("late", queue("n1", "x", 1))),
		logEntry(t, 11, register("next", queue("n1", "x", 1))),
	})
	if out[0] != nil || out[1].(result).Err != nil {
		t.Fatalf("ApplyBatch = %+v", out)
	}
	if err := restore(f, older); err != nil {
		t.Fatal(err)
	}
	after := observe(f.current())
	if after.Version != 11 || len(f.current().Receivers("late")) != 0 || len(f.current().Receivers("next")) != 1 {
		t.Fatalf("version %d, late %v, next %v", after.Version, f.current().Receivers("late"), f.current().Receivers("next"))
	}
	if before.Version != 10 {
		t.Fatalf("sample at version %d", before.Version)
	}
}

// newFSMAt returns an fsm that applied n joins, at version n.
func newFSMAt(t testing.TB, n int) *fsm {
	t.Helper()
	f := newFSM()
	for i := 1; i <= n; i++ {
		f.Apply(logEntry(t, uint64(i), join(fmt.Sprintf("j%d", i), 1)))
	}
	return f
}
