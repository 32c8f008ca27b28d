package registry

import "errors"

// Refusals: the state machine refuses a write with one of these (wrapped
// with context) and leaves the state unchanged apart from its version;
// the Registry's writes (Register, Unregister, Leave) return it. Every
// replica refuses the same commands, so a refusal is deterministic too.
var (
	// ErrInvalidCommand: a command has an empty, over-long or out-of-range
	// field (see MaxNameLen, MaxIDLen, MaxAddrLen) or an incarnation of 0
	// where one is required. Such a write is refused before it reaches the
	// log.
	ErrInvalidCommand = errors.New("registry: invalid command")
	// ErrUnknownMember: the command names a node that is not a member.
	ErrUnknownMember = errors.New("registry: unknown member")
	// ErrMemberExpired: the node was declared dead (the leader's failure
	// detection expired it, see WithExpireAfter) and has not rejoined with
	// a higher incarnation since.
	ErrMemberExpired = errors.New("registry: member expired")
	// ErrStaleIncarnation: the command carries an incarnation that is not the
	// member's current one, usually a write from a previous run of the node
	// that arrived after its restart. Such writes never change the state, so
	// a name can never come back from a previous incarnation.
	ErrStaleIncarnation = errors.New("registry: stale incarnation")
)

// Decoding errors.
var (
	// ErrMalformed: bytes that do not decode to a command: truncated,
	// over-long fields, invalid enum bytes, trailing bytes.
	ErrMalformed = errors.New("registry: malformed command")
	// ErrUnsupportedVersion: the command's format byte or kind is unknown
	// to this build. In a committed log entry this means a newer node wrote
	// it: this replica can no longer follow the log and must be upgraded.
	// The Raft wiring should treat it as fatal rather than skip the entry,
	// or this replica's state would diverge from the others'.
	ErrUnsupportedVersion = errors.New("registry: unsupported command version")
	// ErrCorruptSnapshot: a snapshot that fails its checksum, does not
	// decode, is of an unknown format, or violates the registry's
	// invariants. Restore leaves the current state in place.
	ErrCorruptSnapshot = errors.New("registry: corrupt snapshot")
)

// Errors of the running registry.
var (
	// ErrInvalidOption: an option had a value out of range.
	ErrInvalidOption = errors.New("registry: invalid option")
	// ErrUnavailable: no leader could commit the write (no quorum, no leader
	// elected, leader unreachable) before ctx ended. The write may or may
	// not have been applied; it was never reported as done.
	ErrUnavailable = errors.New("registry: unavailable")
	// ErrClosed: the registry is closed.
	ErrClosed = errors.New("registry: closed")
	// ErrDataDir: the data directory cannot be used (locked by another
	// process, corrupt log).
	ErrDataDir = errors.New("registry: data directory unusable")
	// ErrPermissionDenied: the leader refused a write that the calling
	// node may not make: one about another node, or one only the leader
	// makes. A node can write only for itself; with mutual TLS its identity
	// is the node its certificate names.
	ErrPermissionDenied = errors.New("registry: permission denied")
	// errNotLeader is internal: it is retried by forwarding and never
	// returned to a caller.
	errNotLeader = errors.New("registry: not the leader")
)
