package channeltest_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dchan-io/dchan/channel"
	"github.com/dchan-io/dchan/channel/channeltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Order struct{ ID int }

func TestClusterCarriesValuesBetweenNodes(t *testing.T) {
	nodes := channeltest.Cluster(t, 3, channel.WithTypes(Order{}))
	if got := len(nodes[2].Cluster().Members); got != 3 {
		t.Fatalf("node 3 sees %d members", got)
	}
	in, closeIn, err := nodes[2].Receive("orders", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer closeIn()
	out, closeOut, err := nodes[0].Send("orders", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer closeOut()
	out <- Order{ID: 1}
	select {
	case v := <-in:
		if v != (Order{ID: 1}) {
			t.Fatalf("got %v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no value")
	}
}
