package registry

import (
	"math/bits"
	"slices"
)

// The name table is a persistent (immutable, copy-on-write) hash array
// mapped trie over each name's 64-bit maphash. A leaf holds up to maxLeaf
// entries sorted by name (their hashes are not kept: a split, rare, hashes
// its names again); an inner node has a child for each of
// the 32 values of its 5 bits of the hash that it holds names for, kept
// compact behind a bitmap. A leaf that would grow past maxLeaf splits into
// an inner node one level down, so the depth follows the table's size
// (3 levels of inner nodes at 10k names, 4 at 100k) and every node is
// small: a write copies the path to its leaf — a few 64-byte nodes, their
// child arrays and one leaf of at most maxLeaf entries, about 1.4 KB at
// 100k names against 3.8 KB for a two-level 64×64 table — and shares the
// rest with the previous State. A lookup is one hash, a load per level and
// a search in one short leaf, and allocates nothing.
//
// The layout depends on the hash seed, which differs between fsm instances
// (replicas): only the content is deterministic. Everything observable
// (Names, snapshots, result.Names) is sorted by name, never by layout.
const (
	fanBits = 5
	fanMask = 1<<fanBits - 1
	maxLeaf = 8
	// topShift is the shift of the root's 5 bits; a level at shift < 0
	// has no bits left, and its leaf grows past maxLeaf instead.
	topShift = 64 - fanBits
)

// entry is one name and its receivers. recv is never empty and is sorted by
// (Node, ActorID); len(recv) == cap(recv).
type entry struct {
	name string
	recv []Receiver
}

// hasher gives a name's 64-bit hash: maphash with the State's seed (tests
// give their own, to make names collide).
type hasher func(name string) uint64

// node is a leaf (kids == nil: ents, sorted by name) or an inner
// node (kids, one per bit set in bitmap, in bit order: the bit for each
// value of the node's 5 bits of the hash). A nil *node is the
// empty table. owner is the treeEdit that made it: that edit may write
// into it in place; every other write copies it.
type node struct {
	owner  *treeEdit
	kids   []*node
	ents   []entry
	bitmap uint32
}

// treeEdit lets the writes of one batch of entries, applied to States that
// are not published until the batch ends (fsm.ApplyBatch, batchCmd), copy
// each node of the paths they share once for the lot instead of once per
// write: the nodes the edit made are its own to write into until it ends.
// A new treeEdit (never a reused one) for each batch: a node remembers the
// edit that made it.
type treeEdit struct {
	_ byte // not zero-sized: every edit has an address of its own
}

// owns reports whether e made n and may write into it.
func (e *treeEdit) owns(n *node) bool { return e != nil && n.owner == e }

