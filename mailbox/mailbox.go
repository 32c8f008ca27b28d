package mailbox

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// DefaultThroughput is the number of messages a run processes before it
// yields the processor.
const DefaultThroughput = 300

const (
	idle int32 = iota
	running
)

// Mailbox is a bounded MPSC user queue plus an unbounded system queue, with
// run scheduling. T is the user message type; the actor package uses a small
// envelope struct so that a push does not allocate.
//
// Create one with New, then call Start once before the first push is
// expected to be processed. All methods are safe for concurrent use.
type Mailbox[T any] struct {
	user *queue[T]

	// pushing counts pushes between their closed check and their store.
	// Every push writes it, so it has a cache line of its own: sharing one
	// with the fields the consumer reads per message cost ~100 ns a send.
	_       [64]byte
	pushing atomic.Int32
	_       [60]byte

	// Pushers blocked on a full queue wait on notify; the consumer closes
	// it when waiters > 0 once it has freed wakeAfter slots since the last
	// wake, or emptied the queue: woken per freed slot, a blocked pusher
	// and the consumer would take turns a message at a time.
	waiters   atomic.Int32
	notifyMu  sync.Mutex
	notify    chan struct{}
	wakeAfter int // the consumer's batch of freed slots
	freed     int // slots freed since the last wake; the consumer's

	sysMu  sync.Mutex
	sys    []any
	sysLen atomic.Int32

	status     atomic.Int32
	suspended  atomic.Bool
	started    atomic.Bool
	closed     atomic.Bool
	closedCh   chan struct{}
	closeOnce  sync.Once
	throughput int

	invoker    Invoker[T]
	dispatcher Dispatcher
	runFn      func()

	// Where the user queue stood at the last Trim; the consumer's.
	trimRing *ring[T]
	trimTail uint64
}

// Option configures a Mailbox.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	throughput int
	onGrow     func()
}

func defaultConfig() config { return config{throughput: DefaultThroughput} }

// WithThroughput sets how many messages a run processes before it yields
// (default DefaultThroughput). n must be positive.
func WithThroughput(n int) Option { return optionFunc(func(c *config) { c.throughput = n }) }

// WithGrowHook sets a function to call each time the user queue allocates
// its whole capacity (see "Memory" in the package documentation), for an
// owner that trims idle mailboxes (Trim). It runs on the pushing goroutine
// and must not block.
func WithGrowHook(f func()) Option { return optionFunc(func(c *config) { c.onGrow = f }) }

// New returns a mailbox whose user queue holds up to capacity messages.
// capacity must be at least 1.
func New[T any](capacity int, opts ...Option) (*Mailbox[T], error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if capacity < 1 {
		return nil, fmt.Errorf("mailbox: capacity %d: must be at least 1", capacity)
	}
	if cfg.throughput < 1 {
		return nil, fmt.Errorf("mailbox: throughput %d: must be at least 1", cfg.throughput)
	}
	m := &Mailbox[T]{
		user:       newQueue[T](capacity),
		closedCh:   make(chan struct{}),
		throughput: cfg.throughput,
		wakeAfter:  min(max(capacity/8, 1), 512),
	}
	m.user.onGrow = cfg.onGrow
	m.runFn = m.run
	return m, nil
}

// Start installs the invoker and dispatcher and schedules a run if messages
// were pushed before it. Messages pushed before Start are kept, not lost.
// Start must be called exactly once.
func (m *Mailbox[T]) Start(inv Invoker[T], d Dispatcher) {
	m.invoker = inv
	m.dispatcher = d
	m.started.Store(true)
	m.schedule()
}

// Push appends msg to the user queue, blocking while the queue is full. It
// returns ctx's error if ctx ends first, or ErrClosed if the mailbox is (or
// becomes) closed.
func (m *Mailbox[T]) Push(ctx context.Context, msg T) error {
	ok, err := m.tryPush(msg)
	if err != nil {
		return err
	}
	if !ok {
		if err := m.pushSlow(ctx, msg); err != nil {
			return err
		}
	}
	m.schedule()
	return nil
}

func (m *Mailbox[T]) pushSlow(ctx context.Context, msg T) error {
	for {
		m.waiters.Add(1)
		wake := m.waitChan()
		// Re-check after registering: a slot freed before the consumer
		// could see us waiting is found here.
		ok, err := m.tryPush(msg)
		if err != nil || ok {
			m.waiters.Add(-1)
			return err
		}
		select {
		case <-wake:
			m.waiters.Add(-1)
		case <-ctx.Done():
			m.waiters.Add(-1)
			return ctx.Err()
		case <-m.closedCh:
			m.waiters.Add(-1)
			return ErrClosed
		}
		if m.closed.Load() {
			return ErrClosed
		}
	}
}

