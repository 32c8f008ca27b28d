package remoting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcpeer "google.golang.org/grpc/peer"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/fifo"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/credit"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// inStream is the server side of one Messages stream: it decodes envelopes,
// delivers them to local actors and reports credits and acknowledgements.
//
// Delivery never blocks the stream: a message for a full mailbox waits in
// its link's overflow queue, bounded by the link's credit window, and a
// per-link deliverer goroutine pushes it when space frees. Credit returns to
// the sender only when a message is accepted into the mailbox, so overflow
// can never exceed the window.
type inStream struct {
	e      *Endpoint
	ss     grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc
	dec    Decoder
	from   string // peer address, for logs
	// peer is the node that opened the stream (PeerID): every sender it
	// names must be one of its own actors.
	peer string
	wg   sync.WaitGroup
	wake chan struct{} // signals the writer; capacity 1

	mu    sync.Mutex
	links map[string]*inLink
	dirty []*inLink // links with acceptances not yet reported
	out   []byte    // records waiting for the writer
	// outLen is len(out), for the reader to check without mu.
	outLen atomic.Int64
	// credited: a batch of credit was returned mid-frame; the reader
	// lets the writer send it before it goes on.
	credited atomic.Bool
	// ackTimer fires AckDelay after acceptances were first held back;
	// ackArmed says it is running. Both guarded by mu; the writer reads
	// the timer's channel.
	ackTimer *time.Timer
	ackArmed bool

	// Reader-owned caches so that decoding a sender PID rarely allocates.
	lastNode, lastID string
	vals             []any // a run's values
}

// maxPendingReplies bounds the records a stream holds for its peer to
// read. An honest peer reads them as they come; the bound is far above
// what its links' grants and acknowledgements can add up to.
const maxPendingReplies = 1 << 20

type inLink struct {
	target   actor.PID
	w        credit.Window // guarded by inStream.mu
	lastSeq  uint64        // reader only
	accepted uint64        // accepted but not yet reported; guarded by inStream.mu
	listed   bool          // in inStream.dirty; guarded by inStream.mu
	urgent   bool          // a tracked message is among them; guarded by inStream.mu
	batch    uint64        // report acceptances from the overflow in batches of this size

	omu        sync.Mutex
	overflow   fifo.Queue[envelope] // waiting for mailbox space, in order
	delivering bool                 // a deliverer goroutine is running
	// queued is len(overflow), written under omu. Only the reader adds to
	// the overflow, so when it reads 0 the overflow is empty until it
	// adds again, and it delivers without taking omu.
	queued atomic.Int64
}

type envelope struct {
	from    actor.PID
	msg     any
	tracked bool // the sender waits for its outcome
}

// Refusal codes carried by Rejected and Gone records.
const (
	codeNotFound uint8 = 1
	codeStopped  uint8 = 2
	codeInternal uint8 = 3
	codeRejected uint8 = 4
)

func refusalCode(err error) uint8 {
	switch {
	case errors.Is(err, actor.ErrNotFound):
		return codeNotFound
	case errors.Is(err, actor.ErrStopped):
		return codeStopped
	case errors.Is(err, actor.ErrRejected):
		return codeRejected
	default:
		return codeInternal
	}
}

// refusalError turns a refusal code back into the sentinel it stood for, so
// that errors.Is works across nodes.
func refusalError(code uint8, reason string) error {
	var base error
	switch code {
	case codeNotFound:
		base = actor.ErrNotFound
	case codeStopped:
		base = actor.ErrStopped
	case codeRejected:
		base = actor.ErrRejected
	default:
		base = ErrProtocol
	}
	return fmt.Errorf("remote: %w (%s)", base, reason)
}

