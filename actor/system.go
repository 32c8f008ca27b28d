package actor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/dchan-io/dchan/mailbox"
)

// futurePrefix starts the IDs of Request's reply addresses.
const futurePrefix = "$req/"

// System is a set of local actors: it spawns them, routes messages to them
// (and, through an installed Remote, to other nodes), supervises top-level
// actors and shuts everything down. Systems share nothing: several can run in
// one process.
type System struct {
	cfg    systemConfig
	node   string
	log    *zap.Logger
	table  *table
	remote atomic.Pointer[remoteBox]
	runs   *runTracker

	// ctx is the parent of every actor's context; cancelled when a
	// shutdown runs out of time.
	ctx    context.Context
	cancel context.CancelFunc

	nextID      atomic.Uint64
	deadLetters atomic.Uint64

	topMu   sync.Mutex
	tops    map[string]*process
	closing bool
	closed  chan struct{} // closed when Shutdown begins
	once    sync.Once

	futuresMu sync.Mutex
	futures   map[string]future
}

type remoteBox struct{ r Remote }

// NewSystem returns a running System.
func NewSystem(opts ...Option) (*System, error) {
	cfg := defaultSystemConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &System{
		cfg:     cfg,
		node:    cfg.node,
		log:     cfg.logger.Named("actor"),
		table:   newTable(),
		runs:    newRunTracker(),
		ctx:     ctx,
		cancel:  cancel,
		tops:    make(map[string]*process),
		closed:  make(chan struct{}),
		futures: make(map[string]future),
	}, nil
}

// Node returns the node name carried by this System's PIDs.
func (s *System) Node() string { return s.node }

// SetRemote installs the transport for PIDs on other nodes. The node calls it
// once, before its actors talk to other nodes.
func (s *System) SetRemote(r Remote) { s.remote.Store(&remoteBox{r: r}) }

// Spawn starts a top-level actor with a generated ID.
func (s *System) Spawn(p Producer, opts ...SpawnOption) (PID, error) {
	return s.spawn(nil, "", p, opts)
}

// SpawnNamed starts a top-level actor whose ID is name. The name must be
// unique among the System's live actors, non-empty, must not start with '$'
// and must not contain '/'.
func (s *System) SpawnNamed(name string, p Producer, opts ...SpawnOption) (PID, error) {
	if err := validName(name); err != nil {
		return PID{}, err
	}
	return s.spawn(nil, name, p, opts)
}

func validName(name string) error {
	if name == "" || name[0] == '$' || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

func (s *System) spawn(parent *process, name string, producer Producer, opts []SpawnOption) (PID, error) {
	if producer == nil {
		return PID{}, fmt.Errorf("%w: nil producer", ErrInvalidOption)
	}
	cfg := spawnConfig{mailboxSize: DefaultMailboxSize, throughput: mailbox.DefaultThroughput, strategy: s.cfg.guardian}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return PID{}, err
	}
	if cfg.strategy == nil {
		return PID{}, fmt.Errorf("%w: nil supervisor strategy", ErrInvalidOption)
	}
	if s.isClosing() {
		return PID{}, ErrShutdown
	}
	id := name
	if id == "" {
		id = "$" + strconv.FormatUint(s.nextID.Add(1), 36)
	}
	parentCtx := s.ctx
	if parent != nil {
		id = parent.pid.ID + "/" + id
		parentCtx = parent.ctx
	}
	var p *process
	grown := func() { p.mb.PushSystem(sysGrown{}) } // p is set before the first push
	mb, err := mailbox.New[envelope](cfg.mailboxSize, mailbox.WithThroughput(cfg.throughput), mailbox.WithGrowHook(grown))
	if err != nil {
		return PID{}, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	a, err := produce(producer)
	if err != nil {
		return PID{}, fmt.Errorf("actor: producer: %w", err)
	}
	p = &process{
		sys:      s,
		pid:      PID{Node: s.node, ID: id},
		parent:   parent,
		producer: producer,
		strategy: cfg.strategy,
		mb:       mb,
		filter:   cfg.filter,
		done:     make(chan struct{}),
	}
	p.setActor(a)
	p.take = p.offerInline
	p.c.p = p
	p.ctx, p.cancel = context.WithCancel(parentCtx)
	if !s.table.add(id, p) {
		p.cancel()
		return PID{}, fmt.Errorf("%w: %q", ErrNameTaken, id)
	}
	if parent != nil {
		err = parent.addChild(p)
	} else {
		err = s.addTop(p)
	}
	if err != nil {
		s.table.remove(id, p)
		p.cancel()
		return PID{}, err
	}
	mb.PushSystem(sysStarted{})
	mb.Start(p, s.runs)
	return p.pid, nil
}

func (s *System) isClosing() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *System) addTop(p *process) error {
	s.topMu.Lock()
	defer s.topMu.Unlock()
	if s.closing {
		return ErrShutdown
	}
	s.tops[p.pid.ID] = p
	return nil
}

