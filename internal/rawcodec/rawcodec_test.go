package rawcodec

import (
	"testing"

	"google.golang.org/grpc/mem"
)

func TestRoundTripAndWrongTypes(t *testing.T) {
	var c Codec
	if c.Name() != Name {
		t.Fatalf("name %q", c.Name())
	}
	data, err := c.Marshal(&Frame{Data: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := c.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Data) != "abc" {
		t.Fatalf("got %q", f.Data)
	}
	if _, err := c.Marshal("not a frame"); err == nil {
		t.Fatal("marshalling a non-frame must fail")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer("x")}, new(string)); err == nil {
		t.Fatal("unmarshalling into a non-frame must fail")
	}
}

func TestUnmarshalCopies(t *testing.T) {
	src := []byte("hello")
	var f Frame
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(src)}, &f); err != nil {
		t.Fatal(err)
	}
	src[0] = 'j'
	if string(f.Data) != "hello" {
		t.Fatalf("the frame aliases gRPC's buffer: %q", f.Data)
	}
}