// tryPush appends msg unless the queue is full or the mailbox closed. Close
// waits for every tryPush in progress, so once Close returns nothing more
// lands in the queue: the owner can drain it knowing it is complete.
func (m *Mailbox[T]) tryPush(msg T) (bool, error) {
	m.pushing.Add(1)
	defer m.pushing.Add(-1)
	if m.closed.Load() {
		return false, ErrClosed
	}
	return m.user.push(msg), nil
}

func (m *Mailbox[T]) waitChan() chan struct{} {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	if m.notify == nil {
		m.notify = make(chan struct{})
	}
	return m.notify
}

// wakePushers wakes every pusher blocked on a full queue.
func (m *Mailbox[T]) wakePushers() {
	if m.waiters.Load() == 0 {
		return
	}
	m.notifyMu.Lock()
	if m.notify != nil {
		close(m.notify)
		m.notify = nil
	}
	m.notifyMu.Unlock()
}

// TryPush appends msg to the user queue if it has a free slot and reports
// ErrFull otherwise. It never blocks.
func (m *Mailbox[T]) TryPush(msg T) error {
	ok, err := m.tryPush(msg)
	if err != nil {
		return err
	}
	if !ok {
		return ErrFull
	}
	m.schedule()
	return nil
}

// TryPushMany appends msgs to the user queue, in order, as long as it has
// free slots, and returns how many it took: all of them, or fewer with
// ErrFull (or none with ErrClosed). It never blocks, and schedules one run
// for the lot.
func (m *Mailbox[T]) TryPushMany(msgs []T) (int, error) {
	m.pushing.Add(1)
	if m.closed.Load() {
		m.pushing.Add(-1)
		return 0, ErrClosed
	}
	n := 0
	for n < len(msgs) && m.user.push(msgs[n]) {
		n++
	}
	m.pushing.Add(-1)
	if n > 0 {
		m.schedule()
	}
	if n < len(msgs) {
		return n, ErrFull
	}
	return n, nil
}

// TryInline offers msgs, in order, to take on the calling goroutine, in
// place of pushes, while nothing is ahead of them: the mailbox is started,
// open, not suspended, and has no queued message (user or system) and no
// run in progress. take runs as a run would, never alongside the invoker
// or another take, and must not block; it reports whether it took the
// message, and the first it declines ends the offer, as does a message or
// a Close arriving meanwhile. TryInline returns how many take took (none
// if the mailbox was not free): the rest are still the caller's, to push
// as usual, and as nothing was queued ahead of them, each pusher's order
// holds either way. If take panics, the mailbox is released first.
//
// It lets an owner whose consumer can often accept a message at once (a
// buffered channel with room, say) skip starting a run for it.
func (m *Mailbox[T]) TryInline(msgs []T, take func(T) bool) int {
	if !m.inlineable() || !m.status.CompareAndSwap(idle, running) {
		return 0
	}
	defer func() {
		m.status.Store(idle)
		// A push that saw "running" meanwhile did not schedule a run.
		if m.hasWork() {
			m.schedule()
		}
	}()
	// Now the runner: look again before each message, as a push, a
	// system message or a Close may have arrived since the last look.
	n := 0
	for n < len(msgs) && m.inlineable() && take(msgs[n]) {
		n++
	}
	return n
}

func (m *Mailbox[T]) inlineable() bool {
	return m.started.Load() && !m.closed.Load() && !m.suspended.Load() &&
		m.sysLen.Load() == 0 && m.user.len() == 0
}

// PushSystem appends msg to the system queue, which is unbounded and always
// drained before the user queue. System messages are accepted even after
// Close, so that the owner can still be stopped; they are processed as long as
// the mailbox has an invoker.
func (m *Mailbox[T]) PushSystem(msg any) {
	m.sysMu.Lock()
	m.sys = append(m.sys, msg)
	m.sysLen.Add(1)
	m.sysMu.Unlock()
	m.schedule()
}

// Pop removes and returns the oldest user message without blocking. It is
// meant for the owner (for example to drain a stopped actor's queue into dead
// letters) and must not be called while a run may be active.
func (m *Mailbox[T]) Pop() (T, bool) {
	msg, ok := m.user.pop()
	if ok {
		m.wakePushers()
	}
	return msg, ok
}

// Len returns the number of queued user messages.
func (m *Mailbox[T]) Len() int { return m.user.len() }

