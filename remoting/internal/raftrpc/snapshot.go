package raftrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// InstallSnapshot streams a snapshot to target: one header frame with
// args, then the data read from data in chunks of up to 256 KiB, then it
// waits for the peer's response. The call's deadline is Config.Timeout per
// started 256 KiB of args.Size.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if t.ctx.Err() != nil {
		return fmt.Errorf("raftrpc: %s to %s: %w", methodInstallSnapshot, target, ErrTransportShutdown)
	}
	header, err := encodeMessage(nil, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, snapshotTimeout(t.timeout, args.Size))
	defer cancel()
	cc, err := t.conn(ctx, target)
	if err != nil {
		return t.callErr(methodInstallSnapshot, target, fmt.Errorf("connection: %w", err))
	}
	stream, err := cc.NewStream(ctx, snapshotStreamDesc(), fullMethod(methodInstallSnapshot), rawcodec.CallOption())
	if err != nil {
		return t.callErr(methodInstallSnapshot, target, err)
	}
	if err := sendSnapshot(stream, header, data, args.Size); err != nil {
		return t.callErr(methodInstallSnapshot, target, err)
	}
	var out rawcodec.Frame
	if err := stream.RecvMsg(&out); err != nil {
		return t.callErr(methodInstallSnapshot, target, err)
	}
	remoteMsg, err := decodeResponse(out.Data, resp)
	if err != nil {
		return fmt.Errorf("raftrpc: %s response from %s: %w", methodInstallSnapshot, target, err)
	}
	if remoteMsg != "" {
		return fmt.Errorf("raftrpc: %s to %s: %w", methodInstallSnapshot, target, remoteError(remoteMsg))
	}
	return nil
}

// sendSnapshot sends the header and the data frames and half-closes the
// stream. io.EOF from SendMsg means the peer already answered (it may
// reject a snapshot without reading it): sending stops and the caller
// reads the answer.
func sendSnapshot(stream grpc.ClientStream, header []byte, data io.Reader, size int64) error {
	if err := stream.SendMsg(&rawcodec.Frame{Data: header}); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var sent int64
	for {
		// Read what is left of size, at most a chunk; past size, a small
		// probe that normally finds io.EOF at once.
		n := int64(snapshotChunkSize)
		switch rest := size - sent; {
		case rest <= 0:
			n = 4 << 10
		case rest < n:
			n = rest
		}
		// A fresh buffer per frame: gRPC may read a sent message after
		// SendMsg returns.
		buf := make([]byte, n)
		read, rerr := io.ReadFull(data, buf)
		if read > 0 {
			sent += int64(read)
			if err := stream.SendMsg(&rawcodec.Frame{Data: buf[:read]}); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return stream.CloseSend()
		default:
			return fmt.Errorf("reading snapshot: %w", rerr)
		}
	}
}

// snapshotTimeout is timeout per started snapshotChunkSize bytes of size.
func snapshotTimeout(timeout time.Duration, size int64) time.Duration {
	chunks := size / snapshotChunkSize
	if size%snapshotChunkSize != 0 || chunks == 0 {
		chunks++
	}
	if chunks > int64(math.MaxInt64/timeout) {
		return math.MaxInt64
	}
	return timeout * time.Duration(chunks)
}

// serveInstallSnapshot serves one InstallSnapshot stream. Raft reads the
// data through a snapshotReader on its own goroutine; every stream
// operation stays on this handler goroutine, which receives a frame
// whenever the reader asks for one, so nothing touches the stream after
// the handler returns.
func (t *Transport) serveInstallSnapshot(stream grpc.ServerStream) error {
	ctx := stream.Context()
	var in rawcodec.Frame
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	req := new(raft.InstallSnapshotRequest)
	if err := decodeMessage(in.Data, req); err != nil {
		return t.malformed(methodInstallSnapshot, err)
	}
	if err := t.checkSender(ctx, req); err != nil {
		return err
	}

	want := make(chan struct{})
	chunks := make(chan snapshotChunk)
	stop := make(chan struct{})
	defer close(stop)
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{
		Command:  req,
		Reader:   &snapshotReader{remaining: req.Size, size: req.Size, want: want, chunks: chunks, stop: stop},
		RespChan: respCh,
	}
	if err := t.deliver(ctx, rpc, false); err != nil {
		return err
	}
	for {
		select {
		case <-want:
			var c rawcodec.Frame
			err := stream.RecvMsg(&c)
			// The reader waits for this chunk until stop closes, which
			// only this goroutine does.
			chunks <- snapshotChunk{data: c.Data, err: err}
		case resp := <-respCh:
			out, err := encodeResponse(resp.Response, resp.Error, new(raft.InstallSnapshotResponse))
			if err != nil {
				return status.Error(codes.Internal, err.Error())
			}
			return stream.SendMsg(&rawcodec.Frame{Data: out})
		case <-t.done:
			return errShutdownStatus()
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// snapshotChunk is one received data frame, or the stream's error.
type snapshotChunk struct {
	data []byte
	err  error
}

// snapshotReader is the io.Reader Raft gets with an InstallSnapshot RPC.
// It asks the stream's handler for frames one at a time and ends with
// io.EOF when the stream ends after exactly size bytes.
type snapshotReader struct {
	size      int64
	remaining int64
	buf       []byte
	err       error

	want   chan<- struct{}
	chunks <-chan snapshotChunk
	stop   <-chan struct{} // closed when the handler returns
}

func (r *snapshotReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next fetches the next frame into r.buf. Once size bytes have arrived it
// still reads on: the stream must end there (io.EOF), so a sender whose
// data is longer than it declared is caught rather than truncated.
func (r *snapshotReader) next() error {
	select {
	case r.want <- struct{}{}:
	case <-r.stop:
		return errSnapshotAborted
	}
	var c snapshotChunk
	select {
	case c = <-r.chunks:
	case <-r.stop:
		return errSnapshotAborted
	}
	switch {
	case errors.Is(c.err, io.EOF) && r.remaining == 0:
		return io.EOF
	case errors.Is(c.err, io.EOF):
		return fmt.Errorf("raftrpc: snapshot stream ended %d bytes short of %d: %w", r.remaining, r.size, io.ErrUnexpectedEOF)
	case c.err != nil:
		return fmt.Errorf("raftrpc: snapshot stream: %w", c.err)
	case int64(len(c.data)) > r.remaining:
		return fmt.Errorf("%w: snapshot data exceeds its declared size %d", ErrMalformed, r.size)
	}
	r.remaining -= int64(len(c.data))
	r.buf = c.data
	return nil
}
