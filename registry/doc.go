// Package registry is dchan's cluster registry: which nodes are members, and
// which actors receive each channel name. Every node holds a full replica,
// kept identical by Raft; writes are linearizable (they go through the
// leader's log) and reads are served from the local replica.
//
// Two layers: a pure, deterministic state machine (State, the commands
// that change it, and the Raft FSM that holds it) with no network, disk or
// goroutine, table-tested without Raft; and Registry, which drives
// hashicorp/raft over the node's remoting Endpoint (same port, same peer
// connections) and is the only code in dchan that touches Raft. Users see
// Registry, its options and sentinels, and the State it reads from; the
// commands and the FSM are internal.
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
// peers, it joins through any of them: the request goes to the leader,
// which adds the node as a voter while there are fewer than WithMaxVoters
// (5), as a non-voter (a full replica) while the Raft configuration holds
// fewer than WithMaxReplicas (9), and otherwise as a client (see client.go:
// outside Raft, its copy kept from a replica's Follow stream, its failure
// detected by the replicas it beats to), then commits the node's join with
// its incarnation (the start time in nanoseconds, so a restart
// always joins with a higher one and clears its previous names). With a
// data dir, the Raft log lives in raft.db (BoltDB) and snapshots next to
// it; a second process opening the same dir fails within a second with
// ErrDataDir, and a damaged raft.db fails Start with ErrDataDir instead of
// crashing the process.
//
// Writes (Register, Unregister, Leave) go to the leader: on a follower they
// are forwarded. Registrations and unregistrations are batched: those that
// wait on a node while its previous batches commit go in one RPC to the
// leader (or straight to Raft on the leader) and one log entry, each
// writer still returning only once its own write is committed, with its
// own result. Writes are retried across elections until ctx ends, when
// they fail with ErrUnavailable — a write is never reported done unless it
// was committed, and the internal not-leader error never reaches a caller.
// A node writes only for itself: the leader refuses, with
// ErrPermissionDenied, a peer's write about another node. Sync is a read
// barrier: the leader confirms its leadership with a barrier and names the
// version it has applied, and the local replica is waited for until it
// reaches it; LookupLinearizable is Sync, then a local Lookup.
//
// Failure detection uses Raft's own heartbeats: the leader observes failed
// and resumed heartbeats to each peer; a member unreachable for longer than
// WithExpireAfter (3 s) is expired — its receivers removed, watchers told —
// and taken out of the Raft configuration, a healthy non-voter is promoted
// if voters are missing, and a live client if replicas are. A client no
// replica has heard from within the grace is expired the same way. A member expired while it was only cut
// off notices after the heal — having heard from no leader for longer than
// the grace, it asks the leader how it is seen — and rejoins under a new
// incarnation; OnRejoin tells its owner to register again.
//
// # Forming a cluster
//
// With WithBootstrapExpect(n), nodes that start with no state and the same
// n find each other through their peers (a fixed list, or a DNS name that
// lists them all) before any of them bootstraps: once n of them see each
// other, the one with the lowest ID proposes the set, and bootstraps Raft
// with it once every other node of the set has agreed. A node that finds a
// member of an existing cluster joins it instead. discovery.go has the
// details.
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
// New states share everything that did not change with the old one: names
// live in a hash array mapped trie (32-way inner nodes, leaves of up to 8
// names) whose depth follows the table's size, so a write copies a few
// small nodes on its path and one short leaf (the writes of one batch
// copy each node once), and State.Receivers costs one hash, a load per
// level and a search in one leaf, with no lock and no allocation.
//
// Six commands are the only writes: a member joins, leaves, is expired or
// has its voter flag set; a receiver is registered or unregistered. Each
// is one Raft log entry, or, for receivers, one write of a batch entry
// (applied in order, each as if alone), in a versioned, bounded encoding whose decoder
// never panics on bad bytes; one pure transition applies them (State.apply
// in state.go states their exact semantics), and every replica refuses the
// same commands with the same sentinel.
//
// Incarnations make restarts safe. A node picks a new, higher incarnation on
// every start and joins with it; the join removes every receiver of its
// previous incarnations. A registration must carry the member's current
// incarnation, and an expired incarnation can neither register nor rejoin,
// so a delayed write from a previous run can never bring a name back.
//
// # Files
//
// The pure layer:
//
//	state.go      State, Member, Receiver, Mode; State.apply, the transition
//	tree.go       the persistent hash trie that holds the names
//	command.go    the commands and their log-entry encoding
//	snapshot.go   the snapshot format: checksummed, versioned, verified on restore
//	fsm.go        fsm: raft.FSM over State, in an atomic pointer; watches
//	watch.go      coalescing watch signals
//
// Registry:
//
//	registry.go   Registry: New, Start, Close, accessors and local reads
//	options.go    Option and the With... options, validated in New
//	errors.go     the sentinels
//	storage.go    the Raft stores: raft.db and snapshots in the data dir,
//	              checked and made private before Raft opens them
//	service.go    the RPC service on the Endpoint: Apply, Join, Member, Sync
//	              handlers, their wire formats and reply status codes, call
//	writes.go     Register, Unregister and Sync: forwarding, retries across
//	              elections, leader apply, waiting on Raft futures
//	batcher.go    receiver writes gathered into batches: one RPC, one entry
//	follow.go     the Follow stream: a replica's entries (or its State
//	              whole, then entries) for a copy kept without Raft, and
//	              the follower that keeps one, resuming at another replica
//	applied.go    the last entries a replica applied, bounded, for followers
//	join.go       joining through the leader or any known peer, with backoff
//	membership.go the leader adding a member, Leave, rejoining after expiry
//	health.go     the failure detector: expiry, promotion, health status
//	discovery.go  forming a cluster with bootstrap-expect (its Discover RPC)
//
// # Goroutines
//
// The pure layer starts none: fsm.Apply, ApplyBatch and Restore run on
// Raft's FSM goroutine, serialized by a mutex; the State read methods, and
// the watches' channels, may be used from any goroutine at any time.
//
// Registry.Start opens the stores, starts Raft's goroutines and one health
// watcher, then bootstraps, runs discovery or joins on the caller's
// goroutine. Close cancels the registry's context, shuts Raft down
// (raft.Shutdown) and waits for the goroutines below, except the future
// waiters:
//
//   - Raft's own (run loop, FSM, snapshots, replication to each peer):
//     started by raft.NewRaft in Start, stopped by Close.
//   - The health watcher (watchHealth), one per Registry: started by Start,
//     ends when Close cancels the context; Close waits for it. It observes
//     heartbeats, sets the Endpoint's health status, expires and promotes
//     members while this node leads, and rejoins after an expiry.
//   - The batcher (batcher.run), one per Registry: started by Start, ends
//     when Close cancels the context. It takes each batch of waiting
//     receiver writes and starts a committer (batcher.commit) for it, up
//     to maxBatchesInFlight at once; a committer forwards or applies its
//     batch, bounded by the attempt timeout, tells each writer its result
//     and ends; Close waits for both.
//   - The rejoin callback (OnRejoin's fn), one per rejoin: started by the
//     health watcher once a rejoin is committed, so that the watcher goes on
//     watching while fn registers again; Close ends fn's registry writes
//     (ErrClosed) and waits for it.
//   - A Raft future waiter (waitFuture), one per wait on an Apply, a
//     Barrier or a configuration change, so that the wait also ends with
//     ctx or Close. hashicorp/raft may leave a future unanswered when it
//     shuts down; the waiter then stays blocked on it, owned by no one, and
//     the tests' goleak ignores it.
//   - The raft.db check (checkBoltFile), during Start only: one goroutine
//     reads the file under debug.SetPanicOnFault; Start waits for it.
//
// Discovery, joins and writes run on their caller's goroutine; the RPC
// handlers run on the Endpoint's gRPC server, which Endpoint.Close stops.
// A Follow stream's handler runs until its follower goes or Close; a
// follower runs on the goroutine its owner gives it, until its ctx ends.
package registry