func (e *Endpoint) serveMessages(ss grpc.ServerStream) error {
	ctx, cancel := context.WithCancel(ss.Context())
	s := &inStream{
		e:        e,
		ss:       ss,
		ctx:      ctx,
		cancel:   cancel,
		dec:      e.codec.NewDecoder(),
		wake:     make(chan struct{}, 1),
		links:    make(map[string]*inLink),
		ackTimer: time.NewTimer(time.Hour),
	}
	s.ackTimer.Stop()
	if p, ok := grpcpeer.FromContext(ss.Context()); ok {
		s.from = p.Addr.String()
	}
	s.peer = PeerID(ss.Context())
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		cancel()
		return ErrClosed
	}

	writerDone := make(chan error, 1)
	go func() { writerDone <- s.writeLoop() }()
	err := s.readLoop()
	cancel()
	s.wg.Wait() // deliverers
	werr := <-writerDone
	if err == nil {
		err = werr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		e.log.Debug("incoming stream ended", zap.String("peer", s.from), zap.Error(err))
	}
	return err
}

func (s *inStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *inStream) readLoop() error {
	// The frame's bytes are borrowed from gRPC until Release: records
	// alias them, decoded values and everything kept do not (a Decoder
	// does not retain its input, tags are cloned, strings copied).
	frame := rawcodec.Frame{Borrow: true}
	defer frame.Release()
	var rec wire.Record
	var r wire.Reader
	wc := s.e.wire.of(s.peer)
	for {
		if err := s.ss.RecvMsg(&frame); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		wc.recvFrames.Add(1)
		wc.recvBytes.Add(uint64(len(frame.Data)))
		// The reader decodes without s.mu and takes it per record to
		// deliver, so the writer can send the credit that a record
		// returns while the rest of the frame is decoded.
		r.Reset(frame.Data)
		for {
			err := r.Next(&rec)
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = s.handle(&rec)
			}
			if err == nil && s.outLen.Load() > maxPendingReplies {
				// Refusals, grants and acknowledgements the peer does not
				// read: it opens links or sends to stopped actors without
				// reading the answers. Nothing it sends needs more.
				err = fmt.Errorf("%d bytes of replies wait for a peer that does not read them", s.outLen.Load())
			}
			if err != nil {
				s.e.log.Warn("closing incoming stream", zap.String("peer", s.from), zap.Error(err))
				return fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			if s.credited.Swap(false) {
				// Let the writer send that credit now: on a busy machine
				// it would otherwise wait for the reader to block, a
				// frame later, while the sender runs dry.
				runtime.Gosched()
			}
		}
		s.flushAccepted(false)
		frame.Release()
	}
}

// handle applies one record.
func (s *inStream) handle(rec *wire.Record) error {
	switch rec.Kind {
	case wire.KindOpen:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.open(string(rec.Target))
	case wire.KindEnvelope:
		return s.envelope(rec)
	case wire.KindRun:
		return s.run(rec)
	default:
		return fmt.Errorf("unexpected %s record from a sender", rec.Kind)
	}
}

// open grants credit to a new link; s.mu is held.
func (s *inStream) open(target string) error {
	pid := actor.PID{Node: s.e.sys.Node(), ID: target}
	free, err := s.e.sys.MailboxFree(pid)
	if _, ok := s.links[target]; ok {
		return fmt.Errorf("link to %q opened twice", target)
	}
	if err != nil {
		s.out = wire.AppendRefusal(s.out, wire.KindGone, target, refusalCode(err), err.Error())
		s.outLen.Store(int64(len(s.out)))
		s.signal()
		return nil
	}
	// A link may have the mailbox's free space in flight, and at least
	// minWindow: a window of a small mailbox's size would leave the link
	// waiting for credit most of the time. What exceeds the mailbox waits
	// in the link's overflow, which the window bounds.
	grant := uint64(min(max(free, s.e.cfg.minWindow, 1), s.e.cfg.maxWindow))
	l := &inLink{target: pid, batch: max(grant/8, 1)}
	l.w.Grant(grant)
	s.links[target] = l
	s.out = wire.AppendCount(s.out, wire.KindGrant, target, grant)
	s.outLen.Store(int64(len(s.out)))
	s.signal()
	return nil
}

