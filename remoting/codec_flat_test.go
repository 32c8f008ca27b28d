package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// flatAll has a field of every flat kind, and an unexported one.
type flatAll struct {
	B                  bool
	I                  int
	I8                 int8
	I16                int16
	I32                int32
	I64                int64
	U                  uint
	U8                 uint8
	U16                uint16
	U32                uint32
	U64                uint64
	UP                 uintptr
	F32                float32
	F64                float64
	S                  string
	Bs                 []byte
	Named              flatCelsius
	hidden             int
	_                  int
	AlsoHiddenFromGob_ string `gob:"-"` // gob ignores tags: sent like any field
}

type flatCelsius float64

// flatPtrs is a receiver-side version of a flat type with pointer fields.
type flatPtrs struct {
	I64 *int64
	S   **string
	F64 *float64
}

// Not flat: embedded struct, a nested struct, a self-encoding type.
type (
	// FlatInner is exported so that gob sees the embedded field.
	FlatInner    struct{ A int }
	flatEmbedded struct {
		FlatInner
		X int
	}
	// An embedded unexported type is an unexported field: ignored, as by
	// gob.
	flatEmbeddedHidden struct {
		testOrder
		X int
	}
	flatNested struct {
		O testOrder
	}
)

// Not flat either: a method gob honours (or, for the text ones, ignores)
// on the type or a field's type, a chan field (gob skips it).
type (
	// flatDecodeOnly decodes itself but does not encode itself: gob cannot
	// decode what it encodes of it.
	flatDecodeOnly struct{ A int }
	// flatTextOnly has text methods, which gob ignores.
	flatTextOnly  struct{ A int }
	flatTextField struct {
		T flatTextName
		N int
	}
	flatTextName string
	flatChan     struct {
		A int
		C chan int
	}
)

func (*flatDecodeOnly) GobDecode([]byte) error    { return nil }
func (flatTextOnly) MarshalText() ([]byte, error) { return []byte("text"), nil }
func (*flatTextOnly) UnmarshalText([]byte) error  { return nil }
func (n *flatTextName) UnmarshalText(b []byte) error {
	*n = flatTextName("text:" + string(b))
	return nil
}
func (n flatTextName) MarshalText() ([]byte, error) { return []byte(n), nil }

func TestFlatFieldsDecidesWhichTypesAreFlat(t *testing.T) {
	for _, tc := range []struct {
		v    any
		flat bool
	}{
		{flatAll{}, true},
		{testOrder{}, true},
		{testMsg{}, true},
		{&testOrder{}, false}, // pointers go through gob
		{flatPtrs{}, false},
		{flatEmbedded{}, false},
		{flatEmbeddedHidden{}, true},
		{flatNested{}, false},
		{testPanicky{}, false}, // GobEncoder
		{flatDecodeOnly{}, false},
		{flatTextOnly{}, false},
		{flatTextField{}, false},
		{flatChan{}, false},
		{testMap{}, false},
		{testTree{}, false},
		{testNoExported{}, false},
		{testPromoted{}, true},
		{int64(0), false},
	} {
		if got := flatFields(reflect.TypeOf(tc.v)) != nil; got != tc.flat {
			t.Errorf("%T: flat %v, want %v", tc.v, got, tc.flat)
		}
	}
	// A descriptor a receiver would refuse goes through gob: too many
	// fields, or too long a name.
	structOf := func(n, nameLen int) reflect.Type {
		fields := make([]reflect.StructField, n)
		for i := range fields {
			name := fmt.Sprintf("F%d", i)
			fields[i] = reflect.StructField{Name: name + strings.Repeat("x", max(0, nameLen-len(name))), Type: reflect.TypeFor[int]()}
		}
		return reflect.StructOf(fields)
	}
	for _, tc := range []struct {
		n, nameLen int
		flat       bool
	}{{maxFlatFields, 0, true}, {maxFlatFields + 1, 0, false}, {1, maxGobTypeName, true}, {1, maxGobTypeName + 1, false}} {
		if got := flatFields(structOf(tc.n, tc.nameLen)) != nil; got != tc.flat {
			t.Errorf("%d fields, names of %d bytes: flat %v, want %v", tc.n, tc.nameLen, got, tc.flat)
		}
	}
}

// viaGob is what encoding/gob itself makes of v decoded into a new *T.
func viaGob[T any](t *testing.T, v any) (T, error) {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatalf("gob encode %T: %v", v, err)
	}
	var out T
	err := gob.NewDecoder(&buf).Decode(&out)
	return out, err
}

