package channel

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRefEncodingRoundTrip(t *testing.T) {
	for _, r := range []Ref{
		{},
		{node: "n1", id: refActorPrefix + "00ff"},
		{node: "n1", id: refActorPrefix + "00ff", tag: "c0ffee"},
		{node: strings.Repeat("n", maxRefField), id: "x", tag: strings.Repeat("t", maxRefField)},
	} {
		b, err := r.GobEncode()
		require.NoError(t, err)
		var got Ref
		require.NoError(t, got.GobDecode(b))
		assert.Equal(t, r, got)
	}
}

func TestRefDecodingRefusesBadBytes(t *testing.T) {
	good, _ := Ref{node: "n1", id: "a", tag: "t"}.GobEncode()
	long, _ := Ref{node: strings.Repeat("n", maxRefField+1)}.GobEncode()
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"cut short":             good[:len(good)-1],
		"a length past the end": {5, 'a'},
		"a field too long":      long,
		"trailing bytes":        append(append([]byte(nil), good...), 0),
	} {
		var r Ref
		assert.Error(t, r.GobDecode(b), name)
		assert.True(t, r.IsZero(), "%s: left as it was", name)
	}
}

// FuzzRefGobDecode: a Ref's bytes come from peers; no bytes panic the
// decoder, and what it accepts survives an encoding.
func FuzzRefGobDecode(f *testing.F) {
	good, _ := Ref{node: "n1", id: "a", tag: "t"}.GobEncode()
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Ref
		if r.GobDecode(b) != nil {
			return
		}
		again, err := r.GobEncode()
		require.NoError(t, err)
		var r2 Ref
		require.NoError(t, r2.GobDecode(again))
		assert.Equal(t, r, r2)
	})
}
