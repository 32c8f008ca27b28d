package remoting

import (
	"encoding"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
)

// GobCodec is the default Codec: encoding/gob with one long-lived
// gob.Encoder and gob.Decoder per stream, so a type's description crosses
// the wire once per stream and each later value costs only its data.
// Consecutive values of one type to one target are encoded as a run, one
// gob []T value (EncodeRun): gob's per-value framing, locking and type
// lookups are then paid once per run, which makes a value of a small
// struct about 2.5 times cheaper to encode and decode
// (BenchmarkGobCodecRunPlain).
//
// Flat struct types — every exported field a bool, integer, float, string
// or []byte, none embedded, no custom encoding or decoding methods — are
// sent without gob: their fields are written directly, with a field list
// sent once per stream (codec_flat.go), at a quarter to a third of gob's
// cost per value (BenchmarkGobCodec); a run of them is their fields back
// to back, at about two thirds of a gob run's cost (BenchmarkGobCodecRun).
// They decode exactly as gob would decode them: the same Go value, or an
// error where gob would fail, also when the receiver's version of the type
// differs from the sender's (fields added, removed, resized, behind
// pointers, promoted from embedded structs: a receiver type the fast
// decoder cannot match field by field decodes the flat value through gob
// itself). Every other type — pointers, nested and embedded structs, maps,
// arrays, other slices, interfaces, complex numbers, structs with chan or
// func fields, types with GobEncode, MarshalBinary or MarshalText methods
// or their decoding counterparts — goes through gob. Every GobCodec reads
// both kinds of frame, flat or gob, whatever it writes. A flat frame's
// size is not gob's: it carries zero fields too (a byte, or 8 for a float)
// and no gob type description; the maximum message size applies to what
// is sent.
//
// # Registration
//
// A GobCodec sends only the types it was built with (NewGobCodec; the
// channel package's WithTypes option) plus Go's basic types (bool, the
// integer, float and complex kinds, string, and slices of those). The
// registry belongs to the codec, not to the process: the codec tags each
// value with its type's name itself and gob encodes the concrete value, so
// gob.Register and its process-wide registry are not used, and nodes in
// one process may register different types. Register the exact type you
// send: Foo and *Foo are different types, and the receiver gets an any
// holding exactly the type the sender sent.
//
// gob.Register is still needed, by the program and process-wide, for a
// concrete type stored in an interface-typed field inside a message (for
// example struct{ Body any }): gob resolves those through its global
// registry only, and the codec cannot change that.
//
// Values follow gob's rules: unexported fields are not sent, pointers are
// followed (a nil pointer cannot be sent, except as a struct field), and
// empty slices arrive as nil.
//
// # Failures
//
// A value that cannot be encoded fails alone with an error wrapping
// ErrEncode. The first value of each type on a stream is first encoded by a
// scratch encoder, so most failures never touch the stream's encoder. If
// the stream's encoder fails anyway (gob may have recorded type
// descriptions the peer will never see), the codec replaces it and tells
// the peer's decoder, with the next output's first byte, to start afresh.
//
// The decoder checks the framing before gob sees it. encoding/gob (Go
// 1.26) sizes a map from the peer's announced count before reading the
// entries (golang/go#79539), so a message of a few dozen bytes could make
// a node allocate gigabytes: if any registered type holds a map, each
// frame first goes through a second, discarding gob decoder, which walks
// the entries without allocating for them and rejects a count the bytes do
// not back, before the real decode. Maps inside values held in interface
// fields are not covered by that pass. Panics inside gob are recovered and
// reported as ErrDecode.
//
// # Wire format
//
// Each Encode output is one frame:
//
//	marker    one byte: bit 0 reset the stream's state first (else
//	          continue it), bit 1 a flat struct (else gob), bit 2 a
//	          run: several values of the type (EncodeRun), as one gob
//	          []T, or flat, their fields back to back
//	type id   uvarint; 0 is the nil value (nothing follows), 1, 2... name
//	          the stream's types in order of first use
//	name      on a type id's first use only: uvarint length, then the
//	          type's registered name (like gob.Register's: "*pkg/path.Name")
//	gob       the gob messages for the value: descriptions of types new to
//	          the stream, then the value
//	flat      instead of gob for a flat struct: its field list on the type
//	          id's first use, then its fields (codec_flat.go)
//
// A reset frame clears the decoder's gob state and type ids; the frame's
// own type id then starts again from 1.
type GobCodec struct {
	byName map[string]*gobType
	byType map[reflect.Type]*gobType
	// shadow reports that some registered type holds a map, so decoders
	// run a discarding gob pass before each real decode.
	shadow bool
	// flat: flat struct types are sent without gob (codec_flat.go).
	flat bool
}

