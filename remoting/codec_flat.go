package remoting

import (
	"encoding"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"go/token"
	"math"
	"math/bits"
	"reflect"
)

// Flat structs: the GobCodec's fast path.
//
// A registered struct type is "flat" if each of its exported fields (at
// most maxFlatFields, with names of at most maxGobTypeName bytes) has a
// bool, integer, float, string or []byte type (named types included), none
// of them embedded, and if neither the type nor a field's type has a
// method that makes a value encode or decode itself: GobEncoder,
// GobDecoder, BinaryMarshaler, BinaryUnmarshaler (which gob honours), or
// TextMarshaler, TextUnmarshaler (which gob ignores; left to gob all the
// same). Unexported fields are ignored, as by gob. Every other type goes
// through gob: pointers, nested and embedded structs, maps, arrays, other
// slices, interfaces, complex numbers, and structs with a chan or func
// field. gob spends most of its time per value on framing and on
// interpreting its engine; a flat struct's fields are written directly
// instead:
//
//	descriptor  on the type id's first use in the stream, after its name:
//	            uvarint field count (at least 1), then per exported field,
//	            in declaration order, a uvarint name length, the name, and
//	            a kind byte (flatBool ... flatBytes)
//	fields      each field in descriptor order: bool one byte (0 or 1),
//	            signed integers zig-zag uvarint, unsigned uvarint, floats
//	            8 bytes little-endian (float64 bits), string and []byte a
//	            uvarint length and the bytes
//
// The descriptor carries what gob's own type description of the struct
// carries: field names and gob's wire types (gob sends every integer kind
// as int64 or uint64, floats as float64, a named type as its kind), so a
// flat value holds all gob would send for it.
//
// # Decoding exactly as gob
//
// The decoder matches the sender's fields with the local type's, as gob
// does: by name, with FieldByName. When every field it finds is a direct
// field of the local struct whose type, through any pointers, has the
// sender's kind and no custom methods — always so when both ends have the
// same type — the fast path stores the fields itself and follows gob's
// rules: a zero value is not stored (gob sends no zero field: -0.0 arrives
// as +0.0, an empty []byte or string as the zero value, a pointer field
// stays nil), a field the local type lacks is skipped, integers and floats
// convert between sizes with gob's overflow errors, a []byte is copied.
// Any other local type (a field promoted from an embedded struct, a field
// of another kind or with custom methods, a local type that is not a plain
// struct, no field in common) goes through gob itself: the flat value is
// rewritten into the gob messages gob's encoder would have written for the
// sender's value — a struct type with the descriptor's names and gob's
// wire types, then the value without its zero fields — and a gob.Decoder
// decodes them into the local type (flatBridge). Either way a flat value
// decodes to what gob would have decoded, or fails where gob would fail.

// Flat wire kinds.
const (
	flatBool byte = iota + 1
	flatInt
	flatUint
	flatFloat
	flatString
	flatBytes
)

// flatGobTypes are the ids of gob's builtin wire types
// (encoding/gob/type.go) by flat kind.
var flatGobTypes = [...]int64{flatBool: 1, flatInt: 2, flatUint: 3, flatFloat: 4, flatBytes: 5, flatString: 6}

// maxFlatFields bounds a descriptor read from a peer.
const maxFlatFields = 1 << 10

// maxIndirections bounds the pointers followed from a field's type, as gob
// bounds them.
const maxIndirections = 100

// flatField is one exported field of a flat struct type.
type flatField struct {
	name  string
	kind  byte
	index int
}

var (
	// gobMethodTypes are the interfaces through which a value may encode or
	// decode itself: gob honours the first four, and ignores the text ones
	// (golang.org/issue/6760), which the fast path leaves to gob anyway.
	gobMethodTypes = []reflect.Type{
		reflect.TypeFor[gob.GobEncoder](), reflect.TypeFor[gob.GobDecoder](),
		reflect.TypeFor[encoding.BinaryMarshaler](), reflect.TypeFor[encoding.BinaryUnmarshaler](),
		reflect.TypeFor[encoding.TextMarshaler](), reflect.TypeFor[encoding.TextUnmarshaler](),
	}
	errFlatTruncated      = errors.New("truncated flat value")
	errFlatTrailing       = errors.New("trailing bytes after flat value")
	errFlatBadDescriptor  = errors.New("bad flat descriptor")
	errFlatKindMismatched = errors.New("flat frame for a type first sent otherwise, or the reverse")
)

