package raftrpc

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testHeader() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("node-1"), Addr: []byte("127.0.0.1:7000")}
}

// codecCases lists every message with all fields set, and each message's
// zero value.
func codecCases() []struct {
	name string
	msg  any
} {
	at := time.Unix(1_700_000_000, 123_456_789)
	return []struct {
		name string
		msg  any
	}{
		{"AppendEntriesRequest", &raft.AppendEntriesRequest{
			RPCHeader:    testHeader(),
			Term:         7,
			Leader:       []byte("127.0.0.1:7000"),
			PrevLogEntry: 41,
			PrevLogTerm:  6,
			Entries: []*raft.Log{
				{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte{1, 2, 3}, AppendedAt: at},
				{Index: 43, Term: 7, Type: raft.LogNoop},
				{Index: 44, Term: 7, Type: raft.LogConfiguration, Data: []byte{}, Extensions: []byte{}, AppendedAt: time.Unix(-5, 0)},
			},
			LeaderCommitIndex: 40,
		}},
		{"AppendEntriesRequest/zero", &raft.AppendEntriesRequest{}},
		{"AppendEntriesResponse", &raft.AppendEntriesResponse{RPCHeader: testHeader(), Term: 7, LastLog: 44, Success: true, NoRetryBackoff: true}},
		{"AppendEntriesResponse/zero", &raft.AppendEntriesResponse{}},
		{"RequestVoteRequest", &raft.RequestVoteRequest{RPCHeader: testHeader(), Term: 8, Candidate: []byte("c"), LastLogIndex: 44, LastLogTerm: 7, LeadershipTransfer: true}},
		{"RequestVoteRequest/zero", &raft.RequestVoteRequest{}},
		{"RequestVoteResponse", &raft.RequestVoteResponse{RPCHeader: testHeader(), Term: 8, Peers: []byte("peers"), Granted: true}},
		{"RequestVoteResponse/zero", &raft.RequestVoteResponse{}},
		{"RequestPreVoteRequest", &raft.RequestPreVoteRequest{RPCHeader: testHeader(), Term: 9, LastLogIndex: 44, LastLogTerm: 7}},
		{"RequestPreVoteRequest/zero", &raft.RequestPreVoteRequest{}},
		{"RequestPreVoteResponse", &raft.RequestPreVoteResponse{RPCHeader: testHeader(), Term: 9, Granted: true}},
		{"RequestPreVoteResponse/zero", &raft.RequestPreVoteResponse{}},
		{"TimeoutNowRequest", &raft.TimeoutNowRequest{RPCHeader: testHeader()}},
		{"TimeoutNowRequest/zero", &raft.TimeoutNowRequest{}},
		{"TimeoutNowResponse", &raft.TimeoutNowResponse{RPCHeader: testHeader()}},
		{"TimeoutNowResponse/zero", &raft.TimeoutNowResponse{}},
		{"InstallSnapshotRequest", &raft.InstallSnapshotRequest{
			RPCHeader:          testHeader(),
			SnapshotVersion:    raft.SnapshotVersionMax,
			Term:               7,
			Leader:             []byte("127.0.0.1:7000"),
			LastLogIndex:       1000,
			LastLogTerm:        7,
			Peers:              []byte("old peers"),
			Configuration:      []byte("configuration"),
			ConfigurationIndex: 3,
			Size:               1 << 40,
		}},
		{"InstallSnapshotRequest/zero", &raft.InstallSnapshotRequest{}},
		{"InstallSnapshotResponse", &raft.InstallSnapshotResponse{RPCHeader: testHeader(), Term: 7, Success: true}},
		{"InstallSnapshotResponse/zero", &raft.InstallSnapshotResponse{}},
	}
}

