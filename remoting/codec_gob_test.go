package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"github.com/stretchr/testify/assert"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

type testOrder struct {
	ID   int64
	Item string
	Qty  int
}

type testTree struct {
	Name  string
	Kids  []*testTree
	Attrs map[string]string
}

// testPair's fields hold values through gob's own interface encoding, whose
// type descriptions travel inline in the value.
type testPair struct {
	A, B any
}

// testMap holds a map: its decoding takes the codec's discarding pass.
type testMap struct {
	M map[string]int
}

type testUnregistered struct {
	A int
}

type testNoExported struct {
	a int //lint:ignore U1000 a struct gob cannot encode: it has no exported field
}

// testPanicky's GobEncode panics for a negative A.
type testPanicky struct {
	A int8
}

func (p testPanicky) GobEncode() ([]byte, error) {
	if p.A < 0 {
		panic("testPanicky: negative")
	}
	return []byte{byte(p.A)}, nil
}

func (p *testPanicky) GobDecode(b []byte) error {
	if len(b) != 1 || int8(b[0]) < 0 {
		return errors.New("testPanicky: bad encoding")
	}
	p.A = int8(b[0])
	return nil
}

// testMsg is the benchmarks' message: a 32-byte payload.
type testMsg struct {
	ID      int64
	Payload string
}

const testPayload = "0123456789abcdef0123456789abcdef"

// testTypes are the types of newTestCodec.
func testTypes() []any {
	return []any{testOrder{}, &testOrder{}, testTree{}, testPair{}, testMap{},
		testPanicky{}, testMsg{}, time.Time{}, testPromoted{}, flatAll{}, flatPtrs{}, flatTextField{}}
}

// testPromoted's fields are promoted from an embedded struct: a peer's flat
// testPromoted with a field ID (another version of the type) decodes
// through gob, which sets the promoted field.
type testPromoted struct {
	testOrder
	Note string
}

func newTestCodec(tb testing.TB) *GobCodec {
	tb.Helper()
	c, err := NewGobCodec(testTypes()...)
	if err != nil {
		tb.Fatalf("NewGobCodec: %v", err)
	}
	return c
}

// newPlainGobCodec is NewGobCodec without the flat path: every type goes
// through gob, as from a node that sends no flat frames.
func newPlainGobCodec(types ...any) (*GobCodec, error) { return newGobCodec(false, types) }

// newPlainTestCodec is newTestCodec without the flat path.
func newPlainTestCodec(tb testing.TB) *GobCodec {
	tb.Helper()
	c, err := newPlainGobCodec(testTypes()...)
	if err != nil {
		tb.Fatalf("newPlainGobCodec: %v", err)
	}
	return c
}

func TestGobCodecRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	values := []struct {
		name string
		v    any
	}{
		{"struct", testOrder{ID: 1, Item: "apple", Qty: 3}},
		{"zero struct", testOrder{}},
		{"pointer", &testOrder{ID: 2, Item: "pear"}},
		{"nested", testTree{Name: "root", Kids: []*testTree{{Name: "a"}, {Name: "b", Attrs: map[string]string{"k": "v"}}}}},
		{"interfaces", testPair{A: "text", B: []int{1, 2}}},
		{"map", testMap{M: map[string]int{"x": 1, "y": 2}}},
		{"gob encoder", testPanicky{A: 7}},
		{"time", time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{"string", "hello"},
		{"int", 42},
		{"bytes", []byte{0, 1, 2}},
		{"float", 1.5},
		{"nil", nil},
	}
	// Each alone on a fresh stream.
	for _, tc := range values {
		t.Run(tc.name, func(t *testing.T) {
			b, err := c.NewEncoder().Encode(nil, tc.v)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := c.NewDecoder().Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("got %#v, want %#v", got, tc.v)
			}
		})
	}
	// All on one stream, twice, so types are both new and known.
	enc, dec := c.NewEncoder(), c.NewDecoder()
	for round := range 2 {
		for _, tc := range values {
			b, err := enc.Encode(nil, tc.v)
			if err != nil {
				t.Fatalf("round %d %s: Encode: %v", round, tc.name, err)
			}
			got, err := dec.Decode(b)
			if err != nil {
				t.Fatalf("round %d %s: Decode: %v", round, tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("round %d %s: got %#v, want %#v", round, tc.name, got, tc.v)
			}
		}
	}
}