// customCoded reports whether t, a pointer to t, or a type t points to has
// one of gobMethodTypes' methods: the places gob looks for them.
func customCoded(t reflect.Type) bool {
	for range maxIndirections {
		for _, m := range gobMethodTypes {
			if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
				return true
			}
		}
		if t.Kind() != reflect.Pointer {
			return false
		}
		t = t.Elem()
	}
	return true
}

// flatKindOf returns the flat wire kind of a field type, or 0.
func flatKindOf(t reflect.Type) byte {
	switch t.Kind() {
	case reflect.Bool:
		return flatBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return flatInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return flatUint
	case reflect.Float32, reflect.Float64:
		return flatFloat
	case reflect.String:
		return flatString
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return flatBytes
		}
	}
	return 0
}

// flatFields returns the fields of rt if it is a flat struct type, or nil.
func flatFields(rt reflect.Type) []flatField {
	if rt.Kind() != reflect.Struct || customCoded(rt) {
		return nil
	}
	var out []flatField
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue // gob ignores them too
		}
		if f.Anonymous || customCoded(f.Type) {
			return nil
		}
		k := flatKindOf(f.Type)
		if k == 0 || (k == flatBytes && customCoded(f.Type.Elem())) {
			return nil
		}
		if len(f.Name) > maxGobTypeName || len(out) == maxFlatFields {
			return nil // more than a receiver accepts in a descriptor
		}
		out = append(out, flatField{name: f.Name, kind: k, index: i})
	}
	return out // nil without exported fields: gob refuses those types
}

// appendFlatDescriptor appends t's field descriptor.
func appendFlatDescriptor(dst []byte, fields []flatField) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(fields)))
	for _, f := range fields {
		dst = binary.AppendUvarint(dst, uint64(len(f.name)))
		dst = append(dst, f.name...)
		dst = append(dst, f.kind)
	}
	return dst
}

// appendFlat appends the fields of v, a value of a flat struct type.
func appendFlat(dst []byte, fields []flatField, v reflect.Value) []byte {
	for _, f := range fields {
		fv := v.Field(f.index)
		switch f.kind {
		case flatBool:
			b := byte(0)
			if fv.Bool() {
				b = 1
			}
			dst = append(dst, b)
		case flatInt:
			dst = binary.AppendVarint(dst, fv.Int())
		case flatUint:
			dst = binary.AppendUvarint(dst, fv.Uint())
		case flatFloat:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(fv.Float()))
		case flatString:
			s := fv.String()
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		case flatBytes:
			b := fv.Bytes()
			dst = binary.AppendUvarint(dst, uint64(len(b)))
			dst = append(dst, b...)
		}
	}
	return dst
}

// flatPlan decodes one stream's flat values of one type: the kind of each
// wire field, and either local, the local field each lands in (-1:
// skipped), or bridge, which decodes the values through gob.
type flatPlan struct {
	kinds  []byte
	local  []int
	bridge *flatBridge
}

// readFlatPlan reads a descriptor and matches it against the local type.
func readFlatPlan(b []byte, t *gobType) (*flatPlan, []byte, error) {
	names, kinds, b, err := readFlatDescriptor(b)
	if err != nil {
		return nil, nil, err
	}
	p := &flatPlan{kinds: kinds}
	if p.local = fastFlatPlan(t.typ, names, kinds); p.local == nil {
		p.bridge = newFlatBridge(t.name, names, kinds)
	}
	return p, b, nil
}

// readFlatDescriptor reads a descriptor at the start of b: the sender's
// field names and their kinds, and the bytes after it.
func readFlatDescriptor(b []byte) (names []string, kinds []byte, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > maxFlatFields || n > uint64(len(b)-k) {
		return nil, nil, nil, errFlatBadDescriptor
	}
	b = b[k:]
	kinds = make([]byte, n)
	names = make([]string, n)
	seen := make(map[string]bool, n)
	for i := range kinds {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > maxGobTypeName || l+1 > uint64(len(b)-k) {
			return nil, nil, nil, errFlatBadDescriptor
		}
		name := string(b[k : k+int(l)])
		kind := b[k+int(l)]
		b = b[k+int(l)+1:]
		if kind < flatBool || kind > flatBytes {
			return nil, nil, nil, fmt.Errorf("%w: kind %d", errFlatBadDescriptor, kind)
		}
		// An honest sender sends its exported fields, each once.
		if !token.IsIdentifier(name) || !token.IsExported(name) || seen[name] {
			return nil, nil, nil, fmt.Errorf("%w: field name %q", errFlatBadDescriptor, name)
		}
		seen[name] = true
		names[i], kinds[i] = name, kind
	}
	return names, kinds, b, nil
}

