package registry

import (
	"cmp"
	"slices"
	"strings"
)

// The name table is a persistent (immutable, copy-on-write) two-level hash
// trie: the top 6 bits of a name's 64-bit maphash pick one of 64 mid nodes,
// the next 6 bits one of its 64 leaves, and a leaf is a slice of entries
// sorted by (hash, name). A write copies the root (64 pointers), one mid
// node (64 slice headers) and one leaf (a few entries: ~2.5 at 10k names,
// ~25 at 100k), whatever the size of the table, and everything else is
// shared with the previous State. A lookup is one hash, two loads and a
// search in one short leaf, and allocates nothing.
//
// The layout depends on the hash seed, which differs between fsm instances
// (replicas): only the content is deterministic. Everything observable
// (Names, snapshots, result.Names) is sorted by name, never by layout.
const (
	fanBits   = 6
	fanout    = 1 << fanBits
	rootShift = 64 - fanBits
	midShift  = 64 - 2*fanBits
)

// entry is one name and its receivers. recv is never empty and is sorted by
// (Node, ActorID); len(recv) == cap(recv).
type entry struct {
	hash uint64
	name string
	recv []Receiver
}

type midNode [fanout][]entry

type rootNode [fanout]*midNode

func slot(h uint64) (i, j int) {
	return int(h >> rootShift), int(h>>midShift) & (fanout - 1)
}

// search returns the position of (h, name) in lf and whether it is there.
func search(lf []entry, h uint64, name string) (int, bool) {
	lo, hi := 0, len(lf)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		e := &lf[m]
		if e.hash < h || (e.hash == h && e.name < name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(lf) && lf[lo].hash == h && lf[lo].name == name
}

// lookup returns the receivers of name, or nil. r may be nil.
func (r *rootNode) lookup(h uint64, name string) []Receiver {
	if r == nil {
		return nil
	}
	i, j := slot(h)
	m := r[i]
	if m == nil {
		return nil
	}
	lf := m[j]
	if k, ok := search(lf, h, name); ok {
		return lf[k].recv
	}
	return nil
}

// treeEdit lets the writes of one batch of entries, applied to States that
// are not published until the batch ends (fsm.ApplyBatch, batchCmd), copy
// the root and each mid node once for the lot instead of once per write:
// the nodes the edit made are its own to write into until it ends.
type treeEdit struct {
	root *rootNode    // the root this edit made, or nil
	mids [fanout]bool // the mid nodes of root this edit made
}

// edit returns r in which name has the receivers recv, or is absent when
// recv is empty. It copies the root, the mid node and the leaf it changes,
// except the nodes e made, which it writes in place (e may be nil). r is
// not modified unless e made it; r may be nil.
func (r *rootNode) edit(e *treeEdit, h uint64, name string, recv []Receiver) *rootNode {
	i, j := slot(h)
	var lf []entry
	if r != nil && r[i] != nil {
		lf = r[i][j]
	}
	k, found := search(lf, h, name)
	var nl []entry
	switch {
	case found && len(recv) == 0:
		nl = make([]entry, len(lf)-1)
		copy(nl, lf[:k])
		copy(nl[k:], lf[k+1:])
	case found:
		nl = make([]entry, len(lf))
		copy(nl, lf)
		nl[k].recv = recv
	case len(recv) == 0:
		return r
	default:
		nl = make([]entry, len(lf)+1)
		copy(nl, lf[:k])
		nl[k] = entry{hash: h, name: name, recv: recv}
		copy(nl[k+1:], lf[k:])
	}
	if len(nl) == 0 {
		nl = nil
	}
	nr := r
	if e == nil || r == nil || e.root != r {
		nr = new(rootNode)
		if r != nil {
			*nr = *r
		}
		if e != nil {
			e.root, e.mids = nr, [fanout]bool{}
		}
	}
	nm := nr[i]
	if e == nil || nm == nil || !e.mids[i] {
		nm = new(midNode)
		if old := nr[i]; old != nil {
			*nm = *old
		}
		nr[i] = nm
		if e != nil {
			e.mids[i] = true
		}
	}
	nm[j] = nl
	return nr
}

// dropNode returns a copy of r without the receivers of node, the names
// whose receivers changed (unsorted) and how many names disappeared. Only the
// leaves holding such receivers (and their mid nodes and the root) are
// copied. It visits every entry: O(names), for rare membership events.
func (r *rootNode) dropNode(node string) (*rootNode, []string, int) {
	if r == nil {
		return nil, nil, 0
	}
	var (
		nr      *rootNode
		names   []string
		removed int
	)
	for i, m := range r {
		if m == nil {
			continue
		}
		var nm *midNode
		for j, lf := range m {
			var nl []entry // nil until this leaf changes
			for k := range lf {
				e := &lf[k]
				if !slices.ContainsFunc(e.recv, func(x Receiver) bool { return x.Node == node }) {
					if nl != nil {
						nl = append(nl, *e)
					}
					continue
				}
				if nl == nil {
					nl = make([]entry, k, len(lf))
					copy(nl, lf[:k])
				}
				names = append(names, e.name)
				keep := make([]Receiver, 0, len(e.recv))
				for _, x := range e.recv {
					if x.Node != node {
						keep = append(keep, x)
					}
				}
				if len(keep) == 0 {
					removed++
					continue
				}
				nl = append(nl, entry{hash: e.hash, name: e.name, recv: slices.Clip(keep)})
			}
			if nl == nil {
				continue
			}
			if nm == nil {
				nm = new(midNode)
				*nm = *m
			}
			if len(nl) == 0 {
				nl = nil
			}
			nm[j] = nl
		}
		if nm == nil {
			continue
		}
		if nr == nil {
			nr = new(rootNode)
			*nr = *r
		}
		nr[i] = nm
	}
	if nr == nil {
		return r, nil, 0
	}
	return nr, names, removed
}

// each calls f for every entry, in layout order.
func (r *rootNode) each(f func(e *entry)) {
	if r == nil {
		return
	}
	for _, m := range r {
		if m == nil {
			continue
		}
		for _, lf := range m {
			for k := range lf {
				f(&lf[k])
			}
		}
	}
}

// builder makes a tree from scratch by mutation (Restore): one allocation
// per leaf instead of a copy-on-write per name. Nothing built is shared
// until build returns.
type builder struct {
	root *rootNode
}

func (b *builder) add(h uint64, name string, recv []Receiver) {
	if b.root == nil {
		b.root = new(rootNode)
	}
	i, j := slot(h)
	if b.root[i] == nil {
		b.root[i] = new(midNode)
	}
	b.root[i][j] = append(b.root[i][j], entry{hash: h, name: name, recv: recv})
}

func (b *builder) build() *rootNode {
	if b.root == nil {
		return nil
	}
	for _, m := range b.root {
		if m == nil {
			continue
		}
		for j, lf := range m {
			slices.SortFunc(lf, func(x, y entry) int {
				if c := cmp.Compare(x.hash, y.hash); c != 0 {
					return c
				}
				return strings.Compare(x.name, y.name)
			})
			m[j] = slices.Clip(lf)
		}
	}
	return b.root
}