var (
	_ Codec      = (*GobCodec)(nil)
	_ Checker    = (*GobCodec)(nil)
	_ RunEncoder = (*gobEncoder)(nil)
	_ RunDecoder = (*gobDecoder)(nil)
)

// gobType is one registered message type.
type gobType struct {
	name    string
	typ     reflect.Type
	holdMap bool // decoding it may size a map from a peer's count
	// flat lists the fields of a flat struct type (codec_flat.go), which
	// are sent without gob; nil for every other type.
	flat []flatField
}

// Frame markers: the first byte of every GobCodec frame.
const (
	gobContinue byte = 0
	gobReset    byte = 1
	// gobFlat, or'ed into the marker, says the value is a flat struct
	// written without gob (codec_flat.go).
	gobFlat byte = 2
	// gobRun, or'ed into the marker, says the frame holds a run: one gob
	// []T value whose elements are the run's values, T being the type
	// the type id names (EncodeRun).
	gobRun byte = 4
)

// rethrowDecodePanics makes the decoders raise again a panic they would
// otherwise turn into ErrDecode. The fuzz targets set it, so that the
// fuzzer reports such a panic as the crash it is (a bug in a decoder, ours
// or gob's) instead of an error it cannot tell from a refusal. Nothing
// else sets it.
var rethrowDecodePanics atomic.Bool

func rethrow(r any) {
	if rethrowDecodePanics.Load() {
		panic(r)
	}
}

// maxGobTypeName bounds a type name read from a peer.
const maxGobTypeName = 1 << 10

// maxGobTypeDefs bounds the gob type descriptions one stream may send:
// every struct, slice and map type inside the registered types is
// described once per stream, and no registered type needs nearly as many.
// The gob messages that describe a type are counted before gob reads
// them; descriptions that gob reads inside a value message (of a concrete
// type in an interface field, even one it skips) are counted after the
// value, in what the decoder keeps (gobHeldTypes).
const maxGobTypeDefs = 1024

// gobWireTypes is the index of gob.Decoder's field wireType: the map of
// every type description the decoder keeps, however it came. gob does
// not export it; nil if this Go's gob has no such map, and then only the
// descriptions in messages of their own are bounded
// (TestGobTypesInsideValuesAreBounded fails).
var gobWireTypes = func() []int {
	f, ok := reflect.TypeFor[gob.Decoder]().FieldByName("wireType")
	if !ok || f.Type.Kind() != reflect.Map {
		return nil
	}
	return f.Index
}()

// gobHeldTypes returns how many type descriptions dec keeps.
func gobHeldTypes(dec *gob.Decoder) int {
	if gobWireTypes == nil {
		return 0
	}
	return reflect.ValueOf(dec).Elem().FieldByIndex(gobWireTypes).Len()
}

// gobBasics returns the values whose types every GobCodec registers, the
// ones gob registers for interface values.
func gobBasics() []any {
	return []any{
		false, int(0), int8(0), int16(0), int32(0), int64(0),
		uint(0), uint8(0), uint16(0), uint32(0), uint64(0), uintptr(0),
		float32(0), float64(0), complex64(0), complex128(0), "",
		[]bool(nil), []int(nil), []int8(nil), []int16(nil), []int32(nil), []int64(nil),
		[]uint(nil), []uint8(nil), []uint16(nil), []uint32(nil), []uint64(nil), []uintptr(nil),
		[]float32(nil), []float64(nil), []complex64(nil), []complex128(nil), []string(nil),
	}
}

// NewGobCodec returns a gob codec that sends values of the given values'
// types, and of Go's basic types; flat struct types among them go without
// gob (see GobCodec). A type registered twice is registered once. It
// returns an error wrapping ErrEncode if a value is nil, if gob cannot
// encode its type (a channel, a func, a struct without exported fields),
// if its type's name is longer than the 1024 bytes a peer reads,
// or if two different types have the same name.
func NewGobCodec(types ...any) (*GobCodec, error) { return newGobCodec(true, types) }

