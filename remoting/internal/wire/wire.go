// Package wire is the framing of dchan's message streams: the bytes inside
// each gRPC frame of a Messages stream.
//
// A frame is a sequence of records, each a kind byte followed by its fields.
// Client→server frames carry Envelope, Run and Open records; server→client frames
// carry Grant, Accepted, Rejected and Gone records (credits, acknowledgements
// and refusals). Integers are unsigned varints; strings and byte slices are
// a uvarint length followed by the bytes, except an envelope's payload, whose
// length is a fixed 4-byte big-endian prefix so that the codec can append the
// payload in place and the length can be patched afterwards.
//
// Decoding never panics and never allocates beyond the frame: every length is
// checked against the bytes that remain, and the byte fields of a Record
// alias the frame.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Kind identifies a record.
type Kind uint8

// Record kinds.
const (
	// KindEnvelope (client→server): one message for a target actor.
	KindEnvelope Kind = 1
	// KindOpen (client→server): ask for credit to send to a target.
	KindOpen Kind = 2
	// KindRun (client→server): N consecutive messages (Seq, Seq+1, ...)
	// from one sender to one target with the same flags, their values
	// encoded as one unit by the codec (a run).
	KindRun Kind = 3
	// KindGrant (server→client): N credits for a target.
	KindGrant Kind = 16
	// KindAccepted (server→client): the next N messages to a target were
	// accepted into its mailbox; their N credits return to the sender.
	KindAccepted Kind = 17
	// KindRejected (server→client): the next message to a target was
	// refused (Code, Reason); its credit returns to the sender.
	KindRejected Kind = 18
	// KindGone (server→client): the target does not exist (Code, Reason);
	// the link is closed and messages in flight to it were dropped.
	KindGone Kind = 19
)

func (k Kind) String() string {
	switch k {
	case KindEnvelope:
		return "envelope"
	case KindOpen:
		return "open"
	case KindRun:
		return "run"
	case KindGrant:
		return "grant"
	case KindAccepted:
		return "accepted"
	case KindRejected:
		return "rejected"
	case KindGone:
		return "gone"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Envelope flags.
const (
	// FlagReply marks a reply to a Request's reply address: it travels
	// outside flow control (a reply address takes exactly one message and
	// never blocks), needs no link, and is not acknowledged.
	FlagReply uint8 = 1 << 0
	// FlagTagged marks a payload that begins with a tag: a uvarint length
	// and that many opaque bytes, followed by the codec's bytes.
	FlagTagged uint8 = 1 << 1
	// FlagNoValue marks a tagged payload with no codec bytes after the tag
	// (a tag with a nil value).
	FlagNoValue uint8 = 1 << 2
	// FlagTracked marks a message whose sender waits for its outcome (a
	// completion callback): the receiver reports its acceptance with the
	// frame it arrived in. Acceptances of untracked messages may be held
	// back and reported together, up to an eighth of the link's window
	// and for a short while (remoting.AckDelay).
	FlagTracked uint8 = 1 << 3
)

// MaxTagLen bounds a tag.
const MaxTagLen = 64 << 10

// AppendTag appends a tagged payload's tag.
func AppendTag(dst, tag []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tag)))
	return append(dst, tag...)
}

// SplitTag splits a tagged payload into its tag and the codec's bytes; both
// alias payload.
func SplitTag(payload []byte) (tag, rest []byte, err error) {
	n, k := binary.Uvarint(payload)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: bad tag length", ErrMalformed)
	}
	if n > MaxTagLen || n > uint64(len(payload)-k) {
		return nil, nil, fmt.Errorf("%w: tag length %d exceeds the %d bytes left", ErrMalformed, n, len(payload)-k)
	}
	return payload[k : k+int(n) : k+int(n)], payload[k+int(n):], nil
}

// Limits on decoded fields.
const (
	// MaxRunLen bounds the messages of one run.
	MaxRunLen     = 4096
	MaxStringLen  = 4096
	MaxPayloadLen = math.MaxInt32
)

// ErrMalformed reports bytes that are not a valid frame.
var ErrMalformed = errors.New("wire: malformed frame")