func (s *System) removeTop(p *process) {
	s.topMu.Lock()
	if s.tops[p.pid.ID] == p {
		delete(s.tops, p.pid.ID)
	}
	s.topMu.Unlock()
}

func (s *System) top(pid PID) *process {
	if pid.Node != s.node {
		return nil
	}
	s.topMu.Lock()
	defer s.topMu.Unlock()
	return s.tops[pid.ID]
}

func (s *System) topLevel() []PID {
	s.topMu.Lock()
	defer s.topMu.Unlock()
	out := make([]PID, 0, len(s.tops))
	for _, p := range s.tops {
		out = append(out, p.pid)
	}
	return out
}

// Send delivers msg to the actor at to, blocking while its mailbox is full
// (backpressure) until ctx ends. It returns an error wrapping ErrNotFound or
// ErrStopped when there is no live actor at to (the message then goes to
// dead letters), or ctx's error. For a PID on another node the installed
// Remote carries the message.
func (s *System) Send(ctx context.Context, to PID, msg any) error {
	return s.send(ctx, to, PID{}, msg)
}

// SendFrom is Send with an explicit sender: the receiver's Context.Sender
// returns from, and its Respond replies there. Transports use it to deliver
// messages that arrived from other nodes.
func (s *System) SendFrom(ctx context.Context, from, to PID, msg any) error {
	return s.send(ctx, to, from, msg)
}

// TrySendFrom delivers msg to the local actor at to without blocking: it
// returns an error wrapping ErrFull when the mailbox is full (the message is
// not delivered and not a dead letter), ErrNotFound or ErrStopped when there
// is no live actor (the message goes to dead letters), or ErrNotLocal.
// Transports use it to deliver what arrives from the network without
// stalling a stream.
func (s *System) TrySendFrom(from, to PID, msg any) error {
	if to.Node != s.node {
		return fmt.Errorf("send to %v: %w", to, ErrNotLocal)
	}
	p := s.table.get(to.ID)
	if p == nil {
		if strings.HasPrefix(to.ID, futurePrefix) && s.completeFuture(to.ID, from, msg) {
			return nil
		}
		s.deadLetter(to, from, msg, ErrNotFound)
		return fmt.Errorf("send to %v: %w", to, ErrNotFound)
	}
	if err := p.refuse(msg); err != nil {
		return err
	}
	e := [1]envelope{{msg: msg, sender: from}}
	if p.tryInline(e[:]) == 1 {
		return nil
	}
	switch err := p.mb.TryPush(e[0]); {
	case err == nil:
		return nil
	case errors.Is(err, mailbox.ErrFull):
		return fmt.Errorf("send to %v: %w", to, ErrFull)
	default:
		s.deadLetter(to, from, msg, ErrStopped)
		return fmt.Errorf("send to %v: %w", to, ErrStopped)
	}
}

// TrySendManyFrom is TrySendFrom for several messages to one local actor:
// it queues as many of msgs as the mailbox has room for, in order, with one
// lookup and one scheduling for the lot (an Eager actor with nothing
// queued takes what it can at once, as for TrySendFrom), and returns how
// many it queued.
// With fewer than all it also returns why the next one was not queued
// (ErrFull, or ErrNotFound or ErrStopped for all of them); unlike
// TrySendFrom it makes no dead letters: the caller still holds the rest.
func (s *System) TrySendManyFrom(from, to PID, msgs []any) (int, error) {
	if to.Node != s.node {
		return 0, fmt.Errorf("send to %v: %w", to, ErrNotLocal)
	}
	p := s.table.get(to.ID)
	if p == nil {
		return 0, fmt.Errorf("send to %v: %w", to, ErrNotFound)
	}
	limit, rejected := len(msgs), error(nil)
	if p.filter != nil {
		for i, msg := range msgs {
			if err := p.refuse(msg); err != nil {
				limit, rejected = i, err
				break
			}
		}
	}
	var chunk [64]envelope
	sent := 0
	for sent < limit {
		batch := chunk[:min(len(chunk), limit-sent)]
		for i := range batch {
			batch[i] = envelope{msg: msgs[sent+i], sender: from}
		}
		// An Eager actor with nothing queued takes what it can at once,
		// on this goroutine: no run to start, no hand-off.
		k := p.tryInline(batch)
		sent += k
		if k == len(batch) {
			clear(batch)
			continue
		}
		n, err := p.mb.TryPushMany(batch[k:])
		clear(batch)
		sent += n
		switch {
		case err == nil:
		case errors.Is(err, mailbox.ErrFull):
			return sent, fmt.Errorf("send to %v: %w", to, ErrFull)
		default:
			return sent, fmt.Errorf("send to %v: %w", to, ErrStopped)
		}
	}
	return sent, rejected
}

