package raftrpc

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// serviceName is the gRPC service every node registers.
const serviceName = "dchan.raft.v1.Raft"

// Method names of the Raft service.
const (
	methodAppendEntries         = "AppendEntries"         // unary
	methodRequestVote           = "RequestVote"           // unary
	methodRequestPreVote        = "RequestPreVote"        // unary
	methodTimeoutNow            = "TimeoutNow"            // unary
	methodAppendEntriesPipeline = "AppendEntriesPipeline" // bidi stream
	methodInstallSnapshot       = "InstallSnapshot"       // client stream
)

func fullMethod(method string) string { return "/" + serviceName + "/" + method }

// raftServer is the handler type of the service: grpc checks at
// registration that the registered value implements it.
type raftServer interface {
	serveUnary(ctx context.Context, method string, in *rawcodec.Frame, req, zeroResp any) (*rawcodec.Frame, error)
	servePipeline(stream grpc.ServerStream) error
	serveInstallSnapshot(stream grpc.ServerStream) error
}

var _ raftServer = (*Transport)(nil)

// serviceDesc describes the hand-written Raft service. It is built per
// call so that no mutable descriptor is shared between nodes.
func serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*raftServer)(nil),
		Methods: []grpc.MethodDesc{
			unaryMethod(methodAppendEntries, func() (any, any) {
				return new(raft.AppendEntriesRequest), new(raft.AppendEntriesResponse)
			}),
			unaryMethod(methodRequestVote, func() (any, any) {
				return new(raft.RequestVoteRequest), new(raft.RequestVoteResponse)
			}),
			unaryMethod(methodRequestPreVote, func() (any, any) {
				return new(raft.RequestPreVoteRequest), new(raft.RequestPreVoteResponse)
			}),
			unaryMethod(methodTimeoutNow, func() (any, any) {
				return new(raft.TimeoutNowRequest), new(raft.TimeoutNowResponse)
			}),
		},
		Streams: []grpc.StreamDesc{
			{
				StreamName: methodAppendEntriesPipeline,
				Handler: func(srv any, stream grpc.ServerStream) error {
					return srv.(raftServer).servePipeline(stream)
				},
				ServerStreams: true,
				ClientStreams: true,
			},
			{
				StreamName: methodInstallSnapshot,
				Handler: func(srv any, stream grpc.ServerStream) error {
					return srv.(raftServer).serveInstallSnapshot(stream)
				},
				ClientStreams: true,
			},
		},
		Metadata: "dchan raft v1 (hand-written, rawcodec frames)",
	}
}

// unaryMethod builds the descriptor of a unary method; types returns fresh
// request and zero-response values of the method's raft types.
func unaryMethod(method string, types func() (req, zeroResp any)) grpc.MethodDesc {
	full := fullMethod(method)
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(rawcodec.Frame)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, m any) (any, error) {
				f, ok := m.(*rawcodec.Frame)
				if !ok {
					return nil, status.Error(codes.Internal, fmt.Sprintf("raftrpc: interceptor passed %T, want *rawcodec.Frame", m))
				}
				req, zero := types()
				return srv.(raftServer).serveUnary(ctx, method, f, req, zero)
			}
			if interceptor == nil {
				return handler(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, handler)
		},
	}
}

// pipelineStreamDesc and snapshotStreamDesc describe the streams to the
// client side.
func pipelineStreamDesc() *grpc.StreamDesc {
	return &grpc.StreamDesc{StreamName: methodAppendEntriesPipeline, ServerStreams: true, ClientStreams: true}
}

func snapshotStreamDesc() *grpc.StreamDesc {
	return &grpc.StreamDesc{StreamName: methodInstallSnapshot, ClientStreams: true}
}
