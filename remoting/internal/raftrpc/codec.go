package raftrpc

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"time"

	"github.com/hashicorp/raft"
)

// Message kinds: the first byte of every request frame and of the message
// part of every response frame. A change to a message's layout gets a new
// kind, so a peer never misreads an old layout as a new one.
const (
	kindAppendEntriesRequest byte = iota + 1
	kindAppendEntriesResponse
	kindRequestVoteRequest
	kindRequestVoteResponse
	kindRequestPreVoteRequest
	kindRequestPreVoteResponse
	kindTimeoutNowRequest
	kindTimeoutNowResponse
	kindInstallSnapshotRequest
	kindInstallSnapshotResponse
)

// minLogSize is the fewest bytes one encoded raft.Log can take (six fields
// of at least one byte). It bounds the entry count a frame can announce.
const minLogSize = 6

// writer appends the wire encoding of values to a byte slice.
type writer struct {
	b []byte
}

func (w *writer) byte(v byte)      { w.b = append(w.b, v) }
func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }

func (w *writer) bool(v bool) {
	if v {
		w.byte(1)
		return
	}
	w.byte(0)
}

// bytes writes nil as 0 and any other slice as len+1 followed by its
// bytes, so nil and empty slices survive the round trip.
func (w *writer) bytes(v []byte) {
	if v == nil {
		w.uvarint(0)
		return
	}
	w.uvarint(uint64(len(v)) + 1)
	w.b = append(w.b, v...)
}

// time writes the zero time as 0 and any other as 1, Unix seconds
// (varint) and nanoseconds (uvarint).
func (w *writer) time(t time.Time) {
	if t.IsZero() {
		w.byte(0)
		return
	}
	w.byte(1)
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

func (w *writer) header(h *raft.RPCHeader) {
	w.varint(int64(h.ProtocolVersion))
	w.bytes(h.ID)
	w.bytes(h.Addr)
}

func (w *writer) log(l *raft.Log) {
	w.uvarint(l.Index)
	w.uvarint(l.Term)
	w.byte(byte(l.Type))
	w.bytes(l.Data)
	w.bytes(l.Extensions)
	w.time(l.AppendedAt)
}

// reader decodes what writer wrote. The first error sticks: later reads
// return zero values, so a decoder checks r.err once at the end. No read
// allocates more than the bytes that remain in the frame.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int decodes a varint that must fit a Go int (ProtocolVersion,
// SnapshotVersion) and be small and non-negative.
func (r *reader) int(what string) int {
	v := r.varint()
	if v < 0 || v > 1<<20 {
		r.fail("%s %d out of range", what, v)
		return 0
	}
	return int(v)
}

func (r *reader) bool() bool {
	switch v := r.byte(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail("bad bool %d", v)
		return false
	}
}

// bytes returns a sub-slice of the frame (capacity clipped, so appending to
// it never overwrites the frame): rawcodec hands every frame its own
// buffer, so aliasing it is safe and saves a copy per field.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(r.b)) {
		r.fail("length %d beyond the %d bytes left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) time() time.Time {
	switch v := r.byte(); v {
	case 0:
		return time.Time{}
	case 1:
		sec := r.varint()
		nsec := r.uvarint()
		if nsec >= uint64(time.Second) {
			r.fail("nanoseconds %d out of range", nsec)
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec))
	default:
		r.fail("bad time marker %d", v)
		return time.Time{}
	}
}

func (r *reader) header(h *raft.RPCHeader) {
	h.ProtocolVersion = raft.ProtocolVersion(r.int("protocol version"))
	h.ID = r.bytes()
	h.Addr = r.bytes()
}

func (r *reader) log(l *raft.Log) {
	l.Index = r.uvarint()
	l.Term = r.uvarint()
	l.Type = raft.LogType(r.byte())
	l.Data = r.bytes()
	l.Extensions = r.bytes()
	l.AppendedAt = r.time()
}

func (r *reader) logs() []*raft.Log {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)/minLogSize) {
		r.fail("%d entries cannot fit in %d bytes", n, len(r.b))
		return nil
	}
	logs := make([]*raft.Log, n)
	backing := make([]raft.Log, n)
	for i := range logs {
		r.log(&backing[i])
		logs[i] = &backing[i]
	}
	if r.err != nil {
		return nil
	}
	return logs
}

