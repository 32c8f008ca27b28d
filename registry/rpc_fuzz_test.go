package registry

import (
	"errors"
	"testing"

	"github.com/dchan-io/dchan/internal/bin"
)

// FuzzDecodeRPC feeds the same bytes to every decoder of registry RPC
// messages that come from peers: replies, sync versions, member status,
// join requests. None may panic, and any error must be ErrMalformed.
func FuzzDecodeRPC(f *testing.F) {
	w := bin.Writer{}
	w.Str("n1")
	w.Str("127.0.0.1:7000")
	w.Uvarint(42)
	f.Add(w.B)
	f.Add(encodeReply(nil, encodeVersion(1<<40)))
	f.Add(encodeReply(ErrStaleIncarnation, nil))
	f.Add([]byte{stOther, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{})
	f.Add(encodeHeard([]string{"n2", "n1"}))
	f.Add(encodeBeat("127.0.0.1:7000"))
	f.Add(encodeJoinReply(true))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, err error) {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: error %v does not wrap ErrMalformed", what, err)
			}
		}
		reply, err := decodeReply(b)
		check("reply", err)
		if err == nil {
			_, err := decodeVersion(reply.body)
			check("version in a reply", err)
		}
		_, err = decodeVersion(b)
		check("version", err)
		_, _, _, err = decodeMemberStatus(b)
		check("member status", err)
		_, err = decodeJoinRequest(b)
		check("join request", err)
		_, err = decodeJoinReply(b)
		check("join reply", err)
		_, err = decodeHeard(b)
		check("heard report", err)
		_, err = decodeBeat(b)
		check("beat frame", err)
	})
}

func TestRPCCodecsRoundTrip(t *testing.T) {
	if ids, err := decodeHeard(encodeHeard([]string{"n2", "n1"})); err != nil || len(ids) != 2 || ids[0] != "n1" {
		t.Fatalf("heard round trip: %v %v", ids, err)
	}
	if addr, err := decodeBeat(encodeBeat("10.0.0.1:7000")); err != nil || addr != "10.0.0.1:7000" {
		t.Fatalf("beat round trip: %q %v", addr, err)
	}
	for _, c := range []bool{false, true} {
		if got, err := decodeJoinReply(encodeJoinReply(c)); err != nil || got != c {
			t.Fatalf("join reply round trip: %v %v", got, err)
		}
	}
	reply, err := decodeReply(encodeReply(nil, encodeVersion(1<<40)))
	if err != nil || reply.err != nil {
		t.Fatal(err, reply.err)
	}
	if v, err := decodeVersion(reply.body); err != nil || v != 1<<40 {
		t.Fatalf("round trip: %v %v", v, err)
	}
	reply, err = decodeReply(encodeReply(ErrMemberExpired, nil))
	if err != nil || !errors.Is(reply.err, ErrMemberExpired) {
		t.Fatalf("a refusal must keep its sentinel across the wire: %v %v", reply.err, err)
	}
}
