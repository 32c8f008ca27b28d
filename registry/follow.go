package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting"
)

// A replica serves the registry to followers, nodes that keep a copy of it
// without taking part in Raft (the Follow stream): the entries it applied
// after the version the follower holds, in order, each with its Raft
// index, and from then on every entry it applies; or, when it no longer
// holds some of those entries (see appliedLog), its State whole, then the
// entries after it. A follower's copy is therefore always some State a
// replica held, and moves forward only; a follower that loses its replica
// resumes from its version at another.
//
// The stream's messages are rawcodec frames. The follower sends one: the
// version it holds (uvarint; 0 for none). The replica then sends:
//
//	followSnapshot | last byte (0 or 1) | a piece of a snapshot (writeSnapshot)
//	followEntries  | count (uvarint) | count × (index uvarint | data, a string)
//	followBeat     | the leader's address the replica knows (a string)
//
// A snapshot comes in pieces of at most followChunk bytes, the last one
// marked; an entries frame holds at most about followChunk bytes. A
// replica sends a beat every beat interval (beatEvery) while it is in
// contact with the leader: a follower that hears nothing for
// followSilence moves to another replica, and learns from the beats where
// to send its writes. The follower, for its part, sends an empty frame
// every beat interval: a registry client's liveness, which the replica
// reports to the leader (client.go).
const methodFollow = "/" + serviceName + "/Follow"

const (
	followSnapshot byte = iota + 1
	followEntries
	followBeat
)

// followSilence is how many beat intervals a follower waits for a frame
// before it gives up on its replica.
const followSilence = 4

// followChunk bounds a frame of the Follow stream (well under the 4 MiB
// a peer accepts by default).
const followChunk = 1 << 20

// maxFollowSnapshot bounds the snapshot a follower accepts: a snapshot of
// a million names with their receivers is about 70 MB.
const maxFollowSnapshot = 1 << 30

func followStreamDesc() *grpc.StreamDesc {
	return &grpc.StreamDesc{StreamName: "Follow", ServerStreams: true, ClientStreams: true}
}

