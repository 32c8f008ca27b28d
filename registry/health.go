package registry

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// watchHealth is the leader's failure detector. It uses Raft's own
// heartbeats: the leader's replication reports FailedHeartbeatObservation
// for a peer it cannot reach and ResumedHeartbeatObservation when it can
// again. A member unreachable for longer than the expiry grace is expired
// (its receivers removed) and taken out of the Raft configuration; a
// healthy non-voter is promoted when voters are missing; servers whose
// member left are removed. It runs on every node and acts only while the
// node leads.
func (r *Registry) watchHealth() {
	defer r.wg.Done()
	rf, err := r.raftNode()
	if err != nil {
		return
	}
	obsCh := make(chan raft.Observation, 256)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation,
			raft.RaftState, raft.LeaderObservation: // the last two only counted (Metrics)
			return true
		}
		return false
	})
	rf.RegisterObserver(obs)
	defer rf.DeregisterObserver(obs)

	failing := make(map[raft.ServerID]failure)   // since when a peer is unreachable
	orphans := make(map[raft.ServerID]time.Time) // since when a server has no live member
	seen := make(map[raft.ServerID]failure)      // when this leader first saw a member's incarnation
	var lastCheck time.Time
	var current uint64 // the term in which this leader's replica was made current
	tick := time.NewTicker(r.cfg.heartbeatTimeout / 2)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case o := <-obsCh:
			r.counters.observe(o.Data)
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				if _, ok := failing[d.PeerID]; !ok {
					since := d.LastContact
					if since.IsZero() {
						since = time.Now()
					}
					m, _ := r.fsm.current().Member(string(d.PeerID))
					// Raft's last contact may be the previous incarnation's:
					// the grace of a rejoined node starts when it rejoined.
					if rec, ok := seen[d.PeerID]; ok && rec.incarnation == m.Incarnation && rec.since.After(since) {
						since = rec.since
					}
					failing[d.PeerID] = failure{since: since, incarnation: m.Incarnation}
				}
			case raft.ResumedHeartbeatObservation:
				delete(failing, d.PeerID)
			}
		case <-tick.C:
			r.reportServing(rf)
			if r.rejoinLanded() {
				r.finishRejoin() // its join was committed although its reply was lost
			}
			if rf.State() != raft.Leader {
				current = 0
				clear(failing)
				clear(orphans)
				clear(seen)
				// Cut off for longer than the grace: the cluster may have
				// expired this node. If its leader says so, rejoin.
				// A rejoin whose join has not shown up in the replica
				// within a grace is tried again the same way.
				// A client also sees its expiry in its own copy.
				since := time.Since(r.lastContact(rf))
				r.clientPromoted()
				if r.joined.Load() && (since > r.cfg.expireAfter || r.rejoining.Load() || r.clientExpired()) && time.Since(lastCheck) > r.cfg.expireAfter {
					lastCheck = time.Now()
					ctx, cancel := context.WithTimeout(r.ctx, r.cfg.expireAfter)
					if seen, expired := r.expiredByCluster(ctx); expired {
						if err := r.rejoin(ctx, seen); err != nil {
							r.log.Warn("rejoin after expiry failed; will retry", zap.Error(err))
						}
					}
					cancel()
				}
				continue
			}
			if term := rf.CurrentTerm(); current != term {
				// A new leader applies what earlier terms committed only
				// once an entry of its own term commits: until then its
				// replica may miss joins and rejoins, and reconcile would
				// take live members for departed ones and remove them from
				// the configuration (a removal takes effect before it
				// commits). A barrier makes the replica current first.
				ctx, cancel := context.WithTimeout(r.ctx, r.cfg.expireAfter)
				err := r.waitFuture(ctx, rf.Barrier(r.cfg.expireAfter))
				cancel()
				if err != nil {
					continue
				}
				current = term
			}
			r.reconcile(rf, failing, orphans, seen)
		}
	}
}

// reportServing sets the endpoint's health status: SERVING while this node
// is a member in contact with a leader (it leads, or heard from the leader
// within the expiry grace), NOT_SERVING before it joined and while it is
// cut off for longer than the grace — by then the cluster may have expired
// it and its receivers.
func (r *Registry) reportServing(rf *raft.Raft) {
	serving := r.joined.Load() && (rf.State() == raft.Leader || time.Since(r.lastContact(rf)) <= r.cfg.expireAfter)
	if serving != r.serving {
		r.serving = serving
		r.ep.SetServing(serving)
		if !serving && r.joined.Load() {
			r.log.Warn("cut off from the leader for longer than the grace; health NOT_SERVING",
				zap.Duration("since_contact", time.Since(r.lastContact(rf))))
		} else if serving {
			r.log.Debug("health SERVING")
		}
	}
}

// failure is when a peer became unreachable, and under which incarnation:
// a peer that rejoined since is not the one that failed.
type failure struct {
	since       time.Time
	incarnation uint64
}

