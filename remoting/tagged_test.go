package remoting

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/actor"
)

func TestTaggedValuesCrossTheWireWithTheirTags(t *testing.T) {
	nodes := startNodes(t, 2)
	got := make(chan any, 8)
	target, err := nodes[1].sys.SpawnNamed("tags", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch c.Message().(type) {
			case actor.Started, actor.Stopping, actor.Stopped:
			default:
				got <- c.Message()
			}
		})
	})
	require.NoError(t, err)
	ctx := context.Background()
	sent := []any{
		Tagged{Tag: []byte("h1"), Value: item{From: "a", Seq: 1}},
		item{From: "a", Seq: 2}, // untagged values share the stream's codec state
		Tagged{Tag: []byte("only a tag")},
		Tagged{Tag: nil, Value: item{From: "a", Seq: 3}},
		Tagged{Tag: bytes.Repeat([]byte{0xff}, 1000), Value: "a string"},
	}
	for _, v := range sent {
		require.NoError(t, nodes[0].sys.Send(ctx, target, v))
	}
	for i, want := range sent {
		var v any
		select {
		case v = <-got:
		case <-time.After(waitFor):
			t.Fatalf("value %d did not arrive", i)
		}
		if wt, ok := want.(Tagged); ok {
			gt, ok := v.(Tagged)
			require.True(t, ok, "value %d arrived as %T", i, v)
			assert.Equal(t, len(wt.Tag), len(gt.Tag), "value %d", i)
			assert.True(t, bytes.Equal(wt.Tag, gt.Tag), "value %d tag", i)
			assert.Equal(t, wt.Value, gt.Value, "value %d", i)
			continue
		}
		assert.Equal(t, want, v, "value %d", i)
	}
}

func TestOversizeTagFailsThatMessageAlone(t *testing.T) {
	nodes := startNodes(t, 2, WithMaxMessageSize(1024))
	s := newSink()
	target, err := nodes[1].sys.SpawnNamed("sink", s.producer())
	require.NoError(t, err)
	ctx := context.Background()
	err = nodes[0].sys.Send(ctx, target, Tagged{Tag: make([]byte, 70<<10), Value: item{From: "a", Seq: 1}})
	require.ErrorIs(t, err, ErrTooLarge)
	err = trackedOutcome(t, nodes[0].ep, target, Tagged{Tag: []byte(strings.Repeat("x", 2000)), Value: item{From: "a", Seq: 1}})
	require.ErrorIs(t, err, ErrTooLarge, "the tag counts toward the message size")
	require.NoError(t, nodes[0].sys.Send(ctx, target, item{From: "a", Seq: 2}), "the stream survives")
	s.waitCount(t, 1)
}
