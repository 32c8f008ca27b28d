// Package bin is the small binary encoding dchan's own wire structures use
// (registry commands and RPCs, gossip headers): uvarint integers, one-byte
// bools and enums, uvarint-length-prefixed strings.
//
// Reader is built for bytes from peers: the first error sticks, later reads
// return zero values (so a decoder checks Err once at the end), and every
// length is checked against a bound and against the bytes that remain
// before anything is allocated. Decoding never panics.
package bin

import (
	"encoding/binary"
	"fmt"
)

// Writer appends encoded values to B.
type Writer struct {
	B []byte
}

// Byte appends one byte.
func (w *Writer) Byte(v byte) { w.B = append(w.B, v) }

// Uvarint appends an unsigned varint.
func (w *Writer) Uvarint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }

// Varint appends a signed varint.
func (w *Writer) Varint(v int64) { w.B = binary.AppendVarint(w.B, v) }

// Bool appends a bool as one byte.
func (w *Writer) Bool(v bool) {
	if v {
		w.Byte(1)
		return
	}
	w.Byte(0)
}

// Str appends a length-prefixed string.
func (w *Writer) Str(s string) {
	w.Uvarint(uint64(len(s)))
	w.B = append(w.B, s...)
}

// Reader decodes what Writer wrote.
type Reader struct {
	b   []byte
	bad error
	err error
}

// NewReader reads b; its errors wrap bad, the caller's sentinel for the
// kind of input being read.
func NewReader(b []byte, bad error) *Reader { return &Reader{b: b, bad: bad} }

// Err returns the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the unread bytes (nil after an error) and consumes them.
func (r *Reader) Rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// Fail records an error (the first one sticks) and stops reading.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{r.bad}, args...)...)
	}
	r.b = nil
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.Fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Take returns the next n bytes as a sub-slice of the input, its capacity
// clipped (appending to it never overwrites what follows), or fails.
func (r *Reader) Take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.Fail("length %d beyond the %d bytes left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Bool reads a bool; a byte other than 0 or 1 fails.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail("bad bool")
	return false
}

// Str reads a string of at most max bytes; what names it in errors.
func (r *Reader) Str(what string, max int) string {
	n := r.Uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(max) {
		r.Fail("%s length %d over %d", what, n, max)
		return ""
	}
	if n > uint64(len(r.b)) {
		r.Fail("%s truncated", what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// Count reads an element count whose elements take at least minSize bytes
// each, so that a count the remaining bytes cannot hold fails before it
// sizes an allocation.
func (r *Reader) Count(what string, minSize int) int {
	n := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/max(minSize, 1)) {
		r.Fail("%s count %d exceeds the remaining %d bytes", what, n, len(r.b))
		return 0
	}
	return int(n)
}

// End fails if bytes remain.
func (r *Reader) End() {
	if r.err == nil && len(r.b) != 0 {
		r.Fail("%d trailing bytes", len(r.b))
	}
}