func (r *Registry) reconcile(rf *raft.Raft, failing map[raft.ServerID]failure, orphans map[raft.ServerID]time.Time, seen map[raft.ServerID]failure) {
	r.confMu.Lock()
	defer r.confMu.Unlock()
	cf := rf.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	state := r.fsm.current()
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.expireAfter)
	defer cancel()
	now := time.Now()

	voters := 0
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for _, s := range servers {
		if string(s.ID) == r.cfg.nodeID {
			continue
		}
		m, known := state.Member(string(s.ID))
		if rec, ok := seen[s.ID]; known && (!ok || rec.incarnation != m.Incarnation) {
			seen[s.ID] = failure{since: now, incarnation: m.Incarnation}
		}
		f, down := failing[s.ID]
		if down && known && f.incarnation != m.Incarnation {
			delete(failing, s.ID) // it rejoined since it failed
			down = false
		}
		if down && seen[s.ID].since.After(f.since) {
			// Recorded from a last contact older than this incarnation.
			f.since = seen[s.ID].since
			failing[s.ID] = f
		}
		since := f.since
		switch {
		case known && m.Status == Alive && down && now.Sub(since) > r.cfg.expireAfter:
			expired, err := r.expireMember(ctx, rf, m, now.Sub(since))
			if err != nil {
				continue
			}
			if expired {
				r.removeServer(ctx, rf, s, &voters)
			}
			// Not expired: the member rejoined under a new incarnation
			// after this tick read the state. It is not the member that
			// failed: keep it in the configuration.
			delete(failing, s.ID)
		case !known || m.Status != Alive:
			// The member left or was expired (or is joining: its join is
			// committed right after AddVoter, so wait a grace first).
			first, seen := orphans[s.ID]
			if !seen {
				orphans[s.ID] = now
				continue
			}
			if now.Sub(first) > r.cfg.expireAfter {
				r.removeServer(ctx, rf, s, &voters)
				delete(orphans, s.ID)
			}
		case m.Client:
			// A promoted client whose record the promotion did not commit
			// (leadership changed in between): commit it now.
			m.Client = false
			if data, err := encodeCommand(joinCmd{Member: m}); err == nil {
				_ = r.applyLocal(ctx, rf, data)
			}
		default:
			delete(orphans, s.ID)
		}
	}
	r.expireClients(ctx, rf, state, seen)
	if cf := rf.GetConfiguration(); cf.Error() == nil {
		r.promoteClient(ctx, rf, r.fsm.current(), len(cf.Configuration().Servers))
	}
	if voters >= r.cfg.maxVoters {
		return
	}
	// Promote healthy non-voters while voters are missing.
	for _, s := range servers {
		if voters >= r.cfg.maxVoters {
			return
		}
		if s.Suffrage != raft.Nonvoter {
			continue
		}
		m, known := state.Member(string(s.ID))
		if _, down := failing[s.ID]; down || !known || m.Status != Alive {
			continue
		}
		if err := r.waitFuture(ctx, rf.AddVoter(s.ID, s.Address, 0, 0)); err != nil {
			r.log.Warn("promotion failed", zap.String("node", m.ID), zap.Error(err))
			return
		}
		voters++
		r.log.Info("promoted non-voter", zap.String("node", m.ID))
		if data, err := encodeCommand(setVoterCmd{Node: m.ID, Voter: true}); err == nil {
			_ = r.applyLocal(ctx, rf, data)
		}
	}
}

// expireMember commits the expiry of m, unreachable (or unheard of) for
// silent, on the leader. It reports false when the entry had no effect
// (m rejoined under a new incarnation meanwhile). Its log messages are
// what the chaos tests read (internal/chaos/chaosnode): keep them.
func (r *Registry) expireMember(ctx context.Context, rf *raft.Raft, m Member, silent time.Duration) (bool, error) {
	r.log.Info("expiring unreachable member", zap.String("node", m.ID), zap.Bool("client", m.Client),
		zap.Duration("unreachable", silent))
	data, err := encodeCommand(expireNodeCmd{Node: m.ID, Incarnation: m.Incarnation})
	var res result
	if err == nil {
		res, err = r.applyResult(ctx, rf, data)
	}
	if err != nil {
		r.log.Warn("expire failed", zap.String("node", m.ID), zap.Error(err))
		return false, err
	}
	if !res.Members {
		r.log.Info("expiry had no effect: the member rejoined", zap.String("node", m.ID))
		return false, nil
	}
	r.log.Info("expired member", zap.String("node", m.ID))
	return true, nil
}

func (r *Registry) removeServer(ctx context.Context, rf *raft.Raft, s raft.Server, voters *int) {
	if err := r.waitFuture(ctx, rf.RemoveServer(s.ID, 0, 0)); err != nil {
		r.log.Warn("removing server failed", zap.String("node", string(s.ID)), zap.Error(err))
		return
	}
	if s.Suffrage == raft.Voter {
		*voters--
	}
}
