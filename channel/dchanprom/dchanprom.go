// Package dchanprom exports a dchan node's figures to Prometheus.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(dchanprom.NewCollector(node))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// NewCollector registers nothing itself: register it with the registry of
// your choice. For several nodes in one process, register each through
// prometheus.WrapRegistererWith(prometheus.Labels{"node": node.ID()}, reg).
// Each scrape reads the node's Stats once; nothing is counted on the value
// path for the collector's sake.
//
// # Metrics
//
// Values, by channel name (the names the node sends to or receives from;
// a name gone quiet on the node is forgotten after a minute or two, and
// its series end; a name that is not valid UTF-8 is labelled quoted, with
// Go's escapes):
//
//	dchan_values_sent_total{name}            values handed to a receiver, on this node or on the wire
//	dchan_values_delivered_total{name}       values a receiver's buffer confirmed
//	dchan_values_failed_total{name,reason}   values that failed; reason: timeout, canceled,
//	                                         no_receivers, node_lost, encode, too_large,
//	                                         wrong_type, gone, closed, other
//	dchan_values_dropped_total{name}         values a receiver accepted but could not hand over
//	dchan_values_received_total{name}        values handed to this node's receiving users
//	dchan_receiver_buffered_values{name}     values this node's receivers hold, unread
//
// The node:
//
//	dchan_values_in_flight                   values sent, not yet confirmed or failed
//	dchan_accept_latency_seconds             histogram: WithMessage or SendContext to acceptance
//	dchan_peer_values_sent_total{peer}       values sent to each node (this node included)
//	dchan_dead_letters_total                 messages the actor system could not deliver
//	dchan_failures_unreported_total          failures the failure handler was not told of
//
// Broadcast (Publish/Subscribe):
//
//	dchan_broadcast_published_total          values published on this node
//	dchan_broadcast_sent_total               value messages sent to peers
//	dchan_broadcast_duplicates_total         value messages that arrived twice
//	dchan_broadcast_repaired_total           values anti-entropy fetched after the tree missed them
//	dchan_broadcast_lost_total               values given up after waiting behind a gap
//	dchan_broadcast_rerouted_total           hops passed to the next node of their group
//	dchan_broadcast_queue_dropped_total      messages dropped by a full per-peer queue
//	dchan_broadcast_digests_total            anti-entropy digests sent
//	dchan_broadcast_grafts_total             requests for missing values sent
//	dchan_broadcast_refused_total            values and announcements of untracked publishers
//	dchan_broadcast_max_hops                 longest path, in hops, a value took to reach this node
//
// The registry and its Raft replica:
//
//	dchan_registry_leader                    1 if this node leads, else 0
//	dchan_registry_term                      the Raft term
//	dchan_registry_last_index                the last log index
//	dchan_registry_commit_index              the commit index
//	dchan_registry_applied_index             the index applied to the replica
//	dchan_registry_last_contact_seconds      since the leader was last heard from; 0 on the leader, -1 never
//	dchan_registry_members{status}           members by status: alive, expired
//	dchan_registry_voters                    live members with a vote
//	dchan_registry_clients                   live members following a replica
//	dchan_registry_names                     names with at least one receiver
//	dchan_registry_elections_total           elections this node started
//	dchan_registry_leader_changes_total      leaders this node saw come or go
//	dchan_registry_heartbeat_failures_total  heartbeats to a follower that failed while this node led
//	dchan_registry_writes_total              registrations and unregistrations this node committed or forwarded
//	dchan_registry_write_batches_total       the batches they went in
//	dchan_registry_apply_duration_seconds    histogram: a write on the leader, to committed and applied
//	dchan_registry_fsm_apply_duration_seconds histogram: applying a batch of committed entries
//
// The wire, by peer node (the frames of values, not Raft's or the
// registry's RPCs):
//
//	dchan_wire_sent_frames_total{peer}       frames of values sent to the peer
//	dchan_wire_sent_bytes_total{peer}        their bytes
//	dchan_wire_received_frames_total{peer}   frames of values received from the peer
//	dchan_wire_received_bytes_total{peer}    their bytes
//	dchan_wire_stream_resets_total{peer}     streams to the peer that failed and were reopened
//
// docs/operations.md ("Monitoring") suggests alerts on them.
package dchanprom

import (
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dchan-io/dchan/channel"
)

