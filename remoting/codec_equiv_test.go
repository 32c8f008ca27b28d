package remoting

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// The equivalence property of the default codec's flat path: for every
// registered type, a value decodes to what gob itself would decode, the
// same Go value or a failure. Go types cannot be made at run time, so the
// types are fixed, each a shape (eqTypes), and rapid draws their values.

// Flat types: the default codec sends them without gob.
type (
	eqFlatAll struct {
		B       bool
		I       int
		I8      int8
		I16     int16
		I32     int32
		I64     int64
		U       uint
		U8      uint8
		U16     uint16
		U32     uint32
		U64     uint64
		UP      uintptr
		F32     float32
		F64     float64
		S       string
		Bs      []byte
		Celsius eqCelsius
		Name    eqName
		Blob    eqBlob
		Flag    eqFlag
		Small   eqSmall
		hidden  int
		_       float64
		Tagged  string `gob:"-" json:"t"` // gob ignores tags
	}
	eqCelsius float64
	eqName    string
	eqBlob    []byte
	eqFlag    bool
	eqSmall   int8

	eqMsg struct {
		ID      int64
		Payload string
	}
	eqBytes      struct{ B []byte }
	eqOneBool    struct{ On bool }
	eqOneFloat32 struct{ F float32 }
	// eqHiddenEmbed embeds an unexported type: gob ignores the field.
	eqHiddenEmbed struct {
		eqInner
		X int
	}
	eqInner struct {
		A int
		S string
	}
)

// Types that must go through gob.
type (
	// EqInner is exported, so that embedding it sends it.
	EqInner struct {
		A int
		S string
	}
	eqEmbedded struct {
		EqInner
		X int
	}
	eqNested struct {
		In  eqMsg
		Arr [3]int32
		C   complex128
	}
	eqPointers struct {
		P  *int64
		S  *string
		PP **float64
		M  *eqMsg
	}
	eqSlices struct {
		Ints []int
		Strs []string
		Fs   []float64
		BB   [][]byte
	}
	eqMap struct {
		M map[string]int64
		N map[int8][]byte
	}
	eqIface struct{ V, W any }
	// eqChanFunc's chan and func fields are not sent, as if unexported.
	eqChanFunc struct {
		A int
		C chan int
		F func()
	}
	// eqGobEnc encodes itself, losing U.
	eqGobEnc struct {
		A int64
		U uint8
	}
	// eqBinary marshals itself: the string reversed.
	eqBinary struct{ S string }
	// eqText has text methods, which gob ignores.
	eqText struct {
		A int
		S string
	}
	// eqDecodeOnly decodes itself and does not encode itself: gob fails
	// to decode what it sends of it.
	eqDecodeOnly struct{ A int }
	// eqTextField's T has text methods, which gob ignores.
	eqTextField struct {
		T eqTextName
		N int
	}
	eqTextName string
)

func (v eqGobEnc) GobEncode() ([]byte, error) { return []byte(fmt.Sprint(v.A)), nil }
func (v *eqGobEnc) GobDecode(b []byte) error {
	_, err := fmt.Sscan(string(b), &v.A)
	return err
}
func (v eqBinary) MarshalBinary() ([]byte, error) {
	b := []byte(v.S)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b, nil
}
func (v *eqBinary) UnmarshalBinary(b []byte) error { v.S = string(b) + "!"; return nil }
func (v eqText) MarshalText() ([]byte, error)      { return []byte("text"), nil }
func (v *eqText) UnmarshalText([]byte) error       { v.A = -1; return nil }
func (v *eqDecodeOnly) GobDecode([]byte) error     { return nil }
func (n eqTextName) MarshalText() ([]byte, error)  { return []byte("text"), nil }
func (n *eqTextName) UnmarshalText([]byte) error   { *n = "from text"; return nil }

// eqType is one registered type of the property: a value of it (for
// registration), whether the default codec sends it flat, and its values.
type eqType struct {
	zero   any
	flat   bool
	values func(rapid.MakeConfig) *rapid.Generator[any]
}

// eqOf is the eqType of T, whose values rapid makes by reflection.
func eqOf[T any](flat bool) eqType {
	var zero T
	return eqType{zero: zero, flat: flat, values: func(cfg rapid.MakeConfig) *rapid.Generator[any] {
		return rapid.Map(rapid.MakeCustom[T](cfg), func(v T) any { return v })
	}}
}

