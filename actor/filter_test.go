package actor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
)

var errOdd = errors.New("odd")

func TestFilterRefusesMessagesBeforeTheyAreQueued(t *testing.T) {
	s := newSystem(t)
	got := make(chan int, 16)
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if v, ok := c.Message().(int); ok {
				got <- v
			}
		})
	}, actor.WithMailboxSize(16), actor.WithFilter(func(msg any) error {
		if v, ok := msg.(int); ok && v%2 == 1 {
			return errOdd
		}
		return nil
	}))
	require.NoError(t, err)
	ctx := context.Background()

	err = s.Send(ctx, pid, 1)
	require.ErrorIs(t, err, actor.ErrRejected)
	require.ErrorIs(t, err, errOdd, "the filter's error is kept")
	require.ErrorIs(t, s.TrySendFrom(actor.PID{}, pid, 3), actor.ErrRejected)
	require.NoError(t, s.Send(ctx, pid, 2))

	// A batch is taken up to the first refused message.
	n, err := s.TrySendManyFrom(actor.PID{}, pid, []any{4, 6, 7, 8})
	assert.Equal(t, 2, n)
	require.ErrorIs(t, err, actor.ErrRejected)

	for _, want := range []int{2, 4, 6} {
		assert.Equal(t, want, <-got)
	}
	assert.Empty(t, got, "no refused message reached the actor")
}