// fastFlatPlan matches the sender's fields with the fields of lt by name,
// as gob does, and returns the index of the local field each lands in (-1
// for one lt lacks). It returns nil if the fast path could decode
// otherwise than gob: lt is not a plain struct, a field is found other
// than as a direct field of the sender's kind without custom methods, or
// no field is in common (gob's rules for those go through flatBridge).
func fastFlatPlan(lt reflect.Type, names []string, kinds []byte) []int {
	if lt.Kind() != reflect.Struct || customCoded(lt) {
		return nil
	}
	local := make([]int, len(names))
	matched := false
	for i, name := range names {
		f, ok := lt.FieldByName(name)
		if !ok {
			local[i] = -1
			continue
		}
		if len(f.Index) != 1 || f.Anonymous || customCoded(f.Type) {
			return nil
		}
		ft := f.Type
		for range maxIndirections {
			if ft.Kind() != reflect.Pointer {
				break
			}
			ft = ft.Elem()
		}
		if flatKindOf(ft) != kinds[i] || (kinds[i] == flatBytes && customCoded(ft.Elem())) {
			return nil
		}
		local[i], matched = f.Index[0], true
	}
	if !matched {
		return nil
	}
	return local
}

// decodeFlat decodes one flat value, all of b, into pv (a pointer to a
// zero value of the local type).
func decodeFlat(p *flatPlan, b []byte, pv reflect.Value) error {
	rest, err := decodeFlatPrefix(p, b, pv)
	if err == nil && len(rest) != 0 {
		return errFlatTrailing
	}
	return err
}

// flatValue is one field's value as read from the wire: a bool or an
// unsigned integer in u, a signed one in i, a float in f, a string or
// []byte in raw (not copied).
type flatValue struct {
	i   int64
	u   uint64
	f   float64
	raw []byte
}

// zero reports whether x is the zero value of its kind, which gob does not
// send (-0.0 included: gob compares floats with 0).
func (x *flatValue) zero() bool {
	return x.i == 0 && x.u == 0 && x.f == 0 && len(x.raw) == 0
}

// readFlatValue reads a value of the given kind at the start of b and
// returns the bytes after it.
func readFlatValue(kind byte, b []byte, x *flatValue) ([]byte, error) {
	*x = flatValue{}
	switch kind {
	case flatBool:
		if len(b) < 1 || b[0] > 1 {
			return nil, errFlatTruncated
		}
		x.u = uint64(b[0])
		return b[1:], nil
	case flatInt:
		v, k := binary.Varint(b)
		if k <= 0 {
			return nil, errFlatTruncated
		}
		x.i = v
		return b[k:], nil
	case flatUint:
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errFlatTruncated
		}
		x.u = v
		return b[k:], nil
	case flatFloat:
		if len(b) < 8 {
			return nil, errFlatTruncated
		}
		x.f = math.Float64frombits(binary.LittleEndian.Uint64(b))
		return b[8:], nil
	default: // flatString, flatBytes
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil, errFlatTruncated
		}
		x.raw = b[k : k+int(l)]
		return b[k+int(l):], nil
	}
}

// decodeFlatPrefix decodes the flat value at the start of b into pv and
// returns the bytes after it. Every value takes at least a byte per wire
// field, and a plan has at least one.
func decodeFlatPrefix(p *flatPlan, b []byte, pv reflect.Value) ([]byte, error) {
	if p.bridge != nil {
		return p.bridge.decode(p.kinds, b, pv)
	}
	v := pv.Elem()
	var x flatValue
	for i, kind := range p.kinds {
		var err error
		if b, err = readFlatValue(kind, b, &x); err != nil {
			return nil, err
		}
		idx := p.local[i]
		if idx < 0 || x.zero() {
			continue // skipped, or zero: gob sends no zero field
		}
		f := v.Field(idx)
		for f.Kind() == reflect.Pointer { // as gob's decAlloc
			if f.IsNil() {
				f.Set(reflect.New(f.Type().Elem()))
			}
			f = f.Elem()
		}
		switch kind {
		case flatBool:
			f.SetBool(true)
		case flatInt:
			if f.OverflowInt(x.i) {
				return nil, fmt.Errorf("value %d out of range for %v", x.i, f.Type())
			}
			f.SetInt(x.i)
		case flatUint:
			if f.OverflowUint(x.u) {
				return nil, fmt.Errorf("value %d out of range for %v", x.u, f.Type())
			}
			f.SetUint(x.u)
		case flatFloat:
			if f.OverflowFloat(x.f) {
				return nil, fmt.Errorf("value %g out of range for %v", x.f, f.Type())
			}
			f.SetFloat(x.f)
		case flatString:
			f.SetString(string(x.raw))
		case flatBytes:
			f.SetBytes(append(make([]byte, 0, len(x.raw)), x.raw...))
		}
	}
	return b, nil
}