func eqTypes() []eqType {
	flatAll := eqOf[eqFlatAll](true)
	flatAll.values = func(cfg rapid.MakeConfig) *rapid.Generator[any] { // unexported fields set too
		return rapid.Map(rapid.MakeCustom[eqFlatAll](cfg), func(v eqFlatAll) any { v.hidden = 7; return v })
	}
	hidden := eqOf[eqHiddenEmbed](true)
	hidden.values = func(cfg rapid.MakeConfig) *rapid.Generator[any] {
		return rapid.Map(rapid.MakeCustom[eqHiddenEmbed](cfg), func(v eqHiddenEmbed) any { v.A, v.S = 1, "x"; return v })
	}
	ptr := eqOf[*eqMsg](false)
	ptr.values = func(cfg rapid.MakeConfig) *rapid.Generator[any] { // never nil: the codec refuses nil pointers
		return rapid.Map(rapid.MakeCustom[eqMsg](cfg), func(v eqMsg) any { return &v })
	}
	return []eqType{
		flatAll, eqOf[eqMsg](true), eqOf[eqBytes](true), eqOf[eqOneBool](true),
		eqOf[eqOneFloat32](true), hidden,
		eqOf[eqEmbedded](false), eqOf[eqNested](false), eqOf[eqPointers](false), eqOf[eqSlices](false),
		eqOf[eqMap](false), eqOf[eqIface](false), eqOf[eqChanFunc](false), eqOf[eqGobEnc](false),
		eqOf[eqBinary](false), eqOf[eqText](false), eqOf[eqDecodeOnly](false), eqOf[eqTextField](false),
		ptr, eqOf[time.Time](false),
		eqOf[int64](false), eqOf[string](false), eqOf[[]byte](false), eqOf[float32](false), eqOf[[]string](false),
	}
}

// Edge values, drawn often beside arbitrary ones.
var (
	eqFloat64Edges = []float64{0, math.Copysign(0, -1), math.NaN(), math.Float64frombits(0x7ff8_0000_0000_0001),
		math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.MaxFloat32, 2 * math.MaxFloat32, 1}
	eqFloat32Edges = []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)),
		float32(math.Inf(-1)), math.MaxFloat32, math.SmallestNonzeroFloat32, -1.5}
	eqStringEdges = []string{"", "\x00", "\xff\xfe\xfd", "h\xc3", "héllo, 世界", string(make([]byte, 300))}
)

// toAny makes a generator of any from a generator of T, with edge values
// of T drawn about as often as arbitrary ones.
func toAny[T any](g *rapid.Generator[T], edges ...T) *rapid.Generator[any] {
	if len(edges) > 0 {
		g = rapid.OneOf(g, rapid.SampledFrom(edges))
	}
	return rapid.Map(g, func(v T) any { return v })
}

