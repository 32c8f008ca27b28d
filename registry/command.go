package registry

import (
	"fmt"

	"github.com/dchan-io/dchan/internal/bin"
)

// Field bounds. Commands and snapshots that exceed them are refused.
const (
	MaxNameLen = 1024 // bytes in a name
	MaxIDLen   = 256  // bytes in a node ID or an actor ID
	MaxAddrLen = 512  // bytes in a member's address
)

// command is one change to the registry, the data of one Raft log entry:
// joinCmd, leaveCmd, registerCmd, unregisterCmd, expireNodeCmd or
// setVoterCmd (as values, not pointers). The set is closed: other
// implementations are refused with ErrInvalidCommand.
type command interface {
	isCommand()
}

// joinCmd adds a member or rejoins it under a new incarnation. Member.Status
// is ignored: a joined member is Alive.
type joinCmd struct {
	Member Member
}

// leaveCmd removes a member and all its receivers. Incarnation 0 matches any
// incarnation; otherwise it must be the member's current one, so that a
// delayed leave of a previous run cannot remove the node's new run.
type leaveCmd struct {
	Node        string
	Incarnation uint64
}

// registerCmd adds Receiver under Name.
type registerCmd struct {
	Name     string
	Receiver Receiver
}

// unregisterCmd removes the receiver (Node, ActorID) from Name. Incarnation 0
// matches any incarnation; otherwise only a receiver registered by that
// incarnation is removed, so that a delayed unregister of a previous run
// cannot remove a receiver the new run registered under the same actor ID.
type unregisterCmd struct {
	Name        string
	Node        string
	ActorID     string
	Incarnation uint64
}

// expireNodeCmd declares the incarnation Incarnation of Node dead (failure
// detection): the member becomes Expired and its receivers are removed.
type expireNodeCmd struct {
	Node        string
	Incarnation uint64
}

// setVoterCmd records that Node became a voter (promotion) or a non-voter.
type setVoterCmd struct {
	Node  string
	Voter bool
}

// batchCmd is several receiver writes (registerCmd and unregisterCmd, 1 to
// maxBatch of them) in one log entry: the leader commits the writes that
// wait at once together (batcher). They are applied in order, each
// exactly as if it were an entry of its own at the batch's index: one
// refused write changes nothing, and the others still apply.
type batchCmd struct {
	Cmds []command
}

// maxBatch bounds the writes of one batchCmd (its entry is at most about
// maxBatch × 2.3 KB with every field at its bound).
const maxBatch = 1024

func (joinCmd) isCommand()       {}
func (leaveCmd) isCommand()      {}
func (registerCmd) isCommand()   {}
func (unregisterCmd) isCommand() {}
func (expireNodeCmd) isCommand() {}
func (setVoterCmd) isCommand()   {}
func (batchCmd) isCommand()      {}

func checkString(what, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidCommand, what)
	case len(s) > max:
		return fmt.Errorf("%w: %s of %d bytes, over %d", ErrInvalidCommand, what, len(s), max)
	}
	return nil
}

