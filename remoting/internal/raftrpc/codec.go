package raftrpc

import (
	"fmt"
	"reflect"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dchan-io/dchan/internal/bin"
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

// maxEntries bounds the log entries of one AppendEntries: hashicorp/raft's
// own ceiling for MaxAppendEntries. Without it a 4 MiB frame of minimal
// entries would decode to some 700,000 raft.Log values (about 120 MiB).
const maxEntries = 1024

// writer appends the wire encoding of values to a byte slice: internal/bin's
// encodings plus the raft types'.
type writer struct {
	bin.Writer
}

// bytes writes nil as 0 and any other slice as len+1 followed by its
// bytes, so nil and empty slices survive the round trip.
func (w *writer) bytes(v []byte) {
	if v == nil {
		w.Uvarint(0)
		return
	}
	w.Uvarint(uint64(len(v)) + 1)
	w.B = append(w.B, v...)
}

// time writes the zero time as 0 and any other as 1, Unix seconds
// (varint) and nanoseconds (uvarint).
func (w *writer) time(t time.Time) {
	if t.IsZero() {
		w.Byte(0)
		return
	}
	w.Byte(1)
	w.Varint(t.Unix())
	w.Uvarint(uint64(t.Nanosecond()))
}

func (w *writer) header(h *raft.RPCHeader) {
	w.Varint(int64(h.ProtocolVersion))
	w.bytes(h.ID)
	w.bytes(h.Addr)
}

func (w *writer) log(l *raft.Log) {
	w.Uvarint(l.Index)
	w.Uvarint(l.Term)
	w.Byte(byte(l.Type))
	w.bytes(l.Data)
	w.bytes(l.Extensions)
	w.time(l.AppendedAt)
}

// reader decodes what writer wrote, with internal/bin's Reader: the first
// error sticks and later reads return zero values, so a decoder checks
// Err once at the end. No read allocates more than the bytes that remain
// in the frame.
type reader struct {
	bin.Reader
}

func newReader(b []byte) *reader { return &reader{Reader: *bin.NewReader(b, ErrMalformed)} }

// int decodes a varint that must fit a Go int (ProtocolVersion,
// SnapshotVersion) and be small and non-negative.
func (r *reader) int(what string) int {
	v := r.Varint()
	if v < 0 || v > 1<<20 {
		r.Fail("%s %d out of range", what, v)
		return 0
	}
	return int(v)
}

// bytes returns a sub-slice of the frame (capacity clipped, so appending to
// it never overwrites the frame): rawcodec hands every frame its own
// buffer, so aliasing it is safe and saves a copy per field.
func (r *reader) bytes() []byte {
	n := r.Uvarint()
	if r.Err() != nil || n == 0 {
		return nil
	}
	return r.Take(n - 1)
}

func (r *reader) time() time.Time {
	switch v := r.Byte(); v {
	case 0:
		return time.Time{}
	case 1:
		sec := r.Varint()
		nsec := r.Uvarint()
		if nsec >= uint64(time.Second) {
			r.Fail("nanoseconds %d out of range", nsec)
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec))
	default:
		r.Fail("bad time marker %d", v)
		return time.Time{}
	}
}

func (r *reader) header(h *raft.RPCHeader) {
	h.ProtocolVersion = raft.ProtocolVersion(r.int("protocol version"))
	h.ID = r.bytes()
	h.Addr = r.bytes()
}

func (r *reader) log(l *raft.Log) {
	l.Index = r.Uvarint()
	l.Term = r.Uvarint()
	l.Type = raft.LogType(r.Byte())
	l.Data = r.bytes()
	l.Extensions = r.bytes()
	l.AppendedAt = r.time()
}

func (r *reader) logs() []*raft.Log {
	n := r.Count("log entries", minLogSize)
	if r.Err() != nil || n == 0 {
		return nil
	}
	if n > maxEntries {
		r.Fail("%d log entries, limit %d", n, maxEntries)
		return nil
	}
	logs := make([]*raft.Log, n)
	backing := make([]raft.Log, n)
	for i := range logs {
		r.log(&backing[i])
		logs[i] = &backing[i]
	}
	if r.Err() != nil {
		return nil
	}
	return logs
}

// finish reports the first error, or trailing bytes after the message.
func (r *reader) finish() error {
	r.End()
	return r.Err()
}