func TestGobEncodeAppendsToDst(t *testing.T) {
	c := newTestCodec(t)
	enc, dec := c.NewEncoder(), c.NewDecoder()
	dst := []byte("prefix")
	out, err := enc.Encode(dst, testOrder{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatalf("output %q does not start with dst", out)
	}
	if _, err := dec.Decode(out[len("prefix"):]); err != nil {
		t.Fatal(err)
	}
}

// TestGobEncodeFailureKeepsStreamUsable interleaves values that fail to
// encode, before and after their types are known to the stream, with good
// values of new and known types: each failure fails its value alone and
// every good value decodes, in order, on one decoder.
func TestGobEncodeFailureKeepsStreamUsable(t *testing.T) {
	c := newTestCodec(t)
	steps := []struct {
		name      string
		v         any
		wantErr   string // substring of the ErrEncode error; "" for success
		wantReset bool   // the output is a reset frame
	}{
		{"first type", testOrder{ID: 1}, "", false},
		{"unregistered", testUnregistered{A: 1}, "remoting.testUnregistered is not registered", false},
		{"new type", testPair{A: 1, B: "b"}, "", false},
		// A known type whose value fails after gob sent a new type's
		// description ([]float64) inline: the stream encoder is replaced.
		{"fails mid-value", testPair{A: []float64{1.5}, B: map[string]int{"x": 1}}, "not registered for interface", false},
		{"after mid-value failure", testPair{A: []float64{2.5}, B: 3}, "", true},
		{"known type after reset", testOrder{ID: 2}, "", false},
		// A new type whose first value fails is caught by the trial
		// encoder and needs no reset.
		{"new type panics", testPanicky{A: -1}, "panic", false},
		{"after trial failure", testPanicky{A: 1}, "", false},
		// A known type whose GobEncode panics on the stream encoder.
		{"known type panics", testPanicky{A: -2}, "panic", false},
		{"nil after panic", nil, "", true},
		{"nil pointer", (*testOrder)(nil), "nil *github.com/dchan-io/dchan/remoting.testOrder", false},
		{"new type after reset", testTree{Name: "t", Attrs: map[string]string{"a": "b"}}, "", false},
		{"known again", testPair{A: 1}, "", false},
		{"chan in interface", testPair{A: make(chan int)}, "testPair", false},
		// testPair is new to the replaced encoder: the trial catches it.
		{"twice failed", testPair{A: []float64{3}, B: map[int]int{}}, "not registered for interface", false},
		{"still failing", testPair{A: func() {}}, "testPair", false},
		{"after repeated failures", testPair{A: []float64{4}}, "", true},
		{"last", testOrder{ID: 3}, "", false},
	}
	enc, dec := c.NewEncoder(), c.NewDecoder()
	type sent struct {
		name string
		v    any
		b    []byte
	}
	var ok []sent
	for _, s := range steps {
		dst := append(make([]byte, 0, 64), "keep"...)
		out, err := enc.Encode(dst, s.v)
		if s.wantErr != "" {
			if !errors.Is(err, ErrEncode) || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("%s: error %v, want ErrEncode containing %q", s.name, err, s.wantErr)
			}
			if string(out) != "keep" {
				t.Fatalf("%s: failed Encode changed dst to %q", s.name, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Encode: %v", s.name, err)
		}
		frame := out[len("keep"):]
		if got := frame[0] == gobReset; got != s.wantReset {
			t.Fatalf("%s: reset frame %v, want %v", s.name, got, s.wantReset)
		}
		ok = append(ok, sent{s.name, s.v, bytes.Clone(frame)})
	}
	for _, s := range ok {
		got, err := dec.Decode(s.b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", s.name, err)
		}
		if !reflect.DeepEqual(got, s.v) {
			t.Fatalf("%s: got %#v, want %#v", s.name, got, s.v)
		}
	}
}

// TestGobTypeInfoSentOnce sends 10k values of one type on one stream: only
// the first carries the type's description.
func TestGobTypeInfoSentOnce(t *testing.T) {
	c := newTestCodec(t)
	enc, dec := c.NewEncoder(), c.NewDecoder()
	var buf []byte
	first := 0
	for i := range 10_000 {
		v := testMsg{ID: int64(i) << 20, Payload: testPayload}
		var err error
		buf, err = enc.Encode(buf[:0], v)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = len(buf)
		} else if len(buf) >= 2*len(testPayload) {
			t.Fatalf("value %d: %d bytes, want < %d: type info resent?", i, len(buf), 2*len(testPayload))
		}
		got, err := dec.Decode(buf)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if got != v {
			t.Fatalf("value %d: got %#v", i, got)
		}
	}
	if first < 2*len(testPayload) {
		t.Fatalf("first value: %d bytes, expected it to carry the type description", first)
	}
	t.Logf("first value %d bytes, later values %d bytes (payload %d)", first, len(buf), len(testPayload))
}

func TestGobUnregisteredType(t *testing.T) {
	c := newTestCodec(t)
	_, err := c.NewEncoder().Encode(nil, testUnregistered{A: 1})
	if !errors.Is(err, ErrEncode) {
		t.Fatalf("error %v does not wrap ErrEncode", err)
	}
	if want := "github.com/dchan-io/dchan/remoting.testUnregistered"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the type %s", err, want)
	}
}