// NewFastGobCodec is NewGobCodec.
//
// Deprecated: NewGobCodec sends flat struct types without gob, as
// NewFastGobCodec did when NewGobCodec did not; use NewGobCodec.
func NewFastGobCodec(types ...any) (*GobCodec, error) { return NewGobCodec(types...) }

// newGobCodec makes a GobCodec; flat false makes one that sends every type
// through gob, as NewGobCodec did before flat structs were its default
// (tests use it for gob's frames and as the reference of the fast path).
func newGobCodec(flat bool, types []any) (*GobCodec, error) {
	basics := gobBasics()
	c := &GobCodec{
		byName: make(map[string]*gobType, len(basics)+len(types)),
		byType: make(map[reflect.Type]*gobType, len(basics)+len(types)),
		flat:   flat,
	}
	for _, v := range basics {
		if err := c.register(v); err != nil {
			return nil, err
		}
	}
	for _, v := range types {
		if err := c.register(v); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *GobCodec) register(v any) error {
	if v == nil {
		return fmt.Errorf("%w: cannot register nil: its type is unknown", ErrEncode)
	}
	rt := reflect.TypeOf(v)
	if _, ok := c.byType[rt]; ok {
		return nil
	}
	name := gobTypeName(rt)
	if len(name) > maxGobTypeName {
		return fmt.Errorf("%w: the name of type %.40s... is %d bytes, limit %d: peers refuse it", ErrEncode, name, len(name), maxGobTypeName)
	}
	if other, ok := c.byName[name]; ok {
		return fmt.Errorf("%w: types %v and %v have the same name %q", ErrEncode, other.typ, rt, name)
	}
	sample := reflect.Zero(rt)
	if rt.Kind() == reflect.Pointer {
		sample = reflect.New(rt.Elem())
	}
	if err := trialEncode(sample); err != nil {
		return fmt.Errorf("%w: cannot register %s: %w", ErrEncode, name, err)
	}
	t := &gobType{name: name, typ: rt, holdMap: holdsMap(rt, map[reflect.Type]bool{})}
	if c.flat {
		t.flat = flatFields(rt)
	}
	c.byName[name] = t
	c.byType[rt] = t
	c.shadow = c.shadow || t.holdMap
	return nil
}

// Check reports the values the codec refuses before encoding them: a type
// it does not register, and a nil pointer.
func (c *GobCodec) Check(v any) error {
	if v == nil {
		return nil
	}
	rt := reflect.TypeOf(v)
	t := c.byType[rt]
	if t == nil {
		return fmt.Errorf("%w: type %s is not registered with the codec", ErrEncode, gobTypeName(rt))
	}
	if rt.Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil() {
		return fmt.Errorf("%w: nil %s", ErrEncode, t.name)
	}
	return nil
}

// Name returns "gob".
func (c *GobCodec) Name() string { return "gob" }

// NewEncoder returns the encoder for one stream. It is not safe for
// concurrent use.
func (c *GobCodec) NewEncoder() Encoder {
	e := &gobEncoder{c: c, ids: make(map[reflect.Type]uint64)}
	e.enc = gob.NewEncoder(&e.w)
	return e
}

// NewDecoder returns the decoder for one stream. It is not safe for
// concurrent use.
func (c *GobCodec) NewDecoder() Decoder {
	return &gobDecoder{c: c}
}

// gobEncoder is one stream's encoder.
type gobEncoder struct {
	c   *GobCodec
	w   sliceWriter  // enc's output: the caller's dst during an Encode
	enc *gob.Encoder // long-lived: sends each type description once
	// ids are the stream's type ids of the types sent so far.
	ids map[reflect.Type]uint64
	// reset marks the next output as a reset frame: enc was replaced
	// after a failure and the peer must start a fresh decoder too.
	reset bool
	// last caches the type of the previous value and its stream id
	// (streams mostly carry one type): two map lookups saved per value.
	lastType reflect.Type
	lastT    *gobType
	lastID   uint64
	// run is the []T slice runs of runT are encoded from, kept between
	// runs (zeroed) so that a run costs no allocation of its own.
	runT *gobType
	run  reflect.Value
}

// Reset starts the stream's encoding over, as after a failure: the caller
// discarded output the peer will never see (for example a message over the
// size limit), so the next output tells the peer to start a fresh decoder.
func (e *gobEncoder) Reset() {
	e.enc = gob.NewEncoder(&e.w)
	clear(e.ids)
	e.lastType, e.lastT, e.lastID = nil, nil, 0
	e.reset = true
}

func (e *gobEncoder) Encode(dst []byte, v any) ([]byte, error) {
	marker := gobContinue
	if e.reset {
		marker = gobReset
	}
	if v == nil {
		e.reset = false
		return append(dst, marker, 0), nil
	}
	rv := reflect.ValueOf(v)
	var (
		t     *gobType
		id    uint64
		known bool
	)
	if rt := rv.Type(); rt == e.lastType {
		t, id, known = e.lastT, e.lastID, true
	} else {
		t = e.c.byType[rt]
		if t == nil {
			return dst, fmt.Errorf("%w: type %s is not registered with the codec", ErrEncode, gobTypeName(rt))
		}
		id, known = e.ids[t.typ]
	}
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return dst, fmt.Errorf("%w: nil %s", ErrEncode, t.name)
	}
	if t.flat != nil {
		return e.encodeFlat(dst, marker|gobFlat, t, id, known, rv), nil
	}
	if !known {
		// The stream's first value of this type: find out on a scratch
		// encoder whether it encodes, leaving the stream's encoder clean.
		if err := trialEncode(rv); err != nil {
			return dst, fmt.Errorf("%w: %s: %w", ErrEncode, t.name, err)
		}
		id = uint64(len(e.ids)) + 1
	}
	out := appendFrameHeader(dst, marker, id, known, t.name)
	e.w.b = out
	err := encodeValue(e.enc, rv)
	out, e.w.b = e.w.b, nil
	if err != nil {
		// gob may have recorded descriptions it never delivered: start a
		// new encoder and make the peer start a new decoder.
		e.Reset()
		return dst, fmt.Errorf("%w: %s: %w", ErrEncode, t.name, err)
	}
	if !known {
		e.ids[t.typ] = id
	}
	e.lastType, e.lastT, e.lastID = t.typ, t, id
	e.reset = false
	return out, nil
}

