package registry

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dchan-io/dchan/internal/bin"
)

// Every decoder of bytes from peers or disk has a fuzz target; their seed
// corpora live in testdata/fuzz/<target>/ (valid, zero, truncated, absurd
// lengths, unknown versions), so `go test` runs them as ordinary tests.
// TestWriteFuzzCorpus regenerates them (DCHAN_WRITE_CORPUS=1).

// fuzzBase is a state with members in every status and a few names, to
// apply decoded commands to.
func fuzzBase() *State {
	s, _ := (*State)(nil).apply(1, joinCmd{Member: Member{ID: "n1", Addr: "a1", Incarnation: 1}})
	s, _ = s.apply(2, joinCmd{Member: Member{ID: "n2", Addr: "a2", Incarnation: 2, Voter: true}})
	s, _ = s.apply(3, joinCmd{Member: Member{ID: "n3", Addr: "a3", Incarnation: 1}})
	s, _ = s.apply(4, registerCmd{Name: "a", Receiver: Receiver{Node: "n1", ActorID: "x", Incarnation: 1}})
	s, _ = s.apply(5, registerCmd{Name: "a", Receiver: Receiver{Node: "n2", ActorID: "x", Mode: Broadcast, Incarnation: 2}})
	s, _ = s.apply(6, registerCmd{Name: "b", Receiver: Receiver{Node: "n3", ActorID: "y", Incarnation: 1}})
	s, _ = s.apply(7, expireNodeCmd{Node: "n3", Incarnation: 1})
	return s
}

func FuzzDecodeCommand(f *testing.F) {
	base := fuzzBase()
	baseBytes := encodeState(base)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnsupportedVersion", err)
			}
			return
		}
		again, err := decodeCommand(appendCommand(nil, c))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip: got %#v, %v; want %#v", again, err, c)
		}
		// Whatever decodes applies without panicking and keeps the invariants.
		next, res := base.apply(8, c)
		if err := checkInvariants(next); err != nil {
			t.Fatalf("after %#v (%v): %v", c, res.Err, err)
		}
		if !bytes.Equal(encodeState(base), baseBytes) {
			t.Fatal("Apply modified its input")
		}
	})
}

func FuzzRestore(f *testing.F) {
	seed := maphash.MakeSeed()
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := readSnapshot(bytes.NewReader(b), seed)
		if err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("error %v does not wrap ErrCorruptSnapshot", err)
			}
			return
		}
		if err := checkInvariants(s); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := writeSnapshot(&buf, s); err != nil {
			t.Fatal(err)
		}
		s2, err := readSnapshot(&buf, maphash.MakeSeed())
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if !bytes.Equal(encodeState(s), encodeState(s2)) {
			t.Fatal("snapshot round trip changed the state")
		}
	})
}

