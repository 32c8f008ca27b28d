package registry

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dchan-io/dchan/actor"
)

// customCommand satisfies command by embedding, but is not one of the
// package's command types.
type customCommand struct{ joinCmd }

func TestApply(t *testing.T) {
	n1, n2 := member("n1", 1), member("n2", 1)
	n1v2 := member("n1", 2)
	expired := func(m Member) Member { m.Status = Expired; return m }
	voter := func(m Member) Member { m.Voter = true; return m }
	withAddr := func(m Member, a string) Member { m.Addr = a; return m }
	two := []command{ // two members, names shared between them
		join("n1", 1), join("n2", 1),
		register("a", queue("n1", "x", 1)),
		register("a", queue("n2", "x", 1)),
		register("b", queue("n1", "y", 1)),
		register("c", broadcast("n2", "z", 1)),
	}
	type names = map[string][]Receiver
	twoNames := names{
		"a": {queue("n1", "x", 1), queue("n2", "x", 1)},
		"b": {queue("n1", "y", 1)},
		"c": {broadcast("n2", "z", 1)},
	}

	tests := []struct {
		name        string
		setup       []command
		cmd         command
		wantErr     error
		wantNames   []string // result.Names
		wantMembers bool     // result.Members
		// The state after, when the command is accepted.
		members []Member
		recv    names
	}{
		// joinCmd
		{name: "join new member", cmd: join("n1", 1), wantMembers: true,
			members: []Member{n1}},
		{name: "join second member sorted", setup: []command{join("n2", 1)}, cmd: join("n1", 1),
			wantMembers: true, members: []Member{n1, n2}},
		{name: "join ignores given status", cmd: joinCmd{Member: expired(n1)}, wantMembers: true,
			members: []Member{n1}},
		{name: "join again is idempotent", setup: []command{join("n1", 1)}, cmd: join("n1", 1),
			members: []Member{n1}},
		{name: "join same incarnation updates address and voter",
			setup:       []command{join("n1", 1), register("a", queue("n1", "x", 1))},
			cmd:         joinCmd{Member: voter(withAddr(n1, "other:1"))},
			wantMembers: true, members: []Member{voter(withAddr(n1, "other:1"))},
			recv: names{"a": {queue("n1", "x", 1)}}},
		{name: "restart clears names of the previous incarnation", setup: two, cmd: join("n1", 2),
			wantMembers: true, wantNames: []string{"a", "b"},
			members: []Member{n1v2, n2},
			recv:    names{"a": {queue("n2", "x", 1)}, "c": {broadcast("n2", "z", 1)}}},
		{name: "join with lower incarnation refused", setup: []command{join("n1", 2)},
			cmd: join("n1", 1), wantErr: ErrStaleIncarnation},
		{name: "join with expired incarnation refused",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   join("n1", 1), wantErr: ErrStaleIncarnation},
		{name: "rejoin after expiry with higher incarnation",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   join("n1", 2), wantMembers: true, members: []Member{n1v2}},
		{name: "join empty ID", cmd: join("", 1), wantErr: ErrInvalidCommand},
		{name: "join empty address", cmd: joinCmd{Member: withAddr(n1, "")}, wantErr: ErrInvalidCommand},
		{name: "join incarnation 0", cmd: join("n1", 0), wantErr: ErrInvalidCommand},
		{name: "join long ID", cmd: join(strings.Repeat("n", MaxIDLen+1), 1), wantErr: ErrInvalidCommand},
		{name: "join long address", cmd: joinCmd{Member: withAddr(n1, strings.Repeat("a", MaxAddrLen+1))},
			wantErr: ErrInvalidCommand},

		// leaveCmd
		{name: "leave removes member and its names", setup: two, cmd: leaveCmd{Node: "n1"},
			wantMembers: true, wantNames: []string{"a", "b"}, members: []Member{n2},
			recv: names{"a": {queue("n2", "x", 1)}, "c": {broadcast("n2", "z", 1)}}},
		{name: "leave with current incarnation", setup: two, cmd: leaveCmd{Node: "n2", Incarnation: 1},
			wantMembers: true, wantNames: []string{"a", "c"}, members: []Member{n1},
			recv: names{"a": {queue("n1", "x", 1)}, "b": {queue("n1", "y", 1)}}},
		{name: "leave with previous incarnation refused", setup: []command{join("n1", 2)},
			cmd: leaveCmd{Node: "n1", Incarnation: 1}, wantErr: ErrStaleIncarnation},
		{name: "leave unknown node is a no-op", setup: []command{join("n1", 1)},
			cmd: leaveCmd{Node: "n9"}, members: []Member{n1}},
		{name: "leave expired member",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   leaveCmd{Node: "n1"}, wantMembers: true},
		{name: "leave empty node", cmd: leaveCmd{}, wantErr: ErrInvalidCommand},

		// registerCmd
		{name: "register", setup: []command{join("n1", 1)}, cmd: register("a", queue("n1", "x", 1)),
			wantNames: []string{"a"}, members: []Member{n1}, recv: names{"a": {queue("n1", "x", 1)}}},
		{name: "register is idempotent", setup: []command{join("n1", 1), register("a", queue("n1", "x", 1))},
			cmd: register("a", queue("n1", "x", 1)), members: []Member{n1}, recv: names{"a": {queue("n1", "x", 1)}}},
		{name: "register again with another mode replaces",
			setup: []command{join("n1", 1), register("a", queue("n1", "x", 1))},
			cmd:   register("a", broadcast("n1", "x", 1)), wantNames: []string{"a"},
			members: []Member{n1}, recv: names{"a": {broadcast("n1", "x", 1)}}},
		{name: "queue and broadcast receivers coexist", setup: two, cmd: register("a", broadcast("n1", "w", 1)),
			wantNames: []string{"a"}, members: []Member{n1, n2},
			recv: names{
				"a": {broadcast("n1", "w", 1), queue("n1", "x", 1), queue("n2", "x", 1)},
				"b": twoNames["b"], "c": twoNames["c"],
			}},
		{name: "register on unknown node refused", cmd: register("a", queue("n1", "x", 1)),
			wantErr: ErrUnknownMember},
		{name: "register by expired node refused",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   register("a", queue("n1", "x", 1)), wantErr: ErrMemberExpired},
		{name: "register from previous incarnation refused", setup: []command{join("n1", 1), join("n1", 2)},
			cmd: register("a", queue("n1", "x", 1)), wantErr: ErrStaleIncarnation},
		{name: "register from unknown future incarnation refused", setup: []command{join("n1", 1)},
			cmd: register("a", queue("n1", "x", 2)), wantErr: ErrStaleIncarnation},
		{name: "register empty name", setup: []command{join("n1", 1)}, cmd: register("", queue("n1", "x", 1)),
			wantErr: ErrInvalidCommand},
		{name: "register long name", setup: []command{join("n1", 1)},
			cmd: register(strings.Repeat("a", MaxNameLen+1), queue("n1", "x", 1)), wantErr: ErrInvalidCommand},
		{name: "register empty actor", setup: []command{join("n1", 1)}, cmd: register("a", queue("n1", "", 1)),
			wantErr: ErrInvalidCommand},
		{name: "register empty node", cmd: register("a", queue("", "x", 1)), wantErr: ErrInvalidCommand},
		{name: "register incarnation 0", setup: []command{join("n1", 1)}, cmd: register("a", queue("n1", "x", 0)),
			wantErr: ErrInvalidCommand},
		{name: "register bad mode", setup: []command{join("n1", 1)},
			cmd:     register("a", Receiver{Node: "n1", ActorID: "x", Mode: 7, Incarnation: 1}),
			wantErr: ErrInvalidCommand},

		// unregisterCmd
		{name: "unregister one of several", setup: two, cmd: unregisterCmd{Name: "a", Node: "n1", ActorID: "x"},
			wantNames: []string{"a"}, members: []Member{n1, n2},
			recv: names{"a": {queue("n2", "x", 1)}, "b": twoNames["b"], "c": twoNames["c"]}},
		{name: "unregister the last receiver removes the name", setup: two,
			cmd:       unregisterCmd{Name: "b", Node: "n1", ActorID: "y", Incarnation: 1},
			wantNames: []string{"b"}, members: []Member{n1, n2},
			recv: names{"a": twoNames["a"], "c": twoNames["c"]}},
		{name: "unregister missing receiver is a no-op", setup: two,
			cmd: unregisterCmd{Name: "b", Node: "n2", ActorID: "y"}, members: []Member{n1, n2}, recv: twoNames},
		{name: "unregister unknown name is a no-op", setup: two,
			cmd: unregisterCmd{Name: "zz", Node: "n1", ActorID: "x"}, members: []Member{n1, n2}, recv: twoNames},
		{name: "unregister from another incarnation is a no-op", setup: two,
			cmd:     unregisterCmd{Name: "a", Node: "n1", ActorID: "x", Incarnation: 3},
			members: []Member{n1, n2}, recv: twoNames},
		{name: "unregister empty actor", cmd: unregisterCmd{Name: "a", Node: "n1"}, wantErr: ErrInvalidCommand},

		// expireNodeCmd
		{name: "expire marks expired and removes names", setup: two,
			cmd:         expireNodeCmd{Node: "n2", Incarnation: 1},
			wantMembers: true, wantNames: []string{"a", "c"}, members: []Member{n1, expired(n2)},
			recv: names{"a": {queue("n1", "x", 1)}, "b": twoNames["b"]}},
		{name: "expire with wrong incarnation is a no-op", setup: two,
			cmd: expireNodeCmd{Node: "n2", Incarnation: 2}, members: []Member{n1, n2}, recv: twoNames},
		{name: "expire unknown node is a no-op", setup: two,
			cmd: expireNodeCmd{Node: "n3", Incarnation: 1}, members: []Member{n1, n2}, recv: twoNames},
		{name: "expire twice is a no-op",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   expireNodeCmd{Node: "n1", Incarnation: 1}, members: []Member{expired(n1)}},
		{name: "expire incarnation 0", cmd: expireNodeCmd{Node: "n1"}, wantErr: ErrInvalidCommand},

		// setVoterCmd
		{name: "promote", setup: []command{join("n1", 1)}, cmd: setVoterCmd{Node: "n1", Voter: true},
			wantMembers: true, members: []Member{voter(n1)}},
		{name: "demote", setup: []command{joinCmd{Member: voter(n1)}},
			cmd: setVoterCmd{Node: "n1"}, wantMembers: true, members: []Member{n1}},
		{name: "set voter unchanged is a no-op", setup: []command{join("n1", 1)},
			cmd: setVoterCmd{Node: "n1"}, members: []Member{n1}},
		{name: "set voter of unknown node refused", cmd: setVoterCmd{Node: "n1", Voter: true},
			wantErr: ErrUnknownMember},
		{name: "promote expired member refused",
			setup: []command{join("n1", 1), expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   setVoterCmd{Node: "n1", Voter: true}, wantErr: ErrMemberExpired},
		{name: "demote expired member",
			setup: []command{joinCmd{Member: voter(n1)}, expireNodeCmd{Node: "n1", Incarnation: 1}},
			cmd:   setVoterCmd{Node: "n1"}, wantMembers: true, members: []Member{expired(n1)}},

		// Not commands
		{name: "nil command", cmd: nil, wantErr: ErrInvalidCommand},
		{name: "pointer command", cmd: &joinCmd{Member: n1}, wantErr: ErrInvalidCommand},
		{name: "foreign command type", cmd: customCommand{joinCmd{Member: n1}}, wantErr: ErrInvalidCommand},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := applyAll(t, nil, tc.setup...)
			snap := observe(before)
			index := before.Version() + 5

			after, res := before.apply(index, tc.cmd)

			if !errors.Is(res.Err, tc.wantErr) || (tc.wantErr == nil) != (res.Err == nil) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			if after.Version() != index {
				t.Errorf("version = %d, want %d", after.Version(), index)
			}
			if got := observe(before); !reflect.DeepEqual(got, snap) {
				t.Errorf("Apply modified its input:\n got %+v\nwant %+v", got, snap)
			}
			if !reflect.DeepEqual(res.Names, tc.wantNames) || res.Members != tc.wantMembers {
				t.Errorf("result names=%q members=%v, want %q %v", res.Names, res.Members, tc.wantNames, tc.wantMembers)
			}
			want := view{Version: index, Members: tc.members, Names: tc.recv}
			if tc.wantErr != nil {
				want = snap
				want.Version = index
			}
			if want.Names == nil {
				want.Names = names{}
			}
			if got := observe(after); !reflect.DeepEqual(got, want) {
				t.Errorf("state:\n got %+v\nwant %+v", got, want)
			}
			if after.NumNames() != len(want.Names) {
				t.Errorf("NumNames = %d, want %d", after.NumNames(), len(want.Names))
			}

			// The same through the log encoding and the FSM.
			b, err := encodeCommand(tc.cmd)
			if err != nil {
				if !errors.Is(err, ErrInvalidCommand) || !errors.Is(tc.wantErr, ErrInvalidCommand) {
					t.Fatalf("EncodeCommand: %v (want err %v)", err, tc.wantErr)
				}
				return
			}
			f := newFSM()
			for i, c := range tc.setup {
				f.Apply(logEntry(t, uint64(i+1), c))
			}
			fres := f.Apply(raftLog{index, b}.log()).(result)
			if !errors.Is(fres.Err, tc.wantErr) || !reflect.DeepEqual(fres.Names, res.Names) || fres.Members != res.Members {
				t.Errorf("FSM result %+v, want %+v", fres, res)
			}
			if got := observe(f.current()); !reflect.DeepEqual(got, want) {
				t.Errorf("FSM state:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestZeroState(t *testing.T) {
	var s State
	var nilState *State
	for _, s := range []*State{&s, nilState} {
		if s.Receivers("a") != nil || s.Names() != nil || s.Members() != nil || s.Version() != 0 || s.NumNames() != 0 {
			t.Fatalf("zero state not empty: %+v", observe(s))
		}
		if _, ok := s.Member("n1"); ok {
			t.Fatal("zero state has a member")
		}
		next := applyAll(t, s, join("n1", 1), register("a", queue("n1", "x", 1)))
		if got := next.Receivers("a"); len(got) != 1 {
			t.Fatalf("receivers = %v", got)
		}
	}
}

func TestReceiverPID(t *testing.T) {
	r := queue("n1", "x", 1)
	if got, want := r.PID(), (actor.PID{Node: "n1", ID: "x"}); got != want {
		t.Fatalf("PID = %v, want %v", got, want)
	}
}

func TestReceiversIsShared(t *testing.T) {
	s := applyAll(t, nil, join("n1", 1), join("n2", 1),
		register("a", queue("n1", "x", 1)), register("a", queue("n2", "x", 1)))
	got := s.Receivers("a")
	if cap(got) != len(got) {
		t.Fatalf("cap %d != len %d: an append by a caller would write into the state", cap(got), len(got))
	}
	// A write elsewhere keeps the same slice for "a".
	s2 := applyAll(t, s, register("b", queue("n1", "y", 1)))
	if &s2.Receivers("a")[0] != &got[0] {
		t.Fatal("an unrelated write copied the receivers of a")
	}
	if testing.AllocsPerRun(100, func() { _ = s2.Receivers("a") }) != 0 {
		t.Fatal("Receivers allocates")
	}
}

func TestStringers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Alive.String(), "alive"},
		{Expired.String(), "expired"},
		{MemberStatus(9).String(), "MemberStatus(9)"},
		{Queue.String(), "queue"},
		{Broadcast.String(), "broadcast"},
		{Mode(9).String(), "Mode(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// Many names: exercise leaves with several entries, and the bulk removal.
func TestManyNames(t *testing.T) {
	s := applyAll(t, nil, join("n1", 1), join("n2", 1))
	const n = 5000
	names := make([]string, n)
	for i := range names {
		names[i] = "name-" + itoa(i)
		node := "n1"
		if i%3 == 0 {
			node = "n2"
		}
		s = applyAll(t, s, register(names[i], queue(node, "x", 1)))
		if i%5 == 0 {
			s = applyAll(t, s, register(names[i], broadcast("n1", "b", 1)))
		}
	}
	if s.NumNames() != n || len(s.Names()) != n {
		t.Fatalf("NumNames = %d, Names = %d", s.NumNames(), len(s.Names()))
	}
	for _, name := range names {
		if len(s.Receivers(name)) == 0 {
			t.Fatalf("lost %q", name)
		}
	}
	if s.Receivers("name-x") != nil {
		t.Fatal("found a name never registered")
	}
	before := observe(s)
	s2, res := s.apply(s.Version()+1, leaveCmd{Node: "n1"})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if !reflect.DeepEqual(observe(s), before) {
		t.Fatal("Leave modified its input")
	}
	left := 0
	for i, name := range names {
		rs := s2.Receivers(name)
		if i%3 == 0 {
			left++
			if len(rs) != 1 || rs[0].Node != "n2" {
				t.Fatalf("%q: %v", name, rs)
			}
		} else if rs != nil {
			t.Fatalf("%q kept %v", name, rs)
		}
	}
	if s2.NumNames() != left || len(res.Names) != n-left+countMultiples(n, 15) {
		t.Fatalf("NumNames = %d want %d; changed %d", s2.NumNames(), left, len(res.Names))
	}
}

// countMultiples counts i in [0, n) divisible by k: the names of n2 that
// also had a broadcast receiver of n1.
func countMultiples(n, k int) int { return (n + k - 1) / k }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for ; i > 0; i /= 10 {
		p--
		b[p] = byte('0' + i%10)
	}
	return string(b[p:])
}
