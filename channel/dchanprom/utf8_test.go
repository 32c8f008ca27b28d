package dchanprom_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/channel/dchanprom"
)

// TestANameThatIsNotUTF8DoesNotBreakAScrape: channel names may be any
// bytes; Prometheus label values must be UTF-8. A name that is not used to
// make Collect panic and every scrape of the node fail while it lasted.
func TestANameThatIsNotUTF8DoesNotBreakAScrape(t *testing.T) {
	nodes := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := nodes[0].SendContext(ctx, "orders\xff", 1) // a name validName accepts
	require.Error(t, err)
	_, ok := nodes[0].Stats().Names["orders\xff"]
	require.True(t, ok)
	c := dchanprom.NewCollector(nodes[0])
	ch := make(chan prometheus.Metric, 1000)
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		c.Collect(ch)
	}()
	require.Nil(t, panicked, "Collect panicked; the scrape would fail")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	_, err = reg.Gather()
	require.NoError(t, err)
}
