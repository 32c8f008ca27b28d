package registry_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dchan-io/dchan/registry"
)

func TestCommandRoundTrip(t *testing.T) {
	long := strings.Repeat("n", registry.MaxNameLen)
	id := strings.Repeat("i", registry.MaxIDLen)
	addr := strings.Repeat("a", registry.MaxAddrLen)
	for _, c := range []registry.Command{
		join("n1", 1),
		registry.Join{Member: registry.Member{ID: id, Addr: addr, Incarnation: 1<<64 - 1, Voter: true}},
		registry.Leave{Node: "n1"},
		registry.Leave{Node: "n1", Incarnation: 300},
		register("orders", queue("n1", "x", 1)),
		register(long, broadcast(id, id, 1<<40)),
		registry.Unregister{Name: "orders", Node: "n1", ActorID: "x"},
		registry.Unregister{Name: "orders", Node: "n1", ActorID: "x", Incarnation: 7},
		registry.ExpireNode{Node: "n1", Incarnation: 2},
		registry.SetVoter{Node: "n1", Voter: true},
		registry.SetVoter{Node: "n1"},
	} {
		b, err := registry.EncodeCommand(c)
		if err != nil {
			t.Fatalf("encode %#v: %v", c, err)
		}
		got, err := registry.DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode %#v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %#v, want %#v", got, c)
		}
	}
}

func TestEncodeCommandRefusesInvalid(t *testing.T) {
	for _, c := range []registry.Command{
		nil,
		&registry.Leave{Node: "n1"},
		customCommand{},
		join("", 1),
		join("n1", 0),
		register("a", queue("n1", "x", 0)),
		register(strings.Repeat("a", registry.MaxNameLen+1), queue("n1", "x", 1)),
		registry.Unregister{Name: "a", Node: "n1"},
		registry.ExpireNode{Node: "n1"},
		registry.SetVoter{},
		registry.Leave{},
	} {
		if _, err := registry.EncodeCommand(c); !errors.Is(err, registry.ErrInvalidCommand) {
			t.Errorf("EncodeCommand(%#v) = %v, want ErrInvalidCommand", c, err)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	valid, err := registry.EncodeCommand(register("orders", queue("n1", "x", 1)))
	if err != nil {
		t.Fatal(err)
	}
	overlong := append([]byte{1, 3}, binary.AppendUvarint(nil, registry.MaxNameLen+1)...)
	overlong = append(overlong, strings.Repeat("a", registry.MaxNameLen+1)...)
	huge := append([]byte{1, 3}, binary.AppendUvarint(nil, 1<<62)...)
	badMode := append([]byte(nil), valid...)
	badMode[len(badMode)-2] = 2 // mode byte precedes the one-byte incarnation
	badBool, _ := registry.EncodeCommand(registry.SetVoter{Node: "n1", Voter: true})
	badBool[len(badBool)-1] = 2

	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, registry.ErrMalformed},
		{"format only", []byte{1}, registry.ErrMalformed},
		{"future format", append([]byte{2}, valid[1:]...), registry.ErrUnsupportedVersion},
		{"format zero", []byte{0, 1}, registry.ErrUnsupportedVersion},
		{"unknown kind", []byte{1, 99}, registry.ErrUnsupportedVersion},
		{"kind zero", []byte{1, 0}, registry.ErrUnsupportedVersion},
		{"truncated", valid[:len(valid)-1], registry.ErrMalformed},
		{"truncated string", valid[:5], registry.ErrMalformed},
		{"trailing", append(append([]byte(nil), valid...), 0), registry.ErrMalformed},
		{"over-long name", overlong, registry.ErrMalformed},
		{"absurd length", huge, registry.ErrMalformed},
		{"bad varint", []byte{1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, registry.ErrMalformed},
		{"bad mode", badMode, registry.ErrMalformed},
		{"bad bool", badBool, registry.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := registry.DecodeCommand(tc.b)
			if !errors.Is(err, tc.want) || c != nil {
				t.Fatalf("DecodeCommand = %#v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

// Decodable but invalid commands reach Apply only through a buggy or
// hostile writer; Apply refuses them.
func TestApplyRefusesDecodedInvalid(t *testing.T) {
	// Join with empty ID, empty address, incarnation 0.
	b := []byte{1, 1, 0, 0, 0, 0}
	c, err := registry.DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	f := registry.NewFSM()
	res := f.Apply(raftLog{1, b}.log()).(registry.Result)
	if !errors.Is(res.Err, registry.ErrInvalidCommand) {
		t.Fatalf("Apply(%#v) = %v", c, res.Err)
	}
}
