package remoting

// Codec turns message values into bytes and back. It makes one Encoder and
// one Decoder per stream; each sees that stream's values in order, so a
// codec may keep state across values (gob sends a type's description once
// per stream).
//
// A Codec is shared by all of a node's streams and must be safe for
// concurrent use; the Encoders and Decoders it makes are used by one
// goroutine at a time. GobCodec is the default.
type Codec interface {
	// Name identifies the codec's wire format. Both ends of a stream must
	// use codecs with the same name.
	Name() string
	// NewEncoder returns the encoder for one new outgoing stream.
	NewEncoder() Encoder
	// NewDecoder returns the decoder for one new incoming stream.
	NewDecoder() Decoder
}

// Encoder encodes one stream's values, in order.
type Encoder interface {
	// Encode appends v's encoding to dst. If it fails, it returns an error
	// wrapping ErrEncode, leaves dst's contents unchanged, and stays
	// usable: later values still decode correctly with the stream's
	// Decoder.
	Encode(dst []byte, v any) ([]byte, error)
}

// Decoder decodes one stream's values, in order.
type Decoder interface {
	// Decode decodes one value produced by the peer's Encoder, in order.
	// b must hold exactly one Encode output; Decode does not retain b. An
	// error wraps ErrDecode; the stream is then unusable.
	Decode(b []byte) (any, error)
}

// Checker is an optional Codec extension: Check reports, without encoding,
// whether the codec could not encode v, with an error wrapping ErrEncode
// (GobCodec: its type is not registered, or it is a nil pointer). Streams
// encode on their writer, after Send has returned; Send calls Check first,
// so that those failures still fail Send itself. Check must be safe for
// concurrent use.
type Checker interface {
	Check(v any) error
}

// RunEncoder is an Encoder that can also encode a run of values of one
// dynamic type as one unit, cheaper per value than encoding them one by
// one (GobCodec encodes a run as one gob slice: gob's per-value framing and
// type lookups are paid once per run). The stream's writer uses it for
// consecutive messages to one target; decoders of such a codec must
// implement RunDecoder.
type RunEncoder interface {
	Encoder
	// EncodeRun appends the encoding of vs — at least two values, all of
	// one dynamic type — as one unit, and reports whether it did. It
	// returns dst, false, nil when it does not encode runs of that type
	// (the caller then encodes the values one by one). On an error it
	// behaves as Encode does: dst unchanged, the encoder still usable.
	EncodeRun(dst []byte, vs []any) ([]byte, bool, error)
}

// RunDecoder decodes the units a RunEncoder writes.
type RunDecoder interface {
	Decoder
	// DecodeRun decodes one EncodeRun output that holds exactly n values
	// and appends them to out, in order. Errors are as for Decode.
	DecodeRun(out []any, b []byte, n int) ([]any, error)
}

// Tagged is a message value with a tag: opaque bytes that travel beside the
// value, outside the codec. A layer above remoting uses it for a header of
// its own (the channel package's gossip does) without registering a wrapper
// type with the codec — the value inside keeps the stream codec's compact
// encoding. The target actor receives a Tagged with the same tag and the
// decoded value; Value may be nil, for a tag alone.
//
// The tag counts toward the maximum message size and may be at most 64 KiB.
// Do not modify it after sending: a local target receives it as is.
type Tagged struct {
	Tag   []byte
	Value any
}
