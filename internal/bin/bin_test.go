package bin

import (
	"errors"
	"testing"
)

var errBad = errors.New("bad input")

func TestRoundTrip(t *testing.T) {
	var w Writer
	w.Byte(7)
	w.Uvarint(1 << 40)
	w.Bool(true)
	w.Str("name")
	w.Varint(-5)
	w.Uvarint(3)
	w.B = append(w.B, "abc"...)
	w.Uvarint(2) // a count of two one-byte elements
	w.Byte(1)
	w.Byte(2)
	r := NewReader(w.B, errBad)
	if r.Byte() != 7 || r.Uvarint() != 1<<40 || !r.Bool() || r.Str("s", 10) != "name" || r.Varint() != -5 {
		t.Fatalf("values did not round-trip: %v", r.Err())
	}
	taken := r.Take(r.Uvarint())
	if string(taken) != "abc" || cap(taken) != 3 {
		t.Fatalf("Take = %q (cap %d), want abc with its capacity clipped", taken, cap(taken))
	}
	if n := r.Count("elements", 1); n != 2 {
		t.Fatalf("Count = %d, want 2", n)
	}
	if rest := r.Rest(); string(rest) != "\x01\x02" {
		t.Fatalf("Rest = %q", rest)
	}
	r.End()
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}

func TestFirstErrorSticksAndWrapsTheSentinel(t *testing.T) {
	for name, read := range map[string]func(r *Reader){
		"truncated byte":    func(r *Reader) { r.Byte(); r.Byte(); r.Byte() },
		"bad uvarint":       func(r *Reader) { r.Uvarint() },
		"bad varint":        func(r *Reader) { r.Varint() },
		"take past end":     func(r *Reader) { r.Take(3) },
		"bad bool":          func(r *Reader) { r.Bool() },
		"string over max":   func(r *Reader) { r.Str("s", 1) },
		"string past end":   func(r *Reader) { r.Str("s", 1<<20) },
		"count past end":    func(r *Reader) { r.Count("c", 1) },
		"trailing bytes":    func(r *Reader) { r.End() },
		"explicit failure":  func(r *Reader) { r.Fail("because %d", 1) },
		"reads after error": func(r *Reader) { r.Fail("first"); r.Byte(); r.Fail("second") },
	} {
		r := NewReader([]byte{0xff, 0xff}, errBad)
		read(r)
		if !errors.Is(r.Err(), errBad) {
			t.Errorf("%s: error %v does not wrap the sentinel", name, r.Err())
		}
		if name == "reads after error" && r.Err().Error() != "bad input: first" {
			t.Errorf("the first error does not stick: %v", r.Err())
		}
		if r.Byte() != 0 || r.Str("s", 10) != "" || r.Count("c", 1) != 0 {
			t.Errorf("%s: reads after an error return non-zero values", name)
		}
	}
}
