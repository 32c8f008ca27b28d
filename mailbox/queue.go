package mailbox

import (
	"sync"
	"sync/atomic"
)

// firstRing is the size of the ring a queue starts on. A mailbox whose
// capacity is larger moves to a ring of its full capacity the first time
// more than firstRing messages are queued, so that an actor which never
// builds a backlog costs a few kilobytes however large its capacity; and
// back to a first ring when its owner trims it while it is empty.
const firstRing = 64

// queue is the mailbox's bounded multi-producer, single-consumer user
// queue. It holds up to capacity values in at most two rings: a small one
// (firstRing slots) that it starts on and, from the first time that one is
// full, one of the whole capacity.
//
// The move needs no lock. The producer that finds the small ring full links
// the large ring behind it and seals the small one (a bit in its tail), so
// that no ticket can be taken in it any more; producers go on in the large
// ring, and the consumer empties the small ring before it goes on too. Until
// it has, the large ring's limit is the capacity less the small ring's, so
// the two never hold more than capacity between them.
type queue[T any] struct {
	prod     atomic.Pointer[ring[T]] // where producers push
	cons     atomic.Pointer[ring[T]] // where the consumer pops: prod, or the ring before it
	capacity uint64
	growMu   sync.Mutex // one producer allocates the large ring
	onGrow   func()     // called once per move to a large ring, if set
}

func newQueue[T any](capacity int) *queue[T] {
	q := &queue[T]{capacity: uint64(capacity)}
	r := newRing[T](min(capacity, firstRing), uint64(capacity))
	q.prod.Store(r)
	q.cons.Store(r)
	return q
}

// push appends v and reports false if the queue is full.
func (q *queue[T]) push(v T) bool {
	r := q.prod.Load()
	for {
		ok, sealed := r.push(v)
		if ok {
			return true
		}
		if !sealed && !q.grow(r) {
			return false
		}
		r = r.next.Load() // linked before r was sealed
	}
}

// grow moves the producers of the full ring r to a ring of the whole
// capacity, and reports false if r is that ring already.
func (q *queue[T]) grow(r *ring[T]) bool {
	if uint64(len(r.cells)) >= q.capacity {
		return false
	}
	grew := false
	if r.next.Load() == nil {
		// Producers that find the small ring full at once would each
		// allocate a ring of the whole capacity, to keep one.
		q.growMu.Lock()
		if r.next.Load() == nil {
			r.next.Store(newRing[T](int(q.capacity), q.capacity-r.limit.Load()))
			grew = true
		}
		q.growMu.Unlock()
	}
	r.tail.Or(sealed)
	q.prod.CompareAndSwap(r, r.next.Load())
	if grew && q.onGrow != nil {
		q.onGrow()
	}
	return true
}

// shrink moves the queue back to a first ring if it is on its large ring
// and that is empty, and reports whether it did. Only the consumer may
// call it. It seals the large ring only if no ticket was taken in it
// since it looked (one compare-and-swap of the tail from the head), so
// nothing is left behind in it; producers then move on to the new first
// ring as they do to a large one.
func (q *queue[T]) shrink() bool {
	r := q.cons.Load()
	if q.capacity <= firstRing || uint64(len(r.cells)) < q.capacity || q.prod.Load() != r {
		return false // one ring only, on the first ring, or moving to the large one
	}
	head := r.head.Load()
	if r.tail.Load() != head {
		return false
	}
	small := newRing[T](firstRing, firstRing)
	r.next.Store(small)
	if !r.tail.CompareAndSwap(head, head|sealed) {
		r.next.Store(nil) // a producer took a ticket: not empty after all
		return false
	}
	if afterShrinkSeal != nil {
		afterShrinkSeal()
	}
	q.prod.Store(small)
	// Producers that found r sealed went on into small before this Store,
	// and may have filled it and grown it already: grow's move of prod
	// from small failed then, as prod was still r. Move it on for them
	// (the next ring is a large one, which only the consumer seals).
	if next := small.next.Load(); next != nil {
		q.prod.CompareAndSwap(small, next)
	}
	q.cons.Store(small)
	return true
}

// afterShrinkSeal, when set, runs in shrink between the seal and the
// moves of prod and cons: tests pause there.
var afterShrinkSeal func()

