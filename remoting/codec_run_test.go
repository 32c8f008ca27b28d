package remoting

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// runStream is one stream's GobCodec encoder and decoder pair.
type runStream struct {
	enc RunEncoder
	dec RunDecoder
}

func newRunStream(c *GobCodec) runStream {
	return runStream{enc: c.NewEncoder().(RunEncoder), dec: c.NewDecoder().(RunDecoder)}
}

// one sends v alone and returns what the decoder made of it.
func (s runStream) one(t *testing.T, v any) any {
	t.Helper()
	b, err := s.enc.Encode(nil, v)
	if err != nil {
		t.Fatalf("Encode(%#v): %v", v, err)
	}
	got, err := s.dec.Decode(b)
	if err != nil {
		t.Fatalf("Decode(%#v): %v", v, err)
	}
	return got
}

// run sends vs as a run, which the encoder must accept, and returns the
// decoded values.
func (s runStream) run(t *testing.T, vs ...any) []any {
	t.Helper()
	b, ok, err := s.enc.EncodeRun(nil, vs)
	if err != nil || !ok {
		t.Fatalf("EncodeRun(%d %T) = %v, %v", len(vs), vs[0], ok, err)
	}
	if b[0]&gobRun == 0 {
		t.Fatalf("run frame marker %#x", b[0])
	}
	got, err := s.dec.DecodeRun(nil, b, len(vs))
	if err != nil {
		t.Fatalf("DecodeRun: %v", err)
	}
	return got
}

// TestGobRunRoundTrip sends runs of every kind of registered type between
// single values on one stream: each run decodes to exactly its values.
func TestGobRunRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	s := newRunStream(c)
	runs := [][]any{
		{testOrder{ID: 1, Item: "a", Qty: 1}, testOrder{ID: 2}, testOrder{ID: 3, Item: "ccc"}},
		{&testOrder{ID: 4, Item: "p"}, &testOrder{ID: 5}},
		{testTree{Name: "r", Kids: []*testTree{{Name: "k"}}, Attrs: map[string]string{"x": "y"}}, testTree{Name: "s"}},
		{testPair{A: "text", B: []int{1, 2}}, testPair{A: 3.5}, testPair{}},
		{testMap{M: map[string]int{"a": 1}}, testMap{}},
		{"x", "", "zzz"},
		{int64(1), int64(-2), int64(1 << 40)},
		{[]byte("ab"), []byte(nil), []byte("c")},
	}
	for _, vs := range runs {
		t.Run(fmt.Sprintf("%T", vs[0]), func(t *testing.T) {
			// A type's first value on the stream goes alone: runs are
			// for types the stream has described already.
			if _, ok, err := s.enc.EncodeRun(nil, vs); ok || err != nil {
				t.Fatalf("EncodeRun of a type new to the stream = %v, %v; want declined", ok, err)
			}
			if got := s.one(t, vs[0]); !reflect.DeepEqual(got, vs[0]) {
				t.Fatalf("single: got %#v, want %#v", got, vs[0])
			}
			for range 2 { // the second run reuses both sides' scratch slices
				got := s.run(t, vs...)
				if len(got) != len(vs) {
					t.Fatalf("got %d values, want %d", len(got), len(vs))
				}
				for i := range vs {
					want := vs[i]
					if b, ok := want.([]byte); ok && len(b) == 0 {
						want = []byte(nil) // gob: empty slices arrive as nil
					}
					if !reflect.DeepEqual(got[i], want) {
						t.Fatalf("value %d: got %#v, want %#v", i, got[i], want)
					}
				}
			}
		})
	}
	// Singles still decode after all those runs.
	if got := s.one(t, testOrder{ID: 9}); got != (testOrder{ID: 9}) {
		t.Fatalf("single after runs: %#v", got)
	}
}