func checkIncarnation(inc uint64) error {
	if inc == 0 {
		return fmt.Errorf("%w: incarnation 0", ErrInvalidCommand)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c joinCmd) validate() error {
	return firstErr(
		checkString("node ID", c.Member.ID, MaxIDLen),
		checkString("address", c.Member.Addr, MaxAddrLen),
		checkIncarnation(c.Member.Incarnation),
	)
}

func (c leaveCmd) validate() error { return checkString("node ID", c.Node, MaxIDLen) }

func (c registerCmd) validate() error {
	err := firstErr(
		checkString("name", c.Name, MaxNameLen),
		checkString("node ID", c.Receiver.Node, MaxIDLen),
		checkString("actor ID", c.Receiver.ActorID, MaxIDLen),
		checkIncarnation(c.Receiver.Incarnation),
	)
	if err == nil && c.Receiver.Mode > Broadcast {
		err = fmt.Errorf("%w: %v", ErrInvalidCommand, c.Receiver.Mode)
	}
	return err
}

func (c unregisterCmd) validate() error {
	return firstErr(
		checkString("name", c.Name, MaxNameLen),
		checkString("node ID", c.Node, MaxIDLen),
		checkString("actor ID", c.ActorID, MaxIDLen),
	)
}

func (c expireNodeCmd) validate() error {
	return firstErr(checkString("node ID", c.Node, MaxIDLen), checkIncarnation(c.Incarnation))
}

func (c setVoterCmd) validate() error { return checkString("node ID", c.Node, MaxIDLen) }

func (c batchCmd) validate() error {
	if len(c.Cmds) == 0 || len(c.Cmds) > maxBatch {
		return fmt.Errorf("%w: a batch of %d writes, want 1 to %d", ErrInvalidCommand, len(c.Cmds), maxBatch)
	}
	for i, sub := range c.Cmds {
		var err error
		switch sub := sub.(type) {
		case registerCmd:
			err = sub.validate()
		case unregisterCmd:
			err = sub.validate()
		default:
			err = fmt.Errorf("%w: a %T in a batch", ErrInvalidCommand, sub)
		}
		if err != nil {
			return fmt.Errorf("batch write %d: %w", i, err)
		}
	}
	return nil
}

// Wire format of a command (one Raft log entry's Data):
//
//	format byte (commandFormat) | kind byte | fields of the kind
//
// A batch's fields are a uvarint count, then each write's kind byte and
// fields (kindRegister or kindUnregister only).
//
// Strings are a uvarint length and the bytes, integers uvarints, bools and
// modes one byte (0 or 1). A change of any layout gets a new format byte or
// a new kind, so an old node fails with ErrUnsupportedVersion instead of
// misreading an entry.
const commandFormat byte = 1

const (
	kindJoin byte = iota + 1
	kindLeave
	kindRegister
	kindUnregister
	kindExpireNode
	kindSetVoter
	kindBatch
)

// encodeCommand returns the log entry encoding of c. It refuses, with
// ErrInvalidCommand, a command that State.apply would refuse as invalid, so
// such commands never reach the log.
func encodeCommand(c command) ([]byte, error) {
	var err error
	switch c := c.(type) {
	case joinCmd:
		err = c.validate()
	case leaveCmd:
		err = c.validate()
	case registerCmd:
		err = c.validate()
	case unregisterCmd:
		err = c.validate()
	case expireNodeCmd:
		err = c.validate()
	case setVoterCmd:
		err = c.validate()
	case batchCmd:
		err = c.validate()
	default:
		err = fmt.Errorf("%w: command type %T", ErrInvalidCommand, c)
	}
	if err != nil {
		return nil, err
	}
	return appendCommand(nil, c), nil
}

// appendCommand encodes c without validating it. c is one of the seven
// command types.
func appendCommand(b []byte, c command) []byte {
	w := bin.Writer{B: b}
	w.Byte(commandFormat)
	writeBody(&w, c)
	return w.B
}

// writeBody writes c's kind and fields.
func writeBody(w *bin.Writer, c command) {
	switch c := c.(type) {
	case joinCmd:
		w.Byte(kindJoin)
		w.Str(c.Member.ID)
		w.Str(c.Member.Addr)
		w.Uvarint(c.Member.Incarnation)
		w.Byte(c.Member.role())
	case leaveCmd:
		w.Byte(kindLeave)
		w.Str(c.Node)
		w.Uvarint(c.Incarnation)
	case registerCmd:
		w.Byte(kindRegister)
		w.Str(c.Name)
		w.Str(c.Receiver.Node)
		w.Str(c.Receiver.ActorID)
		w.Byte(byte(c.Receiver.Mode))
		w.Uvarint(c.Receiver.Incarnation)
	case unregisterCmd:
		w.Byte(kindUnregister)
		w.Str(c.Name)
		w.Str(c.Node)
		w.Str(c.ActorID)
		w.Uvarint(c.Incarnation)
	case expireNodeCmd:
		w.Byte(kindExpireNode)
		w.Str(c.Node)
		w.Uvarint(c.Incarnation)
	case setVoterCmd:
		w.Byte(kindSetVoter)
		w.Str(c.Node)
		w.Bool(c.Voter)
	case batchCmd:
		w.Byte(kindBatch)
		w.Uvarint(uint64(len(c.Cmds)))
		for _, sub := range c.Cmds {
			writeBody(w, sub)
		}
	}
}

// decodeCommand decodes a command that encodeCommand encoded. It never
// panics: bytes that are not a command fail with ErrMalformed, an unknown
// format or kind with ErrUnsupportedVersion. Field bounds are checked;
// semantic checks (empty fields, incarnation 0) are left to State.apply.
func decodeCommand(b []byte) (command, error) {
	r := bin.NewReader(b, ErrMalformed)
	if f := r.Byte(); r.Err() == nil && f != commandFormat {
		return nil, fmt.Errorf("%w: command format %d", ErrUnsupportedVersion, f)
	}
	kind := r.Byte()
	if r.Err() != nil {
		return nil, r.Err()
	}
	c, err := readBody(r, kind, true)
	if err != nil {
		return nil, err
	}
	r.End()
	if r.Err() != nil {
		return nil, r.Err()
	}
	return c, nil
}

// readBody reads the fields of a command of kind; a batch only where
// batchOK (not inside another).
func readBody(r *bin.Reader, kind byte, batchOK bool) (command, error) {
	var c command
	switch kind {
	case kindJoin:
		var m Member
		m.ID = r.Str("node ID", MaxIDLen)
		m.Addr = r.Str("address", MaxAddrLen)
		m.Incarnation = r.Uvarint()
		readRole(r, &m)
		c = joinCmd{Member: m}
	case kindLeave:
		c = leaveCmd{Node: r.Str("node ID", MaxIDLen), Incarnation: r.Uvarint()}
	case kindRegister:
		var x registerCmd
		x.Name = r.Str("name", MaxNameLen)
		x.Receiver.Node = r.Str("node ID", MaxIDLen)
		x.Receiver.ActorID = r.Str("actor ID", MaxIDLen)
		x.Receiver.Mode = readMode(r)
		x.Receiver.Incarnation = r.Uvarint()
		c = x
	case kindUnregister:
		var x unregisterCmd
		x.Name = r.Str("name", MaxNameLen)
		x.Node = r.Str("node ID", MaxIDLen)
		x.ActorID = r.Str("actor ID", MaxIDLen)
		x.Incarnation = r.Uvarint()
		c = x
	case kindExpireNode:
		c = expireNodeCmd{Node: r.Str("node ID", MaxIDLen), Incarnation: r.Uvarint()}
	case kindSetVoter:
		c = setVoterCmd{Node: r.Str("node ID", MaxIDLen), Voter: r.Bool()}
	case kindBatch:
		if !batchOK {
			r.Fail("a batch inside a batch")
			return nil, r.Err()
		}
		n := r.Uvarint()
		if r.Err() == nil && (n == 0 || n > maxBatch) {
			r.Fail("a batch of %d writes, want 1 to %d", n, maxBatch)
		}
		b := batchCmd{Cmds: make([]command, 0, min(n, maxBatch))}
		for i := uint64(0); i < n && r.Err() == nil; i++ {
			k := r.Byte()
			if r.Err() == nil && k != kindRegister && k != kindUnregister {
				r.Fail("a write of kind %d in a batch", k)
			}
			if r.Err() != nil {
				break
			}
			sub, err := readBody(r, k, false)
			if err != nil {
				return nil, err
			}
			b.Cmds = append(b.Cmds, sub)
		}
		c = b
	default:
		return nil, fmt.Errorf("%w: command kind %d", ErrUnsupportedVersion, kind)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	return c, nil
}

func readMode(r *bin.Reader) Mode {
	m := Mode(r.Byte())
	if m > Broadcast {
		r.Fail("bad mode %d", m)
	}
	return m
}