// checkInvariants verifies what every State must satisfy: members sorted
// and valid, every name's receivers non-empty, sorted, valid and owned by
// an Alive member's current incarnation; the count matches; every name is
// found by lookup.
func checkInvariants(s *State) error {
	for i, m := range s.members {
		if err := (joinCmd{Member: m}).validate(); err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if i > 0 && s.members[i-1].ID >= m.ID {
			return fmt.Errorf("members out of order at %q", m.ID)
		}
	}
	n := 0
	var err error
	s.names.each(func(e *entry) {
		n++
		if err != nil {
			return
		}
		if len(e.recv) == 0 || len(e.recv) != cap(e.recv) {
			err = fmt.Errorf("%q: len %d cap %d", e.name, len(e.recv), cap(e.recv))
			return
		}
		if got := s.Receivers(e.name); len(got) == 0 || &got[0] != &e.recv[0] {
			err = fmt.Errorf("%q: lookup misses", e.name)
			return
		}
		for k, r := range e.recv {
			if k > 0 && compareReceiver(e.recv[k-1], r.Node, r.ActorID) >= 0 {
				err = fmt.Errorf("%q: receivers out of order", e.name)
				return
			}
			m, ok := s.Member(r.Node)
			if !ok || m.Status != Alive || m.Incarnation != r.Incarnation {
				err = fmt.Errorf("%q: receiver %+v of member %+v (%v)", e.name, r, m, ok)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if n != s.count {
		return fmt.Errorf("count %d, have %d names", s.count, n)
	}
	return nil
}

// TestWriteFuzzCorpus writes the committed seed corpora. Run with
// DCHAN_WRITE_CORPUS=1 after a format change.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("DCHAN_WRITE_CORPUS") == "" {
		t.Skip("set DCHAN_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	cmds := map[string]command{
		"join":            joinCmd{Member: Member{ID: "n1", Addr: "127.0.0.1:7000", Incarnation: 1, Voter: true}},
		"join_restart":    joinCmd{Member: Member{ID: "n1", Addr: "127.0.0.1:7000", Incarnation: 2}},
		"join_invalid":    joinCmd{},
		"leave":           leaveCmd{Node: "n1", Incarnation: 1},
		"register":        registerCmd{Name: "a", Receiver: Receiver{Node: "n1", ActorID: "x", Incarnation: 1}},
		"register_bcast":  registerCmd{Name: "orders", Receiver: Receiver{Node: "n2", ActorID: "$7", Mode: Broadcast, Incarnation: 2}},
		"register_stale":  registerCmd{Name: "a", Receiver: Receiver{Node: "n2", ActorID: "x", Incarnation: 1}},
		"unregister":      unregisterCmd{Name: "a", Node: "n1", ActorID: "x", Incarnation: 1},
		"expire":          expireNodeCmd{Node: "n2", Incarnation: 2},
		"set_voter":       setVoterCmd{Node: "n1", Voter: true},
		"set_voter_false": setVoterCmd{Node: "n2"},
		"batch": batchCmd{Cmds: []command{
			registerCmd{Name: "a", Receiver: Receiver{Node: "n1", ActorID: "x", Incarnation: 1}},
			registerCmd{Name: "b", Receiver: Receiver{Node: "n2", ActorID: "y", Incarnation: 1}},
			unregisterCmd{Name: "a", Node: "n1", ActorID: "x"},
		}},
	}
	seeds := map[string][]byte{
		"empty":           {},
		"zero":            {0},
		"format_only":     {commandFormat},
		"future_format":   {commandFormat + 1, kindJoin},
		"unknown_kind":    {commandFormat, 200},
		"absurd_length":   {commandFormat, kindRegister, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"bad_varint":      {commandFormat, kindLeave, 1, 'n', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"bad_bool":        {commandFormat, kindSetVoter, 1, 'n', 2},
		"bad_mode":        {commandFormat, kindRegister, 1, 'a', 2, 'n', '1', 1, 'x', 9, 1},
		"truncated_name":  {commandFormat, kindRegister, 10, 'a'},
		"trailing":        append(appendCommand(nil, cmds["leave"]), 0),
		"truncated_join":  appendCommand(nil, cmds["join"])[:8],
		"nonminimal_uvar": {commandFormat, kindLeave, 0x81, 0x00, 'n', 0x80, 0x00},
		"nested_batch":    {commandFormat, kindBatch, 1, kindBatch, 1, kindLeave, 1, 'n', 0},
		"absurd_batch":    {commandFormat, kindBatch, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, c := range cmds {
		seeds[name] = appendCommand(nil, c)
	}
	writeCorpus(t, "FuzzDecodeCommand", seeds)

	var buf bytes.Buffer
	if err := writeSnapshot(&buf, fuzzBase()); err != nil {
		t.Fatal(err)
	}
	valid := buf.Bytes()
	buf.Reset()
	if err := writeSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	empty := bytes.Clone(buf.Bytes())
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x40
	// An absurd body length in a well-formed header.
	absurd := append([]byte(snapshotMagic), snapshotFormat, 0xff, 0xff, 0xff, 0xff, 0x0f)
	// A receiver of an unknown member, with a correct checksum.
	orphan := frame(func(w *bin.Writer) {
		w.Uvarint(9)
		w.Uvarint(0)
		w.Uvarint(1)
		w.Str("a")
		w.Uvarint(1)
		w.Str("n1")
		w.Str("x")
		w.Byte(0)
		w.Uvarint(1)
	})
	writeCorpus(t, "FuzzRestore", map[string][]byte{
		"valid":         valid,
		"empty_state":   empty,
		"empty":         {},
		"bad_magic":     append([]byte("XXXX"), valid[4:]...),
		"future_format": append([]byte(snapshotMagic), snapshotFormat+1),
		"truncated":     valid[:len(valid)-3],
		"trailing":      append(bytes.Clone(valid), 0),
		"bit_flip":      flipped,
		"absurd_length": absurd,
		"orphan":        orphan,
		"absurd_count":  frame(func(w *bin.Writer) { w.Uvarint(1); w.Uvarint(1 << 40) }),
	})
}

// frame wraps a hand-written body in a valid snapshot frame.
func frame(body func(w *bin.Writer)) []byte {
	var w bin.Writer
	body(&w)
	var buf bytes.Buffer
	head := append([]byte(snapshotMagic), snapshotFormat)
	buf.Write(head)
	var lw bin.Writer
	lw.Uvarint(uint64(len(w.B)))
	buf.Write(lw.B)
	buf.Write(w.B)
	sum := crc32Sum(w.B)
	buf.Write(sum[:])
	return buf.Bytes()
}

func writeCorpus(t *testing.T, target string, seeds map[string][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Snapshots with a valid frame and checksum but a body that breaks an
// invariant Apply keeps are refused.
func TestRestoreRefusesBrokenInvariants(t *testing.T) {
	mem := func(w *bin.Writer, id string, inc uint64, status MemberStatus) {
		w.Str(id)
		w.Str("addr")
		w.Uvarint(inc)
		w.Bool(false)
		w.Byte(byte(status))
	}
	recv := func(w *bin.Writer, node, actorID string, mode byte, inc uint64) {
		w.Str(node)
		w.Str(actorID)
		w.Byte(mode)
		w.Uvarint(inc)
	}
	tests := map[string]func(w *bin.Writer){
		"bad status":           func(w *bin.Writer) { w.Uvarint(1); w.Uvarint(1); mem(w, "n1", 1, 7); w.Uvarint(0) },
		"member incarnation 0": func(w *bin.Writer) { w.Uvarint(1); w.Uvarint(1); mem(w, "n1", 0, Alive); w.Uvarint(0) },
		"members out of order": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(2)
			mem(w, "n2", 1, Alive)
			mem(w, "n1", 1, Alive)
			w.Uvarint(0)
		},
		"duplicate member": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(2)
			mem(w, "n1", 1, Alive)
			mem(w, "n1", 1, Alive)
			w.Uvarint(0)
		},
		"name without receiver": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(0)
		},
		"empty name": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(1)
			w.Str("")
			w.Uvarint(1)
			recv(w, "n1", "x", 0, 1)
		},
		"names out of order": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(2)
			w.Str("b")
			w.Uvarint(1)
			recv(w, "n1", "x", 0, 1)
			w.Str("a")
			w.Uvarint(1)
			recv(w, "n1", "x", 0, 1)
		},
		"receivers out of order": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(2)
			recv(w, "n1", "y", 0, 1)
			recv(w, "n1", "x", 0, 1)
		},
		"bad mode": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(1)
			recv(w, "n1", "x", 5, 1)
		},
		"empty actor": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Alive)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(1)
			recv(w, "n1", "", 0, 1)
		},
		"receiver of expired member": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 1, Expired)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(1)
			recv(w, "n1", "x", 0, 1)
		},
		"receiver of old incarnation": func(w *bin.Writer) {
			w.Uvarint(1)
			w.Uvarint(1)
			mem(w, "n1", 2, Alive)
			w.Uvarint(1)
			w.Str("a")
			w.Uvarint(1)
			recv(w, "n1", "x", 0, 1)
		},
		"trailing body bytes": func(w *bin.Writer) { w.Uvarint(1); w.Uvarint(0); w.Uvarint(0); w.Byte(0) },
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := readSnapshot(bytes.NewReader(frame(body)), maphash.MakeSeed())
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("readSnapshot = %v, want ErrCorruptSnapshot", err)
			}
		})
	}
	// The same frame with a valid body is accepted: the cases above fail
	// for their invariant, not for the framing.
	ok := frame(func(w *bin.Writer) {
		w.Uvarint(1)
		w.Uvarint(1)
		mem(w, "n1", 1, Alive)
		w.Uvarint(1)
		w.Str("a")
		w.Uvarint(2)
		recv(w, "n1", "x", 0, 1)
		recv(w, "n1", "y", 1, 1)
	})
	s, err := readSnapshot(bytes.NewReader(ok), maphash.MakeSeed())
	if err != nil || len(s.Receivers("a")) != 2 {
		t.Fatalf("valid body: %v", err)
	}
}
