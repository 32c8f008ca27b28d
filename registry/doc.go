// Package registry is dchan's cluster registry: which nodes are members, and
// which actors receive each channel name. Every node holds a full replica,
// kept identical by Raft; writes are linearizable (they go through the
// leader's log) and reads are served from the local replica.
//
// This file set is the pure part: a deterministic state machine with no
// network, disk or goroutine, usable and testable without Raft.
//
// # State
//
// A State is an immutable snapshot of the registry at a Raft index
// (Version): members (node ID, address, incarnation, voter flag, Alive or
// Expired) and names, each with a set of receivers {node, actor ID, mode,
// incarnation}. Queue receivers of a name share its values (Send/Receive),
// broadcast receivers each get all of them (Publish/Subscribe); both kinds
// may coexist under one name.
//
// State.Apply is a pure transition: it returns a new State and a Result
// (the refusal, if any, and the names whose receivers changed). New states
// share everything that did not change with the old one: names live in a
// two-level hash trie (64×64 leaves), so a write copies two small arrays and
// one short leaf whatever the size of the table, and State.Receivers costs
// one hash and a search in one leaf, with no lock and no allocation.
//
// # Commands
//
// Join, Leave, Register, Unregister, ExpireNode and SetVoter are the only
// writes; EncodeCommand and DecodeCommand give their log-entry encoding
// (versioned, bounded, never panicking on bad bytes). See State.Apply for
// their exact semantics.
//
// Incarnations make restarts safe. A node picks a new, higher incarnation on
// every start (for instance its persisted previous incarnation plus one) and
// joins with it; the Join removes every receiver of its previous
// incarnations. Register must carry the member's current incarnation, and an
// expired incarnation can neither register nor rejoin, so a delayed write
// from a previous run can never bring a name back.
//
// # FSM
//
// FSM implements raft.FSM (and raft.BatchingFSM) over State: it keeps the
// current State in an atomic pointer (Current), applies committed entries,
// snapshots by capturing the current State (Persist encodes it while Apply
// goes on) and restores from a checksummed, versioned snapshot. Watch and
// WatchAll signal the routing layer after a change is visible through
// Current; signals coalesce and never block Apply.
//
//	fsm := registry.NewFSM()
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, transport)
//	...
//	b, err := registry.EncodeCommand(registry.Register{Name: "orders", Receiver: rcv})
//	res := r.Apply(b, timeout).Response().(registry.Result) // after checking the future's Error
//	...
//	for _, rcv := range fsm.Current().Receivers("orders") {
//		send(rcv.PID())
//	}
//
// # Goroutines
//
// None. Apply, ApplyBatch and Restore run on the caller's goroutine (Raft's
// FSM goroutine) and are serialized by a mutex; Current and the State read
// methods may be called from any goroutine at any time.
package registry