// EncodeRun encodes vs, values of one registered type that the stream has
// sent before, as one gob []T value, or for a flat type as their fields
// back to back. It declines (false) a type new to the stream, a nil
// pointer and a pending reset, and leaves those to Encode. A gob failure
// resets the stream as Encode does; the caller then encodes the values one
// by one, so the failing value fails alone.
func (e *gobEncoder) EncodeRun(dst []byte, vs []any) ([]byte, bool, error) {
	if len(vs) < 2 || vs[0] == nil || e.reset {
		return dst, false, nil
	}
	rt := reflect.TypeOf(vs[0])
	var (
		t     *gobType
		id    uint64
		known bool
	)
	if rt == e.lastType {
		t, id, known = e.lastT, e.lastID, true
	} else if t = e.c.byType[rt]; t != nil {
		id, known = e.ids[t.typ]
	}
	if !known {
		return dst, false, nil
	}
	if t.flat != nil {
		return e.encodeFlatRun(dst, t, id, vs)
	}
	if e.runT != t || e.run.Cap() < len(vs) {
		e.runT = t
		e.run = reflect.MakeSlice(reflect.SliceOf(t.typ), len(vs), max(len(vs), 64))
	}
	sv := e.run.Slice(0, len(vs))
	defer sv.Clear() // drop the references to the caller's values
	for i, v := range vs {
		rv := reflect.ValueOf(v)
		if rv.Type() != t.typ || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
			return dst, false, nil
		}
		sv.Index(i).Set(rv)
	}
	out := appendFrameHeader(dst, gobRun, id, true, "")
	e.w.b = out
	err := encodeValue(e.enc, sv)
	out, e.w.b = e.w.b, nil
	if err != nil {
		e.Reset()
		return dst, false, fmt.Errorf("%w: run of %d %s: %w", ErrEncode, len(vs), t.name, err)
	}
	e.lastType, e.lastT, e.lastID = t.typ, t, id
	return out, true, nil
}