// search returns the position of name in ents and whether it is there.
func search(ents []entry, name string) (int, bool) {
	lo, hi := 0, len(ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ents[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(ents) && ents[lo].name == name
}

// index returns the bit of h's 5 bits at shift and the position of its child among
// n's kids.
func (n *node) index(h uint64, shift int) (bit uint32, pos int) {
	bit = 1 << ((h >> uint(shift)) & fanMask)
	return bit, bits.OnesCount32(n.bitmap & (bit - 1))
}

// lookup returns the receivers of name, or nil. n may be nil.
func (n *node) lookup(h uint64, name string) []Receiver {
	for shift := topShift; n != nil; shift -= fanBits {
		if n.kids == nil {
			if k, ok := search(n.ents, name); ok {
				return n.ents[k].recv
			}
			return nil
		}
		bit, pos := n.index(h, shift)
		if n.bitmap&bit == 0 {
			return nil
		}
		n = n.kids[pos]
	}
	return nil
}

// edit returns the table n in which name has the receivers recv, or is
// absent when recv is empty. It copies the nodes on name's path, except those e made, which
// it writes in place (e may be nil). n is not modified unless e made it;
// n may be nil.
func (n *node) edit(e *treeEdit, hash hasher, h uint64, name string, recv []Receiver) *node {
	return n.update(e, hash, h, name, func([]Receiver) ([]Receiver, bool) { return recv, true })
}

// update is edit with name's new receivers made by f from its current
// ones (nil if it has none), in the same walk down the trie; f reports
// false for no change, and then update returns n as it is.
func (n *node) update(e *treeEdit, hash hasher, h uint64, name string, f func(old []Receiver) ([]Receiver, bool)) *node {
	return n.updateAt(e, hash, topShift, h, name, f)
}

func (n *node) updateAt(e *treeEdit, hash hasher, shift int, h uint64, name string, f func([]Receiver) ([]Receiver, bool)) *node {
	switch {
	case n == nil:
		recv, ok := f(nil)
		if !ok || len(recv) == 0 {
			return nil
		}
		return &node{owner: e, ents: []entry{{name: name, recv: recv}}}
	case n.kids == nil:
		return n.updateLeaf(e, hash, shift, name, f)
	}
	bit, pos := n.index(h, shift)
	var child *node
	if n.bitmap&bit != 0 {
		child = n.kids[pos]
	}
	nc := child.updateAt(e, hash, shift-fanBits, h, name, f)
	if nc == child {
		return n
	}
	out := n
	switch {
	case child != nil && nc != nil: // a child replaced
		if !e.owns(n) {
			out = &node{owner: e, kids: slices.Clone(n.kids), bitmap: n.bitmap}
		}
		out.kids[pos] = nc
	case child == nil: // a child added
		kids := make([]*node, len(n.kids)+1)
		copy(kids, n.kids[:pos])
		kids[pos] = nc
		copy(kids[pos+1:], n.kids[pos:])
		out = &node{owner: e, kids: kids, bitmap: n.bitmap | bit}
	default: // a child removed
		if len(n.kids) == 1 {
			return nil
		}
		kids := make([]*node, len(n.kids)-1)
		copy(kids, n.kids[:pos])
		copy(kids[pos:], n.kids[pos+1:])
		out = &node{owner: e, kids: kids, bitmap: n.bitmap &^ bit}
	}
	return out
}

// updateLeaf is updateAt on a leaf: a leaf's entries are always copied
// (exact size: a leaf has no spare capacity to carry), and a leaf that
// grows past maxLeaf, with hash bits left at its level, splits.
func (n *node) updateLeaf(e *treeEdit, hash hasher, shift int, name string, f func([]Receiver) ([]Receiver, bool)) *node {
	k, found := search(n.ents, name)
	var old []Receiver
	if found {
		old = n.ents[k].recv
	}
	recv, ok := f(old)
	if !ok {
		return n
	}
	var ents []entry
	switch {
	case found && len(recv) == 0:
		if len(n.ents) == 1 {
			return nil
		}
		ents = make([]entry, len(n.ents)-1)
		copy(ents, n.ents[:k])
		copy(ents[k:], n.ents[k+1:])
	case found:
		ents = slices.Clone(n.ents)
		ents[k].recv = recv
	case len(recv) == 0:
		return n
	default:
		ents = make([]entry, len(n.ents)+1)
		copy(ents, n.ents[:k])
		ents[k] = entry{name: name, recv: recv}
		copy(ents[k+1:], n.ents[k:])
	}
	if len(ents) > maxLeaf && shift >= 0 {
		return split(e, hash, shift, ents)
	}
	if e.owns(n) {
		n.ents = ents
		return n
	}
	return &node{owner: e, ents: ents}
}

// split makes an inner node at shift of ents, sorted by name: a leaf for
// each value of their hashes' bits at shift, in name order (itself split
// if they all share it and still exceed maxLeaf).
func split(e *treeEdit, hash hasher, shift int, ents []entry) *node {
	var groups [1 << fanBits][]entry
	for _, en := range ents {
		b := (hash(en.name) >> uint(shift)) & fanMask
		groups[b] = append(groups[b], en)
	}
	n := &node{owner: e}
	for b, g := range groups {
		if len(g) == 0 {
			continue
		}
		var kid *node
		if len(g) > maxLeaf && shift-fanBits >= 0 {
			kid = split(e, hash, shift-fanBits, g)
		} else {
			kid = &node{owner: e, ents: slices.Clip(g)}
		}
		n.kids = append(n.kids, kid)
		n.bitmap |= 1 << b
	}
	n.kids = slices.Clip(n.kids)
	return n
}

// dropNode returns the table n without the receivers of node, the names
// whose receivers changed (unsorted) and how many names disappeared. Only
// the nodes on the paths to such receivers are copied. It visits every
// entry: O(names), for rare membership events.
func (n *node) dropNode(node string) (*node, []string, int) {
	var names []string
	removed := 0
	out := n.drop(node, &names, &removed)
	return out, names, removed
}

func (n *node) drop(id string, names *[]string, removed *int) *node {
	if n == nil {
		return nil
	}
	if n.kids == nil {
		var ents []entry // nil until an entry changes
		for k := range n.ents {
			e := &n.ents[k]
			if !slices.ContainsFunc(e.recv, func(x Receiver) bool { return x.Node == id }) {
				if ents != nil {
					ents = append(ents, *e)
				}
				continue
			}
			if ents == nil {
				ents = make([]entry, k, len(n.ents))
				copy(ents, n.ents[:k])
			}
			*names = append(*names, e.name)
			keep := make([]Receiver, 0, len(e.recv))
			for _, x := range e.recv {
				if x.Node != id {
					keep = append(keep, x)
				}
			}
			if len(keep) == 0 {
				*removed++
				continue
			}
			ents = append(ents, entry{name: e.name, recv: slices.Clip(keep)})
		}
		switch {
		case ents == nil:
			return n
		case len(ents) == 0:
			return nil
		}
		return &node{ents: slices.Clip(ents)}
	}
	var kids []*node // nil until a child changes
	var bitmap uint32
	pos := 0
	for b := range uint32(1 << fanBits) {
		bit := uint32(1) << b
		if n.bitmap&bit == 0 {
			continue
		}
		kid := n.kids[pos]
		pos++
		nk := kid.drop(id, names, removed)
		if nk != kid && kids == nil {
			kids = make([]*node, 0, len(n.kids))
			kids = append(kids, n.kids[:pos-1]...)
			bitmap = n.bitmap & (bit - 1)
		}
		if kids != nil && nk != nil {
			kids = append(kids, nk)
			bitmap |= bit
		}
	}
	switch {
	case kids == nil:
		return n
	case len(kids) == 0:
		return nil
	}
	return &node{kids: slices.Clip(kids), bitmap: bitmap}
}

// each calls f for every entry, in layout order.
func (n *node) each(f func(e *entry)) {
	if n == nil {
		return
	}
	for k := range n.ents {
		f(&n.ents[k])
	}
	for _, kid := range n.kids {
		kid.each(f)
	}
}

// builder makes a table from scratch (Restore): every node is its own
// edit's, so each insertion writes in place instead of copying its path.
type builder struct {
	root *node
	e    treeEdit
	hash hasher
}

func (b *builder) add(name string, recv []Receiver) {
	b.root = b.root.edit(&b.e, b.hash, b.hash(name), name, recv)
}

func (b *builder) build() *node { return b.root }
