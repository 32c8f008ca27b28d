package registry

import (
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// treeContent is what a table holds, name → receivers, read through each.
func treeContent(n *node) map[string][]Receiver {
	out := make(map[string][]Receiver)
	n.each(func(e *entry) { out[e.name] = e.recv })
	return out
}

// checkTree checks a table's shape: leaves sorted by name and at most
// maxLeaf entries unless their hash bits are used up; inner nodes with a
// child per bit, each non-empty, and every entry on the path of its hash.
func checkTree(t *rapid.T, hash hasher, n *node, shift int, prefix, mask uint64) {
	if n == nil {
		return
	}
	if n.kids == nil {
		if len(n.ents) == 0 {
			t.Fatalf("an empty leaf at shift %d", shift)
		}
		if len(n.ents) > maxLeaf && shift >= 0 {
			t.Fatalf("a leaf of %d entries at shift %d", len(n.ents), shift)
		}
		for i, e := range n.ents {
			if h := hash(e.name); h&mask != prefix {
				t.Fatalf("entry %q (hash %x) off its path (prefix %x mask %x)", e.name, h, prefix, mask)
			}
			if i > 0 && n.ents[i-1].name >= e.name {
				t.Fatalf("leaf out of order at %q", e.name)
			}
		}
		return
	}
	if len(n.kids) == 0 || len(n.kids) != popcount(n.bitmap) || shift < 0 {
		t.Fatalf("inner node at shift %d: %d kids, bitmap %016b", shift, len(n.kids), n.bitmap)
	}
	pos := 0
	for b := range uint64(1 << fanBits) {
		if n.bitmap&(1<<b) == 0 {
			continue
		}
		checkTree(t, hash, n.kids[pos], shift-fanBits, prefix|b<<uint(shift), mask|fanMask<<uint(shift))
		if n.kids[pos] == nil {
			t.Fatalf("a nil kid at shift %d", shift)
		}
		pos++
	}
}

func popcount(b uint32) int {
	c := 0
	for ; b != 0; b &= b - 1 {
		c++
	}
	return c
}

// The table holds what a map would, through inserts, replacements and
// removals that split leaves and empty inner nodes, with hashes drawn so
// that names share long prefixes and whole hashes; a table once returned
// never changes, whether the writes copy their paths (no edit) or write in
// place into the nodes of their own edit (an edit per batch of writes).
func TestTreeIsAPersistentMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.IntRange(1, 300).Draw(t, "names")
		// A hash per name from few distinct values in a few bit ranges:
		// prefixes collide to every depth, and some whole hashes do.
		hashes := make([]uint64, names)
		for i := range hashes {
			hashes[i] = rapid.SampledFrom([]uint64{
				0, 1, 2, 1 << 59, 1<<63 | 5, 0xffff_ffff_ffff_ffff, 0x1234_5678_9abc_def0,
			}).Draw(t, "hi") ^ rapid.Uint64Range(0, 3).Draw(t, "lo")<<uint(rapid.SampledFrom([]int{0, 4, 28, 60}).Draw(t, "at"))
		}
		byName := make(map[string]uint64, names)
		for i, h := range hashes {
			byName["name-"+itoa(i)] = h
		}
		hash := func(name string) uint64 { return byName[name] }
		recv := []Receiver{{Node: "n1", ActorID: "x", Incarnation: 1}}
		var tree *node
		model := map[string][]Receiver{}
		type version struct {
			tree    *node
			content map[string][]Receiver
		}
		var versions []version
		steps := rapid.IntRange(1, 600).Draw(t, "steps")
		var e *treeEdit
		for range steps {
			if rapid.IntRange(0, 9).Draw(t, "publish") == 0 {
				// End the batch: what it made is published, never written again.
				e = nil
				versions = append(versions, version{tree, maps.Clone(model)})
				if rapid.Bool().Draw(t, "batch") {
					e = new(treeEdit)
				}
			}
			i := rapid.IntRange(0, names-1).Draw(t, "name")
			name := "name-" + itoa(i)
			var r []Receiver
			if rapid.IntRange(0, 2).Draw(t, "remove") > 0 {
				r = slices.Clone(recv)
				r[0].ActorID = itoa(rapid.IntRange(0, 3).Draw(t, "actor"))
				if rapid.Bool().Draw(t, "two") {
					r = append(r, Receiver{Node: "n2", ActorID: "y", Incarnation: 1})
				}
			}
			tree = tree.edit(e, hash, hashes[i], name, r)
			if len(r) == 0 {
				delete(model, name)
			} else {
				model[name] = r
			}
			if got := tree.lookup(hashes[i], name); !slices.Equal(got, model[name]) {
				t.Fatalf("lookup %q = %v, want %v", name, got, model[name])
			}
		}
		checkTree(t, hash, tree, topShift, 0, 0)
		if got := treeContent(tree); !maps.EqualFunc(got, model, slices.Equal) {
			t.Fatalf("the table holds %d names, the model %d", len(got), len(model))
		}
		for i := range names {
			name := "name-" + itoa(i)
			if got := tree.lookup(hashes[i], name); !slices.Equal(got, model[name]) {
				t.Fatalf("lookup %q = %v, want %v", name, got, model[name])
			}
		}
		for k, v := range versions {
			if got := treeContent(v.tree); !maps.EqualFunc(got, v.content, slices.Equal) {
				t.Fatalf("published version %d changed: %d names, had %d", k, len(got), len(v.content))
			}
		}
		// Dropping a node's receivers leaves the others, and the input.
		before := treeContent(tree)
		dropped, changed, removed := tree.dropNode("n1")
		want := map[string][]Receiver{}
		for name, rs := range model {
			if len(rs) == 2 {
				want[name] = rs[1:]
			}
		}
		checkTree(t, hash, dropped, topShift, 0, 0)
		if got := treeContent(dropped); !maps.EqualFunc(got, want, slices.Equal) || len(changed) != len(model) || removed != len(model)-len(want) {
			t.Fatalf("dropNode: %d names left (want %d), %d changed, %d removed of %d", len(got), len(want), len(changed), removed, len(model))
		}
		if !maps.EqualFunc(treeContent(tree), before, slices.Equal) {
			t.Fatal("dropNode changed its input")
		}
	})
}

// A leaf whose names share their whole hash grows past maxLeaf at the
// bottom of the trie instead of splitting forever.
func TestTreeKeepsNamesOfOneHash(t *testing.T) {
	var tree *node
	recv := []Receiver{{Node: "n1", ActorID: "x", Incarnation: 1}}
	same := func(string) uint64 { return 42 }
	for i := range 3 * maxLeaf {
		tree = tree.edit(nil, same, 42, "name-"+itoa(i), recv)
	}
	for i := range 3 * maxLeaf {
		if tree.lookup(42, "name-"+itoa(i)) == nil {
			t.Fatalf("lost name-%d", i)
		}
	}
	depth := 0
	for n := tree; n.kids != nil; n = n.kids[0] {
		depth++
	}
	if want := topShift/fanBits + 1; depth != want {
		t.Fatalf("depth %d, want %d (every level, then one leaf)", depth, want)
	}
}
