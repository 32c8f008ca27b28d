package remoting

// fifo is a queue whose array is reused: popping from the front of a plain
// slice would make every append reallocate once the front is gone, an
// allocation per element on a queue that never empties.
type fifo[T any] struct {
	q    []T
	head int
}

func (f *fifo[T]) len() int { return len(f.q) - f.head }

// push appends v. A full array with taken entries at its front is
// compacted rather than grown.
func (f *fifo[T]) push(v T) {
	if len(f.q) == cap(f.q) && f.head > 0 {
		k := copy(f.q, f.q[f.head:])
		clear(f.q[k:])
		f.q, f.head = f.q[:k], 0
	}
	f.q = append(f.q, v)
}

// front returns the oldest element; the queue must not be empty.
func (f *fifo[T]) front() T { return f.q[f.head] }

// take removes the n oldest elements, oldest first, passing each to each
// (which may be nil).
func (f *fifo[T]) take(n int, each func(T)) {
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
