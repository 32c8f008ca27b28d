package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envelope(dst []byte, target, node, id string, seq uint64, flags uint8, payload string) []byte {
	dst, mark := BeginEnvelope(dst, target, node, id, seq, flags)
	dst = append(dst, payload...)
	EndEnvelope(dst, mark)
	return dst
}

func run(dst []byte, target, node, id string, seq uint64, n int, flags uint8, payload string) []byte {
	dst, mark := BeginRun(dst, target, node, id, seq, n, flags)
	dst = append(dst, payload...)
	EndEnvelope(dst, mark)
	return dst
}

func readAll(t *testing.T, frame []byte) []Record {
	t.Helper()
	var out []Record
	r := NewReader(frame)
	for {
		var rec Record
		err := r.Next(&rec)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	var f []byte
	f = envelope(f, "orders", "n1", "$7", 1, 0, "hello")
	f = AppendOpen(f, "orders")
	f = envelope(f, "orders", "", "", 2, 3, "")
	f = AppendCount(f, KindGrant, "orders", 16)
	f = AppendCount(f, KindAccepted, "x", 1<<40)
	f = AppendRefusal(f, KindRejected, "orders", 2, "actor: stopped")
	f = AppendRefusal(f, KindGone, "y", 1, "")
	f = run(f, "orders", "n2", "$8", 5, 128, FlagTracked, "values")
	recs := readAll(t, f)
	require.Len(t, recs, 8)

	assert.Equal(t, KindEnvelope, recs[0].Kind)
	assert.Equal(t, "orders", string(recs[0].Target))
	assert.Equal(t, "n1", string(recs[0].SenderNode))
	assert.Equal(t, "$7", string(recs[0].SenderID))
	assert.EqualValues(t, 1, recs[0].Seq)
	assert.Equal(t, "hello", string(recs[0].Payload))

	assert.Equal(t, KindOpen, recs[1].Kind)
	assert.Equal(t, "orders", string(recs[1].Target))

	assert.EqualValues(t, 2, recs[2].Seq)
	assert.EqualValues(t, 3, recs[2].Flags)
	assert.Empty(t, recs[2].Payload)
	assert.Empty(t, recs[2].SenderNode)

	assert.Equal(t, KindGrant, recs[3].Kind)
	assert.EqualValues(t, 16, recs[3].N)
	assert.Equal(t, KindAccepted, recs[4].Kind)
	assert.EqualValues(t, uint64(1)<<40, recs[4].N)

	assert.Equal(t, KindRejected, recs[5].Kind)
	assert.EqualValues(t, 2, recs[5].Code)
	assert.Equal(t, "actor: stopped", string(recs[5].Reason))
	assert.Equal(t, KindGone, recs[6].Kind)

	assert.Equal(t, KindRun, recs[7].Kind)
	assert.Equal(t, "orders", string(recs[7].Target))
	assert.Equal(t, "n2", string(recs[7].SenderNode))
	assert.Equal(t, "$8", string(recs[7].SenderID))
	assert.EqualValues(t, 5, recs[7].Seq)
	assert.EqualValues(t, 128, recs[7].N)
	assert.Equal(t, FlagTracked, recs[7].Flags)
	assert.Equal(t, "values", string(recs[7].Payload))
}

func TestEveryTruncationIsRejected(t *testing.T) {
	var f []byte
	f = envelope(f, "orders", "n1", "$7", 300, 0, "payload")
	f = run(f, "orders", "n1", "$7", 301, 300, 0, "payload")
	f = AppendCount(f, KindAccepted, "orders", 1000)
	f = AppendRefusal(f, KindGone, "orders", 1, "gone")
	full := len(readAll(t, f))
	for cut := 1; cut < len(f); cut++ {
		r := NewReader(f[:cut])
		var n int
		var err error
		for {
			var rec Record
			if err = r.Next(&rec); err != nil {
				break
			}
			n++
		}
		if errors.Is(err, io.EOF) {
			// A cut on a record boundary is a shorter valid frame.
			assert.Less(t, n, full, "cut %d", cut)
			continue
		}
		assert.ErrorIs(t, err, ErrMalformed, "cut %d", cut)
	}
}

func TestAbsurdLengthsAreRejected(t *testing.T) {
	for name, frame := range map[string][]byte{
		"unknown kind":   {99},
		"huge string":    {byte(KindOpen), 0xff, 0xff, 0xff, 0xff, 0x0f},
		"string > limit": append([]byte{byte(KindOpen), 0x81, 0x40}, make([]byte, 8193)...),
		"bad varint":     {byte(KindAccepted), 1, 'x', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge payload":   {byte(KindEnvelope), 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 'a'},
		"empty run":      {byte(KindRun), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
		"run > limit":    {byte(KindRun), 0, 0, 0, 1, 0x81, 0x40, 0, 0, 0, 0, 0},
	} {
		var rec Record
		err := NewReader(frame).Next(&rec)
		assert.ErrorIs(t, err, ErrMalformed, name)
	}
}

func TestRefusalReasonIsBounded(t *testing.T) {
	long := make([]byte, 3*MaxStringLen)
	f := AppendRefusal(nil, KindRejected, "t", 1, string(long))
	recs := readAll(t, f)
	require.Len(t, recs, 1)
	assert.Len(t, recs[0].Reason, MaxStringLen)
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "envelope", KindEnvelope.String())
	assert.Equal(t, "kind(99)", Kind(99).String())
}

func FuzzReader(f *testing.F) {
	var good []byte
	good = envelope(good, "orders", "n1", "$7", 1, 0, "hello")
	good = AppendOpen(good, "orders")
	good = AppendCount(good, KindGrant, "orders", 16)
	good = AppendRefusal(good, KindRejected, "orders", 2, "why")
	good = run(good, "orders", "n1", "$7", 2, 3, FlagTracked, "abc")
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{byte(KindEnvelope), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{byte(KindEnvelope), 0, 0, 0, 1, 0, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := NewReader(frame)
		consumed := 0
		for i := 0; i <= len(frame); i++ {
			var rec Record
			err := r.Next(&rec)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(rec.Payload) > len(frame) || len(rec.Target) > MaxStringLen {
				t.Fatalf("record fields exceed their bounds")
			}
			consumed++
		}
		t.Fatalf("more records (%d) than bytes", consumed)
	})
}

func TestTagRoundTrip(t *testing.T) {
	for _, tag := range [][]byte{nil, {}, []byte("g"), bytes.Repeat([]byte{7}, 300)} {
		b := AppendTag(nil, tag)
		b = append(b, "codec"...)
		got, rest, err := SplitTag(b)
		if err != nil {
			t.Fatalf("SplitTag(%d-byte tag): %v", len(tag), err)
		}
		if !bytes.Equal(got, tag) || string(rest) != "codec" {
			t.Fatalf("SplitTag = %q, %q; want %q, %q", got, rest, tag, "codec")
		}
	}
}

func TestSplitTagRejectsBadLengths(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":        {},
		"unterminated": {0x80},
		"past the end": {5, 'a', 'b'},
		"over the max": binary.AppendUvarint(nil, MaxTagLen+1),
		"huge uvarint": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if _, _, err := SplitTag(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: SplitTag error = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzSplitTag(f *testing.F) {
	f.Add(AppendTag(nil, []byte("tag")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, rest, err := SplitTag(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(tag)+len(rest) > len(b) || len(tag) > MaxTagLen {
			t.Fatalf("split exceeds its input")
		}
	})
}
