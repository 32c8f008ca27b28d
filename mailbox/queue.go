package mailbox

import "sync/atomic"

// ring is a bounded multi-producer, single-consumer queue after Dmitry
// Vyukov's bounded MPMC queue: each cell carries a sequence number that says
// whether it is free for the producer holding ticket pos (seq == pos) or
// holds the value for the consumer at pos (seq == pos+1). Producers claim
// tickets with one CAS on tail; the single consumer needs no atomic
// read-modify-write at all. The ring has a power-of-two size; the logical
// capacity, which may be smaller, is enforced against head.
type ring[T any] struct {
	head     atomic.Uint64 // next ticket to consume; written by the consumer only
	_        [56]byte
	tail     atomic.Uint64 // next ticket to produce
	_        [56]byte
	cells    []cell[T]
	mask     uint64
	capacity uint64
}

type cell[T any] struct {
	seq atomic.Uint64
	val T
}

func newRing[T any](capacity int) *ring[T] {
	size := 1
	for size < capacity {
		size <<= 1
	}
	r := &ring[T]{cells: make([]cell[T], size), mask: uint64(size - 1), capacity: uint64(capacity)}
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
	}
	return r
}

// push appends v and reports false if the queue is full.
func (r *ring[T]) push(v T) bool {
	for {
		pos := r.tail.Load()
		if pos-r.head.Load() >= r.capacity {
			return false
		}
		c := &r.cells[pos&r.mask]
		seq := c.seq.Load()
		switch {
		case seq == pos:
			if r.tail.CompareAndSwap(pos, pos+1) {
				c.val = v
				c.seq.Store(pos + 1)
				return true
			}
		case seq < pos:
			return false // the consumer has not freed this cell yet
		}
		// Another producer took pos: try the next ticket.
	}
}

// pop removes the oldest value. It must only be called by one goroutine at a
// time. A value whose producer has claimed its ticket but not yet stored it
// is not visible yet; that producer schedules a run after storing it.
func (r *ring[T]) pop() (T, bool) {
	var zero T
	pos := r.head.Load()
	c := &r.cells[pos&r.mask]
	if c.seq.Load() != pos+1 {
		return zero, false
	}
	v := c.val
	c.val = zero
	c.seq.Store(pos + r.mask + 1)
	r.head.Store(pos + 1)
	return v, true
}

// ready reports whether the oldest value is visible to pop.
func (r *ring[T]) ready() bool {
	pos := r.head.Load()
	return r.cells[pos&r.mask].seq.Load() == pos+1
}

// len returns the number of claimed tickets not yet consumed.
func (r *ring[T]) len() int {
	head := r.head.Load()
	tail := r.tail.Load()
	if tail < head {
		return 0
	}
	return int(tail - head)
}