// encodeFlatRun encodes a run of a flat type: the frame header, then each
// value's fields, back to back.
func (e *gobEncoder) encodeFlatRun(dst []byte, t *gobType, id uint64, vs []any) ([]byte, bool, error) {
	for _, v := range vs {
		if reflect.TypeOf(v) != t.typ {
			return dst, false, nil
		}
	}
	out := appendFrameHeader(dst, gobRun|gobFlat, id, true, "")
	for _, v := range vs {
		out = appendFlat(out, t.flat, reflect.ValueOf(v))
	}
	e.lastType, e.lastT, e.lastID = t.typ, t, id
	return out, true, nil
}

// appendFrameHeader appends a frame's marker and type id, and the type's
// name on its first use in the stream (!known).
func appendFrameHeader(dst []byte, marker byte, id uint64, known bool, name string) []byte {
	out := append(dst, marker)
	out = binary.AppendUvarint(out, id)
	if !known {
		out = binary.AppendUvarint(out, uint64(len(name)))
		out = append(out, name...)
	}
	return out
}

// encodeFlat appends a flat struct value; it cannot fail.
func (e *gobEncoder) encodeFlat(dst []byte, marker byte, t *gobType, id uint64, known bool, rv reflect.Value) []byte {
	if !known {
		id = uint64(len(e.ids)) + 1
	}
	out := appendFrameHeader(dst, marker, id, known, t.name)
	if !known {
		out = appendFlatDescriptor(out, t.flat)
		e.ids[t.typ] = id
	}
	out = appendFlat(out, t.flat, rv)
	e.lastType, e.lastT, e.lastID = t.typ, t, id
	e.reset = false
	return out
}

// trialEncode encodes v with a scratch encoder and discards the output.
func trialEncode(v reflect.Value) error {
	return encodeValue(gob.NewEncoder(io.Discard), v)
}

// encodeValue is enc.EncodeValue with panics (a user's GobEncode or
// MarshalBinary, gob's own) turned into errors.
func encodeValue(enc *gob.Encoder, v reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return enc.EncodeValue(v)
}

// gobDecoder is one stream's decoder.
type gobDecoder struct {
	c   *GobCodec
	r   sliceReader  // dec's input: the current frame's gob messages
	dec *gob.Decoder // long-lived; nil until the first frame or a reset
	// shadow discards each value before dec decodes it, proving that
	// every count in it is backed by bytes (see GobCodec); nil unless
	// the codec has a type holding a map.
	sr     sliceReader
	shadow *gob.Decoder
	types  []*gobType // the stream's type ids, from 1
	// typeDefs counts the gob type descriptions the stream sent.
	typeDefs int
	plans    []*flatPlan // by type id like types; nil for a type sent by gob
	err      error       // the first failure; the stream is then unusable
	// scratch holds one reusable *T per type to decode into; last and
	// lastPV cache the previous value's type and scratch.
	scratch map[*gobType]reflect.Value
	last    *gobType
	lastPV  reflect.Value
	// runT's *[]T that runs decode into; its elements are zero between
	// runs, so gob reuses the array instead of merging into old values.
	runT  *gobType
	runPV reflect.Value
}

func (d *gobDecoder) Decode(b []byte) (any, error) {
	if d.err != nil {
		return nil, d.err
	}
	v, err := d.decode(b)
	if err != nil {
		d.err = fmt.Errorf("%w: %w", ErrDecode, err)
		return nil, d.err
	}
	return v, nil
}

// DecodeRun decodes a run frame (EncodeRun) of exactly n values.
func (d *gobDecoder) DecodeRun(out []any, b []byte, n int) ([]any, error) {
	if d.err != nil {
		return out, d.err
	}
	out, err := d.decodeRun(out, b, n)
	if err != nil {
		d.err = fmt.Errorf("%w: %w", ErrDecode, err)
		return out, d.err
	}
	return out, nil
}

