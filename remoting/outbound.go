package remoting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/fifo"
	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/credit"
	"github.com/dchan-io/dchan/remoting/internal/security"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

var messagesStreamDesc = grpc.StreamDesc{StreamName: "Messages", ServerStreams: true, ClientStreams: true}

// framePool holds the buffers outgoing frames are built in; gRPC puts each
// back once it has written it. Frames are at most a batch plus one message
// (2 MiB by default); larger ones are not kept.
var framePool = rawcodec.NewFramePool(4 << 20)

// resetter is implemented by stateful encoders that can start over; the
// peer's decoder is told by the encoder's next output.
type resetter interface{ Reset() }

// peer is the client side towards one address: the shared connection and
// the current outgoing message stream.
type peer struct {
	e    *Endpoint
	addr string
	conn *grpc.ClientConn

	// cur is out for sends, which read it without mu.
	cur atomic.Pointer[outStream]
	// wire counts the frames to the node sends through this peer were
	// last addressed to (nil until a send named it).
	wire atomic.Pointer[wireCounters]

	mu     sync.Mutex
	out    *outStream
	closed bool
	// refused is set when the peer refused this node's protocol version:
	// until then, sends fail at once with it instead of opening a stream
	// the peer will refuse again.
	refused      error
	refusedUntil time.Time
}

// incompatibleHold is how long a peer that refused this node's protocol
// version is not asked again: long enough not to churn streams, short
// enough to notice the peer's upgrade.
const incompatibleHold = 5 * time.Second

// stream returns the live outgoing stream, opening one if needed.
func (p *peer) stream(ctx context.Context) (*outStream, error) {
	if s := p.cur.Load(); s != nil && !s.isBroken() {
		return s, nil // peer.close fails it: a closed peer takes the slow path
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.out != nil && !p.out.isBroken() {
		return p.out, nil
	}
	if p.refused != nil && time.Now().Before(p.refusedUntil) {
		return nil, p.refused
	}
	sctx, cancel := context.WithCancel(p.e.ctx)
	cs, err := p.conn.NewStream(sctx, &messagesStreamDesc, messagesMethod, rawcodec.CallOption())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: open stream to %s: %w", ErrNodeLost, p.addr, err)
	}
	s := &outStream{
		p:      p,
		cs:     cs,
		cancel: cancel,
		enc:    p.e.codec.NewEncoder(),
		links:  make(map[string]*outLink),
		wake:   make(chan struct{}, 1),
		broken: make(chan struct{}),
	}
	p.out = s
	p.cur.Store(s)
	p.e.wg.Add(2)
	go s.writeLoop()
	go s.readLoop()
	return s, nil
}

func (p *peer) send(ctx context.Context, to, from actor.PID, msg any, done func(error), mode sendMode) error {
	for again := mode&sendTry != 0; ; again = false {
		s, err := p.stream(ctx)
		if err != nil {
			return fmt.Errorf("send to %v: %w", to, err)
		}
		if f := p.e.cfg.afterStream; f != nil {
			f()
		}
		err = s.send(ctx, to, from, msg, done, mode)
		if err == nil || !again || !s.brokeWith(err) {
			return err
		}
	}
}

func (p *peer) sendMany(ctx context.Context, to, from actor.PID, msgs []any, out *Outcomes, mode sendMode) (int, error) {
	for again := mode&sendTry != 0; ; again = false {
		s, err := p.stream(ctx)
		if err != nil {
			return 0, fmt.Errorf("send to %v: %w", to, err)
		}
		if f := p.e.cfg.afterStream; f != nil {
			f()
		}
		n, err := s.sendMany(ctx, to, from, msgs, out, mode)
		if n > 0 || err == nil || !again || !s.brokeWith(err) {
			return n, err
		}
	}
}

// brokeWith reports whether err, from a send on s that queued nothing, is
// s's failure: the stream broke between the send finding it and queueing
// on it. A try then goes once more, on a new stream, so that a receiver
// whose stream a fault reset is not taken for one that cannot be reached
// (a router passes that over). A send that may wait needs no second go:
// its caller learns of the failure while it waits and tries again.
func (s *outStream) brokeWith(err error) bool {
	return s.isBroken() && errors.Is(err, ErrNodeLost)
}

