package security

import "testing"

func TestLogLimiter(t *testing.T) {
	type step struct {
		now        int64
		ok         bool
		suppressed uint64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first entry passes", []step{{now: 5, ok: true}}},
		{"burst held back", []step{
			{now: 100, ok: true},
			{now: 101}, {now: 150}, {now: 199},
			{now: 200, ok: true, suppressed: 3},
		}},
		{"spaced entries all pass", []step{
			{now: 0, ok: true}, {now: 100, ok: true}, {now: 250, ok: true},
		}},
		{"count resets after an entry", []step{
			{now: 0, ok: true}, {now: 1},
			{now: 100, ok: true, suppressed: 1},
			{now: 300, ok: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := logLimiter{interval: 100}
			for i, s := range tc.steps {
				ok, suppressed := l.allow(s.now)
				if ok != s.ok || suppressed != s.suppressed {
					t.Fatalf("step %d at %d: allow = %v, %d; want %v, %d", i, s.now, ok, suppressed, s.ok, s.suppressed)
				}
			}
		})
	}
}

// TestLogLimiterConcurrent checks that concurrent callers at one instant
// let exactly one entry through and count every other one.
func TestLogLimiterConcurrent(t *testing.T) {
	const callers = 64
	l := logLimiter{interval: 100}
	results := make(chan bool, callers)
	for range callers {
		go func() {
			ok, _ := l.allow(1000)
			results <- ok
		}()
	}
	passed := 0
	for range callers {
		if <-results {
			passed++
		}
	}
	if passed != 1 {
		t.Fatalf("%d callers passed, want 1", passed)
	}
	if ok, suppressed := l.allow(1100); !ok || suppressed != callers-1 {
		t.Fatalf("next entry: allow = %v, %d; want true, %d", ok, suppressed, callers-1)
	}
}
