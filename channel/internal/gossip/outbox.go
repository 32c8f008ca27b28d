package gossip

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dchan-io/dchan/internal/fifo"
)

// outboxIdle is how long an empty outbox keeps its goroutine.
const outboxIdle = 5 * time.Second

// outMsg is one message waiting for its peer: a data message (data and
// value) or a pre-encoded digest, graft or join (tag).
type outMsg struct {
	data  *dataHeader
	value any
	tag   []byte
	track *tracker // a publish waiting for this first hop, or nil
}

// outbox queues one peer's messages and sends them through the transport,
// so that a slow or dead peer delays only its own queues. It has two, each
// bounded by Config.OutboxMax and each sent in order: the tree's
// (publishers' first hops and forwards) and anti-entropy's (digests,
// grafts, joins and the repairs that answer them). The sending goroutine
// takes from the two in turn, so repair gets through a link that a
// publisher keeps busy, and repair traffic never pushes the tree's
// messages out. A full tree queue makes a publisher wait (pushWait) or
// drops its oldest message for a forward (push: anti-entropy makes up for
// it); a full anti-entropy queue refuses the new message (offer: it is
// asked for again). A goroutine runs while the queues are in use.
type outbox struct {
	d    *Driver
	peer string
	wake chan struct{}
	room chan struct{}

	mu        sync.Mutex
	q         fifo.Queue[outMsg]     // the tree's
	ae        fifo.Queue[outMsg]     // anti-entropy's
	repairs   map[repairKey]struct{} // the repairs queued in ae
	aeTurn    bool                   // the next message comes from ae, if it has one
	running   bool
	downUntil time.Time // sends failed: reroute instead of sending until then
}

