package actor_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
)

func TestAnIdleActorsMailboxGivesABacklogsMemoryBack(t *testing.T) {
	s := newSystem(t, actor.WithTrimAfter(20*time.Millisecond))
	ctx := context.Background()
	release := make(chan struct{})
	got := make(chan int, 1000)
	pid, err := s.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if v, ok := c.Message().(int); ok {
				if v%1000 == 0 {
					<-release // the first of each backlog holds the others back
				}
				got <- v
			}
		})
	})
	require.NoError(t, err)
	require.Equal(t, 64, s.MailboxSlots(pid), "a new actor")

	for round := 0; round < 2; round++ {
		for i := round * 1000; i < round*1000+200; i++ {
			require.NoError(t, s.Send(ctx, pid, i))
		}
		require.Equal(t, 64+actor.DefaultMailboxSize, s.MailboxSlots(pid), "round %d: a backlog of 199", round)
		release <- struct{}{}
		for i := round * 1000; i < round*1000+200; i++ {
			require.Equal(t, i, <-got)
		}
		require.Eventually(t, func() bool { return s.MailboxSlots(pid) == 64 }, 10*time.Second, 5*time.Millisecond,
			"round %d: the idle actor's mailbox keeps %d slots", round, s.MailboxSlots(pid))
	}
}
