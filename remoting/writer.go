package remoting

import (
	"errors"
	"fmt"
	"io"
	"reflect"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/rawcodec"
	"github.com/dchan-io/dchan/remoting/internal/wire"
)

// outWriter encodes a stream's queued messages into frames and sends them.
// It belongs to the stream's writer goroutine, as do the stream's encoder
// and its links' sequence numbers.
type outWriter struct {
	s        *outStream
	runs     RunEncoder // the stream's encoder, if it encodes runs
	maxFrame int

	buf  []byte
	bufp *[]byte // buf's holder from framePool, nil if none yet
	// The messages encoded into buf, and those that failed to encode: both
	// are settled when buf is sent.
	sent   []outMsg
	failed []failedMsg
	vals   []any // a run's values, for EncodeRun
}

type failedMsg struct {
	m   outMsg
	err error
}

// write encodes items, in order, into frames of about maxFrame bytes and
// sends them. It returns false once the stream has failed; items not yet
// sent are then failed with the stream's error.
func (w *outWriter) write(items []outMsg) bool {
	for i := 0; i < len(items); {
		i += w.encode(items[i:])
		if len(w.buf) >= w.maxFrame && !w.flush() {
			w.failRest(items[i:])
			return false
		}
	}
	return w.flush()
}

// encode encodes the first of items, or a run of them, and returns how
// many it took.
func (w *outWriter) encode(items []outMsg) int {
	n := w.runLen(items)
	if n < 2 {
		w.encodeOne(items[0])
		return 1
	}
	if w.encodeRun(items[:n]) {
		return n
	}
	// Declined: the type may be new to the stream, so send the first alone
	// and offer the rest once more; if that fails too, send them singly
	// (each then fails or succeeds alone).
	w.encodeOne(items[0])
	if n-1 >= 2 && w.encodeRun(items[1:n]) {
		return n
	}
	for _, m := range items[1:n] {
		w.encodeOne(m)
	}
	return n
}

// runLen returns how many of items, from the first, could go as one run:
// messages to one link from one sender with the same flags and values of
// one dynamic type (not Tagged).
func (w *outWriter) runLen(items []outMsg) int {
	first := items[0]
	if w.runs == nil || first.open || first.l == nil || first.msg == nil {
		return 1
	}
	t := reflect.TypeOf(first.msg)
	if t == taggedType {
		return 1
	}
	n := 1
	for n < len(items) && n < maxRun {
		m := items[n]
		if m.open || m.l != first.l || m.from != first.from || m.flags != first.flags || reflect.TypeOf(m.msg) != t {
			break
		}
		n++
	}
	return n
}

var taggedType = reflect.TypeFor[Tagged]()

// maxRun bounds the values of one run. Past a hundred or so, a longer run
// saves the codec little, and the receiver decodes a run whole before it
// delivers (and returns credit for) any of it: shorter runs keep the
// credit flowing back while the rest of a frame is decoded.
const maxRun = 128

// encodeRun encodes items as one run record and reports whether it did.
func (w *outWriter) encodeRun(items []outMsg) bool {
	first := items[0]
	l := first.l
	w.vals = w.vals[:0]
	for _, m := range items {
		w.vals = append(w.vals, m.msg)
	}
	defer clear(w.vals)
	start := len(w.buf)
	buf, mark := wire.BeginRun(w.buf, l.target, first.from.Node, first.from.ID, l.seq+1, len(items), first.flags)
	out, ok, err := w.runs.EncodeRun(buf, w.vals)
	if err != nil || !ok {
		w.buf = buf[:start]
		return false
	}
	if len(out)-mark > w.s.p.e.cfg.maxMessageSize {
		// The run's values may still fit one by one. The encoder may
		// have sent type descriptions in the discarded bytes: reset it.
		w.buf = out[:start]
		if r, ok := w.runs.(resetter); ok {
			r.Reset()
		}
		return false
	}
	wire.EndEnvelope(out, mark)
	w.buf = out
	l.seq += uint64(len(items))
	w.sent = append(w.sent, items...)
	w.s.p.e.stats.sent.Add(uint64(len(items)))
	return true
}

