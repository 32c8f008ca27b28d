package registry

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"pgregory.net/rapid"
)

// commandGen draws commands over small domains, so that sequences hit
// collisions: rejoins, stale incarnations, expiries, re-registrations.
func commandGen() *rapid.Generator[command] {
	node := rapid.SampledFrom([]string{"n1", "n2", "n3"})
	names := []string{"a", "b", "c", "d"}
	for i := range 60 {
		names = append(names, "n"+itoa(i))
	}
	name := rapid.SampledFrom(names)
	actorID := rapid.SampledFrom([]string{"x", "y"})
	inc := rapid.SampledFrom([]uint64{1, 1, 1, 2, 2, 3}) // mostly matching
	mode := rapid.SampledFrom([]Mode{Queue, Broadcast})
	write := func(t *rapid.T) command {
		if rapid.IntRange(0, 2).Draw(t, "unregister") == 0 {
			return unregisterCmd{
				Name: name.Draw(t, "name"), Node: node.Draw(t, "node"), ActorID: actorID.Draw(t, "actor"),
				Incarnation: rapid.Uint64Range(0, 3).Draw(t, "inc"),
			}
		}
		return registerCmd{Name: name.Draw(t, "name"), Receiver: Receiver{
			Node: node.Draw(t, "node"), ActorID: actorID.Draw(t, "actor"),
			Mode: mode.Draw(t, "mode"), Incarnation: inc.Draw(t, "inc"),
		}}
	}
	return rapid.Custom(func(t *rapid.T) command {
		switch rapid.IntRange(0, 13).Draw(t, "kind") {
		case 12, 13:
			b := batchCmd{Cmds: make([]command, rapid.IntRange(1, 6).Draw(t, "writes"))}
			for i := range b.Cmds {
				b.Cmds[i] = write(t)
			}
			return b
		case 0, 1:
			return joinCmd{Member: Member{
				ID:          node.Draw(t, "node"),
				Addr:        rapid.SampledFrom([]string{"h1:1", "h2:2"}).Draw(t, "addr"),
				Incarnation: inc.Draw(t, "inc"),
				Voter:       rapid.Bool().Draw(t, "voter"),
			}}
		case 2:
			return leaveCmd{Node: node.Draw(t, "node"), Incarnation: rapid.Uint64Range(0, 3).Draw(t, "inc")}
		case 3, 4, 5, 6, 7:
			return registerCmd{Name: name.Draw(t, "name"), Receiver: Receiver{
				Node: node.Draw(t, "node"), ActorID: actorID.Draw(t, "actor"),
				Mode: mode.Draw(t, "mode"), Incarnation: inc.Draw(t, "inc"),
			}}
		case 8, 9:
			return unregisterCmd{
				Name: name.Draw(t, "name"), Node: node.Draw(t, "node"), ActorID: actorID.Draw(t, "actor"),
				Incarnation: rapid.Uint64Range(0, 3).Draw(t, "inc"),
			}
		case 10:
			return expireNodeCmd{Node: node.Draw(t, "node"), Incarnation: inc.Draw(t, "inc")}
		default:
			return setVoterCmd{Node: node.Draw(t, "node"), Voter: rapid.Bool().Draw(t, "voter")}
		}
	})
}

// Replicas that apply the same log agree on everything observable, whether
// one of them went through Snapshot/Restore midway or not, and whether one
// applies the entries one by one or in batches (ApplyBatch, whose writes
// share the tree nodes they copy); every state keeps the registry's
// invariants; states already published never change.
func TestReplicasAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cmds := rapid.SliceOfN(commandGen(), 20, 600).Draw(t, "cmds")
		cut := rapid.IntRange(0, len(cmds)).Draw(t, "restore at")

		a, b, batched := newFSM(), newFSM(), newFSM()
		var published []*State
		var views []view
		var group []*raft.Log // batched's next ApplyBatch
		var want []result     // a's results for group
		flush := func() {
			out := batched.ApplyBatch(group)
			for k, l := range group {
				got, ok := out[k].(result)
				if !ok || errString(got.Err) != errString(want[k].Err) || !reflect.DeepEqual(got.Names, want[k].Names) ||
					got.Members != want[k].Members || len(got.Batch) != len(want[k].Batch) {
					t.Fatalf("entry %d: ApplyBatch's result %+v, Apply's %+v", l.Index, out[k], want[k])
				}
			}
			group, want = group[:0], want[:0]
			s := batched.current()
			checkState(t, s)
			if va, vc := views[len(views)-1], observe(s); !reflect.DeepEqual(va, vc) {
				t.Fatalf("the replica applying batches differs:\n%+v\n%+v", va, vc)
			}
			published = append(published, s)
			views = append(views, observe(s))
		}
		for i, c := range cmds {
			l := logEntry(t, uint64(i+1), c)
			if i == cut {
				c := newFSM()
				if err := restore(c, snapshot(t, b)); err != nil {
					t.Fatalf("restore: %v", err)
				}
				b = c
			}
			ra := a.Apply(l).(result)
			rb := b.Apply(l).(result)
			if errString(ra.Err) != errString(rb.Err) || !reflect.DeepEqual(ra.Names, rb.Names) || ra.Members != rb.Members {
				t.Fatalf("step %d %#v: results differ: %+v vs %+v", i, c, ra, rb)
			}
			sa := a.current()
			checkState(t, sa)
			va, vb := observe(sa), observe(b.current())
			if !reflect.DeepEqual(va, vb) {
				t.Fatalf("step %d %#v: states differ:\n%+v\n%+v", i, c, va, vb)
			}
			published = append(published, sa)
			views = append(views, va)
			group, want = append(group, l), append(want, ra)
			if rapid.IntRange(0, 3).Draw(t, "end batch") == 0 || i == len(cmds)-1 {
				flush()
			}
		}
		if !bytes.Equal(snapshot(t, a), snapshot(t, b)) {
			t.Fatal("snapshots differ")
		}
		for i, s := range published {
			if !reflect.DeepEqual(observe(s), views[i]) {
				t.Fatalf("state of step %d changed after publication", i)
			}
		}
	})
}

// checkState checks the invariants through the public API: receivers
// sorted and unique, each of an Alive member's current incarnation;
// members sorted; Names and NumNames agree.
func checkState(t *rapid.T, s *State) {
	members := s.Members()
	for i := 1; i < len(members); i++ {
		if members[i-1].ID >= members[i].ID {
			t.Fatalf("members out of order: %+v", members)
		}
	}
	names := s.Names()
	if len(names) != s.NumNames() {
		t.Fatalf("Names %d, NumNames %d", len(names), s.NumNames())
	}
	for _, n := range names {
		rs := s.Receivers(n)
		if len(rs) == 0 {
			t.Fatalf("name %q listed without receivers", n)
		}
		for i, r := range rs {
			if i > 0 && (rs[i-1].Node > r.Node || rs[i-1].Node == r.Node && rs[i-1].ActorID >= r.ActorID) {
				t.Fatalf("%q: receivers out of order: %+v", n, rs)
			}
			m, ok := s.Member(r.Node)
			if !ok || m.Status != Alive || m.Incarnation != r.Incarnation {
				t.Fatalf("%q: receiver %+v without a live member (%+v, %v)", n, r, m, ok)
			}
		}
	}
}
