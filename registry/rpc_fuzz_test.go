package registry

import (
	"errors"
	"testing"

	"github.com/dchan-io/dchan/internal/bin"
)

// FuzzDecodeRPC feeds the same bytes to every decoder of registry RPC
// messages that come from peers: replies, receiver lists, member status,
// join requests. None may panic, and any error must be ErrMalformed.
func FuzzDecodeRPC(f *testing.F) {
	w := bin.Writer{}
	w.Str("n1")
	w.Str("127.0.0.1:7000")
	w.Uvarint(42)
	f.Add(w.B)
	f.Add(encodeReply(nil, encodeReceivers([]Receiver{{Node: "n1", ActorID: "$1", Mode: Broadcast, Incarnation: 7}})))
	f.Add(encodeReply(ErrStaleIncarnation, nil))
	f.Add([]byte{stOther, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, err error) {
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: error %v does not wrap ErrMalformed", what, err)
			}
		}
		_, body, err := decodeReply(b)
		check("reply", err)
		if err == nil {
			rs, err := decodeReceivers(body)
			check("receivers in a reply", err)
			if len(rs) > len(body) {
				t.Fatalf("%d receivers from %d bytes", len(rs), len(body))
			}
		}
		_, err = decodeReceivers(b)
		check("receivers", err)
		_, _, _, err = decodeMemberStatus(b)
		check("member status", err)
		_, err = decodeJoinRequest(b)
		check("join request", err)
	})
}

func TestRPCCodecsRoundTrip(t *testing.T) {
	in := []Receiver{{Node: "n1", ActorID: "$1", Mode: Queue, Incarnation: 3}, {Node: "n2", ActorID: "x", Mode: Broadcast, Incarnation: 9}}
	rerr, body, err := decodeReply(encodeReply(nil, encodeReceivers(in)))
	if err != nil || rerr != nil {
		t.Fatal(err, rerr)
	}
	out, err := decodeReceivers(body)
	if err != nil || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip: %v %v", out, err)
	}
	rerr, _, err = decodeReply(encodeReply(ErrMemberExpired, nil))
	if err != nil || !errors.Is(rerr, ErrMemberExpired) {
		t.Fatalf("a refusal must keep its sentinel across the wire: %v %v", rerr, err)
	}
}
