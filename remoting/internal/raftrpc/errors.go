package raftrpc

import (
	"errors"

	"github.com/hashicorp/raft"
)

var (
	// ErrInvalidConfig is returned by New when a Config field is missing or
	// out of range.
	ErrInvalidConfig = errors.New("raftrpc: invalid config")

	// ErrMalformed reports bytes from a peer that are not a valid frame:
	// truncated, of the wrong kind, with a length beyond the frame's end or
	// with trailing bytes. The stream that carried them is failed; nothing
	// panics.
	ErrMalformed = errors.New("raftrpc: malformed frame")

	// ErrRemote wraps an error that the peer's Raft returned in its
	// response (raft.RPCResponse.Error); the text is the peer's.
	ErrRemote = errors.New("raftrpc: peer raft error")

	// ErrTransportShutdown is returned by every call on a closed Transport
	// and, as a gRPC Unavailable status, to peers whose RPCs were waiting
	// for this node's Raft when it closed. It is raft's own sentinel, so
	// errors.Is works with either name.
	ErrTransportShutdown = raft.ErrTransportShutdown

	// ErrPipelineShutdown is returned by a closed AppendEntries pipeline.
	// It is raft's own sentinel.
	ErrPipelineShutdown = raft.ErrPipelineShutdown

	// errTimeout is the cancellation cause of a pipeline whose peer did
	// not accept or answer a request within Config.Timeout.
	errTimeout = errors.New("raftrpc: pipeline timed out")

	// errPipelineEnded is the cancellation cause of a pipeline after a
	// response that failed or was refused: raft stops reading its
	// Consumer then (see pipeline.receive).
	errPipelineEnded = errors.New("raftrpc: pipeline ended by a failed or refused response")

	// errSnapshotAborted is what Raft reads from a snapshot whose stream
	// handler stopped (transport closed, peer gone).
	errSnapshotAborted = errors.New("raftrpc: snapshot stream aborted")
)