// eqMakeConfig draws every field kind of the eqTypes, edge values often:
// min and max integers, NaN (with a payload too), infinities, -0.0,
// floats out of float32's range, empty, long and invalid UTF-8 strings,
// nil, empty and long []byte.
func eqMakeConfig() rapid.MakeConfig {
	str := rapid.OneOf(rapid.String(), rapid.SampledFrom(eqStringEdges), rapid.StringN(200, 2000, -1),
		rapid.Map(rapid.SliceOfN(rapid.Byte(), 0, 40), func(b []byte) string { return string(b) }))
	bytesOf := rapid.OneOf(rapid.Just([]byte(nil)), rapid.Just([]byte{}), rapid.SliceOf(rapid.Byte()),
		rapid.SliceOfN(rapid.Byte(), 128, 3000))
	f64 := rapid.OneOf(rapid.Float64(), rapid.SampledFrom(eqFloat64Edges))
	basic := rapid.OneOf( // values in interfaces: gob knows the basic types itself
		toAny(rapid.Int64(), math.MinInt64), toAny(str), toAny(f64), toAny(bytesOf),
		toAny(rapid.SliceOf(rapid.Int())), rapid.Just[any](true), rapid.Just[any](nil))
	return rapid.MakeConfig{
		Kinds: map[reflect.Kind]*rapid.Generator[any]{
			reflect.Bool:       toAny(rapid.Bool()),
			reflect.Int:        toAny(rapid.Int(), math.MinInt, math.MaxInt, 0, -1),
			reflect.Int8:       toAny(rapid.Int8(), math.MinInt8, math.MaxInt8, 0),
			reflect.Int16:      toAny(rapid.Int16(), math.MinInt16, math.MaxInt16),
			reflect.Int32:      toAny(rapid.Int32(), math.MinInt32, math.MaxInt32),
			reflect.Int64:      toAny(rapid.Int64(), math.MinInt64, math.MaxInt64, 0),
			reflect.Uint:       toAny(rapid.Uint(), math.MaxUint, 0),
			reflect.Uint8:      toAny(rapid.Uint8(), math.MaxUint8),
			reflect.Uint16:     toAny(rapid.Uint16(), math.MaxUint16),
			reflect.Uint32:     toAny(rapid.Uint32(), math.MaxUint32),
			reflect.Uint64:     toAny(rapid.Uint64(), math.MaxUint64, 0),
			reflect.Uintptr:    toAny(rapid.Uintptr(), ^uintptr(0)),
			reflect.Float32:    toAny(rapid.Float32(), eqFloat32Edges...),
			reflect.Float64:    toAny(f64),
			reflect.String:     toAny(str),
			reflect.Complex128: toAny(rapid.Custom(func(t *rapid.T) complex128 { return complex(f64.Draw(t, "re"), f64.Draw(t, "im")) })),
		},
		Types: map[reflect.Type]*rapid.Generator[any]{
			reflect.TypeFor[[]byte](): toAny(bytesOf),
			reflect.TypeFor[eqBlob](): rapid.Map(bytesOf, func(v []byte) any { return eqBlob(v) }),
			reflect.TypeFor[time.Time](): toAny(rapid.Custom(func(t *rapid.T) time.Time {
				at := time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "sec"), rapid.Int64Range(0, 1e9-1).Draw(t, "nsec"))
				if rapid.Bool().Draw(t, "utc") {
					return at.UTC()
				}
				offset := rapid.IntRange(-720, 840).Draw(t, "min")
				if offset == -1 { // MarshalBinary's mark of UTC: time cannot encode it
					offset = 1
				}
				return at.In(time.FixedZone("", 60*offset))
			})),
		},
		Fields: map[reflect.Type]map[string]*rapid.Generator[any]{
			reflect.TypeFor[eqIface](): {"V": basic, "W": basic},
			reflect.TypeFor[eqChanFunc](): {
				"C": rapid.SampledFrom([]any{nil, make(chan int)}),
				"F": rapid.SampledFrom([]any{nil, func() {}}),
			},
		},
	}
}

// eqStream is one stream's encoder and decoder pair of a codec; a failed
// decode ends the stream, and the next send starts another.
type eqStream struct {
	c   *GobCodec
	enc RunEncoder
	dec RunDecoder
}

// send sends vs, all of one type, as a run if the stream takes it as one,
// else one by one, and returns what the decoder made of them and whether
// the frames were flat. An error is the decoder's; the stream is then
// over.
func (s *eqStream) send(t *rapid.T, vs []any) (out []any, flat bool, err error) {
	if s.enc == nil {
		s.enc, s.dec = s.c.NewEncoder().(RunEncoder), s.c.NewDecoder().(RunDecoder)
	}
	defer func() {
		if err != nil {
			s.enc, s.dec = nil, nil
		}
	}()
	if len(vs) > 1 {
		b, ok, err := s.enc.EncodeRun(nil, vs)
		if err != nil {
			t.Fatalf("EncodeRun(%#v): %v", vs, err)
		}
		if ok {
			out, err := s.dec.DecodeRun(nil, b, len(vs))
			return out, b[0]&gobFlat != 0, err
		}
	}
	for _, v := range vs {
		b, err := s.enc.Encode(nil, v)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", v, err)
		}
		flat = b[0]&gobFlat != 0
		got, err := s.dec.Decode(b)
		if err != nil {
			return nil, flat, err
		}
		out = append(out, got)
	}
	return out, flat, nil
}

// viaFreshGob is what encoding/gob itself makes of v, with a new Encoder
// and Decoder: v's type description, then v, decoded into a new value of
// v's type.
func viaFreshGob(t *rapid.T, v any) (any, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatalf("gob encode %#v: %v", v, err)
	}
	pv := reflect.New(reflect.TypeOf(v))
	if err := gob.NewDecoder(&buf).DecodeValue(pv); err != nil {
		return nil, err
	}
	return pv.Elem().Interface(), nil
}

