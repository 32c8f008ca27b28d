package main

// The raw gRPC baseline: what a Go programmer writes by hand with grpc-go and
// encoding/gob, no dchan code. One bidi-stream method carries opaque frames;
// each client stream has one long-lived gob encoder and sends batches of
// rawBatch values per frame, and the server decodes each stream with one
// long-lived gob decoder. For the round trip, each frame holds one value.

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawBatch is the number of values per frame in the one-way baseline.
const rawBatch = 128

// rawStream is the baseline's one method, a bidi stream of frames.
var rawStream = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}

const rawMethod = "/bench.Raw/Stream"

// frame is one gRPC message: bytes that frameCodec passes through.
type frame struct{ data []byte }

// frameCodec is a gRPC codec for frames: the bytes go as they are.
type frameCodec struct{}

func (frameCodec) Marshal(v any) ([]byte, error) { return v.(*frame).data, nil }

// Unmarshal keeps data: gRPC hands the codec a copy of its own.
func (frameCodec) Unmarshal(data []byte, v any) error { v.(*frame).data = data; return nil }
func (frameCodec) Name() string                       { return "bench-frame" }

// frameReader reads consecutive frames' bytes as one stream, receiving the
// next frame when the current one is used up. It is an io.ByteReader, so a
// gob decoder reads from it without a buffer of its own (and never reads
// ahead of the value it decodes).
type frameReader struct {
	recv func(any) error // a stream's RecvMsg
	f    frame
	b    []byte
}

func (r *frameReader) fill() error {
	for len(r.b) == 0 {
		if err := r.recv(&r.f); err != nil {
			return err
		}
		r.b = r.f.data
	}
	return nil
}

func (r *frameReader) Read(p []byte) (int, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *frameReader) ReadByte() (byte, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// sliceWriter collects a gob encoder's output.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// rawEncoder is one client stream's gob encoder.
type rawEncoder struct {
	stream grpc.ClientStream
	w      sliceWriter
	enc    *gob.Encoder
}

func newRawEncoder(stream grpc.ClientStream) *rawEncoder {
	e := &rawEncoder{stream: stream}
	e.enc = gob.NewEncoder(&e.w)
	return e
}

// send encodes n values from id on as one frame and sends it. gRPC may
// still hold a frame's bytes after SendMsg returns, so each frame gets a
// fresh buffer.
func (e *rawEncoder) send(id int64, n int) error {
	e.w.b = make([]byte, 0, n*48)
	for i := range n {
		if err := e.enc.Encode(Msg{ID: id + int64(i), Payload: payload}); err != nil {
			return err
		}
	}
	return e.stream.SendMsg(&frame{data: e.w.b})
}

// rawRecv is the role "raw-recv": a gRPC server whose streams count the
// values they decode (with -pace, one per -pace at most), and with -mode echo
// send each back.
func rawRecv(c *child, f *roleFlags) error {
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	handler := func(_ any, ss grpc.ServerStream) error {
		dec := gob.NewDecoder(&frameReader{recv: ss.RecvMsg})
		pace := pacer{every: f.pace}
		var echo *gob.Encoder
		var w sliceWriter
		if f.mode == "echo" {
			echo = gob.NewEncoder(&w)
		}
		for {
			var m Msg
			if err := dec.Decode(&m); err != nil {
				return nil // the sender has gone
			}
			if !valid(m) {
				c.fail(fmt.Errorf("raw-recv: bad value %+v", m))
			}
			pace.wait()
			if echo != nil {
				w.b = make([]byte, 0, 64)
				if err := echo.Encode(m); err != nil {
					return err
				}
				if err := ss.SendMsg(&frame{data: w.b}); err != nil {
					return nil
				}
			}
			c.count.Add(1)
		}
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(frameCodec{}))
	desc := rawStream
	desc.Handler = handler
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Raw",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{desc},
	}, struct{}{})
	go func() { _ = srv.Serve(lis) }()
	c.ready(lis.Addr().String())
	<-c.stop
	srv.Stop()
	return nil
}

// rawDial opens one client connection per address in the comma-separated
// peers.
func rawDial(peers string) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	for addr := range strings.SplitSeq(peers, ",") {
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(frameCodec{})))
		if err != nil {
			return nil, err
		}
		conns = append(conns, conn)
	}
	return conns, nil
}

