// Package raftrpc is hashicorp/raft's Transport over gRPC, sharing the
// node's one gRPC server and its one client connection per peer with the
// rest of dchan: Raft opens no port and dials nothing of its own.
//
// # Use
//
// The remoting layer owns the server and the connections:
//
//	trans, err := raftrpc.New(raftrpc.Config{
//		LocalAddr: raft.ServerAddress(lis.Addr().String()),
//		Conn:      peers.Conn, // shared *grpc.ClientConn per peer address
//		Logger:    logger,
//	})
//	trans.Register(grpcServer) // a server built with rawcodec.ServerOption()
//	r, err := raft.NewRaft(cfg, fsm, logs, stable, snaps, trans)
//	...
//	r.Shutdown().Error() // closes trans too (raft.WithClose); Close is idempotent
//
// Transport implements raft.Transport, raft.WithClose and raft.WithPreVote.
// Peers are known by address: EncodePeer and DecodePeer are the identity.
//
// # Service
//
// Service "dchan.raft.v1.Raft" is a hand-written grpc.ServiceDesc whose
// messages are rawcodec frames (no protobuf):
//
//	AppendEntries          unary        request frame -> response frame
//	RequestVote            unary
//	RequestPreVote         unary
//	TimeoutNow             unary
//	AppendEntriesPipeline  bidi stream  request frames -> response frames, in order
//	InstallSnapshot        client stream header frame, data frames... -> response frame
//
// A unary call's deadline is Config.Timeout. A pipeline is one long-lived
// stream per follower; at most Config.MaxInFlight requests (default 2, as
// in raft's NetworkTransport) are sent and unanswered, and a peer that
// neither accepts nor answers a request within Config.Timeout fails the
// pipeline, after which Raft falls back to single AppendEntries calls.
// InstallSnapshot reads the snapshot incrementally and sends it in frames
// of up to 256 KiB; its deadline is Config.Timeout per started 256 KiB. The
// receiving side hands Raft an io.Reader that pulls one frame at a time
// (gRPC flow control is the back-pressure) and that fails unless the
// stream ends after exactly the declared size.
//
// Incoming RPCs are delivered on Consumer as raft.RPC values with a
// RespChan, as NetworkTransport does; heartbeats (AppendEntries with only a
// term and the leader's address) take the SetHeartbeatHandler fast path
// when one is set. The server serves a pipeline's requests one at a time,
// so its responses leave in request order.
//
// Messages must fit the server's gRPC receive limit (4 MiB by default):
// Raft's batch of at most MaxAppendEntries entries is one message.
//
// # Wire format
//
// A request frame is a kind byte (1..10, one per raft struct, request and
// response kinds distinct) followed by the struct's fields in declaration
// order, the RPCHeader first (ProtocolVersion, ID, Addr):
//
//	uint64, Term, indexes     uvarint
//	int (versions), Size      zig-zag varint; versions in [0, 2^20], Size >= 0
//	bool                      one byte, 0 or 1
//	[]byte                    uvarint 0 for nil, else uvarint len+1 then the bytes
//	[]*raft.Log               uvarint count, then each Log: Index, Term,
//	                          Type (one byte), Data, Extensions, AppendedAt
//	time.Time (AppendedAt)    byte 0 for the zero time, else byte 1,
//	                          varint Unix seconds, uvarint nanoseconds (< 1e9)
//
// A response frame is the peer Raft's error text as a []byte (empty for
// none; such errors come back wrapping ErrRemote) followed by the response
// message encoded as above. A layout change gets new kinds.
//
// Decoders never panic on peer bytes: every length and count is checked
// against the bytes that remain (a Log takes at least 6 bytes) before
// anything is allocated, and a frame of the wrong kind, truncated or with
// trailing bytes fails with an error wrapping ErrMalformed; the server
// answers it with InvalidArgument and logs it. Decoded byte fields alias
// the received frame, which rawcodec allocates per message.
//
// # Goroutines
//
// New starts none. Each open pipeline runs one receive goroutine, started
// by AppendEntriesPipeline and tracked by the Transport: the pipeline's
// Close (Raft calls it when it stops pipelining) or the Transport's Close
// stops it and waits for it. Everything else runs on the caller's
// goroutine (outgoing RPCs) or on gRPC's handler goroutines (incoming
// RPCs), which never outlive their stream: during InstallSnapshot only the
// handler goroutine touches the stream, receiving a frame whenever Raft's
// reader asks for one.
//
// Close cancels every outgoing call, stream and pipeline (they fail with
// ErrTransportShutdown or ErrPipelineShutdown), releases every handler
// waiting for Raft with an Unavailable status carrying ErrTransportShutdown's
// text, and returns once the pipelines' goroutines have exited. Stopping the
// gRPC server and closing the connections stays with their owner.
package raftrpc