// refuse records that the peer refused this node's protocol version, and
// logs it once per hold.
func (p *peer) refuse(err error) {
	msg := status.Convert(err).Message()
	p.mu.Lock()
	p.refused = fmt.Errorf("%w: %s: %s", ErrIncompatiblePeer, p.addr, msg)
	p.refusedUntil = time.Now().Add(incompatibleHold)
	p.mu.Unlock()
	p.e.log.Error("peer refused this node's protocol version; not sending to it", zap.String("peer", p.addr),
		zap.Int("protocol", ProtocolVersion), zap.String("refusal", msg), zap.Duration("retry_after", incompatibleHold))
}

func (p *peer) close() {
	p.mu.Lock()
	p.closed = true
	s := p.out
	p.mu.Unlock()
	if s != nil {
		s.fail(ErrClosed)
	}
}

// outStream is one client-side Messages stream: envelopes go out in batches,
// credits and acknowledgements come back.
//
// Senders only queue: a send takes credit, checks the value with the codec
// (Checker) and appends it to the queue. The writer takes the whole queue,
// encodes it — consecutive values to one target as runs when the codec has
// a RunEncoder — into frames of up to maxBatchBytes and sends them. Encoding
// on the writer keeps it off the senders' goroutines and lets it see several
// values at once; a value that fails to encode there (rare: the common
// failures are caught by the check) fails its completion, or becomes a dead
// letter if nobody tracks it.
type outStream struct {
	p      *peer
	cs     grpc.ClientStream
	cancel context.CancelFunc
	wake   chan struct{} // signals the writer; capacity 1
	broken chan struct{} // closed by fail

	enc Encoder // the writer's only

	mu    sync.Mutex
	queue []outMsg            // waiting for the writer, in order
	links map[string]*outLink // by target actor ID
	space chan struct{}       // closed when the writer takes the queue; nil if nobody waits
	err   error               // why the stream failed
}

// maxQueued bounds the messages queued for one stream's writer; senders
// wait (or a try fails with ErrNoCredit) while it is full.
const maxQueued = 4096

// outMsg is one queued message, or an Open record for l (open set).
type outMsg struct {
	l     *outLink // nil for a reply
	open  bool
	to    actor.PID
	from  actor.PID
	flags uint8
	msg   any
	done  notify
}

// notify reports one message's outcome: to one, or to many with the
// message (the messages of SendMany calls share their Outcomes). Both nil:
// nobody tracks the message.
type notify struct {
	one  func(error)
	many *Outcomes
	msg  any // many's; nil with one
}

func (n notify) tracked() bool { return n.one != nil || n.many != nil }

// report reports n's outcome alone.
func (n notify) report(err error) {
	switch {
	case n.one != nil:
		n.one(err)
	case n.many != nil:
		n.many.report([]any{n.msg}, err)
	}
}

// reportAll reports the outcomes cs, in order: consecutive ones with the
// same Outcomes and the same error together, in one call, with the
// messages gathered in *scratch (reused from call to call).
func reportAll(st *stats, cs []completion, scratch *[]any) {
	for i := 0; i < len(cs); {
		c := cs[i]
		if c.done.many == nil {
			st.complete(c.err)
			c.done.report(c.err)
			i++
			continue
		}
		msgs := (*scratch)[:0]
		for ; i < len(cs) && cs[i].done.many == c.done.many && sameError(cs[i].err, c.err); i++ {
			msgs = append(msgs, cs[i].done.msg)
		}
		if c.err == nil {
			st.confirmed.Add(uint64(len(msgs)))
		} else {
			st.failed.Add(uint64(len(msgs)))
		}
		c.done.many.report(msgs, c.err)
		clear(msgs)
		*scratch = msgs[:0]
	}
}

// sameError reports whether a and b are the same error value, without
// comparing values that cannot be compared (which would panic).
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.ValueOf(a).Comparable() && a == b
}