// TestGobRunWithTypesNewInInterfaces: a run whose values hold, in
// interface fields, types new to the stream decodes. gob then splits the
// run's value over several messages, to describe those types between its
// parts, so the value's count is in the first message that is not a type
// description, not in the last.
func TestGobRunWithTypesNewInInterfaces(t *testing.T) {
	s := newRunStream(newTestCodec(t))
	s.one(t, testPair{A: 1})
	vs := []any{testPair{A: 5793, B: []int{}}, testPair{A: []int{1}, B: 1.5}, testPair{A: []string{"x"}, B: []float64{2}}}
	got := s.run(t, vs...)
	want := []any{testPair{A: 5793, B: []int(nil)}, vs[1], vs[2]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
}

// TestGobRunValuesDoNotShare checks that decoded run values own their
// memory: changing one changes neither its neighbours nor the next run.
func TestGobRunValuesDoNotShare(t *testing.T) {
	s := newRunStream(newTestCodec(t))
	s.one(t, testTree{})
	first := s.run(t, testTree{Name: "a", Kids: []*testTree{{Name: "ak"}}}, testTree{Name: "b", Kids: []*testTree{{Name: "bk"}}})
	first[0].(testTree).Kids[0].Name = "changed"
	second := s.run(t, testTree{Name: "c"}, testTree{Name: "d"})
	if first[1].(testTree).Kids[0].Name != "bk" {
		t.Fatalf("neighbour changed: %#v", first[1])
	}
	for _, v := range second {
		if tr := v.(testTree); tr.Kids != nil {
			t.Fatalf("second run inherited the first run's kids: %#v", tr)
		}
	}
}

// TestGobRunDeclines checks the runs EncodeRun leaves to Encode: mixed
// types, nil pointers, unregistered types and flat types, all without
// touching the stream.
func TestGobRunDeclines(t *testing.T) {
	c := newTestCodec(t)
	s := newRunStream(c)
	s.one(t, testOrder{})
	s.one(t, &testOrder{})
	for name, vs := range map[string][]any{
		"mixed":        {testOrder{}, &testOrder{}},
		"nil pointer":  {&testOrder{}, (*testOrder)(nil)},
		"unregistered": {testUnregistered{}, testUnregistered{}},
		"nil":          {nil, nil},
		"one value":    {testOrder{}},
	} {
		if b, ok, err := s.enc.EncodeRun([]byte("x"), vs); ok || err != nil || string(b) != "x" {
			t.Errorf("%s: EncodeRun = %q, %v, %v; want declined", name, b, ok, err)
		}
	}
	if got := s.one(t, testOrder{ID: 3}); got != (testOrder{ID: 3}) {
		t.Fatalf("stream after declined runs: %#v", got)
	}
}

// TestFlatRunRoundTrip: the default codec sends runs of a flat type as
// flat values back to back, which any GobCodec decodes, and values that
// fit no flat layout still go through gob.
func TestFlatRunRoundTrip(t *testing.T) {
	fast, err := NewGobCodec(testOrder{}, testTree{})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newPlainGobCodec(testOrder{}, testTree{})
	if err != nil {
		t.Fatal(err)
	}
	for name, dec := range map[string]RunDecoder{"fast": fast.NewDecoder().(RunDecoder), "plain": plain.NewDecoder().(RunDecoder)} {
		t.Run(name, func(t *testing.T) {
			s := runStream{enc: fast.NewEncoder().(RunEncoder), dec: dec}
			s.one(t, testOrder{ID: 1})
			orders := []any{testOrder{ID: 2, Item: "a", Qty: 3}, testOrder{}, testOrder{ID: -4, Item: "bb"}}
			b, ok, err := s.enc.EncodeRun(nil, orders)
			if err != nil || !ok || b[0] != gobRun|gobFlat {
				t.Fatalf("flat run: %x, %v, %v", b, ok, err)
			}
			got, err := s.dec.DecodeRun(nil, b, len(orders))
			if err != nil || !reflect.DeepEqual(got, orders) {
				t.Fatalf("DecodeRun = %#v, %v", got, err)
			}
			if _, err := dec.DecodeRun(nil, b, len(orders)+1); err == nil {
				t.Fatal("a flat run decoded with the wrong count")
			}
		})
	}
	s := newRunStream(fast)
	s.one(t, testTree{})
	trees := []any{testTree{Name: "a", Attrs: map[string]string{"k": "v"}}, testTree{Name: "b"}}
	if got := s.run(t, trees...); !reflect.DeepEqual(got, trees) {
		t.Fatalf("gob run on a fast codec: %#v", got)
	}
}

// TestGobRunFailureResets: a run whose encoding fails fails with ErrEncode,
// leaves dst alone, and resets the stream, so the values sent after it
// (the failing one alone fails) decode as they should.
func TestGobRunFailureResets(t *testing.T) {
	s := newRunStream(newTestCodec(t))
	s.one(t, testPanicky{A: 1})
	b, ok, err := s.enc.EncodeRun([]byte("x"), []any{testPanicky{A: 2}, testPanicky{A: -1}})
	if ok || !errors.Is(err, ErrEncode) || string(b) != "x" {
		t.Fatalf("EncodeRun = %q, %v, %v; want ErrEncode", b, ok, err)
	}
	if _, err := s.enc.Encode(nil, testPanicky{A: -1}); !errors.Is(err, ErrEncode) {
		t.Fatalf("the failing value alone: %v", err)
	}
	frame, err := s.enc.Encode(nil, testPanicky{A: 2})
	if err != nil || frame[0]&gobReset == 0 {
		t.Fatalf("next frame %x, %v; want a reset frame", frame, err)
	}
	if got, err := s.dec.Decode(frame); err != nil || got != (testPanicky{A: 2}) {
		t.Fatalf("Decode after the reset = %#v, %v", got, err)
	}
	if got := s.run(t, testPanicky{A: 3}, testPanicky{A: 4}); got[1] != (testPanicky{A: 4}) {
		t.Fatalf("run after the reset: %#v", got)
	}
}

// TestGobRunDecodeErrors feeds run frames where they do not belong.
func TestGobRunDecodeErrors(t *testing.T) {
	c := newTestCodec(t)
	enc := newPlainTestCodec(t).NewEncoder().(RunEncoder) // gob runs of testOrder
	single, err := enc.Encode(nil, testOrder{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	run, ok, err := enc.EncodeRun(nil, []any{testOrder{ID: 2}, testOrder{ID: 3}})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	tests := []struct {
		name string
		do   func(RunDecoder) error
		want string
	}{
		{"run as a value", func(d RunDecoder) error { _, err := d.Decode(run); return err }, "a run frame where one value"},
		{"value as a run", func(d RunDecoder) error { _, err := d.DecodeRun(nil, single, 1); return err }, "one value where a run"},
		{"count too high", func(d RunDecoder) error { _, err := d.DecodeRun(nil, run, 3); return err }, "announced as 3"},
		{"count too low", func(d RunDecoder) error { _, err := d.DecodeRun(nil, run, 1); return err }, "announced as 1"},
		{"flat run marker", func(d RunDecoder) error {
			_, err := d.DecodeRun(nil, append([]byte{gobRun | gobFlat}, run[1:]...), 2)
			return err
		}, "first sent otherwise"},
		{"nil run", func(d RunDecoder) error { _, err := d.DecodeRun(nil, []byte{gobRun, 0}, 2); return err }, "a run of nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := c.NewDecoder().(RunDecoder)
			if _, err := d.Decode(single); err != nil {
				t.Fatal(err)
			}
			err := tc.do(d)
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want ErrDecode containing %q", err, tc.want)
			}
			if _, err := d.Decode(single); !errors.Is(err, ErrDecode) {
				t.Fatalf("decoder usable after a failure: %v", err)
			}
		})
	}
}

// TestGobRunCountIsCheckedFirst: a run frame whose gob slice holds more
// values than its record announces is refused before gob decodes (and
// allocates for) them — a few hundred KB of zero values would otherwise
// cost many MB.
func TestGobRunCountIsCheckedFirst(t *testing.T) {
	c := newTestCodec(t)
	s := newRunStream(c)
	s.one(t, testTree{})
	vs := make([]any, 200_000)
	for i := range vs {
		vs[i] = testTree{}
	}
	b, ok, err := s.enc.EncodeRun(nil, vs)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = s.dec.DecodeRun(nil, b, 2)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "announced as 2") {
		t.Fatalf("DecodeRun = %v; want ErrDecode for the count", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a %d-byte run allocated %d bytes", len(b), grew)
	}
}

// TestGobRunCountIsTheDecodedValues: the count checked is that of the
// value gob decodes, the frame's first message that describes no type,
// not that of a value message after it, which gob would never read.
func TestGobRunCountIsTheDecodedValues(t *testing.T) {
	c := newTestCodec(t)
	s := newRunStream(c)
	s.one(t, testTree{})
	vs := make([]any, 200_000)
	for i := range vs {
		vs[i] = testTree{}
	}
	big, ok, err := s.enc.EncodeRun(nil, vs)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	two, ok, err := s.enc.EncodeRun(nil, vs[:2])
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if big[1] != 1 || two[1] != 1 {
		t.Fatalf("unexpected headers %x, %x", big[:2], two[:2])
	}
	frame := append(append([]byte(nil), big...), two[2:]...) // the values, then a run of 2
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = s.dec.DecodeRun(nil, frame, 2)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "announced as 2") {
		t.Fatalf("DecodeRun = %v; want ErrDecode for the count", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("refusing a %d-byte run allocated %d bytes", len(frame), grew)
	}
}

// FuzzGobDecodeRun feeds a decoder a frame, then a run frame said to hold
// n values: either decodes to exactly that, with values that encode again,
// or fails with ErrDecode, never panicking or allocating beyond the input.
func FuzzGobDecodeRun(f *testing.F) {
	rethrowDecodePanics.Store(true) // a panic is a crash, not an error
	f.Cleanup(func() { rethrowDecodePanics.Store(false) })
	c := newTestCodec(f)
	f.Fuzz(func(t *testing.T, first, run []byte, n uint16) {
		dec := c.NewDecoder().(RunDecoder)
		if _, err := dec.Decode(first); err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("first frame: error %v does not wrap ErrDecode", err)
			}
			return
		}
		vs, err := dec.DecodeRun(nil, run, int(n))
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("run: error %v does not wrap ErrDecode", err)
			}
			return
		}
		if len(vs) != int(n) {
			t.Fatalf("run of %d values, announced %d", len(vs), n)
		}
		enc := c.NewEncoder()
		for _, v := range vs {
			if _, err := enc.Encode(nil, v); err != nil {
				t.Fatalf("decoded %#v does not encode: %v", v, err)
			}
		}
	})
}

