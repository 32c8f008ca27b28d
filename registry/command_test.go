package registry

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen)
	id := strings.Repeat("i", MaxIDLen)
	addr := strings.Repeat("a", MaxAddrLen)
	for _, c := range []command{
		join("n1", 1),
		joinCmd{Member: Member{ID: id, Addr: addr, Incarnation: 1<<64 - 1, Voter: true}},
		joinCmd{Member: Member{ID: "n9", Addr: "h:1", Incarnation: 3, Client: true}},
		leaveCmd{Node: "n1"},
		leaveCmd{Node: "n1", Incarnation: 300},
		register("orders", queue("n1", "x", 1)),
		register(long, broadcast(id, id, 1<<40)),
		unregisterCmd{Name: "orders", Node: "n1", ActorID: "x"},
		unregisterCmd{Name: "orders", Node: "n1", ActorID: "x", Incarnation: 7},
		expireNodeCmd{Node: "n1", Incarnation: 2},
		setVoterCmd{Node: "n1", Voter: true},
		setVoterCmd{Node: "n1"},
		batchCmd{Cmds: []command{register("orders", queue("n1", "x", 1))}},
		batchCmd{Cmds: []command{
			register("orders", queue("n1", "x", 1)),
			unregisterCmd{Name: "orders", Node: "n1", ActorID: "y", Incarnation: 7},
			register(long, broadcast(id, id, 1<<40)),
		}},
	} {
		b, err := encodeCommand(c)
		if err != nil {
			t.Fatalf("encode %#v: %v", c, err)
		}
		got, err := decodeCommand(b)
		if err != nil {
			t.Fatalf("decode %#v: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %#v, want %#v", got, c)
		}
	}
}

func TestEncodeCommandRefusesInvalid(t *testing.T) {
	for _, c := range []command{
		nil,
		&leaveCmd{Node: "n1"},
		customCommand{},
		join("", 1),
		join("n1", 0),
		register("a", queue("n1", "x", 0)),
		register(strings.Repeat("a", MaxNameLen+1), queue("n1", "x", 1)),
		unregisterCmd{Name: "a", Node: "n1"},
		expireNodeCmd{Node: "n1"},
		setVoterCmd{},
		leaveCmd{},
		batchCmd{},
		batchCmd{Cmds: make([]command, maxBatch+1)},
		batchCmd{Cmds: []command{join("n1", 1)}},
		batchCmd{Cmds: []command{register("a", queue("n1", "x", 1)), batchCmd{Cmds: []command{register("b", queue("n1", "x", 1))}}}},
		batchCmd{Cmds: []command{register("a", queue("n1", "x", 1)), register("a", queue("n1", "x", 0))}},
	} {
		if _, err := encodeCommand(c); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("EncodeCommand(%#v) = %v, want ErrInvalidCommand", c, err)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	valid, err := encodeCommand(register("orders", queue("n1", "x", 1)))
	if err != nil {
		t.Fatal(err)
	}
	overlong := append([]byte{1, 3}, binary.AppendUvarint(nil, MaxNameLen+1)...)
	overlong = append(overlong, strings.Repeat("a", MaxNameLen+1)...)
	huge := append([]byte{1, 3}, binary.AppendUvarint(nil, 1<<62)...)
	badMode := append([]byte(nil), valid...)
	badMode[len(badMode)-2] = 2 // mode byte precedes the one-byte incarnation
	badBool, _ := encodeCommand(setVoterCmd{Node: "n1", Voter: true})
	badBool[len(badBool)-1] = 2
	badRole, _ := encodeCommand(join("n1", 1))
	badRole[len(badRole)-1] = 3 // roles are non-voter, voter, client
	// A batch's writes are its kind's fields without the format byte.
	batchOf := func(count uint64, writes ...command) []byte {
		b := binary.AppendUvarint([]byte{commandFormat, kindBatch}, count)
		for _, w := range writes {
			b = append(b, appendCommand(nil, w)[1:]...)
		}
		return b
	}
	reg := register("orders", queue("n1", "x", 1))

	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"format only", []byte{1}, ErrMalformed},
		{"future format", append([]byte{2}, valid[1:]...), ErrUnsupportedVersion},
		{"format zero", []byte{0, 1}, ErrUnsupportedVersion},
		{"unknown kind", []byte{1, 99}, ErrUnsupportedVersion},
		{"kind zero", []byte{1, 0}, ErrUnsupportedVersion},
		{"truncated", valid[:len(valid)-1], ErrMalformed},
		{"truncated string", valid[:5], ErrMalformed},
		{"trailing", append(append([]byte(nil), valid...), 0), ErrMalformed},
		{"over-long name", overlong, ErrMalformed},
		{"absurd length", huge, ErrMalformed},
		{"bad role", badRole, ErrMalformed},
		{"bad varint", []byte{1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"bad mode", badMode, ErrMalformed},
		{"bad bool", badBool, ErrMalformed},
		{"empty batch", batchOf(0), ErrMalformed},
		{"batch over its bound", batchOf(maxBatch+1, reg), ErrMalformed},
		{"batch shorter than its count", batchOf(3, reg, reg), ErrMalformed},
		{"batch in a batch", batchOf(1, batchCmd{Cmds: []command{reg}}), ErrMalformed},
		{"join in a batch", batchOf(2, reg, join("n1", 1)), ErrMalformed},
		{"batch with a trailing byte", append(batchOf(1, reg), 0), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeCommand(tc.b)
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
	c, err := decodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	f := newFSM()
	res := f.Apply(raftLog{1, b}.log()).(result)
	if !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("Apply(%#v) = %v", c, res.Err)
	}
}