// outLink is the sender's view of one target actor on one stream.
type outLink struct {
	target  string
	w       credit.Window
	opened  bool
	seq     uint64             // the last sequence number sent; the writer's only
	gone    error              // set when the receiver reported the target gone
	credit  chan struct{}      // closed when credit arrives; nil if nobody waits
	pending fifo.Queue[notify] // completion of each message on the wire, in order
}

func (s *outStream) isBroken() bool {
	select {
	case <-s.broken:
		return true
	default:
		return false
	}
}

func (s *outStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// send queues msg for to. With try set it never waits: without credit (or
// queue space) it returns ErrNoCredit, after asking for credit if the link
// is new.
func (s *outStream) send(ctx context.Context, to, from actor.PID, msg any, done func(error), mode sendMode) error {
	if err := s.p.e.check(msg); err != nil {
		s.p.e.stats.failed.Add(1)
		return fmt.Errorf("send to %v: %w", to, err)
	}
	if done == nil && to.IsReply() {
		// Replies need no link and no credit: the reply address takes
		// exactly one message and never blocks.
		if err := s.waitSpace(ctx, to, mode&sendTry != 0); err != nil {
			return err
		}
		s.queue = append(s.queue, outMsg{to: to, from: from, flags: wire.FlagReply, msg: msg})
		s.mu.Unlock()
		s.signal()
		return nil
	}
	l, _, err := s.reserve(ctx, to, 1, mode&sendTry != 0)
	if err != nil {
		return err
	}
	var flags uint8
	if done != nil {
		flags = wire.FlagTracked
	}
	s.queue = append(s.queue, outMsg{l: l, to: to, from: from, flags: flags, msg: msg, done: notify{one: done}})
	s.mu.Unlock()
	s.signal()
	return nil
}

// sendMany queues msgs for to, in order, as many as the codec's check,
// the link's credit and the queue's space let through: it waits (unless
// try) for credit for the first only. It returns how many it queued and,
// if not all, why the next was not.
func (s *outStream) sendMany(ctx context.Context, to, from actor.PID, msgs []any, out *Outcomes, mode sendMode) (int, error) {
	refuse := func(err error) error {
		s.p.e.stats.failed.Add(1)
		return fmt.Errorf("send to %v: %w", to, err)
	}
	// The first is checked before waiting, so that a value the codec
	// refuses fails at once; the others once credit is taken for them,
	// so that each is checked once, and only if it could be queued.
	if err := s.p.e.check(out.Payload(msgs[0])); err != nil {
		return 0, refuse(err)
	}
	l, n, err := s.reserve(ctx, to, len(msgs), mode&sendTry != 0)
	if err != nil {
		return 0, err
	}
	var flags uint8
	if out.tracked {
		flags = wire.FlagTracked
	}
	ok, checkErr := n, error(nil)
	for i, msg := range msgs[:n] {
		payload := out.Payload(msg)
		if i > 0 { // the first was checked above
			if err := s.p.e.check(payload); err != nil {
				ok, checkErr = i, err
				break
			}
		}
		s.queue = append(s.queue, outMsg{l: l, to: to, from: from, flags: flags, msg: payload, done: notify{many: out, msg: msg}})
	}
	for range n - ok {
		_ = l.w.Untake() // taken above, not sent: cannot fail
	}
	s.mu.Unlock()
	s.signal()
	switch {
	case checkErr != nil:
		return ok, refuse(checkErr)
	case n < len(msgs):
		return n, fmt.Errorf("send to %v: %w", to, ErrNoCredit)
	}
	return n, nil
}

// waitSpace locks s.mu and waits (unless try) until the queue has space.
// It returns with s.mu held, or with an error and s.mu released.
func (s *outStream) waitSpace(ctx context.Context, to actor.PID, try bool) error {
	s.mu.Lock()
	for {
		if s.err != nil {
			s.mu.Unlock()
			return fmt.Errorf("send to %v: %w", to, s.err)
		}
		if len(s.queue) < maxQueued {
			return nil
		}
		if try {
			s.mu.Unlock()
			return fmt.Errorf("send to %v: %w", to, ErrNoCredit)
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		s.mu.Unlock()
		if err := s.wait(ctx, space); err != nil {
			return fmt.Errorf("send to %v: %w", to, err)
		}
		s.mu.Lock()
	}
}

// reserve waits (unless try) for queue space and credit on the link to
// to, and takes between 1 and want credits. It returns with s.mu held and
// the number taken, or with an error and s.mu released.
func (s *outStream) reserve(ctx context.Context, to actor.PID, want int, try bool) (*outLink, int, error) {
	if err := s.waitSpace(ctx, to, try); err != nil {
		return nil, 0, err
	}
	l := s.links[to.ID]
	if l == nil {
		l = &outLink{target: to.ID}
		s.links[to.ID] = l
	}
	for {
		// The stream may have failed while this sender waited, even if
		// credit arrived first: check before taking it, or the message
		// would join a queue nobody writes or fails.
		if s.err != nil {
			s.mu.Unlock()
			return nil, 0, fmt.Errorf("send to %v: %w", to, s.err)
		}
		if l.gone != nil {
			err := l.gone
			if s.links[to.ID] == l {
				// A later send asks again: the actor may be back. Only l
				// goes: while this sender waited, another may have
				// forgotten l already and opened a new link.
				delete(s.links, to.ID)
			}
			s.mu.Unlock()
			return nil, 0, fmt.Errorf("send to %v: %w", to, err)
		}
		// The queue may have filled while this sender waited for credit:
		// one message may still join it, as before the wait.
		room := max(maxQueued-len(s.queue), 1)
		if n := l.w.TakeUpTo(uint64(min(want, room))); n > 0 {
			return l, int(n), nil
		}
		if !l.opened {
			l.opened = true
			s.queue = append(s.queue, outMsg{l: l, open: true})
			s.signal()
		}
		if try {
			s.mu.Unlock()
			return nil, 0, fmt.Errorf("send to %v: %w", to, ErrNoCredit)
		}
		if l.credit == nil {
			l.credit = make(chan struct{})
		}
		ch := l.credit
		s.mu.Unlock()
		if err := s.wait(ctx, ch); err != nil {
			return nil, 0, fmt.Errorf("send to %v: %w", to, err)
		}
		s.mu.Lock()
	}
}

func (s *outStream) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.broken:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	}
}

