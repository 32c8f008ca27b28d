// Package rawcodec is the gRPC codec every dchan RPC uses: it moves opaque
// byte frames and leaves their encoding to the caller. dchan never generates
// protobuf code; each service frames its own messages (see remoting's
// envelope framing and raftrpc's Raft messages), so the codec only has to
// hand bytes to gRPC and back.
//
// The codec is installed per server (ServerOption) and per call (CallOption),
// never registered globally, so several nodes in one process stay independent.
package rawcodec

import (
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Name is the codec's content subtype: "application/grpc+dchan".
const Name = "dchan"

// Frame is one gRPC message: an opaque byte slice.
type Frame struct {
	Data []byte

	// Borrow, set before RecvMsg, makes Unmarshal lend the received bytes
	// instead of copying them: Data then aliases a buffer gRPC reuses, and
	// the caller must call Release once it no longer uses Data (nor
	// anything aliasing it).
	Borrow bool
	held   mem.Buffer

	// pool and buf make a sent frame's bytes go back to pool once gRPC
	// has written them (see Pooled).
	pool mem.BufferPool
	buf  *[]byte
}

// Pooled returns a frame to send whose bytes are *buf. gRPC returns buf to
// pool once it has written them (it may still read them after SendMsg
// returns), so the caller must not touch *buf after sending it.
func Pooled(buf *[]byte, pool mem.BufferPool) *Frame {
	return &Frame{Data: *buf, buf: buf, pool: pool}
}

// Release gives a borrowed frame's buffer back to gRPC (see Borrow). It
// does nothing for a frame that holds none.
func (f *Frame) Release() {
	if f.held != nil {
		f.held.Free()
		f.held = nil
		f.Data = nil
	}
}

// FramePool is a mem.BufferPool for frames one builds by appending: Get
// returns a buffer of capacity at least the given length, reused when the
// pool holds one large enough. Buffers above maxCap are not kept.
type FramePool struct {
	maxCap int
	p      sync.Pool
}

// NewFramePool returns a FramePool that keeps buffers of up to maxCap bytes.
func NewFramePool(maxCap int) *FramePool { return &FramePool{maxCap: maxCap} }

// Get returns a buffer of length n.
func (fp *FramePool) Get(n int) *[]byte {
	if v := fp.p.Get(); v != nil {
		b := v.(*[]byte)
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
		fp.p.Put(b)
	}
	b := make([]byte, n)
	return &b
}

// Put keeps b for a later Get.
func (fp *FramePool) Put(b *[]byte) {
	if cap(*b) > fp.maxCap {
		return
	}
	*b = (*b)[:0]
	fp.p.Put(b)
}

// recvPool holds the buffers a borrowed frame that arrived in several
// pieces is copied into. gRPC's default pool clears a buffer of its tier's
// size on every Get — a 1 MiB clear for a 40 KB frame — although the copy
// overwrites every byte the frame exposes; this pool does not clear.
var recvPool mem.BufferPool = newTieredPool(4<<10, 64<<10, 256<<10, 1<<20, 4<<20)

// tieredPool is a mem.BufferPool with one FramePool per buffer size: Get
// takes a buffer from the smallest tier that fits (or makes one of exactly
// the length asked above the largest), and Put gives it back to its tier.
// Buffers are not cleared: their users overwrite what they expose.
type tieredPool struct {
	sizes []int
	tiers []*FramePool
}

func newTieredPool(sizes ...int) *tieredPool {
	p := &tieredPool{sizes: sizes}
	for _, size := range sizes {
		p.tiers = append(p.tiers, NewFramePool(size))
	}
	return p
}

// Get returns a buffer of length n.
func (p *tieredPool) Get(n int) *[]byte {
	for i, size := range p.sizes {
		if n <= size {
			b := p.tiers[i].Get(size)
			*b = (*b)[:n]
			return b
		}
	}
	b := make([]byte, n)
	return &b
}

// Put keeps b in the tier of its capacity, if it has one.
func (p *tieredPool) Put(b *[]byte) {
	for i, size := range p.sizes {
		if cap(*b) == size {
			p.tiers[i].Put(b)
			return
		}
	}
}

// Codec implements encoding.CodecV2 for *Frame values, and hands protobuf
// messages to gRPC's own proto codec: a server that forces this codec for
// every service still serves the standard ones (grpc.health.v1) that
// speak protobuf.
type Codec struct{}

// protoCodec is gRPC's protobuf codec.
var protoCodec = encoding.GetCodecV2(protoenc.Name)

var _ encoding.CodecV2 = Codec{}

// Name returns the codec's content subtype.
func (Codec) Name() string { return Name }

// Marshal returns the frame's bytes without copying them. gRPC may still read
// them after SendMsg returns (its transport queues the buffer for a writer
// goroutine), so the caller must never modify or reuse f.Data once it has
// been sent: every frame needs a fresh buffer.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		if _, isProto := v.(proto.Message); isProto {
			return protoCodec.Marshal(v)
		}
		return nil, fmt.Errorf("rawcodec: cannot marshal %T, want *rawcodec.Frame", v)
	}
	if f.pool != nil {
		*f.buf = f.Data
		return mem.BufferSlice{mem.NewBuffer(f.buf, f.pool)}, nil
	}
	return mem.BufferSlice{mem.SliceBuffer(f.Data)}, nil
}

// Unmarshal copies the received bytes into f.Data (gRPC reuses its buffers
// once Unmarshal returns), unless f.Borrow is set: then f.Data aliases a
// buffer held until f.Release (the one gRPC received the message in, or a
// pooled copy if it arrived in several).
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		if _, isProto := v.(proto.Message); isProto {
			return protoCodec.Unmarshal(data, v)
		}
		return fmt.Errorf("rawcodec: cannot unmarshal into %T, want *rawcodec.Frame", v)
	}
	f.Release()
	if f.Borrow {
		f.held = data.MaterializeToBuffer(recvPool)
		f.Data = f.held.ReadOnlyData()
		return nil
	}
	f.Data = data.Materialize()
	return nil
}

// ServerOption makes a gRPC server use the codec for every service.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(Codec{}) }

// CallOption makes a client call use the codec.
func CallOption() grpc.CallOption { return grpc.ForceCodecV2(Codec{}) }
