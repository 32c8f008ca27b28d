package registry

import (
	"encoding/binary"
	"fmt"
)

// writer appends the binary encoding of values to a byte slice. Strings are
// a uvarint length then the bytes; integers are uvarints; bools and enums
// one byte.
type writer struct {
	b []byte
}

func (w *writer) byte(v byte)      { w.b = append(w.b, v) }
func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }

func (w *writer) bool(v bool) {
	if v {
		w.byte(1)
		return
	}
	w.byte(0)
}

func (w *writer) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// reader decodes what writer wrote. The first error sticks (wrapping bad,
// the package's sentinel for the kind of input being read); later reads
// return zero values, so a decoder checks r.err once at the end. Every
// length is checked against a bound and against the bytes that remain
// before anything is allocated.
type reader struct {
	b   []byte
	bad error
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{r.bad}, args...)...)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad bool")
	return false
}

// str reads a string of at most max bytes.
func (r *reader) str(what string, max int) string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(max) {
		r.fail("%s length %d over %d", what, n, max)
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("%s truncated", what)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads an element count whose elements take at least minSize bytes
// each, so that a count the remaining bytes cannot hold fails before it
// sizes an allocation.
func (r *reader) count(what string, minSize int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/minSize) {
		r.fail("%s count %d exceeds the remaining %d bytes", what, n, len(r.b))
		return 0
	}
	return int(n)
}

// end fails if bytes remain.
func (r *reader) end() {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
}