// fresh returns a new zero value of the type m points to.
func fresh(m any) any { return reflect.New(reflect.TypeOf(m).Elem()).Interface() }

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeMessage(nil, tc.msg)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got := fresh(tc.msg)
			if err := decodeMessage(b, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tc.msg)
			}

			// Every strict prefix and any trailing byte are malformed.
			for i := range b {
				if err := decodeMessage(b[:i], fresh(tc.msg)); !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix %d/%d: err = %v, want ErrMalformed", i, len(b), err)
				}
			}
			if err := decodeMessage(append(b[:len(b):len(b)], 0), fresh(tc.msg)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte: err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestCodecResponseRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, rpcErr := range []error{nil, errors.New("not leader")} {
				b, err := encodeResponse(tc.msg, rpcErr, fresh(tc.msg))
				if err != nil {
					t.Fatalf("encode: %v", err)
				}
				got := fresh(tc.msg)
				msg, err := decodeResponse(b, got)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if want := errText(rpcErr); msg != want {
					t.Fatalf("remote error %q, want %q", msg, want)
				}
				if !reflect.DeepEqual(got, tc.msg) {
					t.Fatalf("round trip:\n got %#v\nwant %#v", got, tc.msg)
				}
				if _, err := decodeResponse(b[:len(b)-1], fresh(tc.msg)); !errors.Is(err, ErrMalformed) {
					t.Fatalf("truncated: err = %v, want ErrMalformed", err)
				}
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestEncodeResponseOfUnexpectedType(t *testing.T) {
	// Raft answers unknown commands with a nil response and an error.
	for _, resp := range []any{nil, "text", (*raft.AppendEntriesResponse)(nil), &raft.RequestVoteResponse{Term: 3}} {
		b, err := encodeResponse(resp, errors.New("unexpected command"), new(raft.AppendEntriesResponse))
		if err != nil {
			t.Fatalf("%T: encode: %v", resp, err)
		}
		got := new(raft.AppendEntriesResponse)
		msg, err := decodeResponse(b, got)
		if err != nil || msg != "unexpected command" || !reflect.DeepEqual(got, new(raft.AppendEntriesResponse)) {
			t.Fatalf("%T: got %#v, %q, %v", resp, got, msg, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := encodeMessage(nil, &raft.AppendEntriesRequest{Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		into any
	}{
		{"empty", nil, new(raft.AppendEntriesRequest)},
		{"wrong kind", valid, new(raft.RequestVoteRequest)},
		{"unknown kind", []byte{0xff}, new(raft.AppendEntriesRequest)},
		// kind, protocol version 0, ID claims 2^62 bytes.
		{"absurd bytes length", []byte{kindAppendEntriesRequest, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}, new(raft.AppendEntriesRequest)},
		// header, term, leader, prev entry, prev term, then 2^62 entries.
		{"absurd entry count", []byte{kindAppendEntriesRequest, 0, 0, 0, 1, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}, new(raft.AppendEntriesRequest)},
		{"varint overflow", []byte{kindAppendEntriesRequest, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, new(raft.AppendEntriesRequest)},
		{"bad bool", []byte{kindRequestPreVoteResponse, 0, 0, 0, 1, 2}, new(raft.RequestPreVoteResponse)},
		{"negative protocol version", []byte{kindTimeoutNowRequest, 1, 0, 0}, new(raft.TimeoutNowRequest)},
		{"negative snapshot size", []byte{kindInstallSnapshotRequest, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, new(raft.InstallSnapshotRequest)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := decodeMessage(tc.in, tc.into); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, m := range []any{
		(*raft.AppendEntriesRequest)(nil),
		&raft.AppendEntriesRequest{Entries: []*raft.Log{nil}},
		&raft.InstallSnapshotRequest{Size: -1},
		"not a raft message",
	} {
		if _, err := encodeMessage(nil, m); err == nil {
			t.Errorf("encode %#v: no error", m)
		}
	}
}

// TestAppendEntriesWithTooManyEntriesIsRefused: a frame can hold far more
// minimal entries than Raft ever batches; past maxEntries it is refused
// before the entries are allocated.
func TestAppendEntriesWithTooManyEntriesIsRefused(t *testing.T) {
	for _, n := range []int{maxEntries, maxEntries + 1} {
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("n1")}, Term: 1}
		for i := range n {
			req.Entries = append(req.Entries, &raft.Log{Index: uint64(i + 1), Term: 1})
		}
		b, err := encodeMessage(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		err = decodeMessage(b, new(raft.AppendEntriesRequest))
		if n <= maxEntries && err != nil {
			t.Fatalf("%d entries: %v", n, err)
		}
		if n > maxEntries && err == nil {
			t.Fatalf("%d entries decoded, want a refusal", n)
		}
	}
}
