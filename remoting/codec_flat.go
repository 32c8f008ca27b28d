package remoting

import (
	"encoding"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// Flat structs: the GobCodec's fast path.
//
// A registered struct type whose exported fields are all of basic kinds
// (bool, the integer kinds, float32/64, string, []byte), none embedded, and
// which does not encode itself (GobEncoder, BinaryMarshaler,
// TextMarshaler), is "flat". Gob spends most of its time per value on
// framing and on interpreting its engine; a flat struct's fields are
// written directly instead:
//
//	descriptor  on the type id's first use in the stream, after its name:
//	            uvarint field count, then per field a uvarint name length,
//	            the name, and a kind byte (flatBool ... flatBytes)
//	fields      each field in descriptor order: bool one byte (0 or 1),
//	            signed integers zig-zag uvarint, unsigned uvarint, floats
//	            8 bytes little-endian (float64 bits), string and []byte a
//	            uvarint length and the bytes
//
// The decoder matches fields by name, as gob does: a field the receiver's
// type lacks is skipped, a field the sender's type lacks stays zero, a
// field of an incompatible kind is an error, and so is a type with no field
// in common. Integers and floats convert between sizes with gob's overflow
// errors, pointers in the receiver's type are followed (and, as with gob,
// left nil for a zero value), and an empty []byte arrives as nil. Values
// thus decode as gob would decode them.

// Flat wire kinds.
const (
	flatBool byte = iota + 1
	flatInt
	flatUint
	flatFloat
	flatString
	flatBytes
)

// maxFlatFields bounds a descriptor read from a peer.
const maxFlatFields = 1 << 10

// flatField is one exported field of a flat struct type.
type flatField struct {
	name  string
	kind  byte
	index int
}

var (
	gobEncoderType        = reflect.TypeFor[gob.GobEncoder]()
	binaryMarshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType     = reflect.TypeFor[encoding.TextMarshaler]()
	errFlatTruncated      = errors.New("truncated flat value")
	errFlatTrailing       = errors.New("trailing bytes after flat value")
	errFlatBadDescriptor  = errors.New("bad flat descriptor")
	errFlatKindMismatched = errors.New("flat frame for a type first sent otherwise, or the reverse")
)

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

// selfEncoding reports whether gob would encode t through its own methods.
func selfEncoding(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, m := range []reflect.Type{gobEncoderType, binaryMarshalerType, textMarshalerType} {
		if t.Implements(m) || pt.Implements(m) {
			return true
		}
	}
	return false
}

// flatFields returns the fields of rt if it is a flat struct type, or nil.
func flatFields(rt reflect.Type) []flatField {
	if rt.Kind() != reflect.Struct || selfEncoding(rt) {
		return nil
	}
	var out []flatField
	for i := range rt.NumField() {
		f := rt.Field(i)
		if !f.IsExported() {
			continue // gob ignores them too
		}
		if f.Anonymous || selfEncoding(f.Type) {
			return nil
		}
		k := flatKindOf(f.Type)
		if k == 0 || (k == flatBytes && selfEncoding(f.Type.Elem())) {
			return nil
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

// flatPlan decodes one stream's flat values of one type: for each wire
// field, its kind and the local field it lands in (-1: skipped).
type flatPlan struct {
	kinds []byte
	local []int
}

// readFlatPlan reads a descriptor and matches it against the local type.
func readFlatPlan(b []byte, t *gobType) (*flatPlan, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxFlatFields || n > uint64(len(b)-k) {
		return nil, nil, errFlatBadDescriptor
	}
	b = b[k:]
	if t.typ.Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("%s: flat value for a non-struct type", t.name)
	}
	p := &flatPlan{kinds: make([]byte, n), local: make([]int, n)}
	matched := false
	for i := range p.kinds {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > maxGobTypeName || l+1 > uint64(len(b)-k) {
			return nil, nil, errFlatBadDescriptor
		}
		name := string(b[k : k+int(l)])
		kind := b[k+int(l)]
		b = b[k+int(l)+1:]
		if kind < flatBool || kind > flatBytes {
			return nil, nil, fmt.Errorf("%w: kind %d", errFlatBadDescriptor, kind)
		}
		p.kinds[i], p.local[i] = kind, -1
		f, ok := t.typ.FieldByName(name)
		if !ok || len(f.Index) != 1 || !f.IsExported() || f.Anonymous {
			continue // the local type lacks it: skip it
		}
		lt := f.Type
		for lt.Kind() == reflect.Pointer {
			lt = lt.Elem()
		}
		if flatKindOf(lt) != kind {
			return nil, nil, fmt.Errorf("%s: field %s: local type %v cannot hold the sender's", t.name, name, f.Type)
		}
		p.local[i] = f.Index[0]
		matched = true
	}
	if !matched {
		return nil, nil, fmt.Errorf("%s: no field in common with the sender's type", t.name)
	}
	return p, b, nil
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

// decodeFlatPrefix decodes the flat value at the start of b into pv and
// returns the bytes after it. Every value takes at least a byte per wire
// field, and a plan has at least one.
func decodeFlatPrefix(p *flatPlan, b []byte, pv reflect.Value) ([]byte, error) {
	v := pv.Elem()
	for i, kind := range p.kinds {
		var (
			iv  int64
			uv  uint64
			fv  float64
			raw []byte
		)
		switch kind {
		case flatBool:
			if len(b) < 1 || b[0] > 1 {
				return nil, errFlatTruncated
			}
			uv, b = uint64(b[0]), b[1:]
		case flatInt:
			x, k := binary.Varint(b)
			if k <= 0 {
				return nil, errFlatTruncated
			}
			iv, b = x, b[k:]
		case flatUint:
			x, k := binary.Uvarint(b)
			if k <= 0 {
				return nil, errFlatTruncated
			}
			uv, b = x, b[k:]
		case flatFloat:
			if len(b) < 8 {
				return nil, errFlatTruncated
			}
			fv, b = math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
		default: // flatString, flatBytes
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return nil, errFlatTruncated
			}
			raw, b = b[k:k+int(l)], b[k+int(l):]
		}
		idx := p.local[i]
		if idx < 0 || (iv == 0 && uv == 0 && fv == 0 && len(raw) == 0) {
			continue // skipped, or zero: gob sends no zero field
		}
		f := v.Field(idx)
		for f.Kind() == reflect.Pointer {
			if f.IsNil() {
				f.Set(reflect.New(f.Type().Elem()))
			}
			f = f.Elem()
		}
		switch kind {
		case flatBool:
			f.SetBool(uv == 1)
		case flatInt:
			if f.OverflowInt(iv) {
				return nil, fmt.Errorf("value %d out of range for %v", iv, f.Type())
			}
			f.SetInt(iv)
		case flatUint:
			if f.OverflowUint(uv) {
				return nil, fmt.Errorf("value %d out of range for %v", uv, f.Type())
			}
			f.SetUint(uv)
		case flatFloat:
			if f.OverflowFloat(fv) {
				return nil, fmt.Errorf("value %g out of range for %v", fv, f.Type())
			}
			f.SetFloat(fv)
		case flatString:
			f.SetString(string(raw))
		case flatBytes:
			f.SetBytes(append(make([]byte, 0, len(raw)), raw...))
		}
	}
	return b, nil
}