// TestGobCodecsAreIndependent shows that registration is per codec: two
// codecs in one process know different types.
func TestGobCodecsAreIndependent(t *testing.T) {
	a := newTestCodec(t)
	b, err := NewGobCodec()
	if err != nil {
		t.Fatal(err)
	}
	frame, err := a.NewEncoder().Encode(nil, testOrder{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewDecoder().Decode(frame); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "testOrder") {
		t.Fatalf("decode of an unknown type: %v", err)
	}
	if _, err := b.NewEncoder().Encode(nil, testOrder{}); !errors.Is(err, ErrEncode) {
		t.Fatalf("encode of an unknown type: %v", err)
	}
	if _, err := b.NewEncoder().Encode(nil, "basic types need no registration"); err != nil {
		t.Fatal(err)
	}
}

func TestNewGobCodecErrors(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, "nil"},
		{"chan", make(chan int), "chan int"},
		{"func", func() {}, "func()"},
		{"no exported fields", testNoExported{}, "testNoExported"},
		// A receiver refuses a type name over maxGobTypeName: the stream
		// would fail at the first value.
		{"name too long", longNamedValue(), "limit 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewGobCodec(testOrder{}, tc.v)
			if !errors.Is(err, ErrEncode) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrEncode naming %q", err, tc.want)
			}
		})
	}
	if _, err := NewGobCodec(testOrder{}, testOrder{ID: 1}, 0); err != nil {
		t.Fatalf("registering a type twice: %v", err)
	}
}

// longNamedValue is a value of an unnamed struct type whose name (its
// String) is longer than a receiver reads.
func longNamedValue() any {
	fields := make([]reflect.StructField, 200)
	for i := range fields {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("Field%03d", i), Type: reflect.TypeFor[int]()}
	}
	return reflect.New(reflect.StructOf(fields)).Elem().Interface()
}

// gobFrame builds a frame by hand: marker, type id, optional name, rest.
func gobFrame(marker byte, id uint64, name string, rest ...byte) []byte {
	b := []byte{marker}
	b = binary.AppendUvarint(b, id)
	if name != "" {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
	}
	return append(b, rest...)
}