// MailboxFree returns the free space in the mailbox of the local actor at
// pid, for flow control: a transport grants remote senders at most this many
// messages in flight.
func (s *System) MailboxFree(pid PID) (int, error) {
	p, err := s.local(pid)
	if err != nil {
		if strings.HasPrefix(pid.ID, futurePrefix) && pid.Node == s.node {
			return 1, nil // a pending Request's reply address takes one message
		}
		return 0, err
	}
	if p.mb.Closed() {
		return 0, fmt.Errorf("%v: %w", pid, ErrStopped)
	}
	return p.mb.Free(), nil
}

func (s *System) send(ctx context.Context, to, from PID, msg any) error {
	if to.Node != s.node {
		rb := s.remote.Load()
		if rb == nil {
			s.deadLetter(to, from, msg, ErrNoRemote)
			return fmt.Errorf("send to %v: %w", to, ErrNoRemote)
		}
		return rb.r.Send(ctx, to, from, msg)
	}
	if p := s.table.get(to.ID); p != nil {
		if err := p.refuse(msg); err != nil {
			return err
		}
		e := [1]envelope{{msg: msg, sender: from}}
		if p.tryInline(e[:]) == 1 {
			return nil
		}
		err := p.mb.Push(ctx, e[0])
		if err == nil {
			return nil
		}
		if errors.Is(err, mailbox.ErrClosed) {
			s.deadLetter(to, from, msg, ErrStopped)
			return fmt.Errorf("send to %v: %w", to, ErrStopped)
		}
		return fmt.Errorf("send to %v: %w", to, err)
	}
	if strings.HasPrefix(to.ID, futurePrefix) && s.completeFuture(to.ID, from, msg) {
		return nil
	}
	s.deadLetter(to, from, msg, ErrNotFound)
	return fmt.Errorf("send to %v: %w", to, ErrNotFound)
}

// future is a pending Request: where its reply goes, and the node the
// request went to, the only one whose reply completes it.
type future struct {
	reply chan any
	node  string
}

// newFutureID returns a reply address ID no other node can guess: 128
// random bits. A counter would let any member answer another node's
// pending request with a value of its choosing.
func newFutureID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	var buf [len(futurePrefix) + 32]byte
	copy(buf[:], futurePrefix)
	hex.Encode(buf[len(futurePrefix):], b[:])
	return string(buf[:])
}

// Request sends msg to the actor at to and waits for its reply (the actor
// answers with Context.Respond). It returns ctx's error if ctx ends first; a
// reply that arrives later goes to dead letters.
func (s *System) Request(ctx context.Context, to PID, msg any) (any, error) {
	id := newFutureID()
	reply := make(chan any, 1)
	s.futuresMu.Lock()
	s.futures[id] = future{reply: reply, node: to.Node}
	s.futuresMu.Unlock()
	defer func() {
		s.futuresMu.Lock()
		delete(s.futures, id)
		s.futuresMu.Unlock()
	}()
	if err := s.send(ctx, to, PID{Node: s.node, ID: id}, msg); err != nil {
		return nil, err
	}
	select {
	case v := <-reply:
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("request to %v: %w", to, ctx.Err())
	case <-s.closed:
		return nil, fmt.Errorf("request to %v: %w", to, ErrShutdown)
	}
}

// completeFuture hands msg, a reply from from, to the pending Request id.
// A reply from another node than the one the request went to does not
// complete it (and becomes a dead letter).
func (s *System) completeFuture(id string, from PID, msg any) bool {
	s.futuresMu.Lock()
	f, ok := s.futures[id]
	if ok && from.Node != f.node {
		ok = false
	} else {
		delete(s.futures, id)
	}
	s.futuresMu.Unlock()
	if ok {
		f.reply <- msg // buffered, and removed above: never blocks
	}
	return ok
}