// Record is one decoded record. Byte fields alias the frame being read and
// are valid until the frame's buffer is reused.
type Record struct {
	Kind       Kind
	Target     []byte // target actor ID
	SenderNode []byte // envelope: sender PID, empty if none
	SenderID   []byte
	Seq        uint64 // envelope, run: per-target sequence number, from 1 (a run's first)
	Flags      uint8
	N          uint64 // grant, accepted, run: count
	Code       uint8  // rejected, gone
	Reason     []byte // rejected, gone
	Payload    []byte // envelope: the codec's bytes
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// BeginEnvelope appends an envelope's header and a placeholder for its
// payload length. The caller appends the payload, then calls EndEnvelope with
// the returned mark. To abandon the envelope, truncate dst to its length
// before BeginEnvelope.
func BeginEnvelope(dst []byte, target, senderNode, senderID string, seq uint64, flags uint8) (out []byte, mark int) {
	dst = append(dst, byte(KindEnvelope))
	dst = appendString(dst, target)
	dst = appendString(dst, senderNode)
	dst = appendString(dst, senderID)
	dst = binary.AppendUvarint(dst, seq)
	dst = append(dst, flags, 0, 0, 0, 0)
	return dst, len(dst)
}

// BeginRun is BeginEnvelope for a run of n messages, the first numbered
// seq. EndEnvelope ends it.
func BeginRun(dst []byte, target, senderNode, senderID string, seq uint64, n int, flags uint8) (out []byte, mark int) {
	dst = append(dst, byte(KindRun))
	dst = appendString(dst, target)
	dst = appendString(dst, senderNode)
	dst = appendString(dst, senderID)
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = append(dst, flags, 0, 0, 0, 0)
	return dst, len(dst)
}

// EndEnvelope patches the payload length of the envelope begun at mark and
// returns that length.
func EndEnvelope(dst []byte, mark int) int {
	n := len(dst) - mark
	binary.BigEndian.PutUint32(dst[mark-4:mark], uint32(n))
	return n
}

// AppendOpen appends an Open record.
func AppendOpen(dst []byte, target string) []byte {
	return appendString(append(dst, byte(KindOpen)), target)
}

// AppendCount appends a Grant or Accepted record.
func AppendCount(dst []byte, kind Kind, target string, n uint64) []byte {
	dst = appendString(append(dst, byte(kind)), target)
	return binary.AppendUvarint(dst, n)
}

// AppendRefusal appends a Rejected or Gone record.
func AppendRefusal(dst []byte, kind Kind, target string, code uint8, reason string) []byte {
	dst = appendString(append(dst, byte(kind)), target)
	dst = append(dst, code)
	if len(reason) > MaxStringLen {
		reason = reason[:MaxStringLen]
	}
	return appendString(dst, reason)
}

// Reader decodes the records of one frame.
type Reader struct {
	b []byte
}

// NewReader returns a Reader over frame.
func NewReader(frame []byte) *Reader { return &Reader{b: frame} }

// Reset makes r read frame.
func (r *Reader) Reset(frame []byte) { r.b = frame }

// Next decodes the next record into rec. It returns io.EOF after the last
// record and an error wrapping ErrMalformed for invalid bytes.
func (r *Reader) Next(rec *Record) error {
	if len(r.b) == 0 {
		return io.EOF
	}
	*rec = Record{Kind: Kind(r.b[0])}
	r.b = r.b[1:]
	var err error
	switch rec.Kind {
	case KindEnvelope, KindRun:
		if rec.Target, err = r.bytes(); err != nil {
			return err
		}
		if rec.SenderNode, err = r.bytes(); err != nil {
			return err
		}
		if rec.SenderID, err = r.bytes(); err != nil {
			return err
		}
		if rec.Seq, err = r.uvarint(); err != nil {
			return err
		}
		if rec.Kind == KindRun {
			if rec.N, err = r.uvarint(); err != nil {
				return err
			}
			if rec.N == 0 || rec.N > MaxRunLen {
				return fmt.Errorf("%w: a run of %d messages (limit %d)", ErrMalformed, rec.N, MaxRunLen)
			}
		}
		if len(r.b) < 5 {
			return fmt.Errorf("%w: truncated envelope header", ErrMalformed)
		}
		rec.Flags = r.b[0]
		n := binary.BigEndian.Uint32(r.b[1:5])
		r.b = r.b[5:]
		if uint64(n) > uint64(len(r.b)) {
			return fmt.Errorf("%w: payload length %d exceeds the %d bytes left", ErrMalformed, n, len(r.b))
		}
		rec.Payload, r.b = r.b[:n:n], r.b[n:]
	case KindOpen:
		if rec.Target, err = r.bytes(); err != nil {
			return err
		}
	case KindGrant, KindAccepted:
		if rec.Target, err = r.bytes(); err != nil {
			return err
		}
		if rec.N, err = r.uvarint(); err != nil {
			return err
		}
	case KindRejected, KindGone:
		if rec.Target, err = r.bytes(); err != nil {
			return err
		}
		if len(r.b) < 1 {
			return fmt.Errorf("%w: truncated refusal", ErrMalformed)
		}
		rec.Code, r.b = r.b[0], r.b[1:]
		if rec.Reason, err = r.bytes(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown record kind %d", ErrMalformed, uint8(rec.Kind))
	}
	return nil
}

func (r *Reader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrMalformed)
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *Reader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > MaxStringLen || n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: string length %d (limit %d, %d bytes left)", ErrMalformed, n, MaxStringLen, len(r.b))
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b, nil
}
