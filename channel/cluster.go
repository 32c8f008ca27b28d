package channel

import (
	"context"
	"errors"
	"fmt"

	"github.com/dchan-io/dchan/registry"
)

// Cluster is this node's view of the cluster, from its local registry
// replica.
type Cluster struct {
	Members []Member
	// Names maps each registered name to its number of receivers (queue
	// and broadcast).
	Names map[string]int
}

// Member is one node of the cluster.
type Member struct {
	ID    string
	Addr  string
	Voter bool // a Raft voter, rather than a non-voter replica
	// Client: outside the Raft configuration, holding its copy of the
	// registry from a replica (WithMaxReplicas).
	Client bool
	Alive  bool // false once the leader expired it after failure detection
}

// Cluster returns the members and names the local replica knows.
func (n *Node) Cluster() Cluster {
	st := n.reg.State()
	c := Cluster{Names: make(map[string]int)}
	for _, m := range st.Members() {
		c.Members = append(c.Members, Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Client: m.Client,
			Alive: m.Status == registry.Alive})
	}
	for _, name := range st.Names() {
		c.Names[name] = len(st.Receivers(name))
	}
	return c
}

// Sync returns once this node's replica of the registry holds every
// registration, removal and membership change the cluster committed before
// Sync was called. Cluster reads the local replica, which may lag the
// leader by a replication round trip; Cluster after Sync is a linearizable
// read: after a Receive returned on another node, Cluster here, after a
// Sync, counts that receiver (unless it has gone since).
//
// It costs one round trip to the leader and one log entry (a barrier). It
// fails with an error wrapping ErrUnavailable when no leader confirms
// before ctx ends (this node is cut off from a quorum), or ErrClosed.
func (n *Node) Sync(ctx context.Context) error {
	if n.isClosed() {
		return ErrClosed
	}
	if err := n.reg.Sync(ctx); err != nil {
		if errors.Is(err, registry.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("channel: sync: %w", err)
	}
	return nil
}
