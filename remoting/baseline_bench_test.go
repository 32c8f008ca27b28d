package remoting

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dchan-io/dchan/internal/rawcodec"
)

// The raw baselines: plain gRPC over loopback with a hand-written service
// and the raw frame codec, no dchan code but rawcodec. Values are testMsg
// (int64 + 32-byte string), gob-encoded by one long-lived encoder per
// direction and decoded by one long-lived decoder, as remoting's streams
// will do. The figures dchan's own benchmarks report are ratios to these,
// measured in the same run.
//
//	go test -run '^$' -bench . -benchtime 2s ./remoting/

// benchBatch is the number of values per Send in BenchmarkRawGRPCBaseline.
const benchBatch = 128

var benchStreamDesc = grpc.StreamDesc{
	StreamName:    "Stream",
	ServerStreams: true,
	ClientStreams: true,
}

const benchMethod = "/dchan.bench.v1.Baseline/Stream"

// startBenchServer serves handler as the one bidi-stream method of a plain
// gRPC server on loopback and returns a client connection to it. The
// server, the connection and their goroutines are gone when the benchmark
// ends.
func startBenchServer(b *testing.B, handler grpc.StreamHandler) *grpc.ClientConn {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(rawcodec.ServerOption())
	desc := benchStreamDesc
	desc.Handler = handler
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "dchan.bench.v1.Baseline",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{desc},
	}, struct{}{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	return conn
}

// frameReader reads the bytes of consecutive frames, receiving the next
// frame when the current one is used up. It is an io.ByteReader, so gob
// reads from it directly.
type frameReader struct {
	recv func(*rawcodec.Frame) error
	f    rawcodec.Frame
	b    []byte
}

