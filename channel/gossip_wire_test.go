package channel

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGossipHeadersRoundTrip(t *testing.T) {
	h := &dataHeader{name: "news", origin: origin{node: "n1", pub: 1 << 60}, seq: 7, hops: 2, fanout: 3,
		first: 5, view: 99, slice: []hop{{"n2", 1}, {"n3", 6}}}
	m, err := decodeGossip(h.encode())
	require.NoError(t, err)
	assert.Equal(t, h, m.data)

	r := &dataHeader{name: "news", origin: origin{node: "n1", pub: 1}, seq: 1, fanout: 1, repair: true}
	m, err = decodeGossip(r.encode())
	require.NoError(t, err)
	assert.Equal(t, r, m.data)

	d := []digestEntry{{name: "a", origin: origin{"n1", 2}, max: 10}, {name: "b", origin: origin{"n2", 3}, max: 1}}
	m, err = decodeGossip(encodeDigest(d))
	require.NoError(t, err)
	assert.Equal(t, d, m.digest)

	g := &graftRequest{name: "a", origin: origin{"n1", 2}, seqs: []uint64{3, 4, 9}}
	m, err = decodeGossip(g.encode())
	require.NoError(t, err)
	assert.Equal(t, g, m.graft)

	j := &joinRequest{name: "a", origin: origin{"n1", 2}}
	m, err = decodeGossip(j.encode())
	require.NoError(t, err)
	assert.Equal(t, j, m.join)
}

func TestGossipHeaderDecodingRefusesBadBytes(t *testing.T) {
	good := (&dataHeader{name: "x", origin: origin{"n1", 1}, seq: 1, fanout: 1}).encode()
	for name, b := range map[string][]byte{
		"empty":          {},
		"other version":  append([]byte{2}, good[1:]...),
		"unknown kind":   {gossipVersion, 9},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte(nil), good...), 0),
		"sequence 0":     (&dataHeader{name: "x", origin: origin{"n1", 1}, fanout: 1}).encode(),
		"fanout 0":       (&dataHeader{name: "x", origin: origin{"n1", 1}, seq: 1}).encode(),
		"huge slice":     {gossipVersion, gossipData, 1, 'x', 2, 'n', '1', 1, 1, 1, 1, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge digest":    {gossipVersion, gossipDigest, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge graft":     {gossipVersion, gossipGraft, 1, 'x', 2, 'n', '1', 1, 0xff, 0xff, 0x03},
		"truncated join": (&joinRequest{name: "x", origin: origin{"n1", 1 << 40}}).encode()[:8],
	} {
		_, err := decodeGossip(b)
		assert.ErrorIs(t, err, errGossipMalformed, name)
	}
}

// FuzzDecodeGossip: gossip headers are peer bytes; decoding them never
// panics and either fails with errGossipMalformed or re-encodes to the same
// bytes.
func FuzzDecodeGossip(f *testing.F) {
	f.Add((&dataHeader{name: "news", origin: origin{"n1", 9}, seq: 3, hops: 1, fanout: 2, first: 1, view: 4,
		slice: []hop{{"n2", 1}, {"n3", 2}}}).encode())
	f.Add(encodeDigest([]digestEntry{{name: "a", origin: origin{"n1", 2}, max: 10}}))
	f.Add((&graftRequest{name: "a", origin: origin{"n1", 2}, seqs: []uint64{3, 4}}).encode())
	f.Add((&joinRequest{name: "a", origin: origin{"n1", 2}}).encode())
	f.Add([]byte{gossipVersion, gossipData, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeGossip(b)
		if err != nil {
			if !errors.Is(err, errGossipMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var again []byte
		switch {
		case m.data != nil:
			again = m.data.encode()
		case m.graft != nil:
			again = m.graft.encode()
		case m.join != nil:
			again = m.join.encode()
		default:
			again = encodeDigest(m.digest)
		}
		if _, err := decodeGossip(again); err != nil {
			t.Fatalf("a decoded header does not decode again: %v", err)
		}
	})
}

// TestRepairsNeverPushTreeMessagesOutOfAQueue: a peer's queue drops its
// oldest message for a new tree message when full, but a repair or
// anti-entropy message only takes a queue up to half full, and is dropped
// itself past that.
func TestRepairsNeverPushTreeMessagesOutOfAQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no sending goroutine: the test reads the queue
	cfg := defaultGossipConfig()
	cfg.outboxMax = 8
	g := newGossip(&Node{ctx: ctx}, cfg)
	ob := g.outboxLocked("n2")
	tree := func(seq uint64) outMsg { return outMsg{data: &dataHeader{name: "x", seq: seq, fanout: 1}} }
	repair := func(seq uint64) outMsg {
		return outMsg{data: &dataHeader{name: "x", seq: seq, fanout: 1, repair: true}}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		ob.offer(repair(100 + seq))
	}
	ob.push(tree(1))
	ob.offer(repair(104)) // the queue is half full: dropped
	assert.Len(t, ob.q, 4)
	for seq := uint64(2); seq <= 9; seq++ {
		ob.push(tree(seq)) // full from seq 5 on: the oldest go
	}
	var seqs []uint64
	for _, m := range ob.q {
		seqs = append(seqs, m.data.seq)
	}
	assert.Equal(t, []uint64{2, 3, 4, 5, 6, 7, 8, 9}, seqs)
	assert.Equal(t, uint64(1+4), g.n.stats.bcast.queueDropped.Load(), "one repair refused, four messages pushed out")
}
