package gossip

import (
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
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
}

// FuzzDecodeGossip: gossip headers are peer bytes; decoding them never
// panics and either fails with ErrMalformed or re-encodes to the same
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
			if !errors.Is(err, ErrMalformed) {
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

// TestRepairsNeverPushTreeMessagesOutOfAQueue: a peer's outbox keeps the
// tree's messages and anti-entropy's apart. A forward into a full tree
// queue drops the oldest tree message; anti-entropy never drops a tree
// message (a full anti-entropy queue refuses the new one), and the sender
// takes from the two in turn, so repairs get through a link that the tree
// keeps full.
func TestRepairsNeverPushTreeMessagesOutOfAQueue(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OutboxMax = 4
	d := idleDriver(t, cfg)
	ob := d.outboxLocked("n2")
	tree := func(seq uint64) outMsg { return outMsg{data: &dataHeader{name: "x", seq: seq, fanout: 1}} }
	repair := func(seq uint64) outMsg {
		return outMsg{data: &dataHeader{name: "x", seq: seq, fanout: 1, repair: true}}
	}
	for seq := uint64(1); seq <= 6; seq++ {
		ob.push(tree(seq)) // full from 5 on: 1 and 2 go
	}
	for seq := uint64(101); seq <= 105; seq++ {
		assert.Equal(t, seq <= 104, ob.offer(repair(seq)), "repair %d", seq)
	}
	assert.Equal(t, uint64(2+1), d.stats.QueueDropped.Load(), "two forwards pushed out, one repair refused")
	var order []uint64
	for !ob.idleLocked() {
		m, _ := ob.nextLocked()
		order = append(order, m.data.seq)
	}
	assert.Equal(t, []uint64{3, 101, 4, 102, 5, 103, 6, 104}, order, "the tree's and anti-entropy's in turn, each in order")
}

// TestARepairIsQueuedOncePerValue: a peer that asks again for a value
// whose repair still waits in the queue does not get it queued twice; once
// sent, it can be queued again.
func TestARepairIsQueuedOncePerValue(t *testing.T) {
	d := idleDriver(t, DefaultConfig())
	ob := d.outboxLocked("n2")
	repair := func(name string, seq uint64) outMsg {
		return outMsg{data: &dataHeader{name: name, origin: origin{"n1", 7}, seq: seq, fanout: 1, repair: true}}
	}
	for range 3 {
		assert.True(t, ob.offer(repair("x", 1)))
	}
	assert.True(t, ob.offer(repair("y", 1)), "another name's value")
	assert.Equal(t, 2, ob.ae.Len())
	m, _ := ob.nextLocked()
	assert.Equal(t, "x", m.data.name)
	assert.True(t, ob.offer(repair("x", 1)), "asked for again once sent")
	assert.Equal(t, 2, ob.ae.Len())
}