// writeLoop takes whatever is queued, encodes it and sends it, one frame
// per gRPC message. A lone message goes out at once; messages queued while
// the writer works go together in its next round.
func (s *outStream) writeLoop() {
	defer s.p.e.wg.Done()
	w := outWriter{s: s, maxFrame: s.p.e.cfg.maxBatchBytes}
	if re, ok := s.enc.(RunEncoder); ok {
		w.runs = re
	}
	var spare []outMsg
	for {
		select {
		case <-s.wake:
		case <-s.broken:
			return
		}
		s.mu.Lock()
		items := s.queue
		s.queue = spare[:0]
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()
		if len(items) == 0 {
			spare = items
			continue
		}
		ok := w.write(items)
		clear(items) // drop the references to sent values
		spare = items
		if !ok {
			return
		}
	}
}

// readLoop applies the receiver's credits, acknowledgements and refusals.
func (s *outStream) readLoop() {
	defer s.p.e.wg.Done()
	frame := rawcodec.Frame{Borrow: true}
	defer frame.Release()
	var rec wire.Record
	var r wire.Reader
	var completions []completion
	var scratch []any
	for {
		if err := s.cs.RecvMsg(&frame); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("stream closed by peer")
			}
			if security.IsIncompatible(err) {
				s.p.refuse(err)
				s.fail(fmt.Errorf("%w: %s: %s", ErrIncompatiblePeer, s.p.addr, status.Convert(err).Message()))
				return
			}
			s.fail(fmt.Errorf("%w: %s: %w", ErrNodeLost, s.p.addr, err))
			return
		}
		r.Reset(frame.Data)
		completions = completions[:0]
		s.mu.Lock()
		var perr error
		for perr == nil {
			if err := r.Next(&rec); err != nil {
				if !errors.Is(err, io.EOF) {
					perr = err
				}
				break
			}
			perr = s.apply(&rec, &completions)
		}
		s.mu.Unlock()
		frame.Release() // nothing kept aliases it
		reportAll(&s.p.e.stats, completions, &scratch)
		if perr != nil {
			s.p.e.log.Warn("bad frame from peer; closing stream", zap.String("peer", s.p.addr), zap.Error(perr))
			s.fail(fmt.Errorf("%w: %s: %v", ErrProtocol, s.p.addr, perr))
			return
		}
	}
}