// encodeOne encodes one item: an Open record or one envelope.
func (w *outWriter) encodeOne(m outMsg) {
	if m.open {
		w.buf = wire.AppendOpen(w.buf, m.l.target)
		return
	}
	target, seq := m.to.ID, uint64(0)
	if m.l != nil {
		target, seq = m.l.target, m.l.seq+1
	}
	flags := m.flags
	t, tagged := m.msg.(Tagged)
	if tagged {
		flags |= wire.FlagTagged
		if t.Value == nil {
			flags |= wire.FlagNoValue
		}
	}
	start := len(w.buf)
	buf, mark := wire.BeginEnvelope(w.buf, target, m.from.Node, m.from.ID, seq, flags)
	var err error
	switch {
	case !tagged:
		buf, err = w.s.enc.Encode(buf, m.msg)
	case t.Value == nil:
		buf = wire.AppendTag(buf, t.Tag)
	default:
		buf, err = w.s.enc.Encode(wire.AppendTag(buf, t.Tag), t.Value)
	}
	if size := len(buf) - mark; err == nil && size > w.s.p.e.cfg.maxMessageSize {
		err = fmt.Errorf("%w: %T encodes to %d bytes, limit %d", ErrTooLarge, m.msg, size, w.s.p.e.cfg.maxMessageSize)
		if r, ok := w.s.enc.(resetter); ok {
			r.Reset()
		}
	}
	if err != nil {
		w.buf = buf[:start]
		w.failed = append(w.failed, failedMsg{m: m, err: fmt.Errorf("send to %v: %w", m.to, err)})
		return
	}
	wire.EndEnvelope(buf, mark)
	w.buf = buf
	if m.l != nil {
		m.l.seq = seq
	}
	w.sent = append(w.sent, m)
	w.s.p.e.stats.sent.Add(1)
}

// flush sends the frame: the messages in it become pending on their links
// (their acknowledgements may come back as soon as it is sent), and those
// that failed to encode give their credit back and fail.
func (w *outWriter) flush() bool {
	if len(w.buf) == 0 && len(w.sent) == 0 && len(w.failed) == 0 {
		return true
	}
	s := w.s
	var settled []completion
	s.mu.Lock()
	err := s.err
	for _, m := range w.sent {
		switch {
		case err != nil:
			settled = append(settled, completion{done: m.done, err: err})
		case m.l == nil: // a reply: nothing comes back for it
		case m.l.gone != nil:
			// The receiver closed the link after the message was
			// queued; it drops the message.
			settled = append(settled, completion{done: m.done, err: m.l.gone})
		default:
			m.l.pending.Push(m.done)
		}
	}
	for _, f := range w.failed {
		if f.m.l != nil {
			_ = f.m.l.w.Untake()
			f.m.l.wakeSenders()
		}
	}
	s.mu.Unlock()

	for _, f := range w.failed {
		w.settleFailed(f.m, f.err)
	}
	reportAll(&s.p.e.stats, settled, &w.vals)
	clear(w.sent)
	clear(w.failed)
	w.sent, w.failed = w.sent[:0], w.failed[:0]
	if err != nil {
		w.buf = w.buf[:0]
		return false
	}
	if len(w.buf) == 0 {
		return true
	}

	// gRPC may read a sent frame after SendMsg returns: the frame goes
	// back to the pool only once gRPC has written it. Size the next one
	// like this one to spare regrowing it.
	buf, bufp := w.buf, w.bufp
	w.bufp = framePool.Get(min(max(cap(buf), minFrameCap), s.p.e.cfg.maxBatchBytes+s.p.e.cfg.maxMessageSize))
	w.buf = (*w.bufp)[:0]
	if bufp == nil {
		bufp = new([]byte)
	}
	*bufp = buf // buf may have outgrown the pooled array
	size := len(buf)
	if err := s.cs.SendMsg(rawcodec.Pooled(bufp, framePool)); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended; its status (Unauthenticated, say) is
			// RecvMsg's to report, and the read loop fails the stream
			// with it.
			<-s.broken
			return false
		}
		s.fail(fmt.Errorf("%w: send to %s: %w", ErrNodeLost, s.p.addr, err))
		return false
	}
	if wc := s.p.wire.Load(); wc != nil {
		wc.sentFrames.Add(1)
		wc.sentBytes.Add(uint64(size))
	}
	return true
}

// minFrameCap is the least capacity of a frame's buffer. gRPC gives a
// sent buffer back to its pool only above its pooling threshold (1 KiB of
// capacity, mem.IsBelowBufferPoolingThreshold); a smaller one is dropped,
// and each small frame, a lone message's, would cost a new buffer.
const minFrameCap = 4 << 10

// settleFailed reports a message that failed after its send returned: to
// its completion if it has one, else as a dead letter.
func (w *outWriter) settleFailed(m outMsg, err error) {
	e := w.s.p.e
	e.stats.failed.Add(1)
	if m.done.tracked() {
		m.done.report(err)
		return
	}
	e.log.Debug("message failed to encode", zap.Stringer("to", m.to), zap.Error(err))
	e.sys.DeadLetter(m.to, m.from, m.msg, err)
}

// failRest fails the items the writer took but never sent, with the
// stream's error: the messages of one Outcomes together, as reportAll
// groups them.
func (w *outWriter) failRest(items []outMsg) {
	s := w.s
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	cs := make([]completion, 0, len(items))
	for _, m := range items {
		if !m.open {
			cs = append(cs, completion{done: m.done, err: err})
		}
	}
	reportAll(&s.p.e.stats, cs, &w.vals)
}