// TestDefaultCodecDecodesAsGob is the flat path's property: on streams of
// values of every shape (eqTypes), sent alone or as runs, the default
// codec (flat types without gob) and a codec without the flat path decode
// each value to the same Go value, and both to what encoding/gob makes of
// it with a fresh Encoder and Decoder, or all three fail. Values compare
// bit for bit (NaN, -0.0), nil and empty slices apart, unexported fields
// included.
func TestDefaultCodecDecodesAsGob(t *testing.T) {
	types := eqTypes()
	regs := make([]any, len(types))
	for i, et := range types {
		regs[i] = et.zero
	}
	def, err := NewGobCodec(regs...)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newPlainGobCodec(regs...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := eqMakeConfig()
	values := make([]*rapid.Generator[any], len(types))
	for i, et := range types {
		values[i] = et.values(cfg)
		if flat := def.byType[reflect.TypeOf(et.zero)].flat != nil; flat != et.flat {
			t.Fatalf("%T: flat %v, want %v", et.zero, flat, et.flat)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		fast, slow := &eqStream{c: def}, &eqStream{c: plain}
		for range rapid.IntRange(1, 12).Draw(t, "sends") {
			i := rapid.IntRange(0, len(types)-1).Draw(t, "type")
			vs := rapid.SliceOfN(values[i], 1, 4).Draw(t, "values")
			gotFast, flat, errFast := fast.send(t, vs)
			gotSlow, slowFlat, errSlow := slow.send(t, vs)
			if flat != types[i].flat || slowFlat {
				t.Fatalf("%T: flat frames %v (without the flat path %v), want %v", vs[0], flat, slowFlat, types[i].flat)
			}
			var wantErr error
			want := make([]any, len(vs))
			for k, v := range vs {
				var err error
				if want[k], err = viaFreshGob(t, v); err != nil {
					wantErr = err
				}
			}
			if (errFast != nil) != (wantErr != nil) || (errSlow != nil) != (wantErr != nil) {
				t.Fatalf("%T: default codec %v, without the flat path %v, encoding/gob %v", vs[0], errFast, errSlow, wantErr)
			}
			if wantErr != nil {
				if !errors.Is(errFast, ErrDecode) || !errors.Is(errSlow, ErrDecode) {
					t.Fatalf("errors %v, %v do not wrap ErrDecode", errFast, errSlow)
				}
				continue
			}
			for k := range vs {
				if !equalBits(gotFast[k], gotSlow[k]) || !equalBits(gotFast[k], want[k]) {
					t.Fatalf("value %d of %d, %#v:\n default codec    %#v\n without flat     %#v\n encoding/gob     %#v",
						k, len(vs), vs[k], gotFast[k], gotSlow[k], want[k])
				}
			}
		}
	})
}

// skewGen is a version skew case whose sender's values rapid draws.
type skewGen struct {
	remote func(rapid.MakeConfig) *rapid.Generator[any]
	local  any
	bridge bool
}

func skewOf[R any](local any, bridge bool) skewGen {
	return skewGen{local: local, bridge: bridge, remote: func(cfg rapid.MakeConfig) *rapid.Generator[any] {
		return rapid.Map(rapid.MakeCustom[R](cfg), func(v R) any { return v })
	}}
}

// TestFlatVersionSkewDecodesAsGob is TestFlatVersionSkewMatchesGob's
// cases with values rapid draws, on one stream each: the first value
// with the type's descriptor, the next ones alone or as a run. Each
// decodes, by the fast path or through gob as expected, to what gob makes
// of the sender's value decoded into the receiver's type, or fails where
// gob fails.
func TestFlatVersionSkewDecodesAsGob(t *testing.T) {
	c := newTestCodec(t)
	cases := []skewGen{
		skewOf[skewSubset](flatAll{}, false),
		skewOf[skewOverflow](flatAll{}, false),
		skewOf[skewUintOverflow](flatAll{}, false),
		skewOf[skewFloatOverflow](flatAll{}, false),
		skewOf[skewForPtrs](flatPtrs{}, false),
		skewOf[skewWrongKind](flatAll{}, true),
		skewOf[skewNothing](flatAll{}, true),
		skewOf[skewPromoted](testPromoted{}, true),
		skewOf[skewTextField](flatTextField{}, true),
		skewOf[skewTree](testTree{}, true),
		skewOf[skewCustom](testPanicky{}, true),
	}
	cfg := eqMakeConfig()
	remotes := make([]*rapid.Generator[any], len(cases))
	for i, sc := range cases {
		remotes[i] = sc.remote(cfg)
	}
	rapid.Check(t, func(t *rapid.T) {
		i := rapid.IntRange(0, len(cases)-1).Draw(t, "case")
		sc := cases[i]
		vs := rapid.SliceOfN(remotes[i], 1, 6).Draw(t, "values")
		asRun := len(vs) > 2 && rapid.Bool().Draw(t, "run")
		dec := c.NewDecoder().(*gobDecoder)
		var got []any
		var err error
		for k, v := range vs {
			var frame []byte
			switch {
			case k == 0:
				frame = flatFrame(gobTypeName(reflect.TypeOf(sc.local)), v)
			case asRun:
				got, err = dec.DecodeRun(got, flatRun(vs[1:]...), len(vs)-1)
			default:
				frame = flatNext(v)
			}
			if frame != nil {
				var one any
				if one, err = dec.Decode(frame); err == nil {
					got = append(got, one)
				}
			}
			if k == 0 && len(dec.plans) == 1 && (dec.plans[0].bridge != nil) != sc.bridge {
				t.Fatalf("%T into %T: through gob %v, want %v", v, sc.local, !sc.bridge, sc.bridge)
			}
			if err != nil || (asRun && k > 0) {
				break
			}
		}
		// Compare value by value up to the first failure, which gob must
		// share (in a run: some value of it).
		for k, v := range vs {
			want, wantErr := viaGobAs(t, v, sc.local)
			if k < len(got) {
				if wantErr != nil || !equalBits(got[k], want) {
					t.Fatalf("value %d %#v into %T: got %#v; gob %#v, %v", k, v, sc.local, got[k], want, wantErr)
				}
				continue
			}
			if err == nil {
				t.Fatalf("value %d %#v: not decoded, and no error", k, v)
			}
			if wantErr != nil {
				return
			}
			if !asRun || k == 0 {
				t.Fatalf("value %d %#v into %T: %v; gob %#v", k, v, sc.local, err, want)
			}
		}
		if err != nil {
			t.Fatalf("%v, but gob decodes every value", err)
		}
	})
}

// equalBits is reflect.DeepEqual with floats compared bit for bit, so
// that NaN equals NaN and -0.0 differs from +0.0.
func equalBits(a, b any) bool {
	return equalValues(reflect.ValueOf(a), reflect.ValueOf(b))
}

func equalValues(a, b reflect.Value) bool {
	if !a.IsValid() || !b.IsValid() {
		return a.IsValid() == b.IsValid()
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32:
		return math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Complex64, reflect.Complex128:
		x, y := a.Complex(), b.Complex()
		return math.Float64bits(real(x)) == math.Float64bits(real(y)) && math.Float64bits(imag(x)) == math.Float64bits(imag(y))
	case reflect.String:
		return a.String() == b.String()
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return false
		}
		fallthrough
	case reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			if !equalValues(it.Value(), b.MapIndex(it.Key())) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default: // chan, func, unsafe pointer
		return a.IsNil() == b.IsNil() && (a.IsNil() || a.Pointer() == b.Pointer())
	}
}