// takeCompletions moves the n oldest completions of q to out, with err.
func takeCompletions(q *fifo.Queue[notify], n int, err error, out *[]completion) {
	q.Take(n, func(done notify) { *out = append(*out, completion{done: done, err: err}) })
}

type completion struct {
	done notify
	err  error
}

// apply handles one record from the receiver; s.mu is held.
func (s *outStream) apply(rec *wire.Record, out *[]completion) error {
	if s.err != nil {
		return nil // failed: every pending message was already failed
	}
	l := s.links[string(rec.Target)]
	if l == nil {
		return fmt.Errorf("%s for unknown target %q", rec.Kind, rec.Target)
	}
	switch rec.Kind {
	case wire.KindGrant:
		l.w.Grant(rec.N)
		l.wakeSenders()
	case wire.KindAccepted:
		// Credit is taken when a message is queued, but the message is
		// pending only once it is on the wire: a receiver can accept no
		// more than that.
		if rec.N > uint64(l.pending.Len()) {
			return fmt.Errorf("%d accepted for %q with %d on the wire", rec.N, rec.Target, l.pending.Len())
		}
		if err := l.w.Resolve(rec.N); err != nil {
			return err
		}
		takeCompletions(&l.pending, int(rec.N), nil, out)
		l.wakeSenders()
	case wire.KindRejected:
		if l.pending.Len() == 0 {
			return fmt.Errorf("a rejection for %q with nothing on the wire", rec.Target)
		}
		if err := l.w.Resolve(1); err != nil {
			return err
		}
		takeCompletions(&l.pending, 1, refusalError(rec.Code, string(rec.Reason)), out)
		l.wakeSenders()
	case wire.KindGone:
		s.p.e.stats.gone.Add(1)
		err := refusalError(rec.Code, string(rec.Reason))
		takeCompletions(&l.pending, l.pending.Len(), err, out)
		l.gone = err
		if l.credit == nil {
			delete(s.links, l.target) // nobody waits on it: forget it now
		}
		l.wakeSenders()
	default:
		return fmt.Errorf("unexpected %s record", rec.Kind)
	}
	return nil
}

func (l *outLink) wakeSenders() {
	if l.credit != nil {
		close(l.credit)
		l.credit = nil
	}
}

// fail ends the stream: every message in flight on it fails with err, and
// senders waiting for credit or space return err. The next send to the peer
// opens a new stream.
func (s *outStream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	if wc := s.p.wire.Load(); wc != nil && s.p.e.ctx.Err() == nil {
		wc.resets.Add(1)
	}
	var failed []completion
	for _, l := range s.links {
		takeCompletions(&l.pending, l.pending.Len(), err, &failed)
	}
	for _, m := range s.queue { // never taken by the writer
		if !m.open && m.l != nil { // replies are not counted as in flight
			failed = append(failed, completion{done: m.done, err: err})
		}
	}
	clear(s.queue)
	s.queue = nil
	close(s.broken)
	s.mu.Unlock()
	s.cancel()
	var scratch []any
	reportAll(&s.p.e.stats, failed, &scratch)
	if len(failed) > 0 {
		s.p.e.log.Debug("stream failed with messages in flight",
			zap.String("peer", s.p.addr), zap.Int("in_flight", len(failed)), zap.Error(err))
	}
}