// TestFlatRoundTripMatchesGob: every value decodes to exactly what gob
// makes of it (zero and extreme values, empty and nil byte slices, NaN,
// negative zero, an unexported field).
func TestFlatRoundTripMatchesGob(t *testing.T) {
	c, err := NewGobCodec(flatAll{})
	if err != nil {
		t.Fatal(err)
	}
	values := []flatAll{
		{},
		{B: true, I: -1, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
			U: 1, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, UP: 7,
			F32: -1.5, F64: math.Inf(-1), S: "héllo\x00", Bs: []byte{0, 1, 2}, Named: 36.6, hidden: 9,
			AlsoHiddenFromGob_: "x"},
		{I64: math.MinInt64, F64: math.Copysign(0, -1), Bs: []byte{}, S: ""},
		{F32: math.MaxFloat32, F64: math.SmallestNonzeroFloat64, Bs: bytes.Repeat([]byte("z"), 300)},
	}
	enc, dec := c.NewEncoder(), c.NewDecoder()
	for i, v := range values {
		frame, err := enc.Encode(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if frame[0]&gobFlat == 0 {
			t.Fatalf("value %d: not sent flat (marker %#x)", i, frame[0])
		}
		got, err := dec.Decode(frame)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		want, err := viaGob[flatAll](t, v)
		if err != nil {
			t.Fatal(err)
		}
		if !equalBits(got, want) {
			t.Fatalf("value %d:\n got %#v\nwant %#v (gob)", i, got, want)
		}
	}
	// NaN never equals itself: equalBits compares the bits, and -0.0's sign.
	for _, v := range []flatAll{{F64: math.NaN(), F32: float32(math.NaN())}, {F64: math.Copysign(0, -1)}} {
		frame, _ := enc.Encode(nil, v)
		got, err := dec.Decode(frame)
		want, _ := viaGob[flatAll](t, v)
		if err != nil || !equalBits(got, want) {
			t.Fatalf("%v: %#v, %v; gob %#v", v.F64, got, err, want)
		}
	}
}

// flatFrame is a first-use flat frame for the type named name whose
// sender-side type is that of remote, a flat struct type.
func flatFrame(name string, remote any) []byte {
	rv := reflect.ValueOf(remote)
	fields := flatFields(rv.Type())
	b := binary.AppendUvarint([]byte{gobFlat}, 1)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = appendFlatDescriptor(b, fields)
	return appendFlat(b, fields, rv)
}

// flatNext is the flat frame of a later value of the stream's first type,
// remote of the same type as flatFrame's.
func flatNext(remote any) []byte {
	rv := reflect.ValueOf(remote)
	return appendFlat([]byte{gobFlat, 1}, flatFields(rv.Type()), rv)
}

// flatRun is a flat run frame of the stream's first type: the remotes, of
// one flat type, back to back.
func flatRun(remotes ...any) []byte {
	b := []byte{gobFlat | gobRun, 1}
	for _, r := range remotes {
		rv := reflect.ValueOf(r)
		b = appendFlat(b, flatFields(rv.Type()), rv)
	}
	return b
}

// Senders' versions of registered types, for version skew: each is the
// type of the same name on another node.
type (
	skewSubset struct {
		S     string
		Extra int // the receiver lacks it
		I8    int64
		F32   float64
		U8    uint64
		B     bool
		Bs    []byte
	}
	skewOverflow      struct{ I8 int64 }
	skewUintOverflow  struct{ U8 uint64 }
	skewFloatOverflow struct{ F32 float64 }
	skewWrongKind     struct{ S int }
	skewNothing       struct{ Nope int }
	skewForPtrs       struct {
		I64 int64
		S   string
		F64 float64
	}
	// skewPromoted is testPromoted with its promoted fields of its own.
	skewPromoted struct {
		ID   int64
		Item string
		Qty  int32
		Note string
	}
	skewTextField struct {
		T string
		N int64
	}
	skewTree struct {
		Name string
		Kids int
	}
	skewCustom struct{ A int8 }
)

// skewCase is a sender's type and the receiver's registered type of the
// same name, and whether the receiver decodes through gob (flatBridge)
// rather than by the fast path.
type skewCase struct {
	name   string
	remote any // a value of the sender's type
	local  any // the receiver's type
	bridge bool
}

func skewCases() []skewCase {
	return []skewCase{
		{"subset", skewSubset{S: "s", Extra: 3, I8: -100, F32: 2.5, U8: 7, B: true, Bs: []byte("b")}, flatAll{}, false},
		{"subset of zeros", skewSubset{}, flatAll{}, false},
		{"int overflow", skewOverflow{I8: 300}, flatAll{}, false},
		{"uint overflow", skewUintOverflow{U8: 256}, flatAll{}, false},
		{"float overflow", skewFloatOverflow{F32: math.MaxFloat64}, flatAll{}, false},
		{"infinity fits float32", skewFloatOverflow{F32: math.Inf(-1)}, flatAll{}, false},
		{"wrong kind", skewWrongKind{S: 1}, flatAll{}, true},
		{"nothing in common", skewNothing{Nope: 1}, flatAll{}, true},
		{"pointers", skewForPtrs{I64: 5, S: "q", F64: 0}, flatPtrs{}, false},
		{"pointers, zeros", skewForPtrs{}, flatPtrs{}, false},
		{"promoted fields", skewPromoted{ID: 4, Item: "x", Qty: -2, Note: "n"}, testPromoted{}, true},
		{"text field", skewTextField{T: "t", N: 2}, flatTextField{}, true},
		{"nested struct", skewTree{Name: "n", Kids: 1}, testTree{}, true},
		{"custom decoding", skewCustom{A: 3}, testPanicky{}, true},
		{"not a struct", skewOverflow{I8: 1}, time.Time{}, true},
	}
}

// decodeSkew decodes remote's flat frame with a codec registering local's
// type under its own name, and reports whether the decoder took the
// bridge.
func decodeSkew(t testing.TB, c *GobCodec, sc skewCase) (got any, err error, bridged bool) {
	t.Helper()
	dec := c.NewDecoder().(*gobDecoder)
	got, err = dec.Decode(flatFrame(gobTypeName(reflect.TypeOf(sc.local)), sc.remote))
	if len(dec.plans) == 1 {
		bridged = dec.plans[0].bridge != nil
	}
	return got, err, bridged
}

// fataler is what testing.TB and *rapid.T share that the helpers use.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// viaGobAs is what encoding/gob makes of remote decoded into a new value
// of local's type.
func viaGobAs(t fataler, remote, local any) (any, error) {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(remote); err != nil {
		t.Fatalf("gob encode %T: %v", remote, err)
	}
	pv := reflect.New(reflect.TypeOf(local))
	err := decodeValue(gob.NewDecoder(&buf), pv) // a panic is gob's failure too
	return pv.Elem().Interface(), err
}

// TestFlatVersionSkewMatchesGob: a sender whose type differs from the
// receiver's (fields added, removed, resized, reordered, behind pointers
// or promoted from an embedded struct on the receiver's side, a receiver
// type that decodes itself or is no struct) gets gob's outcome, value or
// error, by the fast path or through gob as expected.
func TestFlatVersionSkewMatchesGob(t *testing.T) {
	c := newTestCodec(t)
	for _, sc := range skewCases() {
		t.Run(sc.name, func(t *testing.T) {
			got, err, bridged := decodeSkew(t, c, sc)
			want, wantErr := viaGobAs(t, sc.remote, sc.local)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("flat: %#v, %v; gob: %#v, %v", got, err, want, wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrDecode) {
					t.Fatalf("error %v does not wrap ErrDecode", err)
				}
			} else if !equalBits(got, want) {
				t.Fatalf("flat: %#v\n gob: %#v", got, want)
			}
			if bridged != sc.bridge {
				t.Fatalf("decoded through gob: %v, want %v", bridged, sc.bridge)
			}
		})
	}
	// Later values of a bridged type, and a run of them, reuse the
	// bridge's gob stream.
	sc := skewCases()[10]
	values := []any{skewPromoted{ID: 5}, skewPromoted{}, skewPromoted{Item: "i", Note: "m"}}
	dec := c.NewDecoder().(RunDecoder)
	if _, err := dec.Decode(flatFrame(gobTypeName(reflect.TypeOf(sc.local)), sc.remote)); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		got, err := dec.Decode(flatNext(v))
		want, _ := viaGobAs(t, v, sc.local)
		if err != nil || !equalBits(got, want) {
			t.Fatalf("later value: %#v, %v; gob %#v", got, err, want)
		}
	}
	got, err := dec.DecodeRun(nil, flatRun(values...), len(values))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		if want, _ := viaGobAs(t, v, sc.local); !equalBits(got[i], want) {
			t.Fatalf("run value %d: %#v; gob %#v", i, got[i], want)
		}
	}
}

