package supervisor

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dchan-io/dchan/actor"
)

// Defaults of a strategy built without options.
const (
	DefaultMaxRestarts = 10
	DefaultWindow      = 10 * time.Second
)

// Strategy is a OneForOne or AllForOne supervisor strategy. It implements
// actor.SupervisorStrategy. A Strategy is immutable and may supervise any
// number of actors.
type Strategy struct {
	allForOne   bool
	decider     Decider
	maxRestarts int
	window      time.Duration
	backoff     Backoff
	clock       Clock
	random      func() float64
}

var _ actor.SupervisorStrategy = (*Strategy)(nil)

// Option configures a Strategy.
type Option interface{ apply(*Strategy) }

type optionFunc func(*Strategy)

func (f optionFunc) apply(s *Strategy) { f(s) }

// WithDecider sets the Decider (default AlwaysRestart).
func WithDecider(d Decider) Option { return optionFunc(func(s *Strategy) { s.decider = d }) }

// WithMaxRestarts bounds restarts: a child that fails more than n times within
// window is stopped instead of restarted. n = 0 means no bound. The default is
// 10 within 10 seconds.
func WithMaxRestarts(n int, window time.Duration) Option {
	return optionFunc(func(s *Strategy) { s.maxRestarts, s.window = n, window })
}

// WithBackoff delays restarts (default: none, restart at once).
func WithBackoff(b Backoff) Option { return optionFunc(func(s *Strategy) { s.backoff = b }) }

// WithClock sets the clock that stamps failures and times delayed restarts
// (default RealClock).
func WithClock(c Clock) Option { return optionFunc(func(s *Strategy) { s.clock = c }) }

// WithRandom sets the source of jitter samples in [0, 1) (default
// math/rand/v2's Float64).
func WithRandom(f func() float64) Option { return optionFunc(func(s *Strategy) { s.random = f }) }

// OneForOne returns a strategy that acts on the failed child alone.
func OneForOne(opts ...Option) (*Strategy, error) { return newStrategy(false, opts) }

// AllForOne returns a strategy that restarts or stops all of the
// supervisor's children when one fails.
func AllForOne(opts ...Option) (*Strategy, error) { return newStrategy(true, opts) }

func newStrategy(allForOne bool, opts []Option) (*Strategy, error) {
	s := &Strategy{
		allForOne:   allForOne,
		decider:     AlwaysRestart,
		maxRestarts: DefaultMaxRestarts,
		window:      DefaultWindow,
		clock:       RealClock(),
		random:      rand.Float64,
	}
	for _, o := range opts {
		o.apply(s)
	}
	switch {
	case s.decider == nil:
		return nil, fmt.Errorf("%w: nil decider", ErrInvalidOption)
	case s.clock == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidOption)
	case s.random == nil:
		return nil, fmt.Errorf("%w: nil random source", ErrInvalidOption)
	case s.maxRestarts < 0:
		return nil, fmt.Errorf("%w: max restarts %d is negative", ErrInvalidOption, s.maxRestarts)
	case s.maxRestarts > 0 && s.window <= 0:
		return nil, fmt.Errorf("%w: restart window %v must be positive", ErrInvalidOption, s.window)
	}
	if err := s.backoff.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// HandleFailure implements actor.SupervisorStrategy.
func (s *Strategy) HandleFailure(sup actor.Supervisor, f actor.Failure) {
	switch s.decider(f.Reason) {
	case Resume:
		sup.ResumeChildren(f.Child)
	case Stop:
		sup.StopChildren(s.targets(sup, f)...)
	case Escalate:
		sup.EscalateFailure(f)
	default: // Restart
		now := s.clock.Now()
		f.Restarts.Fail(now)
		n := f.Restarts.Count()
		if s.maxRestarts > 0 {
			n = f.Restarts.FailuresSince(now.Add(-s.window))
			if n > s.maxRestarts {
				sup.StopChildren(s.targets(sup, f)...)
				return
			}
		}
		targets := s.targets(sup, f)
		delay := s.backoff.Delay(n, s.random())
		if delay <= 0 {
			sup.RestartChildren(targets...)
			return
		}
		s.clock.AfterFunc(delay, func() { sup.RestartChildren(targets...) })
	}
}

func (s *Strategy) targets(sup actor.Supervisor, f actor.Failure) []actor.PID {
	if !s.allForOne {
		return []actor.PID{f.Child}
	}
	return sup.Children()
}
