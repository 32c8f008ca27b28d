package supervisor

import (
	"fmt"
	"math"
	"time"
)

// Backoff delays restarts exponentially: the n-th failure within the window
// waits Min·2^(n-1), capped at Max, spread by ±Jitter (a fraction in [0, 1])
// so that many children failing together do not restart in lockstep. The zero
// Backoff restarts at once.
type Backoff struct {
	Min    time.Duration
	Max    time.Duration
	Jitter float64
}

func (b Backoff) validate() error {
	switch {
	case b.Min < 0 || b.Max < 0:
		return fmt.Errorf("%w: backoff durations must not be negative", ErrInvalidOption)
	case b.Max < b.Min:
		return fmt.Errorf("%w: backoff max %v below min %v", ErrInvalidOption, b.Max, b.Min)
	case b.Jitter < 0 || b.Jitter > 1 || math.IsNaN(b.Jitter):
		return fmt.Errorf("%w: backoff jitter %v outside [0, 1]", ErrInvalidOption, b.Jitter)
	}
	return nil
}

// Delay returns the delay before restart number attempt (1-based), given a
// uniform random sample r in [0, 1). It is pure: the same inputs give the
// same delay. The result lies in [base·(1-Jitter), base·(1+Jitter)], capped at
// Max, where base = min(Min·2^(attempt-1), Max).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	if b.Min <= 0 || attempt < 1 {
		return 0
	}
	base := b.Max
	if shift := attempt - 1; shift < 62 && b.Min <= b.Max>>shift {
		base = b.Min << shift
	}
	d := time.Duration(float64(base) * (1 + b.Jitter*(2*r-1)))
	if d > b.Max {
		d = b.Max
	}
	if d < 0 {
		d = 0
	}
	return d
}
