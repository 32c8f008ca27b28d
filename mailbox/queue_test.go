package mailbox

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestAMailboxAllocatesItsCapacityOnlyWhenMessagesQueueUp(t *testing.T) {
	m, err := New[int](100_000)
	require.NoError(t, err)
	assert.Equal(t, firstRing, m.user.slots(), "a new mailbox")
	for i := 0; i < firstRing; i++ {
		require.NoError(t, m.TryPush(i))
	}
	assert.Equal(t, firstRing, m.user.slots(), "with the first ring full")

	require.NoError(t, m.TryPush(firstRing))
	assert.Equal(t, firstRing+131072, m.user.slots(), "one past the first ring: the whole capacity, rounded to a power of two")
	for i := 0; i <= firstRing; i++ {
		v, ok := m.Pop()
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	_, ok := m.Pop()
	assert.False(t, ok)
	assert.Equal(t, 131072, m.user.slots(), "once the first ring is emptied it is let go")
}

func TestASmallMailboxHasOneRing(t *testing.T) {
	m, err := New[int](firstRing)
	require.NoError(t, err)
	for i := 0; i < firstRing; i++ {
		require.NoError(t, m.TryPush(i))
	}
	assert.ErrorIs(t, m.TryPush(-1), ErrFull)
	assert.Equal(t, firstRing, m.user.slots())
}

func TestAMailboxHoldsItsWholeCapacityAcrossTheMove(t *testing.T) {
	const capacity = 1000
	m, err := New[int](capacity)
	require.NoError(t, err)
	for round := 0; round < 2; round++ { // the second round runs on the large ring alone
		for i := 0; i < capacity; i++ {
			require.NoError(t, m.TryPush(i), "push %d of round %d", i, round)
		}
		assert.ErrorIs(t, m.TryPush(-1), ErrFull)
		assert.Equal(t, capacity, m.Len())
		assert.Zero(t, m.Free())
		for i := 0; i < capacity; i++ {
			v, ok := m.Pop()
			require.True(t, ok, "pop %d of round %d", i, round)
			require.Equal(t, i, v)
		}
		_, ok := m.Pop()
		assert.False(t, ok)
		assert.Zero(t, m.Len())
	}
}

func TestAMailboxMidMoveHoldsNoMoreThanItsCapacity(t *testing.T) {
	// Pop a few from the sealed first ring while producers fill the large
	// one: the two together never hold more than the capacity, and the
	// space of what was popped comes back once the first ring is empty.
	const capacity = 200
	m, err := New[int](capacity)
	require.NoError(t, err)
	n, err := m.TryPushMany(seq(0, capacity))
	require.NoError(t, err)
	require.Equal(t, capacity, n)
	for i := 0; i < 10; i++ {
		v, ok := m.Pop()
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	assert.ErrorIs(t, m.TryPush(-1), ErrFull, "the first ring's freed slots are not the large ring's yet")
	assert.Equal(t, capacity-10, m.Len())
	for i := 10; i < firstRing; i++ {
		v, ok := m.Pop()
		require.True(t, ok)
		require.Equal(t, i, v)
	}
	v, ok := m.Pop() // the move: the first value of the large ring
	require.True(t, ok)
	require.Equal(t, firstRing, v)
	n, err = m.TryPushMany(seq(capacity, capacity+firstRing+2))
	assert.ErrorIs(t, err, ErrFull)
	assert.Equal(t, firstRing+1, n, "every slot popped is free again, and no more")
	assert.Equal(t, capacity, m.Len())
	for want := firstRing + 1; want < capacity+firstRing+1; want++ {
		v, ok := m.Pop()
		require.True(t, ok)
		require.Equal(t, want, v)
	}
}

func TestTheMoveKeepsEachProducersOrder(t *testing.T) {
	// Producers race over the move from the first ring to the large one
	// while runs consume: nothing is lost or repeated, and each producer's
	// messages arrive in order. Fresh mailboxes, so the move falls at a
	// different moment each time.
	const producers, each = 6, 400
	for trial := 0; trial < 20; trial++ {
		r := newRecorder()
		m, _ := start(t, 4096, r, WithThroughput(5))
		pushFromEach(t, m, producers, each)
		r.wait(t, producers*each)
		requireEachInOrder(t, r.snapshot(), producers, each)
	}
}

func TestAQueueBehavesAsABoundedFIFO(t *testing.T) {
	// One goroutine at a time, against a model: any mix of pushes and pops
	// on a queue of any capacity. The model knows the move: while the
	// first ring still holds values, the large ring takes at most the
	// capacity less the first ring's; the first pop to find the first ring
	// empty gives its share back.
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 300).Draw(t, "capacity")
		q := newQueue[int](capacity)
		var model []int
		moving, inFirst := false, 0 // the first ring is sealed; values left in it
		moved := capacity <= firstRing
		next := 0
		// Runs of pushes (+1) and pops (-1), so that queues fill and drain,
		// and shrinks (0) between them.
		var ops []int
		for _, run := range rapid.SliceOfN(rapid.IntRange(-300, 300), 1, 40).Draw(t, "runs") {
			for i := 0; i < max(run, -run); i++ {
				ops = append(ops, max(min(run, 1), -1))
			}
			if run%7 == 0 {
				ops = append(ops, 0)
			}
		}
		for _, op := range ops {
			if op == 0 {
				want := capacity > firstRing && moved && len(model) == 0
				if got := q.shrink(); got != want {
					t.Fatalf("shrink with %d queued, moved %v: %v", len(model), moved, got)
				}
				if want {
					moved = false
				}
				continue
			}
			if op > 0 {
				var want bool
				switch {
				case moved:
					want = len(model) < capacity
				case moving:
					want = len(model)-inFirst < capacity-firstRing
				default:
					want = true
					if len(model) == firstRing {
						moving, inFirst = true, firstRing
					}
				}
				if ok := q.push(next); ok != want {
					t.Fatalf("push with %d of %d queued (%d in the first ring, moving %v): %v", len(model), capacity, inFirst, moving, ok)
				}
				if want {
					model = append(model, next)
				}
				next++
			} else {
				if moving && inFirst == 0 {
					moving, moved = false, true
				}
				v, ok := q.pop()
				if ok != (len(model) > 0) {
					t.Fatalf("pop with %d queued: %v", len(model), ok)
				}
				if ok {
					if v != model[0] {
						t.Fatalf("popped %d, want %d", v, model[0])
					}
					model = model[1:]
					if moving {
						inFirst--
					}
				}
			}
			if q.len() != len(model) {
				t.Fatalf("len %d, want %d", q.len(), len(model))
			}
			if q.ready() != (len(model) > 0) {
				t.Fatalf("ready %v with %d queued", q.ready(), len(model))
			}
		}
	})
}