func (r *frameReader) fill() error {
	for len(r.b) == 0 {
		if err := r.recv(&r.f); err != nil {
			return err
		}
		r.b = r.f.Data
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

// BenchmarkRawGRPCBaseline is the throughput ceiling: one client stream
// sends b.N values, 128 per frame, and the benchmark ends when the server
// has decoded and counted all of them.
func BenchmarkRawGRPCBaseline(b *testing.B) {
	var (
		target   = int64(b.N)
		received atomic.Int64
		done     = make(chan struct{})
		failed   = make(chan error, 1)
	)
	conn := startBenchServer(b, func(_ any, ss grpc.ServerStream) error {
		dec := gob.NewDecoder(&frameReader{recv: func(f *rawcodec.Frame) error { return ss.RecvMsg(f) }})
		for {
			var m testMsg
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				failed <- err
				return err
			}
			n := received.Add(1)
			if m.ID != n-1 || len(m.Payload) != len(testPayload) {
				err := fmt.Errorf("value %d: got %+v", n-1, m)
				failed <- err
				return err
			}
			if n == target {
				close(done)
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(ctx, &benchStreamDesc, benchMethod, rawcodec.CallOption())
	if err != nil {
		b.Fatal(err)
	}
	w := &sliceWriter{}
	enc := gob.NewEncoder(w)
	const frameCap = benchBatch * 48
	w.b = make([]byte, 0, frameCap)

	b.ResetTimer()
	for i := range b.N {
		if err := enc.Encode(testMsg{ID: int64(i), Payload: testPayload}); err != nil {
			b.Fatal(err)
		}
		if (i+1)%benchBatch == 0 || i == b.N-1 {
			// gRPC may still hold a sent message's bytes after SendMsg
			// returns: each frame gets a fresh buffer.
			if err := stream.SendMsg(&rawcodec.Frame{Data: w.b}); err != nil {
				b.Fatal(err)
			}
			w.b = make([]byte, 0, frameCap)
		}
	}
	select {
	case <-done:
	case err := <-failed:
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")

	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
	var f rawcodec.Frame
	if err := stream.RecvMsg(&f); !errors.Is(err, io.EOF) {
		b.Fatalf("stream end: %v", err)
	}
}

// BenchmarkRawGRPCRoundTrip is the latency floor for request/reply: one
// request frame and one reply frame per operation on one long-lived bidi
// stream (cheaper than a unary call, which opens an HTTP/2 stream and sends
// headers and trailers per call, and could not keep a gob encoder across
// calls). It reports the p50 and p99 round trip in microseconds.
func BenchmarkRawGRPCRoundTrip(b *testing.B) {
	conn := startBenchServer(b, func(_ any, ss grpc.ServerStream) error {
		dec := gob.NewDecoder(&frameReader{recv: func(f *rawcodec.Frame) error { return ss.RecvMsg(f) }})
		w := &sliceWriter{}
		enc := gob.NewEncoder(w)
		for {
			var m testMsg
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			w.b = make([]byte, 0, 64)
			m.ID++
			if err := enc.Encode(m); err != nil {
				return err
			}
			if err := ss.SendMsg(&rawcodec.Frame{Data: w.b}); err != nil {
				return err
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := conn.NewStream(ctx, &benchStreamDesc, benchMethod, rawcodec.CallOption())
	if err != nil {
		b.Fatal(err)
	}
	w := &sliceWriter{}
	enc := gob.NewEncoder(w)
	dec := gob.NewDecoder(&frameReader{recv: func(f *rawcodec.Frame) error { return stream.RecvMsg(f) }})
	rtts := make([]time.Duration, b.N)

	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		w.b = make([]byte, 0, 64)
		if err := enc.Encode(testMsg{ID: int64(i), Payload: testPayload}); err != nil {
			b.Fatal(err)
		}
		if err := stream.SendMsg(&rawcodec.Frame{Data: w.b}); err != nil {
			b.Fatal(err)
		}
		var reply testMsg
		if err := dec.Decode(&reply); err != nil {
			b.Fatal(err)
		}
		rtts[i] = time.Since(start)
		if reply.ID != int64(i)+1 {
			b.Fatalf("reply %d: got %+v", i, reply)
		}
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-us")

	if err := stream.CloseSend(); err != nil {
		b.Fatal(err)
	}
	var f rawcodec.Frame
	if err := stream.RecvMsg(&f); !errors.Is(err, io.EOF) {
		b.Fatalf("stream end: %v", err)
	}
}

// BenchmarkGobCodec encodes and decodes one value per operation through
// one stream's GobCodec encoder and decoder. The value is a flat struct,
// which the default codec sends without gob.
func BenchmarkGobCodec(b *testing.B) {
	c, err := NewGobCodec(testMsg{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCodec(b, c)
}

// BenchmarkGobCodecPlain is BenchmarkGobCodec through gob itself (the
// codec without its flat path): what the flat path saves.
func BenchmarkGobCodecPlain(b *testing.B) {
	c, err := newPlainGobCodec(testMsg{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCodec(b, c)
}

func benchmarkCodec(b *testing.B, c *GobCodec) {
	enc, dec := c.NewEncoder(), c.NewDecoder()
	m := testMsg{ID: 1, Payload: testPayload}
	var buf []byte
	var err error
	b.ReportAllocs()
	for b.Loop() {
		buf, err = enc.Encode(buf[:0], m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dec.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/msg")
}

// BenchmarkGobCodecRun is BenchmarkGobCodec with the values encoded and
// decoded as runs of benchBatch (EncodeRun, DecodeRun), as a stream's
// writer sends consecutive values to one target. ns/value is the figure to
// set beside BenchmarkGobCodec's ns/op.
func BenchmarkGobCodecRun(b *testing.B) {
	c, err := NewGobCodec(testMsg{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCodecRun(b, c)
}

// BenchmarkGobCodecRunPlain is BenchmarkGobCodecRun through gob itself: a
// run is one gob []testMsg.
func BenchmarkGobCodecRunPlain(b *testing.B) {
	c, err := newPlainGobCodec(testMsg{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkCodecRun(b, c)
}

func benchmarkCodecRun(b *testing.B, c *GobCodec) {
	enc, dec := c.NewEncoder().(RunEncoder), c.NewDecoder().(RunDecoder)
	first, err := enc.Encode(nil, testMsg{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := dec.Decode(first); err != nil {
		b.Fatal(err)
	}
	run := make([]any, benchBatch)
	for i := range run {
		run[i] = testMsg{ID: int64(i), Payload: testPayload}
	}
	var (
		buf []byte
		out []any
	)
	b.ReportAllocs()
	for b.Loop() {
		var ok bool
		buf, ok, err = enc.EncodeRun(buf[:0], run)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		if out, err = dec.DecodeRun(out[:0], buf, len(run)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/value")
	b.ReportMetric(float64(len(buf))/benchBatch, "bytes/value")
}

// BenchmarkGobFreshEncoderPerMessage is the path GobCodec avoids: a new gob
// encoder and decoder per value, so every value carries its type's
// description. It decodes into the concrete type, which only flatters it.
func BenchmarkGobFreshEncoderPerMessage(b *testing.B) {
	m := testMsg{ID: 1, Payload: testPayload}
	var w sliceWriter
	b.ReportAllocs()
	for b.Loop() {
		w.b = w.b[:0]
		if err := gob.NewEncoder(&w).Encode(m); err != nil {
			b.Fatal(err)
		}
		var out testMsg
		if err := gob.NewDecoder(&sliceReader{b: w.b}).Decode(&out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(w.b)), "bytes/msg")
}
