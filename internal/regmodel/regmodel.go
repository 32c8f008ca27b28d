// Package regmodel is a porcupine model of the registry, for the tests that
// check histories of registry operations for linearizability (registry's
// own test with a leader kill, and the chaos suite's crash churn).
//
// The state of one name is the set of its receivers. An operation whose
// outcome is unknown — it failed or timed out, or its process was killed
// before it answered — may or may not have taken effect, and must be
// recorded with a return time after every other operation (an open
// operation). A node's receivers may vanish at any point after the node is
// killed or cut off (when the leader expires it, or when it rejoins under a
// new incarnation): that is an Expire operation, called at the kill or the
// cut, open. A node that was cut off and rejoins registers its live
// receivers again, one by one: a Restore operation per receiver, called at
// the heal, brings back that receiver if an Expire hid it (and it was not
// unregistered since). A registration that waited for the rejoin commits
// again as soon as the rejoin's join lands, which may be before the node
// hears so: a Restore of unknown outcome, from when that join was sent
// until the registration returned.
package regmodel

import (
	"fmt"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kinds of operation.
const (
	Register   = "register"   // Member registered
	Unregister = "unregister" // Member unregistered
	Read       = "read"       // the name's receivers read
	Expire     = "expire"     // every Member with the prefix Owner+"/" removed (hidden)
	Restore    = "restore"    // Member, if an Expire hid it, is back
)

// Input is one operation on the receivers of Name.
type Input struct {
	Kind   string
	Name   string
	Member string // Register, Unregister, Restore: "owner/id"; Expire: the owner
}

// Output is what an operation returned. An Expire or Restore that is known
// to have happened (its window is known) has Unknown false.
type Output struct {
	Unknown bool   // it may or may not have taken effect
	Set     string // Read: the receivers, as Members sorted and comma-joined
	Count   int    // Read: how many receivers (with Counted)
	Counted bool   // Read returned only a count
}

// SetOf returns members as an Output's Set.
func SetOf(members []string) string {
	members = slices.Clone(members)
	slices.Sort(members)
	return strings.Join(members, ",")
}

// state is the receivers of one name: visible ones, and those an Expire
// hid (a Restore may bring them back). Both sorted; comparable with ==.
type state struct{ visible, hidden string }

func split(set string) []string {
	if set == "" {
		return nil
	}
	return strings.Split(set, ",")
}

func setWith(set, member string, add bool) string {
	members := split(set)
	i, found := slices.BinarySearch(members, member)
	switch {
	case add && !found:
		members = slices.Insert(members, i, member)
	case !add && found:
		members = slices.Delete(members, i, i+1)
	}
	return strings.Join(members, ",")
}

// move moves owner's members from one set to the other.
func move(from, to, owner string) (string, string) {
	var kept []string
	for _, m := range split(from) {
		if strings.HasPrefix(m, owner+"/") {
			to = setWith(to, m, true)
		} else {
			kept = append(kept, m)
		}
	}
	return strings.Join(kept, ","), to
}

// Model is the porcupine model; histories are partitioned by name. An
// Expire or Restore applies to one name: give one per name.
var Model = porcupine.NondeterministicModel{
	Init: func() []any { return []any{state{}} },
	Step: func(st, input, output any) []any {
		s, in, out := st.(state), input.(Input), output.(Output)
		switch in.Kind {
		case Read:
			n := len(split(s.visible))
			if out.Unknown || (!out.Counted && out.Set == s.visible) || (out.Counted && out.Count == n) {
				return []any{s}
			}
			return nil
		case Expire:
			next := s
			next.visible, next.hidden = move(s.visible, s.hidden, in.Member)
			if out.Unknown {
				return []any{s, next}
			}
			return []any{next}
		case Restore:
			if !slices.Contains(split(s.hidden), in.Member) {
				return []any{s}
			}
			next := state{visible: setWith(s.visible, in.Member, true), hidden: setWith(s.hidden, in.Member, false)}
			if out.Unknown {
				return []any{s, next}
			}
			return []any{next}
		case Register, Unregister:
			next := state{visible: setWith(s.visible, in.Member, in.Kind == Register), hidden: setWith(s.hidden, in.Member, false)}
			if out.Unknown {
				return []any{s, next} // happened or not
			}
			return []any{next}
		default:
			return nil
		}
	},
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byName := make(map[string][]porcupine.Operation)
		var names []string
		for _, op := range history {
			name := op.Input.(Input).Name
			if _, ok := byName[name]; !ok {
				names = append(names, name)
			}
			byName[name] = append(byName[name], op)
		}
		out := make([][]porcupine.Operation, 0, len(names))
		for _, name := range names {
			out = append(out, byName[name])
		}
		return out
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch {
		case out.Unknown:
			return fmt.Sprintf("%s(%s %s) -> ?", in.Kind, in.Name, in.Member)
		case in.Kind == Read && out.Counted:
			return fmt.Sprintf("read %s -> %d", in.Name, out.Count)
		case in.Kind == Read:
			return fmt.Sprintf("read %s -> {%s}", in.Name, out.Set)
		}
		return fmt.Sprintf("%s(%s %s)", in.Kind, in.Name, in.Member)
	},
	DescribeState: func(st any) string {
		s := st.(state)
		return "{" + s.visible + "} hidden {" + s.hidden + "}"
	},
}