// finish reports the first error, or trailing bytes after the message.
func (r *reader) finish() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// encodeMessage appends m, a pointer to one of raft's RPC structs, to dst
// as a kind byte followed by its fields in declaration order.
func encodeMessage(dst []byte, m any) ([]byte, error) {
	if v := reflect.ValueOf(m); v.Kind() == reflect.Pointer && v.IsNil() {
		return dst, fmt.Errorf("raftrpc: cannot encode nil %T", m)
	}
	w := writer{b: dst}
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		w.byte(kindAppendEntriesRequest)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.bytes(m.Leader)
		w.uvarint(m.PrevLogEntry)
		w.uvarint(m.PrevLogTerm)
		w.uvarint(uint64(len(m.Entries)))
		for _, l := range m.Entries {
			if l == nil {
				return dst, fmt.Errorf("raftrpc: nil log entry in AppendEntries")
			}
			w.log(l)
		}
		w.uvarint(m.LeaderCommitIndex)
	case *raft.AppendEntriesResponse:
		w.byte(kindAppendEntriesResponse)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.uvarint(m.LastLog)
		w.bool(m.Success)
		w.bool(m.NoRetryBackoff)
	case *raft.RequestVoteRequest:
		w.byte(kindRequestVoteRequest)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.bytes(m.Candidate)
		w.uvarint(m.LastLogIndex)
		w.uvarint(m.LastLogTerm)
		w.bool(m.LeadershipTransfer)
	case *raft.RequestVoteResponse:
		w.byte(kindRequestVoteResponse)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.bytes(m.Peers)
		w.bool(m.Granted)
	case *raft.RequestPreVoteRequest:
		w.byte(kindRequestPreVoteRequest)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.uvarint(m.LastLogIndex)
		w.uvarint(m.LastLogTerm)
	case *raft.RequestPreVoteResponse:
		w.byte(kindRequestPreVoteResponse)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.bool(m.Granted)
	case *raft.TimeoutNowRequest:
		w.byte(kindTimeoutNowRequest)
		w.header(&m.RPCHeader)
	case *raft.TimeoutNowResponse:
		w.byte(kindTimeoutNowResponse)
		w.header(&m.RPCHeader)
	case *raft.InstallSnapshotRequest:
		if m.Size < 0 {
			return dst, fmt.Errorf("raftrpc: negative snapshot size %d", m.Size)
		}
		w.byte(kindInstallSnapshotRequest)
		w.header(&m.RPCHeader)
		w.varint(int64(m.SnapshotVersion))
		w.uvarint(m.Term)
		w.bytes(m.Leader)
		w.uvarint(m.LastLogIndex)
		w.uvarint(m.LastLogTerm)
		w.bytes(m.Peers)
		w.bytes(m.Configuration)
		w.uvarint(m.ConfigurationIndex)
		w.varint(m.Size)
	case *raft.InstallSnapshotResponse:
		w.byte(kindInstallSnapshotResponse)
		w.header(&m.RPCHeader)
		w.uvarint(m.Term)
		w.bool(m.Success)
	default:
		return dst, fmt.Errorf("raftrpc: cannot encode %T", m)
	}
	return w.b, nil
}

// decodeMessage decodes a frame written by encodeMessage into m, which
// must point to the raft struct the frame's kind names. The whole frame
// must be consumed. Byte fields alias b.
func decodeMessage(b []byte, m any) error {
	r := reader{b: b}
	kind := r.byte()
	want := byte(0)
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		want = kindAppendEntriesRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.Leader = r.bytes()
		m.PrevLogEntry = r.uvarint()
		m.PrevLogTerm = r.uvarint()
		m.Entries = r.logs()
		m.LeaderCommitIndex = r.uvarint()
	case *raft.AppendEntriesResponse:
		want = kindAppendEntriesResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.LastLog = r.uvarint()
		m.Success = r.bool()
		m.NoRetryBackoff = r.bool()
	case *raft.RequestVoteRequest:
		want = kindRequestVoteRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.Candidate = r.bytes()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
		m.LeadershipTransfer = r.bool()
	case *raft.RequestVoteResponse:
		want = kindRequestVoteResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.Peers = r.bytes()
		m.Granted = r.bool()
	case *raft.RequestPreVoteRequest:
		want = kindRequestPreVoteRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
	case *raft.RequestPreVoteResponse:
		want = kindRequestPreVoteResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.Granted = r.bool()
	case *raft.TimeoutNowRequest:
		want = kindTimeoutNowRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
	case *raft.TimeoutNowResponse:
		want = kindTimeoutNowResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
	case *raft.InstallSnapshotRequest:
		want = kindInstallSnapshotRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.SnapshotVersion = raft.SnapshotVersion(r.int("snapshot version"))
		m.Term = r.uvarint()
		m.Leader = r.bytes()
		m.LastLogIndex = r.uvarint()
		m.LastLogTerm = r.uvarint()
		m.Peers = r.bytes()
		m.Configuration = r.bytes()
		m.ConfigurationIndex = r.uvarint()
		m.Size = r.varint()
		if m.Size < 0 {
			r.fail("negative snapshot size %d", m.Size)
		}
	case *raft.InstallSnapshotResponse:
		want = kindInstallSnapshotResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.uvarint()
		m.Success = r.bool()
	default:
		return fmt.Errorf("raftrpc: cannot decode into %T", m)
	}
	if r.err == nil && kind != want {
		r.fail("message kind %d, want %d", kind, want)
	}
	return r.finish()
}

// encodeResponse builds a response frame: the peer Raft's error text
// (empty for none) followed by the encoded response message. When Raft
// answered with no response or one of another type (it does so for
// commands it does not know), zero is the zero value of the expected type.
func encodeResponse(resp any, rpcErr error, zero any) ([]byte, error) {
	w := writer{}
	msg := ""
	if rpcErr != nil {
		msg = rpcErr.Error()
		if msg == "" {
			msg = "unknown error"
		}
	}
	w.bytes([]byte(msg))
	if v := reflect.ValueOf(resp); !v.IsValid() || v.Type() != reflect.TypeOf(zero) || v.IsNil() {
		resp = zero
	}
	return encodeMessage(w.b, resp)
}

// decodeResponse decodes a frame built by encodeResponse into resp and
// returns the peer Raft's error text ("" for none). A malformed frame is
// reported as err.
func decodeResponse(b []byte, resp any) (remoteMsg string, err error) {
	r := reader{b: b}
	msg := r.bytes()
	if r.err != nil {
		return "", r.err
	}
	if err := decodeMessage(r.b, resp); err != nil {
		return "", err
	}
	return string(msg), nil
}

// remoteError turns a peer's error text into an error wrapping ErrRemote,
// or nil for "".
func remoteError(msg string) error {
	if msg == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRemote, msg)
}