// header reads a frame's marker and type: t is nil for the nil value, plan
// is set for a flat type, and rest is what follows.
func (d *gobDecoder) header(b []byte) (marker byte, t *gobType, plan *flatPlan, rest []byte, err error) {
	if len(b) == 0 {
		return 0, nil, nil, nil, errors.New("empty frame")
	}
	marker = b[0]
	if marker&^(gobReset|gobFlat|gobRun) != 0 {
		return 0, nil, nil, nil, fmt.Errorf("unknown frame marker %#x", marker)
	}
	if marker&gobReset != 0 {
		d.dec, d.shadow, d.types, d.plans, d.typeDefs = nil, nil, d.types[:0], d.plans[:0], 0
	}
	flat := marker&gobFlat != 0
	b = b[1:]
	id, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, nil, nil, errors.New("bad type id")
	}
	b = b[n:]
	switch {
	case id == 0:
		if flat {
			return 0, nil, nil, nil, errors.New("flat nil")
		}
		return marker, nil, nil, b, nil
	case id <= uint64(len(d.types)):
		t, plan = d.types[id-1], d.plans[id-1]
		if flat != (plan != nil) {
			return 0, nil, nil, nil, errFlatKindMismatched
		}
	case id == uint64(len(d.types))+1 && len(d.types) < len(d.c.byType):
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxGobTypeName || l > uint64(len(b)-n) {
			return 0, nil, nil, nil, errors.New("bad type name length")
		}
		name := string(b[n : n+int(l)])
		b = b[n+int(l):]
		if t = d.c.byName[name]; t == nil {
			return 0, nil, nil, nil, fmt.Errorf("type %q is not registered with the codec", name)
		}
		if flat {
			var err error
			if plan, b, err = readFlatPlan(b, t); err != nil {
				return 0, nil, nil, nil, err
			}
		}
		d.types = append(d.types, t)
		d.plans = append(d.plans, plan)
	default:
		return 0, nil, nil, nil, fmt.Errorf("type id %d out of sequence", id)
	}
	return marker, t, plan, b, nil
}

func (d *gobDecoder) decode(b []byte) (any, error) {
	marker, t, plan, b, err := d.header(b)
	switch {
	case err != nil:
		return nil, err
	case marker&gobRun != 0:
		return nil, errors.New("a run frame where one value was expected")
	case t == nil:
		if len(b) != 0 {
			return nil, fmt.Errorf("%d trailing bytes after nil", len(b))
		}
		return nil, nil
	case plan != nil:
		return d.decodeFlat(t, plan, b)
	}
	// Decode into a zeroed scratch value of the type; Interface then makes
	// the one copy the caller keeps. Zeroing first matters: gob merges into
	// existing values, and the copy must not share the scratch's slices.
	pv := d.scratchFor(t)
	pv.Elem().SetZero()
	if err := d.decodeGob(t, b, pv); err != nil {
		return nil, err
	}
	v := pv.Elem().Interface()
	pv.Elem().SetZero() // drop references to what the caller now owns
	return v, nil
}

func (d *gobDecoder) decodeRun(out []any, b []byte, n int) ([]any, error) {
	marker, t, plan, b, err := d.header(b)
	switch {
	case err != nil:
		return out, err
	case marker&gobRun == 0:
		return out, errors.New("one value where a run frame was expected")
	case t == nil:
		return out, errors.New("a run of nil")
	case plan != nil:
		return d.decodeFlatRun(out, t, plan, b, n)
	}
	// gob would size the slice from its own count and decode every
	// element before the count could be compared with n: a small run of
	// zero values could announce millions. Read the count first.
	if c, err := gobRunCount(b); err != nil {
		return out, fmt.Errorf("%s: %w", t.name, err)
	} else if c != uint64(n) {
		return out, fmt.Errorf("a run of %d %s announced as %d", c, t.name, n)
	}
	if d.runT != t {
		d.runT, d.runPV = t, reflect.New(reflect.SliceOf(t.typ))
	}
	sv := d.runPV.Elem()
	err = d.decodeGob(t, b, d.runPV)
	defer sv.Clear() // drop references to what the caller now owns
	if err != nil {
		return out, err
	}
	if sv.Len() != n {
		return out, fmt.Errorf("a run of %d %s announced as %d", sv.Len(), t.name, n)
	}
	for i := range n {
		out = append(out, sv.Index(i).Interface())
	}
	return out, nil
}

