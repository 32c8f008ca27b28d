// Package registry is dchan's cluster registry: which nodes are members, and
// which actors receive each channel name. Every node holds a full replica,
// kept identical by Raft; writes are linearizable (they go through the
// leader's log) and reads are served from the local replica.
//
// Two layers: a pure, deterministic state machine (State, the commands,
// FSM) with no network, disk or goroutine, table-tested without Raft; and
// Registry, which drives hashicorp/raft over the node's remoting Endpoint
// (same port, same peer connections) and is the only code in dchan that
// touches Raft.
//
// # Registry
//
//	ep, _ := remoting.New(sys, ...)
//	reg, _ := registry.New(ep, registry.WithNodeID("n1"), registry.WithPeers(seed), registry.WithDataDir(dir))
//	_ = ep.Start()
//	_ = reg.Start(ctx)                         // bootstrap, rejoin or join; returns once a member
//	_ = reg.Register(ctx, "orders", actorID, registry.Queue)
//	receivers := reg.Lookup("orders")          // local replica, lock-free
//
// With no peers and no state, Start bootstraps a one-node cluster. With
// peers, it joins through any of them: the request is forwarded to the
// leader, which adds the node as a voter while there are fewer than
// WithMaxVoters (5), as a non-voter (a full replica) after that, then commits
// the node's Join with its incarnation (the start time in nanoseconds, so a
// restart always joins with a higher one and clears its previous names).
// With a data dir, the Raft log lives in raft.db (BoltDB) and snapshots next
// to it; a second process opening the same dir fails within a second with
// ErrDataDir.
//
// Writes (Register, Unregister, Leave) go to the leader: on a follower they
// are forwarded, and they are retried across elections until ctx ends, when
// they fail with ErrUnavailable — a write is never reported done unless it
// was committed, and the internal not-leader error never reaches a caller.
// Sync is a read barrier: the leader confirms its leadership with a
// barrier and names the version it has applied, and the local replica is
// waited for until it reaches it; LookupLinearizable is Sync, then a local
// Lookup.
//
// Failure detection uses Raft's own heartbeats: the leader observes failed
// and resumed heartbeats to each peer; a member unreachable for longer than
// WithExpireAfter (3 s) is expired — its receivers removed, watchers told —
// and taken out of the Raft configuration, and a healthy non-voter is
// promoted if voters are missing. A member expired while it was only cut
// off notices after the heal — having heard from no leader for longer than
// the grace, it asks the leader how it is seen — and rejoins under a new
// incarnation; OnRejoin tells its owner to register again.
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
// The pure layer starts none: Apply, ApplyBatch and Restore run on Raft's
// FSM goroutine, serialized by a mutex; Current and the State read methods
// may be called from any goroutine at any time. Registry starts Raft's
// goroutines (stopped by Close through raft.Shutdown) and one health
// watcher (watchHealth, stopped and awaited by Close); its RPC handlers run
// on the Endpoint's gRPC server.
package registry