func TestGobDecodeErrors(t *testing.T) {
	c := newTestCodec(t)
	enc := newPlainTestCodec(t).NewEncoder() // gob frames for testOrder too
	v1, _ := enc.Encode(nil, testOrder{ID: 1, Item: "a"})
	v2, _ := enc.Encode(nil, testOrder{ID: 2, Item: "b"})
	tree, _ := c.NewEncoder().Encode(nil, testTree{Name: "x", Kids: []*testTree{{Name: "y"}}})
	orderName := gobTypeName(reflect.TypeFor[testOrder]())
	treeName := gobTypeName(reflect.TypeFor[testTree]())
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	tests := []struct {
		name   string
		before [][]byte // frames that decode, sent first
		frame  []byte
		want   string
	}{
		{"empty", nil, nil, "empty frame"},
		{"unknown marker", nil, []byte{8, 0}, "marker"},
		{"garbage", nil, []byte("\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), "bad type name length"},
		{"no type id", nil, []byte{0}, "bad type id"},
		{"nil with trailing bytes", nil, []byte{0, 0, 0}, "trailing"},
		{"trailing byte", nil, cat(v1, []byte{0}), "gob message length 0"},
		{"trailing message", nil, cat(v1, []byte{1, 0}), "trailing"},
		{"two values in one frame", nil, cat(v1, v2[2:]), "trailing"},
		{"type id out of sequence", nil, gobFrame(0, 5, ""), "out of sequence"},
		{"known id never defined", [][]byte{v1}, gobFrame(0, 3, ""), "out of sequence"},
		{"unknown type name", nil, gobFrame(0, 1, "main.Nope", 1, 0), `"main.Nope" is not registered`},
		{"absurd name length", nil, binary.AppendUvarint([]byte{0, 1}, 1<<40), "bad type name length"},
		{"no gob message", nil, gobFrame(0, 1, orderName), "no gob message"},
		{"zero gob length", nil, gobFrame(0, 1, orderName, 0), "gob message length 0"},
		{"absurd gob length", nil, gobFrame(0, 1, orderName, 0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1), "gob message length"},
		{"bad gob length", nil, gobFrame(0, 1, orderName, 0xf0, 1), "bad gob message length"},
		{"type mismatch", nil, gobFrame(0, 1, orderName, tree[2+1+len(treeName):]...), "testOrder"},
		{"reset with undefined id", [][]byte{v1}, gobFrame(1, 2, "", v2[2:]...), "out of sequence"},
		{"value without its type description", nil, gobFrame(0, 1, orderName, v2[2:]...), "testOrder"},
		{"absurd map count", nil, absurdMapFrame(t, c, 1<<24), "testMap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := c.NewDecoder()
			for _, b := range tc.before {
				if _, err := dec.Decode(b); err != nil {
					t.Fatalf("frame before: %v", err)
				}
			}
			v, err := dec.Decode(tc.frame)
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %#v, %v; want ErrDecode containing %q", v, err, tc.want)
			}
			// The stream is unusable afterwards.
			if _, err2 := dec.Decode(v1); !errors.Is(err2, ErrDecode) {
				t.Fatalf("Decode after failure: %v", err2)
			}
		})
	}
}

// TestGobDecodeTruncated decodes every proper prefix of a stream's first
// two frames: each fails.
func TestGobDecodeTruncated(t *testing.T) {
	c := newTestCodec(t)
	enc := c.NewEncoder()
	v1, _ := enc.Encode(nil, testTree{Name: "root", Kids: []*testTree{{Name: "k"}}, Attrs: map[string]string{"a": "b"}})
	v2, _ := enc.Encode(nil, testTree{Name: "second"})
	checkEveryCutFails(t, c, v1, v2)
}

// checkEveryCutFails decodes every proper prefix of v1 on a fresh
// decoder, and of v2 after v1: each must fail with ErrDecode.
func checkEveryCutFails(t *testing.T, c *GobCodec, v1, v2 []byte) {
	t.Helper()
	for i := range len(v1) {
		if _, err := c.NewDecoder().Decode(v1[:i]); !errors.Is(err, ErrDecode) {
			t.Fatalf("first frame cut at %d/%d: %v", i, len(v1), err)
		}
	}
	for i := range len(v2) {
		dec := c.NewDecoder()
		if _, err := dec.Decode(v1); err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decode(v2[:i]); !errors.Is(err, ErrDecode) {
			t.Fatalf("second frame cut at %d/%d: %v", i, len(v2), err)
		}
	}
}

// absurdMapFrame is a testMap frame whose map announces n entries and
// holds one. Unguarded, gob would allocate for n entries up front.
func absurdMapFrame(tb testing.TB, c *GobCodec, n uint32) []byte {
	tb.Helper()
	b, err := c.NewEncoder().Encode(nil, testMap{M: map[string]int{"a": 1}})
	if err != nil {
		tb.Fatal(err)
	}
	// The last gob message is the value: type id, field delta 1, count 1,
	// "a", 1, end of struct. Replace the count.
	msgs := splitGobMessages(tb, b)
	last := msgs[len(msgs)-1]
	body := last.body
	tail := []byte{0x01, 0x01, 0x01, 'a', 0x02, 0x00}
	if !bytes.HasSuffix(body, tail) {
		tb.Fatalf("unexpected value message %x", body)
	}
	newBody := append(bytes.Clone(body[:len(body)-len(tail)]), 0x01, 0xfc)
	newBody = binary.BigEndian.AppendUint32(newBody, n)
	newBody = append(newBody, tail[2:]...)
	out := append(bytes.Clone(b[:last.start]), byte(len(newBody)))
	return append(out, newBody...)
}