// decodeGob decodes the gob messages b into pv, a pointer to a zeroed
// value: the descriptions of types new to the stream, then the value.
func (d *gobDecoder) decodeGob(t *gobType, b []byte, pv reflect.Value) error {
	defs, err := checkGobMessages(b)
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	// gob keeps every type a peer describes for the life of the stream:
	// a peer that describes new ones without end would grow it without
	// end. Honest streams describe each registered type's parts once.
	if d.typeDefs += defs; d.typeDefs > maxGobTypeDefs {
		return fmt.Errorf("%s: the peer described %d gob types on one stream, limit %d", t.name, d.typeDefs, maxGobTypeDefs)
	}
	if d.c.shadow {
		if d.shadow == nil {
			d.shadow = gob.NewDecoder(&d.sr)
		}
		d.sr.b = b
		err := decodeValue(d.shadow, reflect.Value{})
		rest := len(d.sr.b)
		d.sr.b = nil
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if rest != 0 {
			return fmt.Errorf("%s: %d trailing bytes", t.name, rest)
		}
	}
	if d.dec == nil {
		d.dec = gob.NewDecoder(&d.r)
	}
	d.r.b = b
	err = decodeValue(d.dec, pv)
	rest := len(d.r.b)
	d.r.b = nil
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if rest != 0 {
		return fmt.Errorf("%s: %d trailing bytes", t.name, rest)
	}
	// Descriptions inside the value escaped the count above; the
	// decoder holds them now, and the stream ends here if they are too
	// many (the shadow decoder read the same ones).
	if held := gobHeldTypes(d.dec); held > maxGobTypeDefs {
		return fmt.Errorf("%s: the peer described %d gob types on one stream, limit %d", t.name, held, maxGobTypeDefs)
	}
	return nil
}

// decodeFlatRun decodes n flat values, back to back, that make up all of b.
func (d *gobDecoder) decodeFlatRun(out []any, t *gobType, plan *flatPlan, b []byte, n int) (_ []any, err error) {
	if n > len(b) { // every value takes a byte at least
		return out, fmt.Errorf("a run of %d %s in %d bytes", n, t.name, len(b))
	}
	pv := d.scratchFor(t)
	defer func() {
		if r := recover(); r != nil {
			rethrow(r)
			err = fmt.Errorf("%s: panic decoding a flat value: %v", t.name, r)
		}
		pv.Elem().SetZero()
	}()
	for i := range n {
		pv.Elem().SetZero()
		if b, err = decodeFlatPrefix(plan, b, pv); err != nil {
			return out, fmt.Errorf("%s: run value %d: %w", t.name, i, err)
		}
		out = append(out, pv.Elem().Interface())
	}
	if len(b) != 0 {
		return out, fmt.Errorf("%s: %d trailing bytes after a run of %d", t.name, len(b), n)
	}
	return out, nil
}

// decodeFlat decodes a flat value into the type's zeroed scratch value and
// returns a copy.
func (d *gobDecoder) decodeFlat(t *gobType, plan *flatPlan, b []byte) (v any, err error) {
	pv := d.scratchFor(t)
	defer func() {
		if r := recover(); r != nil {
			rethrow(r)
			err = fmt.Errorf("%s: panic decoding a flat value: %v", t.name, r)
		}
		pv.Elem().SetZero() // drop references to what the caller now owns
	}()
	if err := decodeFlat(plan, b, pv); err != nil {
		return nil, fmt.Errorf("%s: %w", t.name, err)
	}
	return pv.Elem().Interface(), nil
}

// scratchFor returns the zeroed scratch value of t.
func (d *gobDecoder) scratchFor(t *gobType) reflect.Value {
	if t == d.last {
		return d.lastPV
	}
	pv := d.scratch[t]
	if !pv.IsValid() {
		pv = reflect.New(t.typ)
		if d.scratch == nil {
			d.scratch = make(map[*gobType]reflect.Value)
		}
		d.scratch[t] = pv
	}
	d.last, d.lastPV = t, pv
	return pv
}

// decodeValue is dec.DecodeValue with panics turned into errors.
func decodeValue(dec *gob.Decoder, v reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			rethrow(r)
			err = fmt.Errorf("panic in gob: %v", r)
		}
	}()
	return dec.DecodeValue(v)
}

