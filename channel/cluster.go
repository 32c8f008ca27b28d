package channel

import "github.com/dchan-io/dchan/registry"

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
	Alive bool // false once the leader expired it after failure detection
}

// Cluster returns the members and names the local replica knows.
func (n *Node) Cluster() Cluster {
	st := n.reg.State()
	c := Cluster{Names: make(map[string]int)}
	for _, m := range st.Members() {
		c.Members = append(c.Members, Member{ID: m.ID, Addr: m.Addr, Voter: m.Voter, Alive: m.Status == registry.Alive})
	}
	for _, name := range st.Names() {
		c.Names[name] = len(st.Receivers(name))
	}
	return c
}
