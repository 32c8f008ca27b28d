package dchanprom_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/dchan-io/dchan/channel"
	"github.com/dchan-io/dchan/channel/dchanprom"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dchan-io/dchan/registry.(*Registry).waitFuture.func1"))
}

type Order struct {
	ID   int
	Note string
}

type unregistered struct{ X int }

const wait = 10 * time.Second

// cluster starts three nodes, n1 (the first, so the leader) to n3.
func cluster(t *testing.T) []*channel.Node {
	t.Helper()
	var nodes []*channel.Node
	for i := 1; i <= 3; i++ {
		opts := []channel.Option{
			channel.WithNodeID(fmt.Sprintf("n%d", i)),
			channel.WithTypes(Order{}),
			channel.WithRaftTimeouts(150*time.Millisecond, 300*time.Millisecond),
		}
		if len(nodes) > 0 {
			opts = append(opts, channel.WithPeers(nodes[0].Addr()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		n, err := channel.New(ctx, opts...)
		cancel()
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			_ = nodes[i].Close()
		}
	})
	return nodes
}

// exchange plays the script: n1 sends five confirmed orders to n2's
// receiver, which reads three, and one value that cannot be encoded.
func exchange(t *testing.T, nodes []*channel.Node) {
	t.Helper()
	in, closeIn, err := nodes[1].Receive("orders", 16)
	require.NoError(t, err)
	t.Cleanup(func() { _ = closeIn() })
	require.NoError(t, nodes[0].Sync(context.Background()))
	out, closeOut, err := nodes[0].Send("orders", 16)
	require.NoError(t, err)
	t.Cleanup(func() { _ = closeOut() })
	for i := range 5 {
		m := channel.WithMessage(Order{ID: i}, wait)
		out <- m
		<-m.Done()
		require.NoError(t, m.Err())
	}
	bad := channel.WithMessage(unregistered{1}, wait)
	out <- bad
	<-bad.Done()
	require.ErrorIs(t, bad.Err(), channel.ErrEncode)
	for range 3 {
		<-in
	}
	for _, n := range nodes {
		require.NoError(t, n.Sync(context.Background()))
	}
}

func TestCollectorReportsAScriptedExchange(t *testing.T) {
	nodes := cluster(t)
	exchange(t, nodes)
	sender, receiver := dchanprom.NewCollector(nodes[0]), dchanprom.NewCollector(nodes[1])

	require.NoError(t, testutil.CollectAndCompare(sender, strings.NewReader(`
# HELP dchan_values_delivered_total Values a receiver's buffer confirmed accepting.
# TYPE dchan_values_delivered_total counter
dchan_values_delivered_total{name="orders"} 5
# HELP dchan_values_failed_total Values that failed, by reason.
# TYPE dchan_values_failed_total counter
dchan_values_failed_total{name="orders",reason="encode"} 1
# HELP dchan_values_sent_total Values handed to a receiver, on this node or on the wire.
# TYPE dchan_values_sent_total counter
dchan_values_sent_total{name="orders"} 5
# HELP dchan_peer_values_sent_total Values sent to each node.
# TYPE dchan_peer_values_sent_total counter
dchan_peer_values_sent_total{peer="n2"} 5
# HELP dchan_values_in_flight Values sent and not yet confirmed or failed.
# TYPE dchan_values_in_flight gauge
dchan_values_in_flight 0
# HELP dchan_registry_leader 1 if this node leads the registry's Raft cluster, else 0.
# TYPE dchan_registry_leader gauge
dchan_registry_leader 1
# HELP dchan_registry_members Members of the cluster by status.
# TYPE dchan_registry_members gauge
dchan_registry_members{status="alive"} 3
dchan_registry_members{status="expired"} 0
# HELP dchan_registry_names Names with at least one receiver.
# TYPE dchan_registry_names gauge
dchan_registry_names 1
# HELP dchan_registry_voters Live members with a vote.
# TYPE dchan_registry_voters gauge
dchan_registry_voters 3
`), "dchan_values_sent_total", "dchan_values_delivered_total", "dchan_values_failed_total",
		"dchan_peer_values_sent_total", "dchan_values_in_flight", "dchan_registry_leader",
		"dchan_registry_members", "dchan_registry_names", "dchan_registry_voters"))

	require.NoError(t, testutil.CollectAndCompare(receiver, strings.NewReader(`
# HELP dchan_values_received_total Values handed to the users of this node's receivers.
# TYPE dchan_values_received_total counter
dchan_values_received_total{name="orders"} 5
# HELP dchan_receiver_buffered_values Values this node's receivers hold that their users have not read.
# TYPE dchan_receiver_buffered_values gauge
dchan_receiver_buffered_values{name="orders"} 2
# HELP dchan_registry_leader 1 if this node leads the registry's Raft cluster, else 0.
# TYPE dchan_registry_leader gauge
dchan_registry_leader 0
`), "dchan_values_received_total", "dchan_receiver_buffered_values", "dchan_registry_leader"))

	// What n1's streams sent n2 is what n2 received from n1.
	out, in := nodes[0].Stats().Wire["n2"], nodes[1].Stats().Wire["n1"]
	assert.Positive(t, out.SentFrames)
	assert.Equal(t, out.SentFrames, in.ReceivedFrames)
	assert.Equal(t, out.SentBytes, in.ReceivedBytes)
	assert.Equal(t, 1, testutil.CollectAndCount(receiver, "dchan_wire_received_frames_total"))

	// n2's registration of orders went to the leader in a batch.
	r2 := nodes[1].Stats().Registry
	assert.Positive(t, r2.Batches)
	assert.LessOrEqual(t, r2.Batches, r2.Writes)
	assert.Equal(t, 1, testutil.CollectAndCount(receiver, "dchan_registry_writes_total"))
	assert.Equal(t, 1, testutil.CollectAndCount(receiver, "dchan_registry_write_batches_total"))

	// The five confirmations were timed.
	assert.Equal(t, 1, testutil.CollectAndCount(sender, "dchan_accept_latency_seconds"))
	assert.Equal(t, uint64(5), nodes[0].Stats().AcceptLatency.Count)

	for i, c := range []*dchanprom.Collector{sender, receiver, dchanprom.NewCollector(nodes[2])} {
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		assert.Empty(t, problems, "node %d", i+1)
	}
}

// TestAScrapeThroughPromhttpParses: three nodes in one process, each
// registered with a node label, served by promhttp on loopback; the scrape
// parses, and the figures agree across the nodes.
func TestAScrapeThroughPromhttpParses(t *testing.T) {
	nodes := cluster(t)
	exchange(t, nodes)
	reg := prometheus.NewPedanticRegistry()
	for _, n := range nodes {
		prometheus.WrapRegistererWith(prometheus.Labels{"node": n.ID()}, reg).MustRegister(dchanprom.NewCollector(n))
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()

	scrape := func() map[string]*dto.MetricFamily {
		resp, err := http.Get(srv.URL)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		require.NoError(t, err)
		return families
	}
	leaders := func(families map[string]*dto.MetricFamily) float64 {
		n := 0.0
		for _, m := range families["dchan_registry_leader"].GetMetric() {
			n += m.GetGauge().GetValue()
		}
		return n
	}
	// One leader among the three; a scrape during an election (the Raft
	// timeouts are short, and a loaded machine misses heartbeats) may see
	// none for a moment.
	families := scrape()
	for deadline := time.Now().Add(wait); leaders(families) != 1 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		families = scrape()
	}
	assert.Equal(t, 1.0, leaders(families), "one leader among the three")
	assert.Len(t, families["dchan_registry_term"].GetMetric(), 3, "one series per node")
	received := map[string]float64{}
	for _, m := range families["dchan_values_received_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "node" {
				received[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{"n1": 0, "n2": 5}, received, "n1 sends on orders, n2 receives; n3 has not used it")
	h := families["dchan_registry_apply_duration_seconds"]
	require.NotNil(t, h)
	var applied uint64
	for _, m := range h.GetMetric() {
		applied += m.GetHistogram().GetSampleCount()
	}
	assert.Positive(t, applied, "the leader timed its writes")
}