// Collector is a prometheus.Collector of one node's figures.
type Collector struct {
	node  *channel.Node
	descs []*prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of node's figures. It registers
// nothing: register it where you want it.
func NewCollector(node *channel.Node) *Collector {
	return &Collector{node: node, descs: allDescs}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	allDescs = append(allDescs, d)
	return d
}

var allDescs []*prometheus.Desc

var (
	sentDesc      = desc("dchan_values_sent_total", "Values handed to a receiver, on this node or on the wire.", "name")
	deliveredDesc = desc("dchan_values_delivered_total", "Values a receiver's buffer confirmed accepting.", "name")
	failedDesc    = desc("dchan_values_failed_total", "Values that failed, by reason.", "name", "reason")
	droppedDesc   = desc("dchan_values_dropped_total", "Values a receiver accepted but could not hand to its user.", "name")
	receivedDesc  = desc("dchan_values_received_total", "Values handed to the users of this node's receivers.", "name")
	bufferedDesc  = desc("dchan_receiver_buffered_values", "Values this node's receivers hold that their users have not read.", "name")

	inFlightDesc    = desc("dchan_values_in_flight", "Values sent and not yet confirmed or failed.")
	acceptDesc      = desc("dchan_accept_latency_seconds", "Time from WithMessage or SendContext to the receiver's acceptance.")
	peerSentDesc    = desc("dchan_peer_values_sent_total", "Values sent to each node.", "peer")
	deadLettersDesc = desc("dchan_dead_letters_total", "Messages the node's actor system could not deliver.")
	unreportedDesc  = desc("dchan_failures_unreported_total", "Failures the failure handler was not told of: its queue was full.")

	bPublishedDesc    = desc("dchan_broadcast_published_total", "Values published on this node.")
	bSentDesc         = desc("dchan_broadcast_sent_total", "Broadcast value messages sent to peers.")
	bDuplicatesDesc   = desc("dchan_broadcast_duplicates_total", "Broadcast value messages that arrived for a value already delivered.")
	bRepairedDesc     = desc("dchan_broadcast_repaired_total", "Broadcast values fetched by anti-entropy after the tree missed them.")
	bLostDesc         = desc("dchan_broadcast_lost_total", "Broadcast values given up after waiting behind a gap.")
	bReroutedDesc     = desc("dchan_broadcast_rerouted_total", "Broadcast hops that failed and went to the next node of their group.")
	bQueueDroppedDesc = desc("dchan_broadcast_queue_dropped_total", "Broadcast messages dropped by a full per-peer queue.")
	bDigestsDesc      = desc("dchan_broadcast_digests_total", "Anti-entropy digests sent.")
	bGraftsDesc       = desc("dchan_broadcast_grafts_total", "Anti-entropy requests for missing values sent.")
	bRefusedDesc      = desc("dchan_broadcast_refused_total", "Broadcast values and announcements of publishers not tracked.")
	bMaxHopsDesc      = desc("dchan_broadcast_max_hops", "The longest path, in hops, a broadcast value took to reach this node.")

	leaderDesc        = desc("dchan_registry_leader", "1 if this node leads the registry's Raft cluster, else 0.")
	termDesc          = desc("dchan_registry_term", "The registry's Raft term.")
	lastIndexDesc     = desc("dchan_registry_last_index", "The last index of the registry's Raft log on this node.")
	commitIndexDesc   = desc("dchan_registry_commit_index", "The registry's Raft commit index on this node.")
	appliedIndexDesc  = desc("dchan_registry_applied_index", "The Raft index applied to this node's replica of the registry.")
	lastContactDesc   = desc("dchan_registry_last_contact_seconds", "Time since the registry's leader was last heard from: 0 on the leader, -1 never.")
	membersDesc       = desc("dchan_registry_members", "Members of the cluster by status.", "status")
	votersDesc        = desc("dchan_registry_voters", "Live members with a vote.")
	clientsDesc       = desc("dchan_registry_clients", "Live members outside the Raft configuration, following a replica.")
	namesDesc         = desc("dchan_registry_names", "Names with at least one receiver.")
	electionsDesc     = desc("dchan_registry_elections_total", "Elections this node started.")
	leaderChangesDesc = desc("dchan_registry_leader_changes_total", "Leaders this node saw come or go.")
	hbFailuresDesc    = desc("dchan_registry_heartbeat_failures_total", "Heartbeats to a follower that failed while this node led.")
	writesDesc        = desc("dchan_registry_writes_total", "Registrations and unregistrations this node committed (leading) or forwarded to the leader.")
	batchesDesc       = desc("dchan_registry_write_batches_total", "Batches this node's registry writes were committed or forwarded in.")
	applyDesc         = desc("dchan_registry_apply_duration_seconds", "Time from a write handed to Raft on the leader to its result.")
	fsmApplyDesc      = desc("dchan_registry_fsm_apply_duration_seconds", "Time to apply a batch of committed entries to the replica.")

	wireSentFramesDesc = desc("dchan_wire_sent_frames_total", "Frames of values sent to each peer.", "peer")
	wireSentBytesDesc  = desc("dchan_wire_sent_bytes_total", "Bytes of the frames of values sent to each peer.", "peer")
	wireRecvFramesDesc = desc("dchan_wire_received_frames_total", "Frames of values received from each peer.", "peer")
	wireRecvBytesDesc  = desc("dchan_wire_received_bytes_total", "Bytes of the frames of values received from each peer.", "peer")
	wireResetsDesc     = desc("dchan_wire_stream_resets_total", "Streams to each peer that failed and were reopened.", "peer")
)

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the node's Stats once and sends every metric.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.node.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for name, n := range s.Names {
		if name == "" {
			continue // private receivers (ReceiveRef): no name to speak of
		}
		name = labelValue(name)
		counter(sentDesc, n.Sent, name)
		counter(deliveredDesc, n.Delivered, name)
		for reason, v := range n.FailedBy {
			counter(failedDesc, v, name, reason)
		}
		counter(droppedDesc, n.Dropped, name)
		counter(receivedDesc, n.Received, name)
		gauge(bufferedDesc, float64(n.Buffered), name)
	}
	gauge(inFlightDesc, float64(s.InFlight))
	histogram(ch, acceptDesc, s.AcceptLatency)
	for peer, p := range s.Peers {
		counter(peerSentDesc, p.Sent, peer)
	}
	counter(deadLettersDesc, s.DeadLetters)
	counter(unreportedDesc, s.FailuresUnreported)

	b := s.Broadcast
	counter(bPublishedDesc, b.Published)
	counter(bSentDesc, b.Sent)
	counter(bDuplicatesDesc, b.Duplicates)
	counter(bRepairedDesc, b.Repaired)
	counter(bLostDesc, b.Lost)
	counter(bReroutedDesc, b.Rerouted)
	counter(bQueueDroppedDesc, b.QueueDropped)
	counter(bDigestsDesc, b.Digests)
	counter(bGraftsDesc, b.Grafts)
	counter(bRefusedDesc, b.Refused)
	gauge(bMaxHopsDesc, float64(b.MaxHops))

	r := s.Registry
	leader := 0.0
	if r.State == "leader" {
		leader = 1
	}
	gauge(leaderDesc, leader)
	gauge(termDesc, float64(r.Term))
	gauge(lastIndexDesc, float64(r.LastIndex))
	gauge(commitIndexDesc, float64(r.CommitIndex))
	gauge(appliedIndexDesc, float64(r.AppliedIndex))
	lastContact := r.LastContact.Seconds()
	if r.LastContact < 0 {
		lastContact = -1
	}
	gauge(lastContactDesc, lastContact)
	gauge(membersDesc, float64(r.Alive), "alive")
	gauge(membersDesc, float64(r.Expired), "expired")
	gauge(votersDesc, float64(r.Voters))
	gauge(clientsDesc, float64(r.Clients))
	gauge(namesDesc, float64(r.Names))
	counter(electionsDesc, r.Elections)
	counter(leaderChangesDesc, r.LeaderChanges)
	counter(hbFailuresDesc, r.HeartbeatFailures)
	counter(writesDesc, r.Writes)
	counter(batchesDesc, r.Batches)
	histogram(ch, applyDesc, r.Apply)
	histogram(ch, fsmApplyDesc, r.FSMApply)

	for peer, w := range s.Wire {
		counter(wireSentFramesDesc, w.SentFrames, peer)
		counter(wireSentBytesDesc, w.SentBytes, peer)
		counter(wireRecvFramesDesc, w.ReceivedFrames, peer)
		counter(wireRecvBytesDesc, w.ReceivedBytes, peer)
		counter(wireResetsDesc, w.StreamResets, peer)
	}

}

// labelValue returns name as a label value: itself if it is valid UTF-8
// (Prometheus refuses other label values, and a refused one would fail the
// whole scrape), else quoted with Go's escapes, which is.
func labelValue(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	return strconv.Quote(name)
}

// histogram sends h as a Prometheus histogram, in seconds.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h channel.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets)
}