func (s *System) local(pid PID) (*process, error) {
	if pid.Node != s.node {
		return nil, fmt.Errorf("%v: %w", pid, ErrNotLocal)
	}
	p := s.table.get(pid.ID)
	if p == nil {
		return nil, fmt.Errorf("%v: %w", pid, ErrNotFound)
	}
	return p, nil
}

// Stop stops the actor at pid gracefully: it accepts no new messages,
// processes those already queued, stops its children, receives Stopped and
// is gone. The stop begins at once; Stop waits for all of that, or returns
// ctx's error (pass a cancelled ctx to stop without waiting).
func (s *System) Stop(ctx context.Context, pid PID) error {
	p, err := s.local(pid)
	if err != nil {
		return err
	}
	p.stopGracefully()
	return wait(ctx, p)
}

// Poison stops the actor at pid at once: after the message it is processing,
// queued messages go to dead letters, its children are stopped and it
// receives Stopped. Poison waits for that, or returns ctx's error.
func (s *System) Poison(ctx context.Context, pid PID) error {
	p, err := s.local(pid)
	if err != nil {
		return err
	}
	p.poison()
	return wait(ctx, p)
}

func wait(ctx context.Context, p *process) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %v: %w", p.pid, ctx.Err())
	}
}

// Shutdown stops every actor, children before parents, each finishing what
// its mailbox already holds, and waits for every goroutine the System
// started. If ctx ends first, Shutdown poisons the remaining actors, cancels
// their contexts and returns ctx's error; calling it again waits for the rest.
// Shutdown is idempotent and safe for concurrent use. After it begins, Spawn
// fails with ErrShutdown and pending Requests return ErrShutdown.
func (s *System) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.topMu.Lock()
		s.closing = true
		tops := make([]*process, 0, len(s.tops))
		for _, p := range s.tops {
			tops = append(tops, p)
		}
		s.topMu.Unlock()
		close(s.closed)
		for _, p := range tops {
			p.stopGracefully()
		}
	})
	s.topMu.Lock()
	tops := make([]*process, 0, len(s.tops))
	for _, p := range s.tops {
		tops = append(tops, p)
	}
	s.topMu.Unlock()
	for _, p := range tops {
		select {
		case <-p.done:
		case <-ctx.Done():
			s.force()
			return fmt.Errorf("actor: shutdown: %w", ctx.Err())
		}
	}
	s.runs.stop()
	if err := s.runs.wait(ctx); err != nil {
		s.force()
		return fmt.Errorf("actor: shutdown: %w", err)
	}
	s.cancel()
	return nil
}

// force poisons every remaining actor and cancels every actor context.
func (s *System) force() {
	s.cancel()
	for _, p := range s.table.all() {
		p.poison()
	}
}

// runTracker is the System's mailbox dispatcher. Each mailbox run goes to
// an idle worker goroutine if one is waiting, or to a new one. A worker
// whose run ends waits for the next run unless maxIdle workers already
// wait; so an idle actor owns no goroutine, a busy System reuses warm
// goroutines (no creation, no stack regrowth per run), and the number of
// idle goroutines is bounded by the System, not by its actors. Shutdown
// stops the idle workers and waits for every one.
type runTracker struct {
	work    chan func()   // unbuffered: hands a run to an idle worker
	quit    chan struct{} // closed by stop: idle workers exit
	stopped sync.Once
	idleN   atomic.Int32
	maxIdle int32

	mu   sync.Mutex
	n    int           // live workers
	idle chan struct{} // closed when n drops to 0; nil when nobody waits
}

func newRunTracker() *runTracker {
	return &runTracker{
		work:    make(chan func()),
		quit:    make(chan struct{}),
		maxIdle: int32(max(2, runtime.GOMAXPROCS(0))),
	}
}

// Schedule implements mailbox.Dispatcher.
func (t *runTracker) Schedule(fn func()) {
	select {
	case t.work <- fn:
		return
	default:
	}
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
	go t.worker(fn)
}

func (t *runTracker) worker(fn func()) {
	defer t.done()
	for {
		fn()
		if t.idleN.Add(1) > t.maxIdle {
			t.idleN.Add(-1)
			return
		}
		select {
		case fn = <-t.work:
			t.idleN.Add(-1)
		case <-t.quit:
			t.idleN.Add(-1)
			return
		}
	}
}

// stop makes idle workers exit; runs scheduled later still run, each on a
// goroutine that exits after it.
func (t *runTracker) stop() { t.stopped.Do(func() { close(t.quit) }) }

func (t *runTracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
}

func (t *runTracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	if t.idle == nil {
		t.idle = make(chan struct{})
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