func TestEqualBits(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{nan, nan, true},
		{0.0, math.Copysign(0, -1), false},
		{[]byte(nil), []byte{}, false},
		{eqFlatAll{hidden: 1}, eqFlatAll{}, false},
		{eqIface{V: nan}, eqIface{V: nan}, true},
		{eqIface{V: int64(1)}, eqIface{V: 1}, false},
		{eqMap{M: map[string]int64{"a": 1}}, eqMap{M: map[string]int64{"a": 1}}, true},
		{eqMap{M: map[string]int64{"a": 1}}, eqMap{M: map[string]int64{"b": 1}}, false},
		{&eqMsg{ID: 1}, &eqMsg{ID: 1}, true},
		{float32(nan), float32(nan), true},
	} {
		if got := equalBits(tc.a, tc.b); got != tc.want {
			t.Errorf("equalBits(%#v, %#v) = %v", tc.a, tc.b, got)
		}
	}
}

// FuzzFlatFastPathMatchesGob is the fast path's property on bytes from a
// peer: for any descriptor (any field names and kinds, another version of
// the type) and any registered type the fast path takes it for, the fast
// path decodes the values that follow, one after the other, into what
// gob decodes them into (flatBridge: the same values as gob messages,
// through a gob.Decoder), the same Go value and the same bytes read, or
// fails where gob fails.
func FuzzFlatFastPathMatchesGob(f *testing.F) {
	c, err := NewGobCodec(append(testTypes(), eqFlatAll{}, eqPointers{}, eqHiddenEmbed{}, eqOneFloat32{})...)
	if err != nil {
		f.Fatal(err)
	}
	var types []*gobType
	for _, t := range c.byType {
		if t.typ.Kind() == reflect.Struct {
			types = append(types, t)
		}
	}
	slices.SortFunc(types, func(a, b *gobType) int { return strings.Compare(a.name, b.name) })
	which := func(local any) uint8 {
		return uint8(slices.IndexFunc(types, func(t *gobType) bool { return t.typ == reflect.TypeOf(local) }))
	}
	seed := func(local any, remotes ...any) {
		fields := flatFields(reflect.TypeOf(remotes[0]))
		var values []byte
		for _, r := range remotes {
			values = appendFlat(values, fields, reflect.ValueOf(r))
		}
		f.Add(which(local), appendFlatDescriptor(nil, fields), values)
	}
	seed(flatAll{}, flatAllEdges(), flatAll{}, flatAll{F64: math.Copysign(0, -1), Bs: []byte{}})
	seed(flatAll{}, skewSubset{S: "s", Extra: 3, I8: -100, F32: 2.5, U8: 7, B: true, Bs: []byte("b")}, skewSubset{I8: 300})
	seed(flatAll{}, skewFloatOverflow{F32: math.Inf(1)}, skewFloatOverflow{F32: math.MaxFloat64})
	seed(flatAll{}, skewUintOverflow{U8: 255}, skewUintOverflow{U8: 256})
	seed(flatPtrs{}, skewForPtrs{I64: 5, S: "q"}, skewForPtrs{F64: 1})
	seed(eqPointers{}, struct {
		P  int64
		S  string
		PP float64
	}{P: -1, S: "s", PP: 2}, struct {
		P  int64
		S  string
		PP float64
	}{PP: math.NaN()})
	seed(testPromoted{}, skewPromoted{Note: "n", ID: 1})
	seed(eqHiddenEmbed{}, eqInner{A: 1, S: "s"})
	seed(testTree{}, skewTree{Name: "n", Kids: 2})
	seed(eqOneFloat32{}, skewFloatOverflow{F32: 1e39})
	f.Fuzz(func(t *testing.T, which uint8, desc, values []byte) {
		lt := types[int(which)%len(types)]
		names, kinds, _, err := readFlatDescriptor(desc)
		if err != nil {
			return
		}
		local := fastFlatPlan(lt.typ, names, kinds)
		if local == nil {
			return // through gob anyway
		}
		fast := &flatPlan{kinds: kinds, local: local}
		viaGob := &flatPlan{kinds: kinds, bridge: newFlatBridge(lt.name, names, kinds)}
		pf, pg := reflect.New(lt.typ), reflect.New(lt.typ)
		bf, bg := values, values
		for i := 0; len(bf) > 0 && i < 4; i++ {
			pf.Elem().SetZero()
			pg.Elem().SetZero()
			var errF, errG error
			bf, errF = decodeFlatPrefix(fast, bf, pf)
			bg, errG = decodeFlatPrefix(viaGob, bg, pg)
			if (errF != nil) != (errG != nil) {
				t.Fatalf("%s value %d: fast path %#v, %v; gob %#v, %v", lt.name, i, pf.Elem(), errF, pg.Elem(), errG)
			}
			if errF != nil {
				return
			}
			if len(bf) != len(bg) || !equalBits(pf.Elem().Interface(), pg.Elem().Interface()) {
				t.Fatalf("%s value %d: fast path %#v (%d bytes left); gob %#v (%d bytes left)",
					lt.name, i, pf.Elem(), len(bf), pg.Elem(), len(bg))
			}
		}
	})
}
