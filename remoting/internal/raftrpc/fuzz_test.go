package raftrpc

import (
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// Every decoder of peer bytes has a fuzz target. Their seed corpora live in
// testdata/fuzz/<target>/ (valid, zero, truncated and absurd-length
// frames), so `go test` runs them as ordinary tests.
//
// Property: decoding never panics and fails only with ErrMalformed; what
// decodes re-encodes to bytes that decode to the same message.

func fuzzRequest[T any](f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(T)
		if err := decodeMessage(b, m); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := encodeMessage(nil, m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2 := new(T)
		if err := decodeMessage(again, m2); err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", m2, m)
		}
	})
}

func fuzzResponse[T any](f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(T)
		msg, err := decodeResponse(b, m)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var rpcErr error
		if msg != "" {
			rpcErr = errors.New(msg)
		}
		again, err := encodeResponse(m, rpcErr, new(T))
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2 := new(T)
		msg2, err := decodeResponse(again, m2)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if msg2 != msg || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip:\n got %q %#v\nwant %q %#v", msg2, m2, msg, m)
		}
	})
}

func FuzzDecodeAppendEntriesRequest(f *testing.F) {
	fuzzRequest[raft.AppendEntriesRequest](f)
}

func FuzzDecodeAppendEntriesResponse(f *testing.F) {
	fuzzResponse[raft.AppendEntriesResponse](f)
}

func FuzzDecodeRequestVoteRequest(f *testing.F) {
	fuzzRequest[raft.RequestVoteRequest](f)
}

func FuzzDecodeRequestVoteResponse(f *testing.F) {
	fuzzResponse[raft.RequestVoteResponse](f)
}

func FuzzDecodeRequestPreVoteRequest(f *testing.F) {
	fuzzRequest[raft.RequestPreVoteRequest](f)
}

func FuzzDecodeRequestPreVoteResponse(f *testing.F) {
	fuzzResponse[raft.RequestPreVoteResponse](f)
}

func FuzzDecodeTimeoutNowRequest(f *testing.F) {
	fuzzRequest[raft.TimeoutNowRequest](f)
}

func FuzzDecodeTimeoutNowResponse(f *testing.F) {
	fuzzResponse[raft.TimeoutNowResponse](f)
}

func FuzzDecodeInstallSnapshotRequest(f *testing.F) {
	fuzzRequest[raft.InstallSnapshotRequest](f)
}

func FuzzDecodeInstallSnapshotResponse(f *testing.F) {
	fuzzResponse[raft.InstallSnapshotResponse](f)
}