func (s *inStream) envelope(rec *wire.Record) error {
	if len(rec.Payload) > s.e.cfg.maxMessageSize {
		return fmt.Errorf("%w: %d-byte message, limit %d", ErrTooLarge, len(rec.Payload), s.e.cfg.maxMessageSize)
	}
	// Decode first, always: a stateful codec must see every value of the
	// stream, even one whose target has gone.
	msg, err := s.decode(rec)
	if err != nil {
		return err
	}
	if rec.Flags&wire.FlagReply != 0 {
		to := actor.PID{Node: s.e.sys.Node(), ID: string(rec.Target)}
		if !to.IsReply() {
			return fmt.Errorf("reply flag on a message to %q", rec.Target)
		}
		// A reply address never blocks; a late reply becomes a dead letter.
		from, err := s.senderPID(rec.SenderNode, rec.SenderID)
		if err != nil {
			return err
		}
		if err := s.e.sys.TrySendFrom(from, to, msg); err == nil {
			s.e.stats.delivered.Add(1)
		}
		return nil
	}
	from, err := s.senderPID(rec.SenderNode, rec.SenderID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.links[string(rec.Target)]
	if l == nil {
		// The link was closed with Gone and its in-flight messages failed
		// at the sender; this one was already on the wire. Drop it.
		s.e.stats.dropped.Add(1)
		return nil
	}
	return s.deliverOne(l, rec.Seq, envelope{from: from, msg: msg, tracked: rec.Flags&wire.FlagTracked != 0})
}

// run handles a run record: its values are delivered one by one, as if
// each had come in its own envelope.
func (s *inStream) run(rec *wire.Record) error {
	if len(rec.Payload) > s.e.cfg.maxMessageSize {
		return fmt.Errorf("%w: %d-byte run, limit %d", ErrTooLarge, len(rec.Payload), s.e.cfg.maxMessageSize)
	}
	if rec.Flags&^wire.FlagTracked != 0 {
		return fmt.Errorf("flags %#x on a run", rec.Flags)
	}
	rd, ok := s.dec.(RunDecoder)
	if !ok {
		return fmt.Errorf("a run, but codec %q does not decode runs", s.e.codec.Name())
	}
	vals, err := rd.DecodeRun(s.vals[:0], rec.Payload, int(rec.N))
	defer func() {
		clear(vals)
		s.vals = vals[:0]
	}()
	if err != nil {
		return err
	}
	from, err := s.senderPID(rec.SenderNode, rec.SenderID)
	if err != nil {
		return err
	}
	tracked := rec.Flags&wire.FlagTracked != 0
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliverRun(string(rec.Target), rec.Seq, from, tracked, vals)
}

// deliverRun delivers a run's values; s.mu is held.
func (s *inStream) deliverRun(target string, seq uint64, from actor.PID, tracked bool, vals []any) error {
	l := s.links[target]
	if l == nil {
		// Closed with Gone: the sender failed the messages in flight.
		s.e.stats.dropped.Add(uint64(len(vals)))
		return nil
	}
	if l.queued.Load() != 0 {
		// The overflow holds older messages: these queue behind them.
		for i, v := range vals {
			if err := s.deliverOne(l, seq+uint64(i), envelope{from: from, msg: v, tracked: tracked}); err != nil {
				return err
			}
		}
		return nil
	}
	// Admit the whole run, then give the mailbox as much of it as fits in
	// one push; the rest goes one by one (to the overflow, or refused).
	for i := range vals {
		if err := s.admit(l, seq+uint64(i)); err != nil {
			return err
		}
	}
	n, _ := s.e.sys.TrySendManyFrom(from, l.target, vals)
	s.acceptLocked(l, n, tracked)
	for i, v := range vals[n:] {
		if s.links[target] != l {
			// Closed with Gone during this run: the sender failed the
			// messages in flight. Drop the rest.
			s.e.stats.dropped.Add(uint64(len(vals) - n - i))
			return nil
		}
		s.place(l, envelope{from: from, msg: v, tracked: tracked})
	}
	return nil
}

// deliverOne takes message seq of link l: it counts against the link's
// credit, must come next in order, and goes to the mailbox now or, if that
// is full, to the link's overflow. s.mu is held.
func (s *inStream) deliverOne(l *inLink, seq uint64, env envelope) error {
	if err := s.admit(l, seq); err != nil {
		return err
	}
	s.place(l, env)
	return nil
}

// admit counts message seq of l against the link's credit and checks that
// it comes next; s.mu is held.
func (s *inStream) admit(l *inLink, seq uint64) error {
	if err := l.w.Receive(); err != nil {
		return err
	}
	if seq != l.lastSeq+1 {
		return fmt.Errorf("message %d to %q after %d", seq, l.target.ID, l.lastSeq)
	}
	l.lastSeq = seq
	return nil
}

// place delivers an admitted message to the mailbox now, or queues it in
// the link's overflow if the mailbox is full or older messages wait there;
// s.mu is held.
func (s *inStream) place(l *inLink, env envelope) {
	if l.queued.Load() == 0 {
		err := s.e.sys.TrySendFrom(env.from, l.target, env.msg)
		if !errors.Is(err, actor.ErrFull) {
			s.resolveLocked(l, err, env.tracked)
			return
		}
	}
	l.omu.Lock()
	l.overflow.Push(env)
	l.queued.Store(int64(l.overflow.Len()))
	if !l.delivering {
		l.delivering = true
		s.wg.Add(1)
		go s.deliver(l)
	}
	l.omu.Unlock()
}

// decode decodes an envelope's payload: the codec's bytes, or a Tagged.
func (s *inStream) decode(rec *wire.Record) (any, error) {
	if rec.Flags&wire.FlagTagged == 0 {
		if rec.Flags&wire.FlagNoValue != 0 {
			return nil, fmt.Errorf("%w: no-value flag on an untagged message", ErrProtocol)
		}
		return s.dec.Decode(rec.Payload)
	}
	tag, rest, err := wire.SplitTag(rec.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	t := Tagged{Tag: bytes.Clone(tag)}
	if rec.Flags&wire.FlagNoValue != 0 {
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: bytes after a tag without a value", ErrProtocol)
		}
		return t, nil
	}
	if t.Value, err = s.dec.Decode(rest); err != nil {
		return nil, err
	}
	return t, nil
}

// senderPID returns the sender an envelope names, which must be an actor
// of the node that opened the stream: a member cannot send as another.
func (s *inStream) senderPID(node, id []byte) (actor.PID, error) {
	if len(node) == 0 && len(id) == 0 {
		return actor.PID{}, nil
	}
	if string(node) != s.peer {
		return actor.PID{}, fmt.Errorf("%w: a message from %q/%q on a stream opened by node %q", ErrImpersonation, node, id, s.peer)
	}
	if string(node) != s.lastNode {
		s.lastNode = string(node)
	}
	if string(id) != s.lastID {
		s.lastID = string(id)
	}
	return actor.PID{Node: s.lastNode, ID: s.lastID}, nil
}

// resolveLocked records the outcome of delivering one message of l, in
// order, and returns how many acceptances of l wait to be reported.
func (s *inStream) resolveLocked(l *inLink, err error, tracked bool) uint64 {
	if s.links[l.target.ID] != l {
		return 0 // link closed meanwhile
	}
	if err == nil {
		s.acceptLocked(l, 1, tracked)
		return l.accepted
	}
	// Keep order: report the acceptances before this refusal.
	s.reportAccepted(l)
	_ = l.w.Resolve(1)
	if errors.Is(err, actor.ErrNotFound) {
		// The actor is gone: close the link; the sender fails the rest.
		delete(s.links, l.target.ID)
		s.out = wire.AppendRefusal(s.out, wire.KindGone, l.target.ID, refusalCode(err), err.Error())
		s.outLen.Store(int64(len(s.out)))
	} else {
		s.out = wire.AppendRefusal(s.out, wire.KindRejected, l.target.ID, refusalCode(err), err.Error())
		s.outLen.Store(int64(len(s.out)))
	}
	s.signal()
	return 0
}

// acceptLocked records that n messages of l were accepted into the
// mailbox; s.mu is held and l is open.
func (s *inStream) acceptLocked(l *inLink, n int, tracked bool) {
	if n == 0 {
		return
	}
	if !l.listed {
		l.listed = true
		s.dirty = append(s.dirty, l)
	}
	l.accepted += uint64(n)
	l.urgent = l.urgent || tracked
	s.e.stats.delivered.Add(uint64(n))
	if l.accepted >= l.batch {
		// A batch is due: return it now, mid-frame, so that the sender
		// refills the window while the rest of the frame is decoded,
		// instead of waiting for the whole frame.
		s.reportAccepted(l)
		s.credited.Store(true)
		s.signal()
	}
}

// reportAccepted queues an Accepted record for l's unreported acceptances;
// s.mu is held.
func (s *inStream) reportAccepted(l *inLink) {
	if l.accepted == 0 {
		return
	}
	_ = l.w.Resolve(l.accepted)
	s.out = wire.AppendCount(s.out, wire.KindAccepted, l.target.ID, l.accepted)
	s.outLen.Store(int64(len(s.out)))
	l.accepted = 0
	l.urgent = false
}

// flushAccepted reports acceptances gathered while reading one frame.
//
// Unless force is set, a link's acceptances wait while none of them was
// tracked and they number fewer than the link's batch (an eighth of its
// window): nobody waits for them, and the sender keeps at least seven
// eighths of its credit. A sender that runs out of credit still gets it
// back: with the whole window in flight and fewer than a batch accepted,
// the rest is still to arrive or in the overflow, and their acceptances
// complete a batch. Whatever waits is reported AckDelay after it was first
// held back at the latest (the writer's ack timer).
func (s *inStream) flushAccepted(force bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushAcceptedLocked(force)
}

func (s *inStream) flushAcceptedLocked(force bool) {
	kept := s.dirty[:0]
	for _, l := range s.dirty {
		if l.accepted == 0 || s.links[l.target.ID] != l {
			l.listed = false
			continue // reported already, before a refusal, or closed
		}
		if !force && !l.urgent && l.accepted < l.batch {
			kept = append(kept, l)
			continue
		}
		s.reportAccepted(l)
		l.listed = false
	}
	clear(s.dirty[len(kept):])
	s.dirty = kept
	if len(kept) > 0 && !s.ackArmed {
		s.ackArmed = true
		s.ackTimer.Reset(AckDelay)
	}
	if len(s.out) > 0 {
		s.signal()
	}
}

// deliver pushes l's overflow into the mailbox in order, waiting for space.
func (s *inStream) deliver(l *inLink) {
	defer s.wg.Done()
	var batch []envelope
	var errs []error
	var msgs []any
	for {
		l.omu.Lock()
		if l.overflow.Len() == 0 || s.ctx.Err() != nil {
			dropped := l.overflow.Len()
			l.overflow = fifo.Queue[envelope]{}
			l.queued.Store(0)
			l.delivering = false
			l.omu.Unlock()
			s.e.stats.dropped.Add(uint64(dropped))
			return
		}
		// The front stays queued until pushed, so the reader keeps order.
		batch = batch[:0]
		l.overflow.Peek(min(l.overflow.Len(), deliverBatch), func(e envelope) { batch = append(batch, e) })
		l.omu.Unlock()

		// Wait for room for the first, then push as many more as fit.
		errs = errs[:0]
		err := s.e.sys.SendFrom(s.ctx, batch[0].from, l.target, batch[0].msg)
		if s.ctx.Err() != nil {
			continue // the stream ended: drop the rest (the sender failed them)
		}
		errs = append(errs, err)
		if err == nil {
			errs, msgs = s.pushMore(l, batch[1:], errs, msgs)
		}
		// Resolve before unqueueing: once queued reads 0 the reader
		// delivers and resolves directly, and outcomes must be recorded
		// in order (a refusal is matched to the oldest pending message).
		s.mu.Lock()
		var pending uint64
		for i, err := range errs {
			pending = s.resolveLocked(l, err, batch[i].tracked)
		}
		s.mu.Unlock()
		clear(batch)
		l.omu.Lock()
		l.overflow.Take(len(errs), nil)
		l.queued.Store(int64(l.overflow.Len()))
		drained := l.overflow.Len() == 0
		l.omu.Unlock()
		// Return credit in batches while the overflow drains: one frame
		// per freed slot would cost a gRPC message per value exactly when
		// the receiver is the bottleneck. flushAccepted reports an eighth
		// of the window, or a tracked message's acceptance (its sender
		// waits for it), at once, and arms the ack timer for the rest;
		// once the overflow is empty, everything goes.
		if drained || pending > 0 {
			s.flushAccepted(drained)
		}
	}
}

// deliverBatch bounds the values a link's deliverer moves from its
// overflow into the mailbox at once.
const deliverBatch = 64

// pushMore pushes the envelopes es of l into the mailbox without waiting,
// in order, until one does not fit, and appends the outcome of each it
// pushed (or that failed) to errs. A run of one sender's envelopes goes in
// one call (one lookup, one scheduling of the actor), through msgs, which
// it returns for reuse.
func (s *inStream) pushMore(l *inLink, es []envelope, errs []error, msgs []any) ([]error, []any) {
	for len(es) > 0 {
		k := 1
		for k < len(es) && es[k].from == es[0].from {
			k++
		}
		msgs = msgs[:0]
		for _, e := range es[:k] {
			msgs = append(msgs, e.msg)
		}
		n, err := s.e.sys.TrySendManyFrom(es[0].from, l.target, msgs)
		clear(msgs)
		for range n {
			errs = append(errs, nil)
		}
		if err == nil {
			es = es[k:]
			continue
		}
		if !errors.Is(err, actor.ErrFull) {
			// The next one is refused, or the actor is gone: push it
			// alone, which reports why (and makes the dead letter
			// TrySendManyFrom does not).
			if err := s.e.sys.TrySendFrom(es[n].from, l.target, es[n].msg); !errors.Is(err, actor.ErrFull) {
				errs = append(errs, err)
			}
		}
		break
	}
	return errs, msgs
}

// sweepLinks closes the links whose target actor has gone and that hold
// nothing: the sender is told Gone and forgets the link too.
func (s *inStream) sweepLinks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushAcceptedLocked(true) // acceptances held back on idle links
	for id, l := range s.links {
		if _, err := s.e.sys.MailboxFree(l.target); !errors.Is(err, actor.ErrNotFound) {
			continue
		}
		l.omu.Lock()
		busy := l.overflow.Len() > 0 || l.delivering
		l.omu.Unlock()
		if busy || l.accepted > 0 || l.w.InFlight() > 0 {
			continue
		}
		delete(s.links, id)
		s.out = wire.AppendRefusal(s.out, wire.KindGone, id, codeNotFound, "actor stopped")
		s.outLen.Store(int64(len(s.out)))
		s.signal()
	}
}

func (s *inStream) writeLoop() error {
	// Every few seconds, close the links of actors that have stopped, so
	// that a long-lived stream does not keep one for every receiver that
	// ever existed.
	sweep := time.NewTicker(s.e.cfg.linkSweep)
	defer sweep.Stop()
	for {
		select {
		case <-s.wake:
		case <-sweep.C:
			s.sweepLinks()
		case <-s.ackTimer.C:
			s.mu.Lock()
			s.ackArmed = false
			s.flushAcceptedLocked(true) // what was held back, for AckDelay at most
			s.mu.Unlock()
		case <-s.ctx.Done():
			return nil
		}
		s.mu.Lock()
		buf := s.out
		s.out = nil
		s.outLen.Store(0)
		s.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if err := s.ss.SendMsg(&rawcodec.Frame{Data: buf}); err != nil {
			s.cancel()
			return err
		}
	}
}
