// Package regmodel is a porcupine model of the registry, for the tests that
// check histories of registry operations for linearizability (registry's
// own test with a leader kill, and the chaos suite's crash churn).
//
// The state of one name is the set of its receivers. An operation whose
// outcome is unknown — it failed or timed out, or its process was killed
// before it answered — may or may not have taken effect, and must be
// recorded with a return time after every other operation (an open
// operation). A node's receivers may vanish at any point after the node is
// killed (when the leader expires it, or when it rejoins under a new
// incarnation): that is an Expire operation, called at the kill, open.
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
	Expire     = "expire"     // every Member with the prefix Owner+"/" removed
)

// Input is one operation on the receivers of Name.
type Input struct {
	Kind   string
	Name   string
	Member string // Register, Unregister: "owner/id"; Expire: the owner
}

// Output is what an operation returned.
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

func setWith(state, member string, add bool) string {
	var members []string
	if state != "" {
		members = strings.Split(state, ",")
	}
	i, found := slices.BinarySearch(members, member)
	switch {
	case add && !found:
		members = slices.Insert(members, i, member)
	case !add && found:
		members = slices.Delete(members, i, i+1)
	}
	return strings.Join(members, ",")
}

func size(state string) int {
	if state == "" {
		return 0
	}
	return strings.Count(state, ",") + 1
}

// Model is the porcupine model; histories are partitioned by name. An
// Expire applies to every name: give one per name.
var Model = porcupine.NondeterministicModel{
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(Input), output.(Output)
		switch in.Kind {
		case Read:
			if out.Unknown || (!out.Counted && out.Set == s) || (out.Counted && out.Count == size(s)) {
				return []any{s}
			}
			return nil
		case Expire:
			var kept []string
			for _, m := range strings.Split(s, ",") {
				if m != "" && !strings.HasPrefix(m, in.Member+"/") {
					kept = append(kept, m)
				}
			}
			return []any{s, strings.Join(kept, ",")}
		case Register, Unregister:
			next := setWith(s, in.Member, in.Kind == Register)
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
	DescribeState: func(state any) string { return "{" + state.(string) + "}" },
}
