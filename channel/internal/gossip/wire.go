package gossip

import (
	"errors"
	"fmt"

	"github.com/dchan-io/dchan/internal/bin"
	"github.com/dchan-io/dchan/registry"
)

// The protocol's messages travel between the nodes' engines as a header (a
// tag, encoded here) and, for a data message, the published value beside
// it, which the transport encodes like any other value (so user types need
// no wrapper registration).

// ErrMalformed reports gossip header bytes from a peer that do not
// decode; the message is dropped.
var ErrMalformed = errors.New("gossip: malformed header")

const gossipVersion = 1

// gossip message kinds.
const (
	gossipData   byte = 1 // a published value and the nodes this hop must cover
	gossipDigest byte = 2 // anti-entropy: the highest sequence seen per origin
	gossipGraft  byte = 3 // anti-entropy: a request for missing sequences
	gossipJoin   byte = 4 // anti-entropy: a request for this node's share of a publisher's values
)

// Limits on decoded gossip headers.
const (
	maxGossipSlice   = 4096 // nodes a data message may ask a hop to cover
	maxDigestEntries = 4096
	maxGraftSeqs     = 1024
)

// origin identifies one publisher: a Publish channel on a node. Sequence
// numbers count its values from 1.
type origin struct {
	node string
	pub  uint64
}

// dataHeader heads one published value on its way through the tree.
type dataHeader struct {
	name   string
	origin origin
	seq    uint64
	hops   uint64 // hops from the publisher, 1 for its children
	fanout uint64 // children per hop, chosen by the publisher
	first  uint64 // the recipient's first sequence (see hop)
	view   uint64 // the registry version the publisher's view was read at
	slice  []hop  // the nodes this hop's recipient must pass it on to
	repair bool   // sent in answer to a graft: deliver only, never forward
}

// hop is a node a value must reach, with the first sequence of the
// publisher meant for it: the one the publisher was at when the node
// appeared in its view. Earlier values were never the node's; from first
// on, a missing value is a gap to repair.
type hop struct {
	node  string
	first uint64
}

type digestEntry struct {
	name   string
	origin origin
	max    uint64 // highest sequence the sender holds
}

type graftRequest struct {
	name   string
	origin origin
	seqs   []uint64
}

func writeOrigin(w *bin.Writer, o origin) {
	w.Str(o.node)
	w.Uvarint(o.pub)
}

func readOrigin(r *bin.Reader) origin {
	return origin{node: r.Str("origin node", registry.MaxIDLen), pub: r.Uvarint()}
}

func (h *dataHeader) encode() []byte {
	w := bin.Writer{B: make([]byte, 0, 32+len(h.name)+len(h.origin.node)+20*len(h.slice))}
	w.Byte(gossipVersion)
	w.Byte(gossipData)
	w.Str(h.name)
	writeOrigin(&w, h.origin)
	w.Uvarint(h.seq)
	w.Uvarint(h.hops)
	w.Uvarint(h.fanout)
	w.Uvarint(h.first)
	w.Uvarint(h.view)
	w.Bool(h.repair)
	w.Uvarint(uint64(len(h.slice)))
	for _, s := range h.slice {
		w.Str(s.node)
		w.Uvarint(s.first)
	}
	return w.B
}

func encodeDigest(entries []digestEntry) []byte {
	w := bin.Writer{B: make([]byte, 0, 8+32*len(entries))}
	w.Byte(gossipVersion)
	w.Byte(gossipDigest)
	w.Uvarint(uint64(len(entries)))
	for _, e := range entries {
		w.Str(e.name)
		writeOrigin(&w, e.origin)
		w.Uvarint(e.max)
	}
	return w.B
}

func (g *graftRequest) encode() []byte {
	w := bin.Writer{B: make([]byte, 0, 32+len(g.name)+4*len(g.seqs))}
	w.Byte(gossipVersion)
	w.Byte(gossipGraft)
	w.Str(g.name)
	writeOrigin(&w, g.origin)
	w.Uvarint(uint64(len(g.seqs)))
	for _, s := range g.seqs {
		w.Uvarint(s)
	}
	return w.B
}

// joinRequest asks a publisher's node for the values meant for the asking
// node, by a node that has none of them and so cannot tell which sequences
// it misses.
type joinRequest struct {
	name   string
	origin origin
}

func (j *joinRequest) encode() []byte {
	w := bin.Writer{B: make([]byte, 0, 16+len(j.name)+len(j.origin.node))}
	w.Byte(gossipVersion)
	w.Byte(gossipJoin)
	w.Str(j.name)
	writeOrigin(&w, j.origin)
	return w.B
}

// gossipMessage is one decoded gossip header: exactly one field is set.
type gossipMessage struct {
	data   *dataHeader
	digest []digestEntry
	graft  *graftRequest
	join   *joinRequest
}

// decodeGossip decodes a gossip header from a peer. It never panics; bad
// bytes give an error wrapping ErrMalformed.
func decodeGossip(b []byte) (gossipMessage, error) {
	r := bin.NewReader(b, ErrMalformed)
	if v := r.Byte(); r.Err() == nil && v != gossipVersion {
		return gossipMessage{}, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	var m gossipMessage
	switch kind := r.Byte(); kind {
	case gossipData:
		h := &dataHeader{name: r.Str("name", registry.MaxNameLen), origin: readOrigin(r)}
		h.seq, h.hops, h.fanout, h.first, h.view = r.Uvarint(), r.Uvarint(), r.Uvarint(), r.Uvarint(), r.Uvarint()
		h.repair = r.Bool()
		n := r.Count("slice", 2)
		if n > maxGossipSlice {
			r.Fail("slice of %d nodes", n)
		}
		if n > 0 && r.Err() == nil {
			h.slice = make([]hop, n)
			for i := range h.slice {
				h.slice[i] = hop{node: r.Str("slice node", registry.MaxIDLen), first: r.Uvarint()}
			}
		}
		if r.Err() == nil && (h.seq == 0 || h.fanout == 0 || h.name == "") {
			r.Fail("data header with seq %d, fanout %d, name %q", h.seq, h.fanout, h.name)
		}
		m.data = h
	case gossipDigest:
		n := r.Count("digest", 3)
		if n > maxDigestEntries {
			r.Fail("digest of %d entries", n)
		}
		if r.Err() == nil {
			m.digest = make([]digestEntry, n)
			for i := range m.digest {
				m.digest[i] = digestEntry{name: r.Str("name", registry.MaxNameLen), origin: readOrigin(r), max: r.Uvarint()}
			}
		}
	case gossipGraft:
		g := &graftRequest{name: r.Str("name", registry.MaxNameLen), origin: readOrigin(r)}
		n := r.Count("graft", 1)
		if n > maxGraftSeqs {
			r.Fail("graft of %d sequences", n)
		}
		if r.Err() == nil {
			g.seqs = make([]uint64, n)
			for i := range g.seqs {
				g.seqs[i] = r.Uvarint()
			}
		}
		m.graft = g
	case gossipJoin:
		m.join = &joinRequest{name: r.Str("name", registry.MaxNameLen), origin: readOrigin(r)}
	default:
		if r.Err() == nil {
			r.Fail("kind %d", kind)
		}
	}
	r.End()
	if err := r.Err(); err != nil {
		return gossipMessage{}, err
	}
	return m, nil
}
