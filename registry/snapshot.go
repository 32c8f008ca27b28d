package registry

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/dchan-io/dchan/internal/bin"
)

// Snapshot layout:
//
//	magic "DCRG" | format byte (snapshotFormat) | uvarint body length |
//	body | CRC-32C of the body, 4 bytes big-endian
//
// body:
//
//	uvarint version
//	uvarint member count, members sorted by ID:
//	    ID, Addr (strings), Incarnation (uvarint), role (byte: non-voter,
//	    voter, client), Status (byte)
//	uvarint name count, names sorted:
//	    name (string), uvarint receiver count, receivers sorted by (Node, ActorID):
//	        Node, ActorID (strings), Mode (byte), Incarnation (uvarint)
//
// Everything is sorted by content, never by the hash layout, so replicas
// with equal states write byte-identical snapshots.
const (
	snapshotMagic  = "DCRG"
	snapshotFormat = 1
	// maxSnapshotSize bounds the body a Restore reads (1 GiB, ~10M names).
	maxSnapshotSize = 1 << 30
	// Smallest encodings, to bound counts by the bytes that remain.
	minMemberSize   = 1 + 1 + 1 + 1 + 1       // empty strings rejected later
	minReceiverSize = 1 + 1 + 1 + 1           // node, actor, mode, incarnation
	minNameSize     = 1 + 1 + minReceiverSize // name, count, one receiver
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeState returns the snapshot body of s.
func encodeState(s *State) []byte {
	entries := make([]*entry, 0, s.NumNames())
	if s != nil {
		s.names.each(func(e *entry) { entries = append(entries, e) })
	}
	slices.SortFunc(entries, func(a, b *entry) int { return strings.Compare(a.name, b.name) })

	w := bin.Writer{B: make([]byte, 0, 64+len(entries)*64)}
	w.Uvarint(s.Version())
	var members []Member
	if s != nil {
		members = s.members
	}
	w.Uvarint(uint64(len(members)))
	for _, m := range members {
		w.Str(m.ID)
		w.Str(m.Addr)
		w.Uvarint(m.Incarnation)
		w.Byte(m.role())
		w.Byte(byte(m.Status))
	}
	w.Uvarint(uint64(len(entries)))
	for _, e := range entries {
		w.Str(e.name)
		w.Uvarint(uint64(len(e.recv)))
		for _, r := range e.recv {
			w.Str(r.Node)
			w.Str(r.ActorID)
			w.Byte(byte(r.Mode))
			w.Uvarint(r.Incarnation)
		}
	}
	return w.B
}

// writeSnapshot writes the framed snapshot of s to w.
func writeSnapshot(w io.Writer, s *State) error {
	body := encodeState(s)
	head := append([]byte(snapshotMagic), snapshotFormat)
	head = binary.AppendUvarint(head, uint64(len(body)))
	sum := crc32Sum(body)
	for _, b := range [][]byte{head, body, sum[:]} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// readSnapshot reads a framed snapshot and builds its State with seed.
func readSnapshot(rd io.Reader, seed maphash.Seed) (*State, error) {
	br := bufio.NewReader(rd)
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrCorruptSnapshot, err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorruptSnapshot, head[:len(snapshotMagic)])
	}
	if f := head[len(snapshotMagic)]; f != snapshotFormat {
		return nil, fmt.Errorf("%w: unknown format %d", ErrCorruptSnapshot, f)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: body length: %w", ErrCorruptSnapshot, err)
	}
	if n > maxSnapshotSize {
		return nil, fmt.Errorf("%w: body of %d bytes, over %d", ErrCorruptSnapshot, n, maxSnapshotSize)
	}
	// Grows as bytes arrive: a lying length allocates no more than the
	// stream holds.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, br, int64(n)); err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrCorruptSnapshot, err)
	}
	body := buf.Bytes()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %w", ErrCorruptSnapshot, err)
	}
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorruptSnapshot, got, want)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, fmt.Errorf("%w: trailing bytes", ErrCorruptSnapshot)
		}
		return nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return decodeState(body, seed)
}

// decodeState builds a State from a snapshot body and checks every
// invariant State.apply maintains, so that a restored state is one it
// could have produced.
func decodeState(body []byte, seed maphash.Seed) (*State, error) {
	r := bin.NewReader(body, ErrCorruptSnapshot)
	s := &State{seed: seed, version: r.Uvarint()}

	nm := r.Count("member", minMemberSize)
	if nm > 0 {
		s.members = make([]Member, 0, nm)
	}
	for i := 0; i < nm && r.Err() == nil; i++ {
		m := Member{
			ID:          r.Str("node ID", MaxIDLen),
			Addr:        r.Str("address", MaxAddrLen),
			Incarnation: r.Uvarint(),
		}
		readRole(r, &m)
		m.Status = MemberStatus(r.Byte())
		if r.Err() != nil {
			break
		}
		switch {
		case m.Status > Expired:
			r.Fail("member %q: bad status %d", m.ID, m.Status)
		case (joinCmd{Member: m}).validate() != nil:
			r.Fail("member %q: %v", m.ID, (joinCmd{Member: m}).validate())
		case i > 0 && s.members[i-1].ID >= m.ID:
			r.Fail("members out of order at %q", m.ID)
		}
		s.members = append(s.members, m)
	}

	b := builder{hash: func(name string) uint64 { return maphash.String(seed, name) }}
	nn := r.Count("name", minNameSize)
	prev := ""
	for i := 0; i < nn && r.Err() == nil; i++ {
		name := r.Str("name", MaxNameLen)
		nr := r.Count("receiver", minReceiverSize)
		if r.Err() != nil {
			break
		}
		if name == "" || (i > 0 && prev >= name) {
			r.Fail("name %q empty or out of order", name)
			break
		}
		if nr == 0 {
			r.Fail("name %q without receivers", name)
			break
		}
		prev = name
		recv := make([]Receiver, 0, nr)
		for k := 0; k < nr && r.Err() == nil; k++ {
			x := Receiver{
				Node:    r.Str("node ID", MaxIDLen),
				ActorID: r.Str("actor ID", MaxIDLen),
				Mode:    readMode(r),
			}
			x.Incarnation = r.Uvarint()
			if r.Err() != nil {
				break
			}
			if err := (registerCmd{Name: name, Receiver: x}).validate(); err != nil {
				r.Fail("name %q: %v", name, err)
				break
			}
			if k > 0 && compareReceiver(recv[k-1], x.Node, x.ActorID) >= 0 {
				r.Fail("name %q: receivers out of order", name)
				break
			}
			m, ok := s.Member(x.Node)
			if !ok || m.Status != Alive || m.Incarnation != x.Incarnation {
				r.Fail("name %q: receiver of node %q incarnation %d is not of an alive member",
					name, x.Node, x.Incarnation)
				break
			}
			x.Node = m.ID // one copy of the node's ID for all its receivers
			recv = append(recv, x)
		}
		if r.Err() == nil {
			b.add(name, recv)
		}
	}
	r.End()
	if r.Err() != nil {
		return nil, r.Err()
	}
	s.names = b.build()
	s.count = nn
	return s, nil
}

// fsmSnapshot is an immutable State: Persist runs concurrently with Apply
// without copying or locking anything.
type fsmSnapshot struct {
	state *State
}

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("registry: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the State is garbage collected when unused.
func (s *fsmSnapshot) Release() {}

func crc32Sum(b []byte) [4]byte {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(b, castagnoli))
	return sum
}