// rawSend is the role "raw-send": -streams goroutines, each with a stream
// to every peer (one connection per peer, shared), send values as fast as
// they can, rawBatch per frame, the frames rotating over the peers.
func rawSend(c *child, f *roleFlags) error {
	conns, err := rawDial(f.peers)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	workers := make([][]*rawEncoder, f.streams)
	for i := range workers {
		for _, conn := range conns {
			stream, err := conn.NewStream(ctx, &rawStream, rawMethod)
			if err != nil {
				return err
			}
			workers[i] = append(workers[i], newRawEncoder(stream))
		}
	}
	c.ready("")
	for _, encs := range workers {
		go func() {
			var id int64
			for turn := 0; !c.stopping(); turn++ {
				if err := encs[turn%len(encs)].send(id, rawBatch); err != nil {
					if !c.stopping() {
						c.fail(fmt.Errorf("raw-send: %w", err))
					}
					return
				}
				id += rawBatch
				c.count.Add(rawBatch)
			}
		}()
	}
	<-c.stop
	return nil
}

// rawRoundTrip is the role "raw-rtt": -inflight values in flight on one
// bidi stream to an echoing raw-recv, each round trip timed. With one in
// flight each request waits for its reply; with more, a goroutine sends
// while fewer than -inflight are unanswered, and the replies, which come
// back in order, are matched to their send times in order.
func rawRoundTrip(c *child, f *roleFlags) error {
	conns, err := rawDial(f.peers)
	if err != nil {
		return err
	}
	stream, err := conns[0].NewStream(context.Background(), &rawStream, rawMethod)
	if err != nil {
		return err
	}
	enc := newRawEncoder(stream)
	dec := gob.NewDecoder(&frameReader{recv: stream.RecvMsg})
	c.ready("")
	inflight := max(f.inflight, 1)
	sent := make(chan time.Time, inflight) // send times of the unanswered, oldest first
	sendErr := make(chan error, 1)
	if inflight > 1 {
		go func() {
			for id := int64(0); !c.stopping(); id++ {
				sent <- time.Now() // blocks while inflight are unanswered
				if err := enc.send(id, 1); err != nil {
					sendErr <- err
					return
				}
			}
		}()
	}
	for id := int64(0); !c.stopping(); id++ {
		if inflight == 1 {
			sent <- time.Now()
			if err := enc.send(id, 1); err != nil {
				return err
			}
		}
		var m Msg
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) || c.stopping() {
				break
			}
			select {
			case err := <-sendErr:
				return err
			default:
			}
			return err
		}
		c.recordLatency(time.Since(<-sent))
		if m.ID != id {
			return fmt.Errorf("raw-rtt: reply %d to request %d", m.ID, id)
		}
		c.count.Add(1)
	}
	<-c.stop
	return nil
}

// The raw candidates, as the shapes run them.

// rawOneWay: streams client streams in one process to one receiving process.
func rawOneWay(t *trial, streams int) (measurement, error) {
	recv, err := t.start("raw-recv")
	if err != nil {
		return measurement{}, err
	}
	if _, err := t.start("raw-send", "-peers", recv.addr, "-streams", strconv.Itoa(streams)); err != nil {
		return measurement{}, err
	}
	return t.throughput(recv)
}

// rawManyToMany: senders processes, each streaming to each of receivers
// processes in turn.
func rawManyToMany(t *trial, senders, receivers int) (measurement, error) {
	var recvs []*proc
	var addrs []string
	for range receivers {
		p, err := t.start("raw-recv")
		if err != nil {
			return measurement{}, err
		}
		recvs = append(recvs, p)
		addrs = append(addrs, p.addr)
	}
	for range senders {
		if _, err := t.start("raw-send", "-peers", strings.Join(addrs, ","), "-streams", "1"); err != nil {
			return measurement{}, err
		}
	}
	return t.throughput(recvs...)
}

// rawRequestReply: the bidi-stream echo, one value in flight.
func rawRequestReply(t *trial) (measurement, error) { return rawPipelined(t, 1) }

// rawPipelined: the bidi-stream echo, inflight values in flight: round
// trips with one, requests per second with more.
func rawPipelined(t *trial, inflight int) (measurement, error) {
	recv, err := t.start("raw-recv", "-mode", "echo")
	if err != nil {
		return measurement{}, err
	}
	req, err := t.start("raw-rtt", "-peers", recv.addr, "-inflight", strconv.Itoa(inflight))
	if err != nil {
		return measurement{}, err
	}
	if inflight == 1 {
		return t.roundTrip(req)
	}
	return t.throughput(req)
}

// rawSlowReceiver: one stream to a receiver paced at one value per -slow.
func rawSlowReceiver(t *trial) (measurement, error) {
	recv, err := t.start("raw-recv", "-pace", t.o.slow.String())
	if err != nil {
		return measurement{}, err
	}
	send, err := t.start("raw-send", "-peers", recv.addr, "-streams", "1")
	if err != nil {
		return measurement{}, err
	}
	return t.memory(send, recv)
}