// Cap returns the capacity of the user queue.
func (m *Mailbox[T]) Cap() int { return int(m.user.capacity) }

// Free returns the number of free slots in the user queue.
func (m *Mailbox[T]) Free() int { return max(m.Cap()-m.Len(), 0) }

// Slots returns how many slots the user queue has allocated: 64 (or its
// capacity, if smaller) until messages first queue up past that, then its
// whole capacity (rounded up to a power of two) until Trim lets it go.
func (m *Mailbox[T]) Slots() int { return m.user.slots() }

// Grown reports whether the user queue has allocated its whole capacity
// (and Trim has not let it go since).
func (m *Mailbox[T]) Grown() bool { return m.user.slots() > firstRing }

// Trim lets the user queue's whole-capacity ring go, going back to 64
// slots, if the queue is empty and nothing has been pushed to it since the
// previous call to Trim; it reports whether it did. Call it now and then
// (say, every few seconds after the grow hook ran) to give back the memory
// of a backlog that has passed; the first call after a backlog only marks
// where the queue stands. Only the consumer may call it: from the
// Invoker, during a run.
func (m *Mailbox[T]) Trim() bool {
	r := m.user.cons.Load()
	tail := r.tail.Load()
	if r != m.trimRing || tail != m.trimTail {
		m.trimRing, m.trimTail = r, tail
		return false
	}
	if !m.user.shrink() {
		return false
	}
	m.trimRing, m.trimTail = nil, 0
	return true
}

// Suspend stops the delivery of user messages; system messages still flow.
// Called from the invoker (as an actor's failure handling does), no user
// message follows it; called from elsewhere while a run is in progress, that
// run may already be taking one more.
func (m *Mailbox[T]) Suspend() { m.suspended.Store(true) }

// Resume restarts the delivery of user messages.
func (m *Mailbox[T]) Resume() {
	m.suspended.Store(false)
	m.schedule()
}

// Suspended reports whether user delivery is suspended.
func (m *Mailbox[T]) Suspended() bool { return m.suspended.Load() }

// Close rejects further user pushes with ErrClosed and wakes pushers blocked
// in Push. Queued messages stay queued, and once Close returns no push can
// add to them. Close is idempotent.
func (m *Mailbox[T]) Close() {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.closedCh)
		m.wakePushers()
	})
	// A push that saw the mailbox open may still be storing its message:
	// wait for it (a push never blocks here), so that after Close the
	// queue's contents are final.
	for m.pushing.Load() != 0 {
		runtime.Gosched()
	}
}

// Closed reports whether Close was called.
func (m *Mailbox[T]) Closed() bool { return m.closed.Load() }

func (m *Mailbox[T]) hasWork() bool {
	if m.sysLen.Load() > 0 {
		return true
	}
	return !m.suspended.Load() && m.user.ready()
}

func (m *Mailbox[T]) schedule() {
	if !m.started.Load() || m.status.Load() == running {
		return
	}
	if m.status.CompareAndSwap(idle, running) {
		m.dispatcher.Schedule(m.runFn)
	}
}

func (m *Mailbox[T]) run() {
	for {
		m.process()
		m.status.Store(idle)
		// A push that saw "running" just before the store above did not
		// schedule a run: look again, or its message would be stranded.
		if !m.hasWork() || !m.status.CompareAndSwap(idle, running) {
			return
		}
	}
}

func (m *Mailbox[T]) process() {
	budget := m.throughput
	defer func() {
		// The queue is empty, or the run yields: whoever waits for room
		// need not wait for a batch that may not come.
		if m.freed > 0 {
			m.freed = 0
			m.wakePushers()
		}
	}()
	for {
		if budget == 0 {
			budget = m.throughput
			runtime.Gosched()
		}
		budget--
		if m.sysLen.Load() > 0 {
			if msg, ok := m.popSystem(); ok {
				m.invoker.InvokeSystem(msg)
				continue
			}
		}
		if m.suspended.Load() {
			return
		}
		msg, ok := m.user.pop()
		if !ok {
			return
		}
		if m.freed++; m.freed >= m.wakeAfter {
			m.freed = 0
			m.wakePushers()
		}
		m.invoker.InvokeUser(msg)
	}
}

func (m *Mailbox[T]) popSystem() (any, bool) {
	m.sysMu.Lock()
	defer m.sysMu.Unlock()
	if len(m.sys) == 0 {
		return nil, false
	}
	msg := m.sys[0]
	m.sys[0] = nil
	m.sys = m.sys[1:]
	if len(m.sys) == 0 {
		m.sys = nil
	}
	m.sysLen.Add(-1)
	return msg, true
}
