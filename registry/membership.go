package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/dchan-io/dchan/internal/bin"
)

// addMember runs on the leader: it adds m to the Raft configuration, as a
// voter while there are fewer than maxVoters, and commits its joinCmd. A
// node not in the configuration while it holds the replica limit
// (WithMaxReplicas) joins as a client instead: its joinCmd only. It
// reports whether m joined as a client.
func (r *Registry) addMember(ctx context.Context, rf *raft.Raft, m Member) (client bool, err error) {
	r.confMu.Lock()
	defer r.confMu.Unlock()
	cf := rf.GetConfiguration()
	if err := cf.Error(); err != nil {
		return false, fmt.Errorf("%w: %w", errNotLeader, err)
	}
	servers := cf.Configuration().Servers
	voters, voter, known, sameAddr := 0, false, false, false
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == raft.ServerID(m.ID) {
			known = true
			sameAddr = s.Address == raft.ServerAddress(m.Addr)
			voter = s.Suffrage == raft.Voter
		}
	}
	n := len(servers)
	if known && !sameAddr && m.ID != r.cfg.nodeID {
		// Another node restarted on another address. Raft could update the
		// address in place, but replication then races on the peer's
		// address (hashicorp/raft#681), so take it out and add it back.
		if err := r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(m.ID), 0, 0)); err != nil {
			return false, fmt.Errorf("%w: %w", errNotLeader, err)
		}
		if voter {
			voters--
		}
		known = false
		n--
	}
	if limit := r.cfg.replicaLimit(); !known && limit > 0 && n >= limit {
		m.Client, m.Voter = true, false
		data, err := encodeCommand(joinCmd{Member: m})
		if err != nil {
			return false, err
		}
		return true, r.applyJoin(ctx, rf, data, m)
	}
	if !known || !sameAddr {
		// Adding a server that is already there updates its address in
		// place, keeping its suffrage: that is how the leader moves its own
		// entry (removing itself first is impossible for a sole voter, and
		// it replicates to no one, so the race above cannot happen).
		var f raft.IndexFuture
		if voter || (!known && voters < r.cfg.maxVoters) {
			voter = true
			f = rf.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, 0)
		} else {
			f = rf.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, 0)
		}
		if err := r.waitFuture(ctx, f); err != nil {
			return false, fmt.Errorf("%w: %w", errNotLeader, err)
		}
	}
	m.Voter, m.Client = voter, false
	data, err := encodeCommand(joinCmd{Member: m})
	if err != nil {
		return false, err
	}
	return false, r.applyJoin(ctx, rf, data, m)
}

// applyJoin commits m's joinCmd, data, on the leader. A join under a new
// incarnation drops the receivers of the member's previous one
// (State.join). After an expiry none are left, so a join that drops some
// is worth a line: a restart that kept its data dir does, and so would a
// rejoin under a new incarnation while the previous one was alive (see
// rejoin). Its message is what the chaos tests read
// (internal/chaos/chaosnode): keep it.
func (r *Registry) applyJoin(ctx context.Context, rf *raft.Raft, data []byte, m Member) error {
	res, err := r.applyResult(ctx, rf, data)
	if err == nil && len(res.Names) > 0 {
		r.log.Info("join dropped the receivers of the member's previous incarnation", zap.String("node", m.ID),
			zap.Uint64("incarnation", m.Incarnation), zap.Strings("names", res.Names))
	}
	return err
}

// Leave removes this node's receivers and membership and takes it out of the
// Raft configuration, handing leadership over first if it leads. After
// Leave, Close the registry.
func (r *Registry) Leave(ctx context.Context) error {
	rf, err := r.raftNode()
	if err != nil {
		return err
	}
	if rf.State() == raft.Leader && r.otherVoters(rf) > 0 {
		if err := r.waitFuture(ctx, rf.LeadershipTransfer()); err != nil {
			r.log.Debug("leadership transfer before leave failed", zap.Error(err))
		}
	}
	if err := r.applyCommand(ctx, leaveCmd{Node: r.cfg.nodeID, Incarnation: r.Incarnation()}); err != nil {
		return err
	}
	if rf.State() == raft.Leader {
		// Still leading: the last voter, or the transfer failed. A sole
		// voter has no cluster to leave; otherwise step out ourselves.
		if r.otherVoters(rf) == 0 {
			return nil
		}
		return r.waitFuture(ctx, rf.RemoveServer(raft.ServerID(r.cfg.nodeID), 0, 0))
	}
	return nil // the leader removed us when it committed the Leave
}

