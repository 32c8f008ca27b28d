package actor

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// DefaultMailboxSize is the user-queue capacity of an actor spawned without
// WithMailboxSize. A mailbox allocates its capacity only once more than 64
// messages queue up (see package mailbox), so an actor that keeps up costs
// a few kilobytes; one that falls behind holds up to 4096 messages, which
// is also the credit window it grants each remote sender
// (remoting.DefaultMaxWindow): across nodes, a window per credit round trip
// is what bounds one sender's throughput.
const DefaultMailboxSize = 4096

// Option configures a System.
type Option interface{ apply(*systemConfig) }

type optionFunc func(*systemConfig)

func (f optionFunc) apply(c *systemConfig) { f(c) }

type systemConfig struct {
	node         string
	logger       *zap.Logger
	guardian     SupervisorStrategy
	deadLetterFn func(DeadLetter)
	trimAfter    time.Duration
}

// DefaultTrimAfter is how often a grown mailbox is looked at (see
// WithTrimAfter).
const DefaultTrimAfter = 10 * time.Second

func defaultSystemConfig() systemConfig {
	return systemConfig{node: "local", logger: zap.NewNop(), guardian: defaultStrategy{}, trimAfter: DefaultTrimAfter}
}

func (c *systemConfig) validate() error {
	if c.node == "" {
		return fmt.Errorf("%w: node name is empty", ErrInvalidOption)
	}
	if c.logger == nil {
		return fmt.Errorf("%w: logger is nil", ErrInvalidOption)
	}
	if c.guardian == nil {
		return fmt.Errorf("%w: guardian strategy is nil", ErrInvalidOption)
	}
	if c.trimAfter <= 0 {
		return fmt.Errorf("%w: trim interval %v must be positive", ErrInvalidOption, c.trimAfter)
	}
	return nil
}

// WithNode sets the node name that this System's PIDs carry (default
// "local"). Nodes of one cluster must have distinct names.
func WithNode(name string) Option { return optionFunc(func(c *systemConfig) { c.node = name }) }

// WithLogger sets the logger (default: silent).
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *systemConfig) { c.logger = l })
}

// WithGuardian sets the strategy that supervises top-level actors (those
// spawned by System.Spawn). The default restarts a failed actor at once and
// stops it after 10 failures within 10 seconds.
func WithGuardian(s SupervisorStrategy) Option {
	return optionFunc(func(c *systemConfig) { c.guardian = s })
}

// WithDeadLetterHandler installs fn to observe every dead letter. fn runs on
// the goroutine that failed to deliver and must not block.
func WithDeadLetterHandler(fn func(DeadLetter)) Option {
	return optionFunc(func(c *systemConfig) { c.deadLetterFn = fn })
}

// WithTrimAfter sets how often an actor whose mailbox has allocated its
// whole capacity (after a backlog of more than 64 messages) has it looked
// at (default DefaultTrimAfter): once a look finds the mailbox empty and
// nothing pushed to it since the previous look, the mailbox goes back to
// 64 slots. So an actor's memory falls back between one and two intervals
// after its last message.
func WithTrimAfter(d time.Duration) Option {
	return optionFunc(func(c *systemConfig) { c.trimAfter = d })
}

// SpawnOption configures one actor.
type SpawnOption interface{ apply(*spawnConfig) }

type spawnOptionFunc func(*spawnConfig)

func (f spawnOptionFunc) apply(c *spawnConfig) { f(c) }

type spawnConfig struct {
	mailboxSize int
	throughput  int
	strategy    SupervisorStrategy
	filter      func(msg any) error
}

func (c *spawnConfig) validate() error {
	if c.mailboxSize < 1 {
		return fmt.Errorf("%w: mailbox size %d must be at least 1", ErrInvalidOption, c.mailboxSize)
	}
	if c.throughput < 1 {
		return fmt.Errorf("%w: throughput %d must be at least 1", ErrInvalidOption, c.throughput)
	}
	return nil
}

// WithFilter makes the actor refuse, before accepting them, the user
// messages filter returns an error for: a send of one fails with an error
// wrapping ErrRejected and filter's error, across nodes too, and the
// message is neither queued nor a dead letter. filter runs on the
// sender's goroutine, concurrently with the actor and with itself: it must
// be fast and must not block.
func WithFilter(filter func(msg any) error) SpawnOption {
	return spawnOptionFunc(func(c *spawnConfig) { c.filter = filter })
}

// WithMailboxSize sets the capacity of the actor's user queue (default
// DefaultMailboxSize). Senders block while it is full.
func WithMailboxSize(n int) SpawnOption {
	return spawnOptionFunc(func(c *spawnConfig) { c.mailboxSize = n })
}

// WithThroughput sets how many messages the actor processes before yielding
// the processor to other goroutines (default 300).
func WithThroughput(n int) SpawnOption {
	return spawnOptionFunc(func(c *spawnConfig) { c.throughput = n })
}

// WithSupervisor sets the strategy with which this actor supervises its
// children (default: the same as the System's guardian).
func WithSupervisor(s SupervisorStrategy) SpawnOption {
	return spawnOptionFunc(func(c *spawnConfig) { c.strategy = s })
}