// checkGobMessages checks that b is a non-empty sequence of gob messages,
// each a non-zero length (gob's unsigned integer encoding) followed by that
// many bytes, before gob reads (and allocates for) an announced length. It
// returns how many of them describe a type (a negative type id).
func checkGobMessages(b []byte) (typeDefs int, err error) {
	if len(b) == 0 {
		return 0, errors.New("no gob message")
	}
	for len(b) > 0 {
		n, w := gobUint(b)
		if w == 0 {
			return 0, errors.New("bad gob message length")
		}
		b = b[w:]
		if n == 0 || n > uint64(len(b)) {
			return 0, fmt.Errorf("gob message length %d with %d bytes left", n, len(b))
		}
		if id, w := gobUint(b[:n]); w > 0 && id&1 != 0 { // zig-zag: odd is negative
			typeDefs++
		}
		b = b[n:]
	}
	return typeDefs, nil
}

// gobRunCount returns the element count of the slice a run frame's gob
// messages carry. Like gob's decoder, it takes the first message that does
// not describe a type (a non-negative type id) for the start of the value:
// type id, the singleton field delta 0, then the count. The value may go
// on in later messages: gob ends a message where a value in an interface
// field has a type new to the stream, to describe it (encodeInterface).
func gobRunCount(b []byte) (uint64, error) {
	if _, err := checkGobMessages(b); err != nil {
		return 0, err
	}
	var value []byte
	for len(b) > 0 {
		n, w := gobUint(b)
		msg := b[w : w+int(n)]
		b = b[w+int(n):]
		if id, w := gobUint(msg); w > 0 && id&1 == 0 { // zig-zag: even is non-negative
			value = msg
			break
		}
	}
	id, w := gobUint(value)
	if w == 0 || id == 0 {
		return 0, errors.New("a run frame without a value")
	}
	value = value[w:]
	delta, w := gobUint(value)
	if w == 0 || delta != 0 {
		return 0, errors.New("a run frame whose value is not a slice")
	}
	c, w := gobUint(value[w:])
	if w == 0 {
		return 0, errors.New("a run frame without a count")
	}
	return c, nil
}

// gobUint decodes an unsigned integer in gob's encoding: one byte below
// 0x80, else the negated byte count (at most 8) and big-endian bytes. It
// returns the value and the bytes read, or 0, 0 if b does not hold one.
func gobUint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0] <= 0x7f {
		return uint64(b[0]), 1
	}
	n := -int(int8(b[0]))
	if n > 8 || n >= len(b) {
		return 0, 0
	}
	var x uint64
	for _, c := range b[1 : 1+n] {
		x = x<<8 | uint64(c)
	}
	return x, 1 + n
}

// gobTypeName is the name gob.Register would give rt: the package path
// and name for a named type or a pointer to one, else rt.String().
func gobTypeName(rt reflect.Type) string {
	star, base := "", rt
	if rt.Name() == "" && rt.Kind() == reflect.Pointer {
		star, base = "*", rt.Elem()
	}
	switch {
	case base.Name() == "":
		return rt.String()
	case base.PkgPath() == "":
		return star + base.Name()
	default:
		return star + base.PkgPath() + "." + base.Name()
	}
}

var (
	gobDecoderType        = reflect.TypeFor[gob.GobDecoder]()
	binaryUnmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
)

// holdsMap reports whether gob, decoding a value of type rt, may size a
// map from a count in the input. Types that decode themselves (gob honours
// GobDecoder and BinaryUnmarshaler, not TextUnmarshaler), and values
// behind interfaces, are not gob's to size.
func holdsMap(rt reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[rt] {
		return false
	}
	seen[rt] = true
	pt := reflect.PointerTo(rt)
	if pt.Implements(gobDecoderType) || pt.Implements(binaryUnmarshalerType) {
		return false
	}
	switch rt.Kind() {
	case reflect.Map:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsMap(rt.Elem(), seen)
	case reflect.Struct:
		for i := range rt.NumField() {
			if f := rt.Field(i); f.IsExported() && holdsMap(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// sliceWriter appends what gob writes to b.
type sliceWriter struct {
	b []byte
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// sliceReader reads b. It is an io.ByteReader, so gob reads exactly the
// messages it needs instead of wrapping it in a read-ahead bufio.Reader.
type sliceReader struct {
	b []byte
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *sliceReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}
