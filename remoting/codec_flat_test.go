package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"math"
	"reflect"
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
		{testMap{}, false},
		{testTree{}, false},
		{testNoExported{}, false},
		{int64(0), false},
	} {
		if got := flatFields(reflect.TypeOf(tc.v)) != nil; got != tc.flat {
			t.Errorf("%T: flat %v, want %v", tc.v, got, tc.flat)
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
	c, err := NewFastGobCodec(flatAll{})
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
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("value %d:\n got %#v\nwant %#v (gob)", i, got, want)
		}
	}
	// NaN never equals itself: compare the bits.
	frame, _ := enc.Encode(nil, flatAll{F64: math.NaN()})
	got, err := dec.Decode(frame)
	if err != nil || !math.IsNaN(got.(flatAll).F64) {
		t.Fatalf("NaN: %#v, %v", got, err)
	}
}

// flatFrame is a first-use flat frame for the type named name whose
// sender-side type is that of remote.
func flatFrame(name string, remote any) []byte {
	rv := reflect.ValueOf(remote)
	fields := flatFields(rv.Type())
	b := binary.AppendUvarint([]byte{gobFlat}, 1)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = appendFlatDescriptor(b, fields)
	return appendFlat(b, fields, rv)
}

// TestFlatVersionSkewMatchesGob: a sender whose type differs from the
// receiver's (fields added, removed, reordered, resized, pointers on the
// receiver's side) gets gob's outcome, value or error.
func TestFlatVersionSkewMatchesGob(t *testing.T) {
	type remoteSubset struct {
		S     string
		Extra int // the receiver lacks it
		I8    int64
		F32   float64
	}
	type remoteOverflow struct{ I8 int64 }
	type remoteUintOverflow struct{ U8 uint64 }
	type remoteFloatOverflow struct{ F32 float64 }
	type remoteWrongKind struct{ S int }
	type remoteNothingInCommon struct{ Nope int }
	type remoteForPtrs struct {
		I64 int64
		S   string
		F64 float64
	}
	c, err := NewFastGobCodec(flatAll{}, flatPtrs{})
	if err != nil {
		t.Fatal(err)
	}
	allName := gobTypeName(reflect.TypeFor[flatAll]())
	ptrsName := gobTypeName(reflect.TypeFor[flatPtrs]())

	check := func(t *testing.T, name string, remote any, want func() (any, error)) {
		t.Helper()
		got, err := c.NewDecoder().Decode(flatFrame(name, remote))
		wantV, wantErr := want()
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("flat: %#v, %v; gob: %#v, %v", got, err, wantV, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if !reflect.DeepEqual(got, wantV) {
			t.Fatalf("flat: %#v\n gob: %#v", got, wantV)
		}
	}
	cases := []struct {
		name   string
		remote any
	}{
		{"subset", remoteSubset{S: "s", Extra: 3, I8: -100, F32: 2.5}},
		{"subset of zeros", remoteSubset{}},
		{"int overflow", remoteOverflow{I8: 300}},
		{"uint overflow", remoteUintOverflow{U8: 256}},
		{"float overflow", remoteFloatOverflow{F32: math.MaxFloat64}},
		{"wrong kind", remoteWrongKind{S: 1}},
		{"nothing in common", remoteNothingInCommon{Nope: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, allName, tc.remote, func() (any, error) {
				v, err := viaGob[flatAll](t, tc.remote)
				return v, err
			})
		})
	}
	for _, v := range []remoteForPtrs{{I64: 5, S: "q", F64: 0}, {}} {
		t.Run("pointers", func(t *testing.T) {
			check(t, ptrsName, v, func() (any, error) {
				v, err := viaGob[flatPtrs](t, v)
				return v, err
			})
		})
	}
}

// TestFlatDecodeTruncatedAndCorrupt: every proper prefix of a stream's
// first two flat frames fails, and so do corrupt descriptors and values,
// without panicking.
func TestFlatDecodeTruncatedAndCorrupt(t *testing.T) {
	c, err := NewFastGobCodec(flatAll{})
	if err != nil {
		t.Fatal(err)
	}
	enc := c.NewEncoder()
	v1, _ := enc.Encode(nil, flatAll{I: 1, S: "root", Bs: []byte("b"), F64: 1})
	v2, _ := enc.Encode(nil, flatAll{B: true, S: "second"})
	checkEveryCutFails(t, c, v1, v2)
	name := gobTypeName(reflect.TypeFor[flatAll]())
	head := binary.AppendUvarint(binary.AppendUvarint([]byte{gobFlat}, 1), uint64(len(name)))
	head = append(head, name...)
	for _, tc := range []struct {
		what  string
		frame []byte
	}{
		{"absurd field count", binary.AppendUvarint(bytes.Clone(head), 1<<40)},
		{"unknown kind", append(binary.AppendUvarint(binary.AppendUvarint(bytes.Clone(head), 1), 1), 'I', 9, 0)},
		{"bad bool", append(binary.AppendUvarint(binary.AppendUvarint(bytes.Clone(head), 1), 1), 'B', flatBool, 2)},
		{"trailing", append(binary.AppendUvarint(binary.AppendUvarint(bytes.Clone(head), 1), 1), 'B', flatBool, 1, 0)},
		{"flat nil", []byte{gobFlat, 0}},
		{"gob frame for a flat id", append(bytes.Clone(v1[:0]), 0, 1, 1, 0)},
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
	c, err := NewFastGobCodec(testOrder{}, &testOrder{}, testTree{}, testPair{}, testMap{},
		testPanicky{}, testMsg{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
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

// TestFastAndDefaultCodecsInteroperate: a node with the default codec and
// one with NewFastGobCodec read each other's values; only the fast one
// writes flat frames.
func TestFastAndDefaultCodecsInteroperate(t *testing.T) {
	plain, err := NewGobCodec(testOrder{}, testTree{})
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
	}{{"default to fast", plain, fast, false}, {"fast to default", fast, plain, true}} {
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
