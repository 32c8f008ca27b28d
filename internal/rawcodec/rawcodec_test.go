package rawcodec

import (
	"slices"
	"strings"
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

func TestBorrowAliasesUntilRelease(t *testing.T) {
	src := []byte("hello")
	data := mem.BufferSlice{mem.SliceBuffer(src)}
	f := Frame{Borrow: true}
	if err := (Codec{}).Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Data) != "hello" || &f.Data[0] != &src[0] {
		t.Fatalf("a borrowed frame must alias the received bytes: %q", f.Data)
	}
	f.Release()
	if f.Data != nil {
		t.Fatal("Release must drop the borrowed bytes")
	}
	f.Release() // idempotent
}

func TestPooledFrameGoesBackToItsPool(t *testing.T) {
	pool := NewFramePool(1 << 20)
	buf := pool.Get(4096)
	*buf = append((*buf)[:0], "abc"...)
	data, err := (Codec{}).Marshal(Pooled(buf, pool))
	if err != nil {
		t.Fatal(err)
	}
	if string(data.Materialize()) != "abc" {
		t.Fatalf("got %q", data.Materialize())
	}
	data.Free() // what gRPC does once it has written the frame
	again := pool.Get(10)
	if cap(*again) < 10 || len(*again) != 10 {
		t.Fatalf("Get(10): len %d cap %d", len(*again), cap(*again))
	}
	big := make([]byte, 0, 2<<20)
	pool.Put(&big) // above maxCap: dropped, not kept
}

// TestBorrowedFrameInPiecesIsCopiedWhole: a frame that arrived in several
// buffers is copied into one from the receive pool, which does not clear
// its buffers: the copy must expose exactly the frame's bytes, also when
// the buffer was used before for a longer frame.
func TestBorrowedFrameInPiecesIsCopiedWhole(t *testing.T) {
	for round, text := range []string{strings.Repeat("long frame ", 500), "short", strings.Repeat("x", 70<<10)} {
		var data mem.BufferSlice
		for chunk := range slices.Chunk([]byte(text), 1000) {
			data = append(data, mem.SliceBuffer(chunk))
		}
		f := Frame{Borrow: true}
		if err := (Codec{}).Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if string(f.Data) != text {
			t.Fatalf("round %d: got %d bytes %.20q..., want %d", round, len(f.Data), f.Data, len(text))
		}
		f.Release()
	}
}

func TestTieredPoolSizesAndReuse(t *testing.T) {
	p := newTieredPool(16, 64)
	b := p.Get(10)
	if len(*b) != 10 || cap(*b) != 16 {
		t.Fatalf("Get(10): len %d cap %d; want 10, 16", len(*b), cap(*b))
	}
	(*b)[0] = 'z'
	p.Put(b)
	again := p.Get(12)
	if len(*again) != 12 || cap(*again) != 16 {
		t.Fatalf("Get(12): len %d cap %d", len(*again), cap(*again))
	}
	mid := p.Get(17)
	if cap(*mid) != 64 {
		t.Fatalf("Get(17): cap %d; want the 64 tier", cap(*mid))
	}
	huge := p.Get(100)
	if len(*huge) != 100 {
		t.Fatalf("Get(100): len %d", len(*huge))
	}
	p.Put(huge) // no tier of its size: dropped
}
