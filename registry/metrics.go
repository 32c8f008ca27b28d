package registry

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dchan-io/dchan/internal/hist"
)

// Metrics are a node's registry figures at one time: its Raft replica, its
// view of the cluster, and what it timed and counted since it started.
// hashicorp/raft reports its own timings to the process-wide go-metrics
// sink; these are the node's own, taken from Raft's API, its observations
// and the registry's calls, so that several nodes in one process each
// report theirs.
type Metrics struct {
	State        string // "leader", "follower", "candidate", "shutdown"; "" before Start
	Leader       string // the leader's node ID; "" when none is known
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// LastContact is how long ago the leader was last heard from: 0 on
	// the leader, -1 when it never was.
	LastContact time.Duration

	Alive, Expired int // members by status
	Voters         int // members with a vote
	Clients        int // live members outside the Raft configuration (WithMaxReplicas)

	// Client: this node is a registry client; Following is the address of
	// the replica whose Follow stream it reads ("" while it reads none).
	// A client's State is "follower" (its Raft runs idle) and its
	// LastContact is the last frame of that stream.
	Client    bool
	Following string
	Names     int // names with at least one receiver

	Elections         uint64 // elections this node started (it became a candidate)
	LeaderChanges     uint64 // leaders this node saw come or go
	HeartbeatFailures uint64 // heartbeats to a follower that failed, while this node led

	// Writes counts the receiver writes (registrations, unregistrations)
	// this node sent in batches, committing them if it led or forwarding
	// them to the leader; Batches the batches they went in.
	Writes, Batches uint64

	// Apply is the time from handing a write to Raft, on the leader, to
	// its result: committed by a quorum and applied to the leader's
	// replica. FSMApply is the time the replica took to apply each batch
	// of committed entries.
	Apply, FSMApply hist.Snapshot
}

// counters are the registry's own counts and timings.
type counters struct {
	elections, leaderChanges, heartbeatFailures atomic.Uint64
	writes, batches                             atomic.Uint64
	apply                                       hist.Histogram
}

// observe counts a Raft observation (watchHealth's observer).
func (c *counters) observe(o any) {
	switch d := o.(type) {
	case raft.RaftState:
		if d == raft.Candidate {
			c.elections.Add(1)
		}
	case raft.LeaderObservation:
		c.leaderChanges.Add(1)
	case raft.FailedHeartbeatObservation:
		c.heartbeatFailures.Add(1)
	}
}

// Metrics returns the registry's figures now.
func (r *Registry) Metrics() Metrics {
	st := r.fsm.current()
	m := Metrics{
		LastContact:       -1,
		Names:             st.NumNames(),
		Elections:         r.counters.elections.Load(),
		LeaderChanges:     r.counters.leaderChanges.Load(),
		HeartbeatFailures: r.counters.heartbeatFailures.Load(),
		Writes:            r.counters.writes.Load(),
		Batches:           r.counters.batches.Load(),
		Apply:             r.counters.apply.Snapshot(),
		FSMApply:          r.fsm.applyTime.Snapshot(),
	}
	for _, mb := range st.Members() {
		switch mb.Status {
		case Alive:
			m.Alive++
		case Expired:
			m.Expired++
		}
		if mb.Voter && mb.Status == Alive {
			m.Voters++
		}
		if mb.Client && mb.Status == Alive {
			m.Clients++
		}
	}
	m.Client = r.client.on.Load()
	r.client.mu.Lock()
	if fl := r.client.fl; fl != nil && m.Client {
		if p := fl.following.Load(); p != nil {
			m.Following = *p
		}
	}
	r.client.mu.Unlock()
	rf, err := r.raftNode()
	if err != nil {
		return m
	}
	state := rf.State()
	m.State = stateName(state)
	_, id := rf.LeaderWithID()
	m.Leader = string(id)
	m.Term, m.LastIndex = rf.CurrentTerm(), rf.LastIndex()
	m.CommitIndex, m.AppliedIndex = rf.CommitIndex(), rf.AppliedIndex()
	switch last := r.lastContact(rf); {
	case state == raft.Leader:
		m.LastContact = 0
	case !last.IsZero():
		m.LastContact = time.Since(last)
	}
	return m
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
