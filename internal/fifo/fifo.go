// Package fifo is a first-in first-out queue whose array is reused.
// Popping from the front of a plain slice (q = q[1:]) makes every append
// reallocate once the front is gone: an allocation per element on a queue
// that never empties. The zero Queue is empty and ready to use; a Queue is
// not safe for concurrent use.
package fifo

// Queue is a FIFO queue of T.
type Queue[T any] struct {
	q    []T
	head int
}

// Len returns the number of elements queued.
func (f *Queue[T]) Len() int { return len(f.q) - f.head }

// Push appends v. A full array with taken elements at its front is
// compacted rather than grown.
func (f *Queue[T]) Push(v T) {
	if len(f.q) == cap(f.q) && f.head > 0 {
		k := copy(f.q, f.q[f.head:])
		clear(f.q[k:])
		f.q, f.head = f.q[:k], 0
	}
	f.q = append(f.q, v)
}

// Front returns the oldest element; the queue must not be empty.
func (f *Queue[T]) Front() T { return f.q[f.head] }

// Pop removes and returns the oldest element, or reports false when the
// queue is empty.
func (f *Queue[T]) Pop() (T, bool) {
	var zero T
	if f.Len() == 0 {
		return zero, false
	}
	v := f.q[f.head]
	f.Take(1, nil)
	return v, true
}

// Peek passes the n oldest elements, oldest first, to each, leaving them
// queued; n must not exceed Len.
func (f *Queue[T]) Peek(n int, each func(T)) {
	for _, v := range f.q[f.head : f.head+n] {
		each(v)
	}
}

// Take removes the n oldest elements, oldest first, passing each to each
// (which may be nil); n must not exceed Len.
func (f *Queue[T]) Take(n int, each func(T)) {
	if each != nil {
		for _, v := range f.q[f.head : f.head+n] {
			each(v)
		}
	}
	clear(f.q[f.head : f.head+n])
	f.head += n
	if f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	}
}

// Reset empties the queue and lets go of its array.
func (f *Queue[T]) Reset() { *f = Queue[T]{} }

// Cap returns the capacity of the queue's array.
func (f *Queue[T]) Cap() int { return cap(f.q) }