// gobRunFuzzSeeds returns the seed corpus of FuzzGobDecodeRun by file name:
// gob runs, from a codec without the flat path, and the default codec's
// flat runs, a bridged flat run (version skew) and a corrupt one.
func gobRunFuzzSeeds(tb testing.TB, c *GobCodec) map[string]runSeed {
	tb.Helper()
	enc := newPlainTestCodec(tb).NewEncoder().(RunEncoder)
	mustOne := func(v any) []byte {
		b, err := enc.Encode(nil, v)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	mustRun := func(vs ...any) []byte {
		b, ok, err := enc.EncodeRun(nil, vs)
		if err != nil || !ok {
			tb.Fatal(ok, err)
		}
		return b
	}
	order := mustOne(testOrder{ID: 1, Item: "a"})
	orders := mustRun(testOrder{ID: 2, Item: "b"}, testOrder{ID: 3}, testOrder{ID: 4, Qty: 9})
	mapOne := mustOne(testMap{M: map[string]int{"a": 1}})
	maps := mustRun(testMap{M: map[string]int{"b": 2}}, testMap{})
	// Flat frames, from the default codec.
	fastEnc := c.NewEncoder().(RunEncoder)
	flatRunOf := func(vs ...any) (first, run []byte) {
		first, err := fastEnc.Encode(nil, vs[0])
		if err != nil || first[0]&gobFlat == 0 {
			tb.Fatalf("flat frame %x, %v", first, err)
		}
		run, ok, err := fastEnc.EncodeRun(nil, vs[1:])
		if err != nil || !ok || run[0] != gobRun|gobFlat {
			tb.Fatalf("flat run %x, %v, %v", run, ok, err)
		}
		return first, run
	}
	flatOne, flatOrders := flatRunOf(testOrder{ID: 1, Item: "a"}, testOrder{ID: 2}, testOrder{Item: "b", Qty: 3})
	msgOne, msgs := flatRunOf(testMsg{ID: 1, Payload: testPayload}, testMsg{ID: -1}, testMsg{}, testMsg{Payload: "p"})
	allOne, alls := flatRunOf(flatAll{S: "s"}, flatAllEdges(), flatAll{}, flatAll{F32: float32(math.NaN()), Bs: []byte{0}})
	promoted := gobTypeName(reflect.TypeFor[testPromoted]())
	skewOne := flatFrame(promoted, skewPromoted{ID: 1, Note: "n"})
	skewRun := flatRun(skewPromoted{ID: 2, Item: "i"}, skewPromoted{}, skewPromoted{Qty: -3, Note: "m"})
	return map[string]runSeed{
		"flat_orders":      {flatOne, flatOrders, 2},
		"flat_miscount":    {flatOne, flatOrders, 3},
		"flat_msgs":        {msgOne, msgs, 3},
		"flat_all_kinds":   {allOne, alls, 3},
		"flat_all_cut":     {allOne, alls[:len(alls)-1], 3},
		"flat_skew_bridge": {skewOne, skewRun, 3},
		"flat_skew_cut":    {skewOne, skewRun[:len(skewRun)-2], 3},
		"orders":           {order, orders, 3},
		"orders_miscount":  {order, orders, 2},
		"maps":             {mapOne, maps, 2},
		"absurd_count":     {order, absurdSliceCount(tb, orders), 3},
		"truncated":        {order, orders[:len(orders)-3], 3},
		"value_as_run":     {order, order, 1},
	}
}

// runSeed is one FuzzGobDecodeRun input.
type runSeed struct {
	first, run []byte
	n          uint16
}

// absurdSliceCount rewrites a run frame's value message (its last gob
// message: type id, singleton marker 0, element count, elements) into one
// that announces 1<<30 elements and holds none.
func absurdSliceCount(tb testing.TB, run []byte) []byte {
	tb.Helper()
	out := append([]byte(nil), run[:2]...) // marker, type id
	b := run[2:]
	for len(b) > 0 {
		l, w := gobUint(b)
		if w == 0 || int(l) > len(b)-w {
			tb.Fatal("unexpected run frame")
		}
		msg := b[w : w+int(l)]
		b = b[w+int(l):]
		if len(b) > 0 { // a type description: keep it
			out = append(out, run[len(run)-len(b)-w-int(l):len(run)-len(b)]...)
			continue
		}
		_, iw := gobUint(msg) // the slice's type id
		value := append(append([]byte(nil), msg[:iw]...), 0x00, 0xfc, 0x40, 0x00, 0x00, 0x00)
		out = append(append(out, byte(len(value))), value...)
	}
	return out
}

// TestGobRunFuzzCorpus checks that each generated FuzzGobDecodeRun seed is
// committed, and writes them with -update-corpus.
func TestGobRunFuzzCorpus(t *testing.T) {
	files := map[string]string{}
	for name, s := range gobRunFuzzSeeds(t, newTestCodec(t)) {
		files[name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\nuint16(%d)\n", s.first, s.run, s.n)
	}
	checkFuzzCorpus(t, "FuzzGobDecodeRun", files)
}