type gobMessage struct {
	start int // offset of the length in the frame
	body  []byte
}

// splitGobMessages returns the gob messages of a frame made by the codec
// for a type new to the stream.
func splitGobMessages(tb testing.TB, frame []byte) []gobMessage {
	tb.Helper()
	// marker, id 1, name
	off := 2
	l, n := binary.Uvarint(frame[off:])
	off += n + int(l)
	var msgs []gobMessage
	for off < len(frame) {
		size, w := gobUint(frame[off:])
		if w == 0 {
			tb.Fatalf("bad gob length at %d", off)
		}
		msgs = append(msgs, gobMessage{start: off, body: frame[off+w : off+w+int(size)]})
		off += w + int(size)
	}
	return msgs
}

// TestGobAbsurdMapCountAllocation checks the guard against gob sizing a
// map from a peer's count (golang/go#79539): unguarded, this 30-odd-byte
// value allocates about 850 MiB.
func TestGobAbsurdMapCountAllocation(t *testing.T) {
	c := newTestCodec(t)
	frame := absurdMapFrame(t, c, 1<<24)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.NewDecoder().Decode(frame)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("Decode: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("decoding a %d-byte frame allocated %d MiB", len(frame), alloc>>20)
	}
}

func TestGobDecodeDoesNotRetainInput(t *testing.T) {
	c := newTestCodec(t)
	want := testTree{Name: "name", Attrs: map[string]string{"key": "value"}}
	b, err := c.NewEncoder().Encode(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.NewDecoder().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xAA
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("value changed with its input: %#v", got)
	}
}

