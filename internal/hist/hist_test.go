package hist

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBoundsAreIncreasingAndCounted(t *testing.T) {
	require.Len(t, Bounds, buckets)
	for i := 1; i < len(Bounds); i++ {
		assert.Less(t, Bounds[i-1], Bounds[i])
	}
}

func TestObserveCountsEachDurationInItsBucket(t *testing.T) {
	var h Histogram
	h.Observe(0)                     // first bucket
	h.Observe(50 * time.Microsecond) // first: bounds are inclusive
	h.Observe(51 * time.Microsecond) // second
	h.Observe(3 * time.Millisecond)  // 5 ms
	h.Observe(10 * time.Second)      // the last bound
	h.Observe(time.Minute)           // above every bound
	s := h.Snapshot()
	assert.Equal(t, uint64(6), s.Count)
	assert.Equal(t, uint64(2), s.Counts[0])
	assert.Equal(t, uint64(1), s.Counts[1])
	assert.Equal(t, uint64(1), s.Counts[6])
	assert.Equal(t, uint64(1), s.Counts[buckets-1])
	assert.Equal(t, uint64(1), s.Counts[buckets])
	assert.Equal(t, 101*time.Microsecond+3*time.Millisecond+10*time.Second+time.Minute, s.Sum)
}

func TestObserveIsSafeForConcurrentUse(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				h.Observe(time.Millisecond)
			}
		})
	}
	wg.Wait()
	s := h.Snapshot()
	assert.Equal(t, uint64(8000), s.Count)
	assert.Equal(t, uint64(8000), s.Counts[4])
	assert.Equal(t, 8*time.Second, s.Sum)
}
