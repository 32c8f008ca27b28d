package registry

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/internal/bin"
)

// MemberStatus is the liveness of a member as the registry records it.
type MemberStatus uint8

const (
	// Alive: the member joined and was not declared dead since.
	Alive MemberStatus = iota
	// Expired: failure detection declared this incarnation dead
	// (expireNodeCmd). Its receivers are gone and it can register nothing; the
	// record stays as a tombstone until the node leaves or rejoins with a
	// higher incarnation.
	Expired
)

func (s MemberStatus) String() string {
	switch s {
	case Alive:
		return "alive"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("MemberStatus(%d)", uint8(s))
}

// Member is one node of the cluster.
type Member struct {
	ID   string // node ID, unique in the cluster
	Addr string // the node's listen address
	// Incarnation identifies one run of the node; a restarted node joins
	// with a higher one. It is never 0.
	Incarnation uint64
	Voter       bool // a Raft voter, rather than a non-voter replica
	// Client: the node is not in the Raft configuration; it keeps its copy
	// of the registry from a replica's Follow stream (WithMaxReplicas).
	// Never set together with Voter.
	Client bool
	Status MemberStatus
}

// Roles as a member record encodes them (commands and snapshots): one
// byte, where a replica's non-voter/voter byte was a bool before clients.
const (
	roleNonvoter byte = iota
	roleVoter
	roleClient
)

func (m Member) role() byte {
	switch {
	case m.Client:
		return roleClient
	case m.Voter:
		return roleVoter
	}
	return roleNonvoter
}

// readRole sets m's Voter and Client from a role byte read from rd.
func readRole(rd *bin.Reader, m *Member) {
	switch rd.Byte() {
	case roleNonvoter:
	case roleVoter:
		m.Voter = true
	case roleClient:
		m.Client = true
	default:
		rd.Fail("member %q: bad role", m.ID)
	}
}

// Mode says how a receiver shares the values sent to its name.
type Mode uint8

const (
	// Queue: each value sent to the name goes to one of its queue
	// receivers (Send/Receive).
	Queue Mode = iota
	// Broadcast: each value published to the name goes to every broadcast
	// receiver (Publish/Subscribe).
	Broadcast
)

func (m Mode) String() string {
	switch m {
	case Queue:
		return "queue"
	case Broadcast:
		return "broadcast"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Receiver is one actor registered under a name. Under one name a receiver
// is identified by (Node, ActorID).
type Receiver struct {
	Node    string
	ActorID string
	Mode    Mode
	// Incarnation of Node that registered the receiver.
	Incarnation uint64
}

// PID returns the receiver's actor address.
func (r Receiver) PID() actor.PID { return actor.PID{Node: r.Node, ID: r.ActorID} }

func compareReceiver(r Receiver, node, actorID string) int {
	if c := strings.Compare(r.Node, node); c != 0 {
		return c
	}
	return strings.Compare(r.ActorID, actorID)
}

// findReceiver returns the position of (node, actorID) in rs, sorted by
// (Node, ActorID), and whether it is there.
func findReceiver(rs []Receiver, node, actorID string) (int, bool) {
	return slices.BinarySearchFunc(rs, node, func(r Receiver, _ string) int {
		return compareReceiver(r, node, actorID)
	})
}

// State is an immutable snapshot of the registry: the members and the
// receivers of every name, as of the Raft index Version. A State is never
// modified: each committed write makes a new one that shares what did not
// change.
// A State is therefore safe for any number of concurrent readers without
// locks, and a reader keeps a consistent view for as long as it holds it.
//
// The zero State (and a nil *State) is the empty registry at version 0.
//
// Two replicas that applied the same commands have States equal in every
// observable way (Members, Names, Receivers, Version, snapshot bytes), even
// though their internal layouts differ.
type State struct {
	version uint64
	seed    maphash.Seed // layout only; per fsm instance
	members []Member     // sorted by ID; never modified once published
	names   *node
	count   int // number of names

	// edit is set only while a batch applies to this State, before it is
	// published (see treeEdit).
	edit *treeEdit
}

// Version returns the Raft index of the last command applied to this state
// (0 for the empty state).
func (s *State) Version() uint64 {
	if s == nil {
		return 0
	}
	return s.version
}

// Receivers returns the receivers of name, sorted by (Node, ActorID), or
// nil when the name has none. It takes no lock and allocates nothing: the
// slice is shared with the State and with every later State in which the
// name did not change. Callers must not modify its elements. (Its length
// equals its capacity, so an append copies rather than writes into it.)
func (s *State) Receivers(name string) []Receiver {
	if s == nil || s.names == nil {
		return nil
	}
	return s.names.lookup(maphash.String(s.seed, name), name)
}

// Member returns the member with the given node ID.
func (s *State) Member(id string) (Member, bool) {
	if s == nil {
		return Member{}, false
	}
	if i, ok := s.memberIndex(id); ok {
		return s.members[i], true
	}
	return Member{}, false
}

// Members returns a copy of the member table, sorted by ID. Expired
// members are included.
func (s *State) Members() []Member {
	if s == nil {
		return nil
	}
	return slices.Clone(s.members)
}

// Names returns every name that has at least one receiver, sorted. It walks
// the whole table and allocates: not for hot paths.
func (s *State) Names() []string {
	if s == nil || s.count == 0 {
		return nil
	}
	out := make([]string, 0, s.count)
	s.names.each(func(e *entry) { out = append(out, e.name) })
	slices.Sort(out)
	return out
}

// NumNames returns how many names have at least one receiver.
func (s *State) NumNames() int {
	if s == nil {
		return 0
	}
	return s.count
}

func (s *State) memberIndex(id string) (int, bool) {
	return slices.BinarySearchFunc(s.members, id, func(m Member, id string) int {
		return strings.Compare(m.ID, id)
	})
}

// result is what applying one command did.
type result struct {
	// Err is nil, or the reason the command was refused (ErrInvalidCommand,
	// ErrUnknownMember, ErrMemberExpired, ErrStaleIncarnation, or a decoding
	// error through fsm.Apply), wrapped with context. A refused command
	// changes nothing but the version.
	Err error
	// Names whose receivers changed, sorted; nil if none.
	Names []string
	// Members reports that the member table changed.
	Members bool
	// Batch holds the result of each write of a batchCmd, in order (the
	// batch's Names are theirs together).
	Batch []result
}

// changed reports whether the command changed anything but the version.
func (r result) changed() bool { return r.Members || len(r.Names) > 0 }

// apply returns the state after applying cmd as the Raft log entry at
// index, and what changed. It is a pure function: s is not modified, and
// the same commands applied to equal states give equal states and results
// on every replica. A refused command yields a state equal to s except for
// its version, and result.Err says why.
//
// Command semantics:
//
//   - joinCmd adds a member (Alive), or updates the address and voter flag of
//     an Alive member with the same incarnation (a retried join). A higher
//     incarnation replaces the member and removes every receiver of its
//     previous incarnations. A lower incarnation, or the incarnation of an
//     Expired member, is refused with ErrStaleIncarnation.
//   - leaveCmd removes the member and all its receivers; leaving an unknown
//     node does nothing. A non-zero Incarnation must be the member's
//     (ErrStaleIncarnation otherwise).
//   - registerCmd adds or updates a receiver of a name; re-registering the same
//     receiver does nothing. It is refused unless Receiver.Node is an Alive
//     member and Receiver.Incarnation its current incarnation.
//   - unregisterCmd removes a receiver; a missing receiver, or one of another
//     incarnation when Incarnation is non-zero, is left alone.
//   - expireNodeCmd marks the member Expired and removes its receivers, only if
//     the incarnation matches and the member is Alive; otherwise nothing.
//   - setVoterCmd sets a member's voter flag; promoting an Expired member is
//     refused with ErrMemberExpired.
//   - batchCmd applies each of its writes in order, as if each were an
//     entry of its own at index; result.Batch holds their results.
func (s *State) apply(index uint64, cmd command) (*State, result) {
	return s.applyEdit(nil, index, cmd)
}

// applyEdit is apply that writes in place into the tree nodes e made (e
// may be nil). The States it returns must not be published while e is in
// use.
func (s *State) applyEdit(e *treeEdit, index uint64, cmd command) (*State, result) {
	if b, ok := cmd.(batchCmd); ok {
		return s.applyBatch(e, index, b)
	}
	next := s.successor(index)
	next.edit = e
	defer func() { next.edit = nil }()
	var res result
	switch c := cmd.(type) {
	case joinCmd:
		res = next.join(c)
	case leaveCmd:
		res = next.leave(c)
	case registerCmd:
		res = next.register(c)
	case unregisterCmd:
		res = next.unregister(c)
	case expireNodeCmd:
		res = next.expire(c)
	case setVoterCmd:
		res = next.setVoter(c)
	default:
		res.Err = fmt.Errorf("%w: command type %T", ErrInvalidCommand, cmd)
	}
	if res.Err != nil {
		// Handlers check before they change anything, but do not rely on it.
		return s.successor(index), result{Err: res.Err}
	}
	return next, res
}

// applyBatch applies the writes of b in order; a refused one changes
// nothing, and the others still apply.
func (s *State) applyBatch(e *treeEdit, index uint64, b batchCmd) (*State, result) {
	if err := b.validate(); err != nil {
		return s.successor(index), result{Err: err}
	}
	if e == nil {
		e = new(treeEdit)
	}
	next := s.successor(index)
	next.edit = e
	res := result{Batch: make([]result, len(b.Cmds))}
	for i, sub := range b.Cmds {
		var r result
		switch c := sub.(type) {
		case registerCmd:
			r = next.register(c)
		case unregisterCmd:
			r = next.unregister(c)
		}
		res.Batch[i] = r
		res.Names = append(res.Names, r.Names...)
	}
	next.edit = nil
	slices.Sort(res.Names)
	res.Names = slices.Compact(res.Names)
	return next, res
}

// successor returns a shallow copy of s at version index. It shares
// everything with s; handlers replace (never modify) members and names.
func (s *State) successor(index uint64) *State {
	n := new(State)
	if s != nil {
		*n = *s
	}
	n.version = index
	n.edit = nil
	if n.names == nil && n.seed == (maphash.Seed{}) {
		n.seed = maphash.MakeSeed()
	}
	return n
}

func (s *State) hash(name string) uint64 { return maphash.String(s.seed, name) }

// putMember replaces or inserts m in a copy of the member table.
func (s *State) putMember(m Member) {
	i, ok := s.memberIndex(m.ID)
	n := len(s.members)
	if !ok {
		n++
	}
	ms := make([]Member, n)
	copy(ms, s.members[:i])
	ms[i] = m
	if ok {
		copy(ms[i+1:], s.members[i+1:])
	} else {
		copy(ms[i+1:], s.members[i:])
	}
	s.members = ms
}

func (s *State) removeMember(i int) {
	ms := make([]Member, len(s.members)-1)
	copy(ms, s.members[:i])
	copy(ms[i:], s.members[i+1:])
	if len(ms) == 0 {
		ms = nil
	}
	s.members = ms
}

// dropNode removes every receiver of node and returns the names changed,
// sorted.
func (s *State) dropNode(node string) []string {
	names, changed, removed := s.names.dropNode(node)
	s.names = names
	s.count -= removed
	slices.Sort(changed)
	return changed
}

func (s *State) join(c joinCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	m := c.Member
	m.Status = Alive
	i, ok := s.memberIndex(m.ID)
	if !ok {
		s.putMember(m)
		return result{Members: true}
	}
	old := s.members[i]
	switch {
	case m.Incarnation < old.Incarnation:
		return result{Err: fmt.Errorf("%w: join %q with incarnation %d, current is %d",
			ErrStaleIncarnation, m.ID, m.Incarnation, old.Incarnation)}
	case m.Incarnation == old.Incarnation && old.Status == Expired:
		return result{Err: fmt.Errorf("%w: join %q with incarnation %d, which expired; rejoin with a higher one",
			ErrStaleIncarnation, m.ID, m.Incarnation)}
	case m.Incarnation == old.Incarnation:
		if m == old {
			return result{}
		}
		s.putMember(m)
		return result{Members: true}
	default:
		names := s.dropNode(m.ID)
		s.putMember(m)
		return result{Members: true, Names: names}
	}
}

func (s *State) leave(c leaveCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	i, ok := s.memberIndex(c.Node)
	if !ok {
		return result{}
	}
	if c.Incarnation != 0 && c.Incarnation != s.members[i].Incarnation {
		return result{Err: fmt.Errorf("%w: leave %q with incarnation %d, current is %d",
			ErrStaleIncarnation, c.Node, c.Incarnation, s.members[i].Incarnation)}
	}
	s.removeMember(i)
	return result{Members: true, Names: s.dropNode(c.Node)}
}

func (s *State) register(c registerCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	r := c.Receiver
	i, ok := s.memberIndex(r.Node)
	switch {
	case !ok:
		return result{Err: fmt.Errorf("%w: register %q on node %q", ErrUnknownMember, c.Name, r.Node)}
	case s.members[i].Status == Expired:
		return result{Err: fmt.Errorf("%w: register %q on node %q", ErrMemberExpired, c.Name, r.Node)}
	case s.members[i].Incarnation != r.Incarnation:
		return result{Err: fmt.Errorf("%w: register %q on node %q with incarnation %d, current is %d",
			ErrStaleIncarnation, c.Name, r.Node, r.Incarnation, s.members[i].Incarnation)}
	}
	r.Node = s.members[i].ID // one copy of the node's ID for all its receivers
	changed, added := false, false
	s.names = s.names.update(s.edit, s.hash, s.hash(c.Name), c.Name, func(rs []Receiver) ([]Receiver, bool) {
		k, found := findReceiver(rs, r.Node, r.ActorID)
		var nrs []Receiver
		if found {
			if rs[k] == r {
				return rs, false
			}
			nrs = make([]Receiver, len(rs))
			copy(nrs, rs)
			nrs[k] = r
		} else {
			nrs = make([]Receiver, len(rs)+1)
			copy(nrs, rs[:k])
			nrs[k] = r
			copy(nrs[k+1:], rs[k:])
			added = len(rs) == 0
		}
		changed = true
		return nrs, true
	})
	if added {
		s.count++
	}
	if !changed {
		return result{}
	}
	return result{Names: []string{c.Name}}
}

func (s *State) unregister(c unregisterCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	changed, gone := false, false
	s.names = s.names.update(s.edit, s.hash, s.hash(c.Name), c.Name, func(rs []Receiver) ([]Receiver, bool) {
		k, found := findReceiver(rs, c.Node, c.ActorID)
		if !found || (c.Incarnation != 0 && rs[k].Incarnation != c.Incarnation) {
			return rs, false
		}
		changed = true
		if len(rs) == 1 {
			gone = true
			return nil, true
		}
		nrs := make([]Receiver, len(rs)-1)
		copy(nrs, rs[:k])
		copy(nrs[k:], rs[k+1:])
		return nrs, true
	})
	if !changed {
		return result{}
	}
	if gone {
		s.count--
	}
	return result{Names: []string{c.Name}}
}

func (s *State) expire(c expireNodeCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	i, ok := s.memberIndex(c.Node)
	if !ok || s.members[i].Incarnation != c.Incarnation || s.members[i].Status == Expired {
		return result{}
	}
	m := s.members[i]
	m.Status = Expired
	s.putMember(m)
	return result{Members: true, Names: s.dropNode(c.Node)}
}

func (s *State) setVoter(c setVoterCmd) result {
	if err := c.validate(); err != nil {
		return result{Err: err}
	}
	i, ok := s.memberIndex(c.Node)
	switch {
	case !ok:
		return result{Err: fmt.Errorf("%w: set voter %q", ErrUnknownMember, c.Node)}
	case s.members[i].Voter == c.Voter:
		return result{}
	case c.Voter && s.members[i].Status == Expired:
		return result{Err: fmt.Errorf("%w: promote %q", ErrMemberExpired, c.Node)}
	}
	m := s.members[i]
	m.Voter = c.Voter
	s.putMember(m)
	return result{Members: true}
}
