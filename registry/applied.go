package registry

import "sort"

// Bounds of the applied entries an fsm keeps for followers: enough for a
// follower that reconnects after a short break to resume without a
// snapshot, little next to the State itself.
const (
	maxAppliedEntries = 4096
	maxAppliedBytes   = 8 << 20
)

// appliedEntry is one command entry an fsm applied: its Raft index and
// data, as the log holds them.
type appliedEntry struct {
	index uint64
	data  []byte
}

// appliedLog is the last command entries an fsm applied, oldest first,
// within maxAppliedEntries and maxAppliedBytes (or the test's bounds).
// A follower at version v can be brought up to date from it if every
// entry after v is still in it: v >= dropped.
type appliedLog struct {
	entries []appliedEntry
	bytes   int
	// dropped is the index of the newest entry no longer held (or the
	// version of the snapshot the fsm was restored from): entries after
	// it and up to the current version are all held.
	dropped uint64

	maxEntries, maxBytes int // 0: the package's bounds
	// off: nothing is kept (a registry client serves no followers).
	off bool
}

// add appends the entry at index. Entries come in index order.
func (a *appliedLog) add(index uint64, data []byte) {
	if a.off {
		a.dropped = index
		return
	}
	a.entries = append(a.entries, appliedEntry{index, data})
	a.bytes += len(data)
	maxEntries, maxBytes := a.maxEntries, a.maxBytes
	if maxEntries == 0 {
		maxEntries, maxBytes = maxAppliedEntries, maxAppliedBytes
	}
	drop := 0
	for len(a.entries)-drop > maxEntries || (a.bytes > maxBytes && len(a.entries)-drop > 1) {
		a.bytes -= len(a.entries[drop].data)
		a.dropped = a.entries[drop].index
		drop++
	}
	if drop > 0 {
		// Move the rest down once the dropped part is as long as what is
		// kept, so that appends reuse the array.
		if drop*2 >= len(a.entries) {
			n := copy(a.entries, a.entries[drop:])
			clear(a.entries[n:])
			a.entries = a.entries[:n]
		} else {
			clear(a.entries[:drop])
			a.entries = a.entries[drop:]
		}
	}
}

// reset forgets every entry: the fsm now holds a restored State at
// version.
func (a *appliedLog) reset(version uint64) {
	clear(a.entries)
	a.entries = a.entries[:0]
	a.bytes = 0
	a.dropped = version
}

// keep turns keeping entries on or off; the fsm is at version.
func (a *appliedLog) keep(on bool, version uint64) {
	a.reset(version)
	a.off = !on
}

// since returns the entries after version v, and whether they are all
// there (false: some were dropped, and a follower at v needs a snapshot).
func (a *appliedLog) since(v uint64) ([]appliedEntry, bool) {
	if v < a.dropped {
		return nil, false
	}
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].index > v })
	return a.entries[i:], true
}