func (r *Registry) otherVoters(rf *raft.Raft) int {
	cf := rf.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(r.cfg.nodeID) {
			n++
		}
	}
	return n
}

// memberView is how a leader sees a member (the Member RPC).
type memberView struct {
	present     bool
	incarnation uint64
	status      MemberStatus
}

// expiredByCluster asks the members this node knows whether the leader still
// counts it as a member under its current incarnation. It reports true only
// on a leader's positive answer that it does not, with that answer.
func (r *Registry) expiredByCluster(ctx context.Context) (memberView, bool) {
	w := bin.Writer{}
	w.Str(r.cfg.nodeID)
	for _, addr := range r.knownPeers(ctx) {
		body, err := r.callReply(ctx, addr, methodMember, w.B)
		if err != nil {
			continue // not the leader, or unreachable
		}
		present, inc, st, err := decodeMemberStatus(body)
		if err != nil {
			return memberView{}, false
		}
		seen := memberView{present: present, incarnation: inc, status: st}
		return seen, !present || inc != r.Incarnation() || st != Alive
	}
	return memberView{}, false
}

// rejoin brings back a node the cluster expired while it was cut off: it
// joins under a new incarnation (its old registrations are gone) and tells
// the owner through OnRejoin. seen is how the leader sees this node.
//
// A join that fails on this side may still have been committed (its reply
// was lost): the rejoin then stays pending, and the health watcher
// finishes it (finishRejoin) once the replica shows this incarnation as a
// live member, or tries again. A try again keeps the incarnation unless
// the leader has seen it: a join under a newer one drops every receiver
// of the node (State.join), and the earlier join may land after the leader
// answered, and registrations under it commit (Register retries with the
// current incarnation, and returns). Joining again under the same
// incarnation changes nothing if the earlier join landed. Only once the
// leader shows this incarnation (committed, then expired: it can never be
// alive again) or none (the member is gone) does the rejoin take a new one.
func (r *Registry) rejoin(ctx context.Context, seen memberView) error {
	r.rejoining.Store(true)
	fresh := !seen.present || seen.incarnation >= r.Incarnation()
	if fresh {
		r.incarnation.Store(max(uint64(time.Now().UnixNano()), r.Incarnation()+1, seen.incarnation+1))
	}
	r.log.Info("rejoining after expiry", zap.Uint64("incarnation", r.Incarnation()), zap.Bool("new_incarnation", fresh),
		zap.Bool("leader_knows_member", seen.present), zap.Uint64("leader_sees_incarnation", seen.incarnation),
		zap.Bool("leader_sees_alive", seen.status == Alive))
	err := r.join(ctx, r.self())
	if errors.Is(err, ErrStaleIncarnation) {
		// It landed and was expired since the leader answered: the next
		// try takes a new one.
		r.incarnation.Store(max(uint64(time.Now().UnixNano()), r.Incarnation()+1))
	}
	if err != nil {
		return err
	}
	r.finishRejoin()
	return nil
}

// rejoinLanded reports a pending rejoin whose join the replica shows
// committed.
func (r *Registry) rejoinLanded() bool {
	if !r.rejoining.Load() {
		return false
	}
	m, ok := r.fsm.current().Member(r.cfg.nodeID)
	return ok && m.Incarnation == r.Incarnation() && m.Status == Alive
}

// finishRejoin ends a rejoin whose join is committed: it tells the owner.
func (r *Registry) finishRejoin() {
	if !r.rejoining.Swap(false) {
		return
	}
	r.log.Info("rejoined the cluster after expiry", zap.Uint64("incarnation", r.Incarnation()))
	if r.onRejoin != nil {
		// On its own goroutine: fn registers again, which may wait (the
		// node may be cut off again at once), and the health watcher, which
		// called rejoin, must go on watching meanwhile — it is what notices
		// the next expiry and rejoins.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.onRejoin()
		}()
	}
}