func newOutbox(d *Driver, peer string) *outbox {
	return &outbox{d: d, peer: peer, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// push queues m, dropping the oldest message if the queue is full.
func (ob *outbox) push(m outMsg) {
	ob.mu.Lock()
	if ob.q.Len() >= ob.d.cfg.OutboxMax {
		old, _ := ob.q.Pop()
		ob.d.stats.QueueDropped.Add(1)
		old.track.resolve(nil) // a later hop's loss, repaired by anti-entropy
	}
	ob.q.Push(m)
	ob.startLocked()
	ob.mu.Unlock()
	signal(ob.wake)
}

// repairKey names one value that a repair carries.
type repairKey struct {
	originKey
	seq uint64
}

// repairOf returns the value m carries, if m is a repair.
func repairOf(m outMsg) (repairKey, bool) {
	if m.data == nil || !m.data.repair {
		return repairKey{}, false
	}
	return repairKey{originKey{m.data.name, m.data.origin}, m.data.seq}, true
}

// offer queues an anti-entropy message m, unless that queue is full: then
// m is dropped (it is asked for again) and offer reports false. A repair
// of a value that a queued repair already carries is not queued twice (a
// peer asks again for what it misses while the answer waits in a busy
// queue).
func (ob *outbox) offer(m outMsg) bool {
	ob.mu.Lock()
	key, repair := repairOf(m)
	if _, queued := ob.repairs[key]; repair && queued {
		ob.mu.Unlock()
		return true
	}
	if ob.ae.Len() >= ob.d.cfg.OutboxMax {
		ob.mu.Unlock()
		ob.d.stats.QueueDropped.Add(1)
		return false
	}
	if repair {
		if ob.repairs == nil {
			ob.repairs = make(map[repairKey]struct{})
		}
		ob.repairs[key] = struct{}{}
	}
	ob.ae.Push(m)
	ob.startLocked()
	ob.mu.Unlock()
	signal(ob.wake)
	return true
}

// pushWait queues m, waiting while the queue is full.
func (ob *outbox) pushWait(ctx context.Context, m outMsg) error {
	for {
		ob.mu.Lock()
		if ob.q.Len() < ob.d.cfg.OutboxMax {
			ob.q.Push(m)
			room := ob.q.Len() < ob.d.cfg.OutboxMax
			ob.startLocked()
			ob.mu.Unlock()
			signal(ob.wake)
			if room {
				signal(ob.room) // pass the wake-up on to another waiter
			}
			return nil
		}
		ob.mu.Unlock()
		select {
		case <-ob.room:
		case <-ctx.Done():
			return ctx.Err()
		case <-ob.d.ctx.Done():
			return ErrClosed
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// startLocked starts the sending goroutine if it is not running; ob.mu is
// held.
func (ob *outbox) startLocked() {
	if ob.running || ob.d.ctx.Err() != nil {
		return
	}
	ob.running = true
	ob.d.wg.Add(1)
	go ob.run()
}

func (ob *outbox) run() {
	defer ob.d.wg.Done()
	idle := time.NewTimer(outboxIdle)
	defer idle.Stop()
	for {
		ob.mu.Lock()
		for ob.idleLocked() {
			ob.mu.Unlock()
			idle.Reset(outboxIdle)
			select {
			case <-ob.wake:
			case <-idle.C:
				ob.mu.Lock()
				if ob.idleLocked() {
					ob.running = false
					ob.mu.Unlock()
					return
				}
				ob.mu.Unlock()
			case <-ob.d.ctx.Done():
				ob.mu.Lock()
				q := ob.q
				ob.q, ob.ae, ob.repairs, ob.running = fifo.Queue[outMsg]{}, fifo.Queue[outMsg]{}, nil, false
				ob.mu.Unlock()
				q.Take(q.Len(), func(m outMsg) { m.track.resolve(ErrClosed) })
				return
			}
			ob.mu.Lock()
		}
		m, tree := ob.nextLocked()
		down := time.Now().Before(ob.downUntil)
		ob.mu.Unlock()
		if tree {
			signal(ob.room)
		}
		if down {
			ob.failed(m, fmt.Errorf("%w: %s recently unreachable", ErrUnreachable, ob.peer))
			continue
		}
		ob.send(m)
	}
}

// idleLocked reports whether both queues are empty; ob.mu is held.
func (ob *outbox) idleLocked() bool { return ob.q.Len() == 0 && ob.ae.Len() == 0 }

// nextLocked takes the next message to send, from the two queues in turn,
// and reports whether it came from the tree's; ob.mu is held and a queue
// has one.
func (ob *outbox) nextLocked() (outMsg, bool) {
	fromAE := ob.q.Len() == 0 || ob.aeTurn && ob.ae.Len() > 0
	ob.aeTurn = !fromAE
	q := &ob.q
	if fromAE {
		q = &ob.ae
	}
	m, _ := q.Pop()
	if key, repair := repairOf(m); fromAE && repair {
		delete(ob.repairs, key)
	}
	return m, !fromAE
}

// send hands m to the transport.
func (ob *outbox) send(m outMsg) {
	d := ob.d
	tag := m.tag
	if m.data != nil {
		tag = m.data.encode()
		d.stats.Sent.Add(1)
	}
	if d.cfg.Drop != nil && d.cfg.Drop(d.self, ob.peer) {
		m.track.resolve(nil) // lost on the way, as far as anyone can tell
		return
	}
	done := func(err error) {
		if err != nil {
			ob.failed(m, err)
			return
		}
		m.track.resolve(nil)
	}
	err := d.tr.Send(d.ctx, ob.peer, tag, m.value, false, done)
	if errors.Is(err, ErrBusy) {
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.SendTimeout)
		err = d.tr.Send(ctx, ob.peer, tag, m.value, true, done)
		cancel()
	}
	if err != nil {
		ob.failed(m, err)
	}
}

// failed handles a message that did not reach the peer.
func (ob *outbox) failed(m outMsg, err error) {
	if errors.Is(err, ErrValue) {
		m.track.resolve(err)
	} else {
		ob.mu.Lock()
		ob.downUntil = time.Now().Add(ob.d.cfg.DownFor)
		ob.mu.Unlock()
		m.track.resolve(nil) // the group is rerouted
	}
	ob.d.undeliverable(ob.peer, m, err)
}