func TestConcurrentProducersNeverOverfillAcrossTheMove(t *testing.T) {
	// With nobody consuming, racing producers stop at exactly the capacity.
	const capacity = 500
	for trial := 0; trial < 50; trial++ {
		m, err := New[int](capacity)
		require.NoError(t, err)
		var wg sync.WaitGroup
		var mu sync.Mutex
		taken := 0
		for p := 0; p < 4; p++ {
			wg.Go(func() {
				for {
					err := m.TryPush(p)
					if errors.Is(err, ErrFull) {
						return
					}
					mu.Lock()
					taken++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Equal(t, capacity, taken, "trial %d", trial)
		require.Equal(t, capacity, m.Len())
	}
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestProducersCrossTheMoveWhileTheConsumerPops(t *testing.T) {
	// Eight producers push across the move while one goroutine pops at the
	// same time, at capacities just above the first ring's: every value
	// arrives once, in order per producer, and the queue never holds more
	// than its capacity.
	for _, capacity := range []int{65, 66, 100, 129} {
		for trial := 0; trial < 10; trial++ {
			const producers, each = 8, 300
			q := newQueue[int](capacity)
			wait := goProduce(producers, each, 0, each, func(v int) bool { spinPush(q, v); return true })
			order := newInOrder(producers, each)
			deadline := time.Now().Add(20 * time.Second)
			for got := 0; got < producers*each; {
				require.LessOrEqual(t, q.len(), capacity)
				v, ok := q.pop()
				if !ok {
					require.True(t, time.Now().Before(deadline), "capacity %d: stuck after %d values", capacity, got)
					runtime.Gosched()
					continue
				}
				order.see(t, v)
				got++
			}
			wait()
			order.seenUpTo(t, each)
			_, ok := q.pop()
			require.False(t, ok)
			require.False(t, q.ready())
		}
	}
}

func TestOneProducerAllocatesTheLargeRing(t *testing.T) {
	// Producers that find the first ring full at the same moment: one of
	// them allocates the ring of the whole capacity, not each.
	const capacity = 1 << 16
	ringBytes := uint64(capacity) * uint64(unsafe.Sizeof(cell[[48]byte]{}))
	for trial := 0; trial < 10; trial++ {
		q := newQueue[[48]byte](capacity)
		for i := 0; i < firstRing; i++ {
			require.True(t, q.push([48]byte{}))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var start, wg sync.WaitGroup
		start.Add(1)
		for p := 0; p < 8; p++ {
			wg.Go(func() {
				start.Wait()
				assert.True(t, q.push([48]byte{}))
			})
		}
		start.Done()
		wg.Wait()
		runtime.ReadMemStats(&after)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, 2*ringBytes, "trial %d", trial)
	}
}

func TestTrimLetsAnIdleBacklogsRingGo(t *testing.T) {
	grew := 0
	m, err := New[int](4096, WithGrowHook(func() { grew++ }))
	require.NoError(t, err)
	for round := 1; round <= 2; round++ {
		n, err := m.TryPushMany(seq(0, 100))
		require.NoError(t, err)
		require.Equal(t, 100, n)
		assert.Equal(t, round, grew, "the hook runs once per move to the large ring")
		assert.Equal(t, firstRing+4096, m.Slots())
		assert.False(t, m.Trim(), "round %d: not empty", round)
		for i := 0; i < 100; i++ {
			v, ok := m.Pop()
			require.True(t, ok)
			require.Equal(t, i, v)
		}
		assert.False(t, m.Trim(), "round %d: a first call only marks where the queue stands", round)
		assert.Equal(t, 4096, m.Slots())
		assert.True(t, m.Trim(), "round %d: empty, and nothing pushed since the last call", round)
		assert.Equal(t, firstRing, m.Slots())
		assert.False(t, m.Trim(), "already small")
	}
}

func TestTrimKeepsARingThatWasUsedSinceTheLastCall(t *testing.T) {
	m, err := New[int](4096)
	require.NoError(t, err)
	_, err = m.TryPushMany(seq(0, 100))
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		_, ok := m.Pop()
		require.True(t, ok)
	}
	require.False(t, m.Trim()) // marks
	require.NoError(t, m.TryPush(7))
	_, ok := m.Pop()
	require.True(t, ok)
	assert.False(t, m.Trim(), "a value went through since the mark")
	assert.True(t, m.Trim(), "and none since this one")
}

func TestProducersKeepOrderWhileTheConsumerShrinks(t *testing.T) {
	// Rounds in which producers push a backlog that moves the queue to its
	// large ring, while the consumer pops and tries to shrink whenever it
	// finds the queue empty (racing the producers), and shrinks for
	// certain once they are done: nothing is lost or repeated, each
	// producer's values stay in order, and the queue never holds more than
	// its capacity.
	const capacity, producers, perRound, rounds = 100, 6, 40, 30
	const each = perRound * rounds
	q := newQueue[int](capacity)
	order := newInOrder(producers, each)
	pop := func() bool {
		require.LessOrEqual(t, q.len(), capacity)
		v, ok := q.pop()
		if ok {
			order.see(t, v)
		}
		return ok
	}
	raced := 0
	for round := 0; round < rounds; round++ {
		wait := goProduce(producers, each, round*perRound, (round+1)*perRound, func(v int) bool {
			spinPush(q, v)
			if v%10 == 9 && round%2 == 1 {
				time.Sleep(50 * time.Microsecond) // lets the consumer empty the queue mid-round
			}
			return true
		})
		done := make(chan struct{})
		go func() { wait(); close(done) }()
		deadline := time.Now().Add(10 * time.Second)
		for q.len() <= firstRing { // a backlog past the first ring: the queue moves
			require.True(t, time.Now().Before(deadline), "round %d: no backlog formed", round)
			runtime.Gosched()
		}
		require.Greater(t, q.slots(), firstRing)
	consume:
		for {
			select {
			case <-done:
				break consume
			default:
			}
			if !pop() && q.shrink() {
				raced++
			}
		}
		for pop() {
		}
		if q.slots() > firstRing {
			require.True(t, q.shrink(), "round %d: empty, on its large ring, and nobody pushing", round)
		}
		require.Equal(t, firstRing, q.slots())
	}
	order.seenUpTo(t, each)
	t.Logf("%d rounds; shrunk %d times while producers pushed", rounds, raced)
}

func TestProducersThatOutrunAShrinkLeaveItShrinkable(t *testing.T) {
	// Producers follow the sealed large ring into the new first ring, fill
	// it and grow it before the consumer's shrink has moved prod: prod
	// must still end on the new large ring, or the queue could never
	// shrink again (it would keep its whole capacity for good).
	q := newQueue[int](100)
	for i := 0; i <= firstRing; i++ { // onto the large ring
		require.True(t, q.push(i))
	}
	for i := 0; i <= firstRing; i++ {
		_, ok := q.pop()
		require.True(t, ok)
	}
	afterShrinkSeal = func() {
		afterShrinkSeal = nil
		for i := 0; i <= firstRing; i++ { // fills the new first ring and grows it
			require.True(t, q.push(1000+i))
		}
	}
	t.Cleanup(func() { afterShrinkSeal = nil })
	require.True(t, q.shrink())
	assert.Equal(t, firstRing+1, q.len())
	for i := 0; i <= firstRing; i++ {
		v, ok := q.pop()
		require.True(t, ok)
		require.Equal(t, 1000+i, v)
	}
	assert.True(t, q.shrink(), "empty, on its large ring, with producers' ring the same")
	assert.Equal(t, firstRing, q.slots())
}

// spinPush pushes v to q, yielding while q is full.
func spinPush[T any](q *queue[T], v T) {
	for !q.push(v) {
		runtime.Gosched()
	}
}