// pop removes the oldest value. Only one goroutine at a time may call it.
func (q *queue[T]) pop() (T, bool) {
	r := q.cons.Load()
	v, ok := r.pop()
	if ok || !r.drained() {
		return v, ok
	}
	next := r.next.Load()
	next.limit.Store(q.capacity) // the small ring's share is free again
	q.cons.Store(next)
	return next.pop()
}

// ready reports whether the oldest value is visible to pop. It is the
// consumer's look: called by anyone else (a run going idle looks once more,
// and a new run may have started meanwhile), it may be stale.
func (q *queue[T]) ready() bool {
	r := q.cons.Load()
	if r.ready() {
		return true
	}
	return r.drained() && r.next.Load().ready()
}

// len returns the number of values queued, counting those whose producer
// has taken a ticket and not yet stored them. It walks every ring from
// the consumer's: after a shrink that producers outran, there may be three.
func (q *queue[T]) len() int {
	n := 0
	for r := q.cons.Load(); r != nil; r = r.next.Load() {
		n += r.len()
	}
	return n
}

// slots returns how many slots the queue has allocated.
func (q *queue[T]) slots() int {
	n := 0
	for r := q.cons.Load(); r != nil; r = r.next.Load() {
		n += len(r.cells)
	}
	return n
}

// sealed is the bit of a ring's tail that closes it to producers.
const sealed = 1 << 63

// ring is a bounded multi-producer, single-consumer queue after Dmitry
// Vyukov's bounded MPMC queue: each cell carries a sequence number that says
// whether it is free for the producer holding ticket pos (seq == pos) or
// holds the value for the consumer at pos (seq == pos+1). Producers claim
// tickets with one CAS on tail; the single consumer needs no atomic
// read-modify-write at all. The ring has a power-of-two size; its limit,
// which may be smaller, is enforced against head.
type ring[T any] struct {
	head  atomic.Uint64 // next ticket to consume; written by the consumer only
	_     [56]byte
	tail  atomic.Uint64 // next ticket to produce, and the sealed bit
	_     [56]byte
	cells []cell[T]
	mask  uint64
	limit atomic.Uint64           // how many values it may hold
	next  atomic.Pointer[ring[T]] // the ring producers moved to, set before sealing
}

type cell[T any] struct {
	seq atomic.Uint64
	val T
}

func newRing[T any](size int, limit uint64) *ring[T] {
	n := 1
	for n < size {
		n <<= 1
	}
	r := &ring[T]{cells: make([]cell[T], n), mask: uint64(n - 1)}
	r.limit.Store(min(limit, uint64(size)))
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
	}
	return r
}

// push appends v. It reports false if the ring is full, and sealed true if
// it is closed to producers.
func (r *ring[T]) push(v T) (ok, isSealed bool) {
	for {
		pos := r.tail.Load()
		if pos&sealed != 0 {
			return false, true
		}
		head := r.head.Load()
		if pos < head {
			continue // pos is stale: the consumer has passed it since
		}
		if pos-head >= r.limit.Load() {
			return false, false
		}
		c := &r.cells[pos&r.mask]
		seq := c.seq.Load()
		switch {
		case seq == pos:
			if r.tail.CompareAndSwap(pos, pos+1) {
				c.val = v
				c.seq.Store(pos + 1)
				return true, false
			}
		case seq < pos:
			return false, false // the consumer has not freed this cell yet
		}
		// Another producer took pos, or the ring was sealed: look again.
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

// drained reports whether the ring is sealed and every ticket taken in it
// has been consumed: the consumer may go on to the next ring. A ring with
// no next ring is never sealed, and it is told by next, which only changes
// once, so that an empty queue's consumer does not read the tail that its
// producers write.
func (r *ring[T]) drained() bool {
	if r.next.Load() == nil {
		return false
	}
	tail := r.tail.Load()
	return tail&sealed != 0 && r.head.Load() == tail&^sealed
}

// len returns the number of claimed tickets not yet consumed.
func (r *ring[T]) len() int {
	head := r.head.Load()
	tail := r.tail.Load() &^ sealed
	if tail < head {
		return 0
	}
	return int(tail - head)
}
