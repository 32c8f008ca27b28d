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

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Name is the codec's content subtype: "application/grpc+dchan".
const Name = "dchan"

// Frame is one gRPC message: an opaque byte slice.
type Frame struct {
	Data []byte
}

// Codec implements encoding.CodecV2 for *Frame values.
type Codec struct{}

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
		return nil, fmt.Errorf("rawcodec: cannot marshal %T, want *rawcodec.Frame", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.Data)}, nil
}

// Unmarshal copies the received bytes into f.Data (gRPC reuses its buffers
// once Unmarshal returns).
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("rawcodec: cannot unmarshal into %T, want *rawcodec.Frame", v)
	}
	f.Data = data.Materialize()
	return nil
}

// ServerOption makes a gRPC server use the codec for every service.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(Codec{}) }

// CallOption makes a client call use the codec.
func CallOption() grpc.CallOption { return grpc.ForceCodecV2(Codec{}) }