// TestFlatDecodeTruncatedAndCorrupt: every proper prefix of a stream's
// first two flat frames fails, and so do corrupt descriptors and values,
// without panicking.
func TestFlatDecodeTruncatedAndCorrupt(t *testing.T) {
	c, err := NewGobCodec(flatAll{}, testPromoted{})
	if err != nil {
		t.Fatal(err)
	}
	enc := c.NewEncoder()
	v1, _ := enc.Encode(nil, flatAll{I: 1, S: "root", Bs: []byte("b"), F64: 1})
	v2, _ := enc.Encode(nil, flatAll{B: true, S: "second"})
	checkEveryCutFails(t, c, v1, v2)
	// The same through the bridge.
	promoted := gobTypeName(reflect.TypeFor[testPromoted]())
	checkEveryCutFails(t, c, flatFrame(promoted, skewPromoted{ID: 1, Item: "a", Note: "n"}), flatNext(skewPromoted{Qty: 3}))

	name := gobTypeName(reflect.TypeFor[flatAll]())
	head := binary.AppendUvarint(binary.AppendUvarint([]byte{gobFlat}, 1), uint64(len(name)))
	head = append(head, name...)
	field := func(count uint64, fields ...string) []byte { // fields: name, then kind byte
		b := binary.AppendUvarint(bytes.Clone(head), count)
		for _, f := range fields {
			b = binary.AppendUvarint(b, uint64(len(f)-1))
			b = append(b, f...)
		}
		return b
	}
	for _, tc := range []struct {
		what  string
		frame []byte
	}{
		{"absurd field count", binary.AppendUvarint(bytes.Clone(head), 1<<40)},
		{"no field", append(field(0), 0)},
		{"unknown kind", append(field(1, "I\x09"), 0)},
		{"bad bool", append(field(1, "B\x01"), 2)},
		{"trailing", append(field(1, "B\x01"), 1, 0)},
		{"unexported field name", append(field(1, "b\x01"), 1)},
		{"not an identifier", append(field(1, "B-\x01"), 1)},
		{"field twice", append(field(2, "B\x01", "B\x01"), 1, 1)},
		{"flat nil", []byte{gobFlat, 0}},
		{"gob frame for a flat id", []byte{0, 1, 1, 0}},
	} {
		dec := c.NewDecoder()
		if tc.what == "gob frame for a flat id" {
			if _, err := dec.Decode(v1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dec.Decode(tc.frame); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v", tc.what, err)
		}
	}
}

// TestFlatAndGobTypesShareAStream: flat and gob types interleave on one
// stream, across a reset.
func TestFlatAndGobTypesShareAStream(t *testing.T) {
	c := newTestCodec(t)
	enc, dec := c.NewEncoder(), c.NewDecoder()
	values := []any{
		testOrder{ID: 1, Item: "a", Qty: 2},
		testTree{Name: "t", Attrs: map[string]string{"k": "v"}},
		testMsg{ID: 3, Payload: testPayload},
		testOrder{ID: 4},
		&testOrder{ID: 5, Item: "p"},
	}
	for round := range 2 {
		for i, v := range values {
			frame, err := enc.Encode(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(frame)
			if err != nil {
				t.Fatalf("round %d value %d: %v", round, i, err)
			}
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("round %d value %d: got %#v want %#v", round, i, got, v)
			}
		}
		enc.(resetter).Reset()
	}
}

// TestPlainAndDefaultCodecsInteroperate: a node whose codec sends every
// type through gob (as NewGobCodec did before flat structs were its
// default) and one with the default codec read each other's values; only
// the default one writes flat frames. NewFastGobCodec is NewGobCodec.
func TestPlainAndDefaultCodecsInteroperate(t *testing.T) {
	plain, err := newPlainGobCodec(testOrder{}, testTree{})
	if err != nil {
		t.Fatal(err)
	}
	def, err := NewGobCodec(testOrder{}, testTree{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := NewFastGobCodec(testOrder{}, testTree{})
	if err != nil {
		t.Fatal(err)
	}
	values := []any{testOrder{ID: 1, Item: "a", Qty: 2}, testTree{Name: "t"}, testOrder{ID: 2}}
	for _, pair := range []struct {
		name     string
		from, to *GobCodec
		flat     bool
	}{
		{"plain to default", plain, def, false},
		{"default to plain", def, plain, true},
		{"deprecated fast to plain", fast, plain, true},
	} {
		t.Run(pair.name, func(t *testing.T) {
			enc, dec := pair.from.NewEncoder(), pair.to.NewDecoder()
			for _, v := range values {
				frame, err := enc.Encode(nil, v)
				if err != nil {
					t.Fatal(err)
				}
				_, isOrder := v.(testOrder)
				if got := frame[0]&gobFlat != 0; got != (pair.flat && isOrder) {
					t.Fatalf("%T: flat frame %v", v, got)
				}
				got, err := dec.Decode(frame)
				if err != nil || !reflect.DeepEqual(got, v) {
					t.Fatalf("decoded %#v, %v; want %#v", got, err, v)
				}
			}
		})
	}
}

// flatFuzzSeeds returns FuzzGobDecode's seeds made with the flat path: the
// default codec's frames, flat and gob types on one stream, a flat reset
// frame, and other versions' flat frames (version skew, fast path and
// bridge, and corrupt descriptors).
func flatFuzzSeeds(tb testing.TB, c *GobCodec) map[string][2][]byte {
	tb.Helper()
	stream := func(vs ...any) [][]byte {
		enc := c.NewEncoder()
		var frames [][]byte
		for _, v := range vs {
			if b, err := enc.Encode(nil, v); err == nil {
				frames = append(frames, b)
			}
		}
		return frames
	}
	orders := stream(testOrder{ID: 1, Item: "apple", Qty: 2}, testOrder{ID: 2, Item: "pear"})
	flat1, flat2 := orders[0], orders[1]
	if flat1[0]&gobFlat == 0 {
		tb.Fatalf("not a flat frame: %x", flat1)
	}
	all := stream(flatAllEdges(), flatAll{B: true, S: "\xff\xfe", Bs: []byte{}, F64: math.Copysign(0, -1)})
	mixed := stream(testMsg{ID: 3, Payload: testPayload}, testTree{Name: "t", Kids: []*testTree{{Name: "k"}}})
	// The failing value makes the next frame, a flat one, a reset.
	reset := stream(testPair{A: 1}, testPair{A: []float64{1}, B: map[string]int{}}, testOrder{ID: 3, Item: "r"})
	if len(reset) != 2 || reset[1][0] != gobReset|gobFlat {
		tb.Fatalf("expected a flat reset frame: %x", reset)
	}
	name := func(v any) string { return gobTypeName(reflect.TypeOf(v)) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	badName := binary.AppendUvarint(binary.AppendUvarint([]byte{gobFlat}, 1), uint64(len(name(testOrder{}))))
	badName = append(append(badName, name(testOrder{})...), 1, 2, 'i', 'd', flatInt, 2)

	return map[string][2][]byte{
		"valid_flat":            {flat1, flat2},
		"truncated_flat":        {flat1[:len(flat1)-3], flat2},
		"trailing_flat":         {cat(flat1, []byte{0}), flat2},
		"valid_flat_all_kinds":  {all[0], all[1]},
		"flat_then_gob":         {mixed[0], mixed[1]},
		"flat_reset":            {reset[0], reset[1]},
		"flat_skew_fast":        {flatFrame(name(flatAll{}), skewSubset{S: "s", I8: 1, Bs: []byte("x")}), flatNext(skewSubset{I8: 300})},
		"flat_skew_pointers":    {flatFrame(name(flatPtrs{}), skewForPtrs{I64: 1, S: "s"}), flatNext(skewForPtrs{F64: 2})},
		"flat_skew_bridge":      {flatFrame(name(testPromoted{}), skewPromoted{ID: 1, Item: "i", Note: "n"}), flatNext(skewPromoted{Qty: 7})},
		"flat_skew_wrong_kind":  {flatFrame(name(testTree{}), skewTree{Name: "n", Kids: 1}), nil},
		"flat_skew_not_struct":  {flatFrame(name(time.Time{}), skewOverflow{I8: 1}), nil},
		"flat_bad_field_name":   {badName, nil},
		"flat_descriptor_empty": {cat(badName[:len(badName)-6], []byte{0}), nil},
	}
}

// flatAllEdges is a flatAll with extreme values in every field.
func flatAllEdges() flatAll {
	return flatAll{B: true, I: math.MinInt, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
		U: math.MaxUint, U8: math.MaxUint8, U16: 1, U32: math.MaxUint32, U64: math.MaxUint64, UP: 1,
		F32: float32(math.Inf(1)), F64: math.NaN(), S: "h\x00\xc3", Bs: bytes.Repeat([]byte{0xff}, 130), Named: -1e300,
		AlsoHiddenFromGob_: "x"}
}
