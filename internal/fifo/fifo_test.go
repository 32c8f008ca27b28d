package fifo

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKeepsOrderAndReusesItsArray: elements come out in the order they
// went in, across partial takes, compaction and a final take of all, and
// the array grows with what waits, not with what went through.
func TestKeepsOrderAndReusesItsArray(t *testing.T) {
	var f Queue[int]
	var got []int
	next := 0
	peak := 0
	for round := range 3000 {
		for range 1 + round%300 {
			f.Push(next)
			next++
		}
		peak = max(peak, f.Len())
		if f.Len() > 0 {
			require.Equal(t, len(got), f.Front(), "round %d: the oldest", round)
		}
		f.Take(min(f.Len(), 1+(round*7)%350), func(v int) { got = append(got, v) })
		// The array holds about twice what was ever waiting at once
		// (append doubles, then rounds to a size class).
		require.LessOrEqual(t, f.Cap(), 9*peak/4+64, "round %d: the array grew to %d (peak %d)", round, f.Cap(), peak)
	}
	f.Take(f.Len(), func(v int) { got = append(got, v) })
	assert.Zero(t, f.Len())
	require.Len(t, got, next)
	for i, v := range got {
		require.Equal(t, i, v)
	}
}

func TestPop(t *testing.T) {
	var f Queue[string]
	_, ok := f.Pop()
	assert.False(t, ok)
	f.Push("a")
	f.Push("b")
	v, ok := f.Pop()
	assert.True(t, ok)
	assert.Equal(t, "a", v)
	v, _ = f.Pop()
	assert.Equal(t, "b", v)
	assert.Zero(t, f.Len())
	f.Push("c")
	f.Reset()
	assert.Zero(t, f.Len())
	assert.Zero(t, f.Cap())
}