// serveFollow serves a follower until it goes, the registry closes, or a
// send fails.
func (r *Registry) serveFollow(_ any, stream grpc.ServerStream) error {
	var in rawcodec.Frame
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	rd := bin.NewReader(in.Data, ErrMalformed)
	have := rd.Uvarint()
	rd.End()
	if rd.Err() != nil {
		return rd.Err()
	}
	if _, err := r.raftNode(); err != nil {
		return err // not a replica (yet)
	}
	if r.client.on.Load() {
		return fmt.Errorf("%w: node %q is a registry client, not a replica", ErrUnavailable, r.cfg.nodeID)
	}
	ctx := stream.Context()
	peer := remoting.PeerID(ctx)
	r.heard.note(peer)
	// The follower's beats. This goroutine ends when the stream does,
	// which is once this handler has returned.
	go func() {
		for {
			var beat rawcodec.Frame
			if err := stream.RecvMsg(&beat); err != nil {
				return
			}
			r.heard.note(peer)
		}
	}()
	tick := time.NewTicker(r.beatEvery())
	defer tick.Stop()
	for {
		snap, entries, moved := r.fsm.follow(have)
		if snap != nil {
			if err := sendSnapshotFrames(stream, snap); err != nil {
				return err
			}
			have = snap.Version()
		}
		if len(entries) > 0 {
			if err := sendEntryFrames(stream, entries); err != nil {
				return err
			}
			have = entries[len(entries)-1].index
		}
		if snap != nil || len(entries) > 0 {
			continue // more may have been applied meanwhile
		}
		select {
		case <-moved:
		case <-tick.C:
			if !r.inContact() {
				continue // its copy may be stale: let the follower go elsewhere
			}
			leader, _ := r.leaderAddr()
			if err := stream.SendMsg(&rawcodec.Frame{Data: encodeBeat(leader)}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-r.ctx.Done():
			return ErrClosed
		}
	}
}

// sendSnapshotFrames sends s as a snapshot in pieces.
func sendSnapshotFrames(stream grpc.ServerStream, s *State) error {
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, s); err != nil {
		return err
	}
	b := buf.Bytes()
	for {
		n := min(len(b), followChunk)
		last := byte(0)
		if n == len(b) {
			last = 1
		}
		frame := append([]byte{followSnapshot, last}, b[:n]...)
		if err := stream.SendMsg(&rawcodec.Frame{Data: frame}); err != nil {
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
}

// sendEntryFrames sends entries in frames of about followChunk bytes.
func sendEntryFrames(stream grpc.ServerStream, entries []appliedEntry) error {
	for len(entries) > 0 {
		n, size := 0, 0
		for n < len(entries) && (n == 0 || size+len(entries[n].data) <= followChunk) {
			size += len(entries[n].data) + 16
			n++
		}
		w := bin.Writer{B: make([]byte, 0, size+16)}
		w.Byte(followEntries)
		w.Uvarint(uint64(n))
		for _, e := range entries[:n] {
			w.Uvarint(e.index)
			w.Uvarint(uint64(len(e.data))) // as Str writes it, without a copy to a string
			w.B = append(w.B, e.data...)
		}
		if err := stream.SendMsg(&rawcodec.Frame{Data: w.B}); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// follower keeps an fsm current from the Follow stream of a replica,
// going from one replica to the next when a stream fails or falls silent.
type follower struct {
	f         *fsm
	ep        *remoting.Endpoint
	log       *zap.Logger
	replicas  func() []string   // the addresses to follow, in the order to try them
	beatEvery time.Duration     // how often it beats; 0: defaultBeat
	onLeader  func(addr string) // the leader a replica names in its beats (may be nil)

	lastFrame atomic.Int64           // when a frame last came, in Unix nanoseconds
	following atomic.Pointer[string] // the replica followed now, if any
	snapshots atomic.Int64           // snapshots received
	batches   atomic.Int64           // entry frames received
}

// defaultBeat is a follower's beat interval when none is set.
const defaultBeat = 500 * time.Millisecond

// lastContact is when a frame last came from a replica (zero: never).
func (fl *follower) lastContact() time.Time {
	if n := fl.lastFrame.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// run follows until ctx ends.
func (fl *follower) run(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		for _, addr := range fl.replicas() {
			before := fl.f.current().Version()
			err := fl.followOnce(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			if fl.f.current().Version() > before {
				backoff = 10 * time.Millisecond // it made progress
			}
			fl.log.Debug("registry follow stream ended", zap.String("replica", addr), zap.Error(err))
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		case <-ctx.Done():
			return
		}
	}
}

// followOnce follows the replica at addr until its stream fails.
func (fl *follower) followOnce(ctx context.Context, addr string) error {
	conn, err := fl.ep.Conn(addr)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(sctx, followStreamDesc(), methodFollow, rawcodec.CallOption())
	if err != nil {
		return err
	}
	fl.following.Store(&addr)
	defer fl.following.Store(nil)
	w := bin.Writer{}
	w.Uvarint(fl.f.current().Version())
	if err := stream.SendMsg(&rawcodec.Frame{Data: w.B}); err != nil {
		return err
	}
	every := fl.beatEvery
	if every <= 0 {
		every = defaultBeat
	}
	// The beats, and the watch for a replica fallen silent: a blackholed
	// or paused one leaves the stream open.
	heard := make(chan struct{}, 1)
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		tick := time.NewTicker(every)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-sctx.Done():
				return
			case <-heard:
				last = time.Now()
			case <-tick.C:
				if time.Since(last) > followSilence*every {
					fl.log.Debug("registry follow stream silent; moving on", zap.String("replica", addr))
					cancel()
					return
				}
				if stream.SendMsg(&rawcodec.Frame{}) != nil {
					cancel()
					return
				}
			}
		}
	}()
	defer func() { cancel(); <-beats }()
	var snap []byte // the snapshot being received
	for {
		var in rawcodec.Frame
		if err := stream.RecvMsg(&in); err != nil {
			return err
		}
		fl.lastFrame.Store(time.Now().UnixNano())
		select {
		case heard <- struct{}{}:
		default:
		}
		if len(in.Data) == 0 {
			return fmt.Errorf("%w: an empty follow frame from %s", ErrMalformed, addr)
		}
		switch in.Data[0] {
		case followSnapshot:
			if len(in.Data) < 2 || len(snap)+len(in.Data)-2 > maxFollowSnapshot {
				return fmt.Errorf("%w: a snapshot frame of %d bytes from %s (%d so far)", ErrMalformed, len(in.Data), addr, len(snap))
			}
			snap = append(snap, in.Data[2:]...)
			if in.Data[1] == 1 {
				if err := fl.f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
					return fmt.Errorf("a snapshot from %s: %w", addr, err)
				}
				fl.snapshots.Add(1)
				snap = nil
			}
		case followEntries:
			if snap != nil {
				return fmt.Errorf("%w: entries inside a snapshot from %s", ErrMalformed, addr)
			}
			logs, err := decodeEntryFrame(in.Data[1:], fl.f.current().Version())
			if err != nil {
				return fmt.Errorf("entries from %s: %w", addr, err)
			}
			fl.f.ApplyBatch(logs)
			fl.batches.Add(1)
		case followBeat:
			leader, err := decodeBeat(in.Data)
			if err != nil {
				return fmt.Errorf("a beat from %s: %w", addr, err)
			}
			if leader != "" && fl.onLeader != nil {
				fl.onLeader(leader)
			}
		default:
			return fmt.Errorf("%w: follow frame kind %d from %s", ErrUnsupportedVersion, in.Data[0], addr)
		}
	}
}

// encodeBeat encodes a replica's beat frame, naming the leader it knows.
func encodeBeat(leader string) []byte {
	w := bin.Writer{B: []byte{followBeat}}
	w.Str(leader)
	return w.B
}

// decodeBeat decodes a beat frame (its kind byte first).
func decodeBeat(b []byte) (leader string, err error) {
	rd := bin.NewReader(b, ErrMalformed)
	if rd.Byte() != followBeat {
		rd.Fail("not a beat frame")
	}
	leader = rd.Str("leader address", MaxAddrLen)
	rd.End()
	return leader, rd.Err()
}

// decodeEntryFrame decodes an entries frame's body into log entries, which
// must come after version, in order.
func decodeEntryFrame(b []byte, version uint64) ([]*raft.Log, error) {
	rd := bin.NewReader(b, ErrMalformed)
	n := rd.Count("entry", 2)
	logs := make([]*raft.Log, 0, n)
	last := version
	for range n {
		index := rd.Uvarint()
		data := rd.Take(rd.Uvarint()) // the frame is this decoder's own copy
		if rd.Err() != nil {
			break
		}
		if index <= last {
			rd.Fail("entry %d after %d", index, last)
			break
		}
		last = index
		logs = append(logs, &raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	}
	rd.End()
	if rd.Err() != nil {
		return nil, rd.Err()
	}
	return logs, nil
}
