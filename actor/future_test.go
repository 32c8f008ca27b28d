package actor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplyFromAnotherNodeDoesNotCompleteARequest: a reply address is
// unguessable (128 random bits), and only a reply from the node the
// request went to completes it: a forged answer from elsewhere is a dead
// letter, and the real one still arrives.
func TestReplyFromAnotherNodeDoesNotCompleteARequest(t *testing.T) {
	sys, err := NewSystem(WithNode("n1"))
	require.NoError(t, err)
	defer func() { _ = sys.Shutdown(context.Background()) }()
	seen := make(chan PID, 1)
	responder, err := sys.SpawnNamed("echo", func() Actor {
		return ReceiveFunc(func(c *Context) {
			if s, ok := c.Message().(string); ok {
				seen <- c.Sender()
				time.Sleep(20 * time.Millisecond) // the forger answers first
				_ = c.Respond("real " + s)
			}
		})
	})
	require.NoError(t, err)
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := sys.Request(context.Background(), responder, "ping")
		done <- result{v, err}
	}()
	replyTo := <-seen
	assert.True(t, replyTo.IsReply())
	assert.GreaterOrEqual(t, len(replyTo.ID), len(futurePrefix)+32, "128 random bits")
	// Another node's actor answers the request with a value of its own.
	require.Error(t, sys.TrySendFrom(PID{Node: "n9", ID: "forger"}, replyTo, "forged"))
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, "real ping", r.v)

	// Reply addresses do not repeat or follow each other.
	ids := map[string]bool{}
	for range 1000 {
		id := newFutureID()
		require.False(t, ids[id])
		ids[id] = true
	}
}