// flatBridgeType is the gob type id a flatBridge gives the sender's type:
// gob's first id for user types, as the sender's own gob encoder would.
const flatBridgeType = 64

// flatBridge decodes one stream's flat values of one type through gob, for
// a local type the fast path does not decode as gob would: it rewrites each
// value into the gob messages gob's encoder would have written for the
// sender's value and decodes them with a gob.Decoder of its own. The first
// value goes after the description of a struct type with the descriptor's
// field names and gob's wire types for their kinds.
type flatBridge struct {
	def []byte // the type description message, until the first value
	dec *gob.Decoder
	r   sliceReader
}

func newFlatBridge(name string, names []string, kinds []byte) *flatBridge {
	fields := make([]gobField, len(names))
	for i, n := range names {
		fields[i] = gobField{name: n, id: flatGobTypes[kinds[i]]}
	}
	br := &flatBridge{def: appendGobMessage(nil, gobStructType(flatBridgeType, name, fields...))}
	br.dec = gob.NewDecoder(&br.r)
	return br
}

// decode decodes the flat value at the start of b into pv, through gob,
// and returns the bytes after it.
func (br *flatBridge) decode(kinds []byte, b []byte, pv reflect.Value) ([]byte, error) {
	msg := appendGobInt(nil, flatBridgeType)
	prev := -1
	var x flatValue
	for i, kind := range kinds {
		var err error
		if b, err = readFlatValue(kind, b, &x); err != nil {
			return nil, err
		}
		if x.zero() {
			continue // gob sends no zero field
		}
		msg = appendGobUint(msg, uint64(i-prev)) // the field number's delta
		prev = i
		switch kind {
		case flatBool:
			msg = appendGobUint(msg, 1)
		case flatInt:
			msg = appendGobInt(msg, x.i)
		case flatUint:
			msg = appendGobUint(msg, x.u)
		case flatFloat: // gob's floats: the bits, bytes reversed
			msg = appendGobUint(msg, bits.ReverseBytes64(math.Float64bits(x.f)))
		default:
			msg = appendGobUint(msg, uint64(len(x.raw)))
			msg = append(msg, x.raw...)
		}
	}
	msg = append(msg, 0) // end of the struct
	in := appendGobMessage(br.def, msg)
	br.def = nil
	br.r.b = in
	err := decodeValue(br.dec, pv)
	rest := len(br.r.b)
	br.r.b = nil
	if err != nil {
		return nil, err
	}
	if rest != 0 {
		return nil, fmt.Errorf("gob left %d bytes of a flat value", rest)
	}
	return b, nil
}

// Gob's wire format (see encoding/gob's doc), for flatBridge and tests.

// appendGobUint appends x in gob's unsigned integer encoding.
func appendGobUint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	n := (bits.Len64(x) + 7) / 8
	b = append(b, byte(-int8(n)))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(x>>(8*i)))
	}
	return b
}

// appendGobInt appends i in gob's signed integer encoding.
func appendGobInt(b []byte, i int64) []byte {
	if i < 0 {
		return appendGobUint(b, uint64(^i)<<1|1)
	}
	return appendGobUint(b, uint64(i)<<1)
}

func appendGobString(b []byte, s string) []byte {
	return append(appendGobUint(b, uint64(len(s))), s...)
}

// appendGobMessage appends body as one gob message: its length, then it.
func appendGobMessage(b, body []byte) []byte {
	return append(appendGobUint(b, uint64(len(body))), body...)
}

// gobField is a field of a struct type description: its name and its type
// id.
type gobField struct {
	name string
	id   int64
}

// gobStructType is the body of a gob message that defines type id as a
// struct with the given fields.
func gobStructType(id int64, name string, fields ...gobField) []byte {
	b := appendGobInt(nil, -id)
	b = append(b, 3, 1, 1) // wireType.StructT, structType.CommonType, CommonType.Name
	b = appendGobString(b, name)
	b = append(b, 1) // CommonType.Id
	b = appendGobInt(b, id)
	b = append(b, 0, 1) // end CommonType, structType.Field
	b = appendGobUint(b, uint64(len(fields)))
	for _, f := range fields {
		b = append(b, 1) // fieldType.Name
		b = appendGobString(b, f.name)
		b = append(b, 1) // fieldType.Id
		b = appendGobInt(b, f.id)
		b = append(b, 0) // end fieldType
	}
	return append(b, 0, 0) // end structType, end wireType
}