func TestGobTypeName(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{testOrder{}, "github.com/dchan-io/dchan/remoting.testOrder"},
		{&testOrder{}, "*github.com/dchan-io/dchan/remoting.testOrder"},
		{0, "int"},
		{[]byte(nil), "[]uint8"},
		{[]testOrder(nil), "[]remoting.testOrder"},
		{time.Time{}, "time.Time"},
	}
	for _, tc := range tests {
		if got := gobTypeName(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("gobTypeName(%T) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// testTextMap holds a map and has text methods, which gob ignores: gob
// decodes its map itself.
type testTextMap struct {
	M map[string]int
}

func (testTextMap) MarshalText() ([]byte, error) { return nil, nil }
func (*testTextMap) UnmarshalText([]byte) error  { return nil }

func TestHoldsMap(t *testing.T) {
	tests := []struct {
		v    any
		want bool
	}{
		{testOrder{}, false},
		{testTree{}, true},
		{testMap{}, true},
		{&testMap{}, true},
		{[]testMap(nil), true},
		{testPair{}, false},
		{time.Time{}, false},
		{map[int]int(nil), true},
		{testTextMap{}, true}, // gob ignores UnmarshalText: it sizes the map
	}
	for _, tc := range tests {
		if got := holdsMap(reflect.TypeOf(tc.v), map[reflect.Type]bool{}); got != tc.want {
			t.Errorf("holdsMap(%T) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func ExampleGobCodec() {
	type Order struct {
		ID   int64
		Item string
	}
	codec, err := NewGobCodec(Order{})
	if err != nil {
		panic(err)
	}
	enc, dec := codec.NewEncoder(), codec.NewDecoder() // one pair per stream
	frame, err := enc.Encode(nil, Order{ID: 1, Item: "apple"})
	if err != nil {
		panic(err)
	}
	v, err := dec.Decode(frame)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", v)
	// Output: {ID:1 Item:apple}
}

// FuzzGobDecode feeds a fresh stream decoder two frames. Its seed corpus in
// testdata/fuzz/FuzzGobDecode/ (regenerate with -update-corpus) holds valid
// streams, resets, truncated, trailing and absurd-length frames, and
// a hand-made gob type description nested past gob's limit, so `go test`
// runs them as ordinary tests.
//
// Property: decoding never panics and fails only with ErrDecode, after
// which the stream stays failed; a decoded value encodes again, and that
// encoding decodes.
func FuzzGobDecode(f *testing.F) {
	rethrowDecodePanics.Store(true) // a panic is a crash, not an error
	f.Cleanup(func() { rethrowDecodePanics.Store(false) })
	c := newTestCodec(f)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		dec := c.NewDecoder()
		for i, b := range [][]byte{first, second} {
			v, err := dec.Decode(b)
			if err != nil {
				if !errors.Is(err, ErrDecode) {
					t.Fatalf("frame %d: error %v does not wrap ErrDecode", i, err)
				}
				if _, err := dec.Decode(b); !errors.Is(err, ErrDecode) {
					t.Fatalf("frame %d: stream usable after %v", i, err)
				}
				return
			}
			again, err := c.NewEncoder().Encode(nil, v)
			if err != nil {
				t.Fatalf("frame %d: decoded %#v does not encode: %v", i, v, err)
			}
			if _, err := c.NewDecoder().Decode(again); err != nil {
				t.Fatalf("frame %d: re-encoded %#v does not decode: %v", i, v, err)
			}
		}
	})
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the generated seed corpora under testdata/fuzz")

// TestGobFuzzCorpus checks that each generated seed is committed, and
// writes them with -update-corpus. Gob's type ids depend on the order a
// process first meets its types, so the bytes are not compared.
func TestGobFuzzCorpus(t *testing.T) {
	files := map[string]string{}
	for name, s := range gobFuzzSeeds(t, newTestCodec(t)) {
		files[name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", s[0], s[1])
	}
	checkFuzzCorpus(t, "FuzzGobDecode", files)
}

// checkFuzzCorpus checks that each generated seed of a fuzz target is
// committed under testdata/fuzz/<target>, and writes them with
// -update-corpus. files maps a seed's file name to its contents.
func checkFuzzCorpus(t *testing.T, target string, files map[string]string) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("seed %s of %s is not committed (run go test -run %s -update-corpus): %v", name, target, t.Name(), err)
		}
	}
}

// TestGobDeepTypeDescriptions decodes hand-made type descriptions nested
// within and beyond gob's limit for ignored fields (CVE-2022-30635,
// CVE-2024-34156), and a self-referencing one.
func TestGobDeepTypeDescriptions(t *testing.T) {
	c := newTestCodec(t)
	tests := []struct {
		name  string
		frame []byte
		want  string // "" for success
	}{
		{"shallow", deepSliceFrame(100), ""},
		// Refused before gob reads them: more descriptions than a stream
		// may send (gob's own depth limit would refuse them next).
		{"beyond limit", deepSliceFrame(10_050), "gob types on one stream"},
		{"deep structs", deepStructFrame(10_050), "gob types on one stream"},
		{"more types than a stream may describe", deepSliceFrame(maxGobTypeDefs), "gob types on one stream"},
		{"recursive", recursiveSliceFrame(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := c.NewDecoder().Decode(tc.frame)
			if tc.want == "" {
				if err != nil || v != (testOrder{ID: 7}) {
					t.Fatalf("Decode = %#v, %v", v, err)
				}
				return
			}
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode = %#v, %v; want ErrDecode containing %q", v, err, tc.want)
			}
		})
	}
}

// gobFuzzSeeds returns the seed corpus of FuzzGobDecode by file name: gob
// frames, from a codec without the flat path, and flatFuzzSeeds'.
func gobFuzzSeeds(tb testing.TB, c *GobCodec) map[string][2][]byte {
	tb.Helper()
	plain := newPlainTestCodec(tb)
	// stream encodes vs on a fresh stream, leaving out the values that
	// fail to encode.
	stream := func(vs ...any) [][]byte {
		enc := plain.NewEncoder()
		var frames [][]byte
		for _, v := range vs {
			if b, err := enc.Encode(nil, v); err == nil {
				frames = append(frames, b)
			}
		}
		return frames
	}
	orders := stream(testOrder{ID: 1, Item: "apple", Qty: 2}, testOrder{ID: 2, Item: "pear"})
	order1, order2 := orders[0], orders[1]
	treePair := stream(testTree{Name: "root", Kids: []*testTree{{Name: "k", Attrs: map[string]string{"a": "b"}}}},
		testPair{A: "text", B: []int{1, 2}})
	// The failing value makes the next frame a reset.
	reset := stream(testPair{A: 1}, testPair{A: []float64{1}, B: map[string]int{}}, testPair{A: []float64{2}})
	if len(reset) != 2 || reset[1][0] != gobReset {
		tb.Fatal("expected a reset frame")
	}
	nilString := stream(nil, "hello")
	orderName := gobTypeName(reflect.TypeFor[testOrder]())
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	seeds := map[string][2][]byte{
		"valid":                {order1, order2},
		"valid_tree_pair":      {treePair[0], treePair[1]},
		"valid_nil_string":     {nilString[0], nilString[1]},
		"reset":                {reset[0], reset[1]},
		"empty":                {nil, nil},
		"truncated":            {order1[:len(order1)/2], order2},
		"truncated_second":     {order1, order2[:len(order2)-1]},
		"trailing":             {cat(order1, []byte{0}), order2},
		"two_values":           {cat(order1, order2[2:]), nil},
		"unknown_marker":       {cat([]byte{9}, order1[1:]), nil},
		"unknown_type":         {gobFrame(0, 1, "main.Nope", 1, 0), nil},
		"type_out_of_sequence": {order1, gobFrame(0, 3, "")},
		"absurd_type_id":       {binary.AppendUvarint([]byte{0}, 1<<63), nil},
		"absurd_name_length":   {binary.AppendUvarint([]byte{0, 1}, 1<<40), nil},
		"absurd_gob_length":    {gobFrame(0, 1, orderName, 0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1), nil},
		"absurd_map_count":     {absurdMapFrame(tb, c, 1<<30), nil},
		"absurd_slice_count":   {absurdSliceFrame(tb, c), nil},
		"deep_slice_types":     {deepSliceFrame(10_050), nil},
		"recursive_slice_type": {recursiveSliceFrame(), nil},
	}
	maps.Copy(seeds, flatFuzzSeeds(tb, c))
	return seeds
}

// absurdSliceFrame is a testTree frame whose Kids announce 2^40 elements.
func absurdSliceFrame(tb testing.TB, c *GobCodec) []byte {
	tb.Helper()
	b, err := c.NewEncoder().Encode(nil, testTree{Kids: []*testTree{{}}})
	if err != nil {
		tb.Fatal(err)
	}
	// value: type id, delta 2 (Kids), count 1, empty struct, end.
	msgs := splitGobMessages(tb, b)
	last := msgs[len(msgs)-1]
	tail := []byte{0x02, 0x01, 0x00, 0x00}
	if !bytes.HasSuffix(last.body, tail) {
		tb.Fatalf("unexpected value message %x", last.body)
	}
	body := append(bytes.Clone(last.body[:len(last.body)-len(tail)]), 0x02, 0xfb, 0x01, 0, 0, 0, 0, 0x00, 0x00)
	out := append(bytes.Clone(b[:last.start]), byte(len(body)))
	return append(out, body...)
}

// Hand-made gob messages (appendGobUint and the others are in
// codec_flat.go): see encoding/gob's doc for the wire format. Type ids
// below 64 are gob's own; 2 is int.
const (
	gobTInt     = 2
	gobFirstUse = 64
)

// gobSliceType defines type id as a slice of elem.
func gobSliceType(id, elem int64) []byte {
	b := appendGobInt(nil, -id)
	b = append(b, 2, 1, 2) // wireType.SliceT, sliceType.CommonType, CommonType.Id
	b = appendGobInt(b, id)
	b = append(b, 0, 1) // end CommonType, sliceType.Elem
	b = appendGobInt(b, elem)
	return append(b, 0, 0) // end sliceType, end wireType
}

// gobOrderFrame is a testOrder frame whose wire struct has, besides ID, a
// field Deep of type deep that testOrder lacks, so gob must skip it; defs
// define deep and what it refers to. The value is testOrder{ID: 7}.
func gobOrderFrame(deep int64, defs ...[]byte) []byte {
	frame := gobFrame(0, 1, gobTypeName(reflect.TypeFor[testOrder]()))
	for _, d := range defs {
		frame = appendGobMessage(frame, d)
	}
	frame = appendGobMessage(frame, gobStructType(gobFirstUse, "testOrder", gobField{"ID", gobTInt}, gobField{"Deep", deep}))
	value := appendGobInt(nil, gobFirstUse)
	value = append(value, 1) // field ID
	value = appendGobInt(value, 7)
	return appendGobMessage(frame, append(value, 0))
}

// deepSliceFrame nests slice types depth deep: [][]...[]int.
func deepSliceFrame(depth int) []byte {
	defs := make([][]byte, depth)
	for i := range depth {
		id := int64(gobFirstUse + 1 + i)
		elem := id + 1
		if i == depth-1 {
			elem = gobTInt
		}
		defs[i] = gobSliceType(id, elem)
	}
	return gobOrderFrame(gobFirstUse+1, defs...)
}

// deepStructFrame nests struct types depth deep: struct{ X struct{ X ... } }.
func deepStructFrame(depth int) []byte {
	defs := make([][]byte, depth)
	for i := range depth {
		id := int64(gobFirstUse + 1 + i)
		elem := id + 1
		if i == depth-1 {
			elem = gobTInt
		}
		defs[i] = gobStructType(id, "S", gobField{"X", elem})
	}
	return gobOrderFrame(gobFirstUse+1, defs...)
}

// recursiveSliceFrame defines a slice type whose element is itself.
func recursiveSliceFrame() []byte {
	return gobOrderFrame(gobFirstUse+1, gobSliceType(gobFirstUse+1, gobFirstUse+1))
}

// TestGobTypesInsideValuesAreBounded reproduces a member growing a
// stream's gob decoder without end: each testOrder it sends carries an
// extra interface field (which testOrder lacks, so gob skips it) holding
// a value of a struct type new to the stream, whose description gob reads
// from inside the value message and keeps. No message describes a type
// of its own after the first, so counting those does not see them; the
// decoder fails the stream once it holds more than maxGobTypeDefs
// descriptions, whichever way they came.
func TestGobTypesInsideValuesAreBounded(t *testing.T) {
	dec := newTestCodec(t).NewDecoder()
	var wire bytes.Buffer
	enc := gob.NewEncoder(&wire)
	type order struct { // a peer's testOrder, with one more field
		ID    int64
		Extra any
	}
	for i := range 3 * maxGobTypeDefs {
		fresh := reflect.StructOf([]reflect.StructField{{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[int]()}})
		extra := reflect.New(fresh).Elem()
		extra.Field(0).SetInt(1)
		gob.RegisterName(fmt.Sprintf("dchan-test-fresh-%d", i), extra.Interface())
		wire.Reset()
		if err := enc.Encode(order{ID: int64(i), Extra: extra.Interface()}); err != nil {
			t.Fatal(err)
		}
		name := ""
		if i == 0 {
			name = gobTypeName(reflect.TypeFor[testOrder]())
		}
		v, err := dec.Decode(gobFrame(0, 1, name, wire.Bytes()...))
		if err != nil {
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), "gob types on one stream") {
				t.Fatalf("value %d: %v; want ErrDecode for too many gob types", i, err)
			}
			// Each value brings one new description (two with the first
			// value's own type, described in a message of its own).
			if i != maxGobTypeDefs-1 {
				t.Fatalf("refused at value %d, want %d", i, maxGobTypeDefs-1)
			}
			return
		}
		if v != (testOrder{ID: int64(i)}) {
			t.Fatalf("value %d decoded as %#v", i, v)
		}
	}
	t.Fatalf("%d values each describing a new type decoded on one stream", 3*maxGobTypeDefs)
}

// TestDecoderPanicsReachTheFuzzer: under the fuzz targets a panic the
// decoders would report as ErrDecode is raised again, for the fuzzer to
// see; otherwise it stays an error.
func TestDecoderPanicsReachTheFuzzer(t *testing.T) {
	assert.NotPanics(t, func() { rethrow("a decoder bug") })
	rethrowDecodePanics.Store(true)
	defer rethrowDecodePanics.Store(false)
	assert.PanicsWithValue(t, "a decoder bug", func() { rethrow("a decoder bug") })
}