// encodeMessage appends m, a pointer to one of raft's RPC structs, to dst
// as a kind byte followed by its fields in declaration order.
func encodeMessage(dst []byte, m any) ([]byte, error) {
	if v := reflect.ValueOf(m); v.Kind() == reflect.Pointer && v.IsNil() {
		return dst, fmt.Errorf("raftrpc: cannot encode nil %T", m)
	}
	w := writer{Writer: bin.Writer{B: dst}}
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		w.Byte(kindAppendEntriesRequest)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		//lint:ignore SA1019 peers of raft protocol versions before 3 read it
		w.bytes(m.Leader)
		w.Uvarint(m.PrevLogEntry)
		w.Uvarint(m.PrevLogTerm)
		w.Uvarint(uint64(len(m.Entries)))
		for _, l := range m.Entries {
			if l == nil {
				return dst, fmt.Errorf("raftrpc: nil log entry in AppendEntries")
			}
			w.log(l)
		}
		w.Uvarint(m.LeaderCommitIndex)
	case *raft.AppendEntriesResponse:
		w.Byte(kindAppendEntriesResponse)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		w.Uvarint(m.LastLog)
		w.Bool(m.Success)
		w.Bool(m.NoRetryBackoff)
	case *raft.RequestVoteRequest:
		w.Byte(kindRequestVoteRequest)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		//lint:ignore SA1019 peers of raft protocol versions before 3 read it
		w.bytes(m.Candidate)
		w.Uvarint(m.LastLogIndex)
		w.Uvarint(m.LastLogTerm)
		w.Bool(m.LeadershipTransfer)
	case *raft.RequestVoteResponse:
		w.Byte(kindRequestVoteResponse)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		w.bytes(m.Peers)
		w.Bool(m.Granted)
	case *raft.RequestPreVoteRequest:
		w.Byte(kindRequestPreVoteRequest)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		w.Uvarint(m.LastLogIndex)
		w.Uvarint(m.LastLogTerm)
	case *raft.RequestPreVoteResponse:
		w.Byte(kindRequestPreVoteResponse)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		w.Bool(m.Granted)
	case *raft.TimeoutNowRequest:
		w.Byte(kindTimeoutNowRequest)
		w.header(&m.RPCHeader)
	case *raft.TimeoutNowResponse:
		w.Byte(kindTimeoutNowResponse)
		w.header(&m.RPCHeader)
	case *raft.InstallSnapshotRequest:
		if m.Size < 0 {
			return dst, fmt.Errorf("raftrpc: negative snapshot size %d", m.Size)
		}
		w.Byte(kindInstallSnapshotRequest)
		w.header(&m.RPCHeader)
		w.Varint(int64(m.SnapshotVersion))
		w.Uvarint(m.Term)
		w.bytes(m.Leader)
		w.Uvarint(m.LastLogIndex)
		w.Uvarint(m.LastLogTerm)
		w.bytes(m.Peers)
		w.bytes(m.Configuration)
		w.Uvarint(m.ConfigurationIndex)
		w.Varint(m.Size)
	case *raft.InstallSnapshotResponse:
		w.Byte(kindInstallSnapshotResponse)
		w.header(&m.RPCHeader)
		w.Uvarint(m.Term)
		w.Bool(m.Success)
	default:
		return dst, fmt.Errorf("raftrpc: cannot encode %T", m)
	}
	return w.B, nil
}

// decodeMessage decodes a frame written by encodeMessage into m, which
// must point to the raft struct the frame's kind names. The whole frame
// must be consumed. Byte fields alias b.
func decodeMessage(b []byte, m any) error {
	r := newReader(b)
	kind := r.Byte()
	want := byte(0)
	switch m := m.(type) {
	case *raft.AppendEntriesRequest:
		want = kindAppendEntriesRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		//lint:ignore SA1019 peers of raft protocol versions before 3 send it
		m.Leader = r.bytes()
		m.PrevLogEntry = r.Uvarint()
		m.PrevLogTerm = r.Uvarint()
		m.Entries = r.logs()
		m.LeaderCommitIndex = r.Uvarint()
	case *raft.AppendEntriesResponse:
		want = kindAppendEntriesResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		m.LastLog = r.Uvarint()
		m.Success = r.Bool()
		m.NoRetryBackoff = r.Bool()
	case *raft.RequestVoteRequest:
		want = kindRequestVoteRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		//lint:ignore SA1019 peers of raft protocol versions before 3 send it
		m.Candidate = r.bytes()
		m.LastLogIndex = r.Uvarint()
		m.LastLogTerm = r.Uvarint()
		m.LeadershipTransfer = r.Bool()
	case *raft.RequestVoteResponse:
		want = kindRequestVoteResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		m.Peers = r.bytes()
		m.Granted = r.Bool()
	case *raft.RequestPreVoteRequest:
		want = kindRequestPreVoteRequest
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		m.LastLogIndex = r.Uvarint()
		m.LastLogTerm = r.Uvarint()
	case *raft.RequestPreVoteResponse:
		want = kindRequestPreVoteResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		m.Granted = r.Bool()
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
		m.Term = r.Uvarint()
		m.Leader = r.bytes()
		m.LastLogIndex = r.Uvarint()
		m.LastLogTerm = r.Uvarint()
		m.Peers = r.bytes()
		m.Configuration = r.bytes()
		m.ConfigurationIndex = r.Uvarint()
		m.Size = r.Varint()
		if m.Size < 0 {
			r.Fail("negative snapshot size %d", m.Size)
		}
	case *raft.InstallSnapshotResponse:
		want = kindInstallSnapshotResponse
		if kind != want {
			break
		}
		r.header(&m.RPCHeader)
		m.Term = r.Uvarint()
		m.Success = r.Bool()
	default:
		return fmt.Errorf("raftrpc: cannot decode into %T", m)
	}
	if r.Err() == nil && kind != want {
		r.Fail("message kind %d, want %d", kind, want)
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
	return encodeMessage(w.B, resp)
}

// decodeResponse decodes a frame built by encodeResponse into resp and
// returns the peer Raft's error text ("" for none). A malformed frame is
// reported as err.
func decodeResponse(b []byte, resp any) (remoteMsg string, err error) {
	r := newReader(b)
	msg := r.bytes()
	if r.Err() != nil {
		return "", r.Err()
	}
	if err := decodeMessage(r.Rest(), resp); err != nil {
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
