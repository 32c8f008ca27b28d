package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAndDebugWhileTheClusterPlays: the local cluster with -metrics
// serves /metrics (each node's series labelled) and /debug/dchan (each
// node, its members and the leader) while it plays.
func TestMetricsAndDebugWhileTheClusterPlays(t *testing.T) {
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- runLocalCluster(context.Background(), options{
			duration: 3 * time.Second, inflight: 4, asJSON: true, metrics: "127.0.0.1:0",
			adminReady: func(addr string) { ready <- addr },
		}, &out)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("the cluster ended before serving: %v", err)
	}
	get := func(path string) []byte {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return b
	}
	// Let it play a little: pings have gone out.
	require.Eventually(t, func() bool {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(bytes.NewReader(get("/metrics")))
		require.NoError(t, err)
		nodes := map[string]bool{}
		for _, m := range families["dchan_registry_term"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					nodes[l.GetValue()] = true
				}
			}
		}
		require.Equal(t, map[string]bool{"n1": true, "n2": true, "n3": true}, nodes)
		require.Contains(t, families, "go_goroutines", "the Go runtime's own metrics too")
		for _, m := range families["dchan_values_delivered_total"].GetMetric() {
			if m.GetCounter().GetValue() > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "no delivered pings in /metrics")

	var v adminView
	require.NoError(t, json.Unmarshal(get("/debug/dchan"), &v))
	require.Len(t, v.Nodes, 3)
	leaders := 0
	for _, n := range v.Nodes {
		assert.Len(t, n.Members, 3, n.Node)
		assert.Equal(t, 2, n.Names["ping"], "%s: n2 and n3 serve ping", n.Node)
		assert.NotEmpty(t, n.Leader, n.Node)
		if n.State == "leader" {
			leaders++
		}
	}
	assert.Equal(t, 1, leaders)
	assert.Positive(t, v.Nodes[0].Stats.Sent, "n1 sent pings")

	require.NoError(t, <-done)
	_, err := http.Get("http://" + addr + "/metrics")
	assert.Error(t, err, "the admin listener closes with the cluster")
}
