package channel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSendReceiveAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	in, closeIn, err := nodes[1].Receive("orders", 16)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("orders", 16)
	require.NoError(t, err)
	defer closeOut()
	for i := 0; i < 10; i++ {
		out <- Order{Sender: "n1", Seq: i}
	}
	for i := 0; i < 10; i++ {
		assert.Equal(t, Order{Sender: "n1", Seq: i}, recv(t, in))
	}
}

func TestWithMessageReportsAcceptance(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[1].Receive("orders", 4)
	require.NoError(t, err)
	defer closeIn()
	out, closeOut, err := nodes[0].Send("orders", 0)
	require.NoError(t, err)
	defer closeOut()
	m := WithMessage(Order{Seq: 1}, 5*time.Second)
	out <- m
	<-m.Done()
	require.NoError(t, m.Err())
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
}

func TestSendContextToLocalAndRemote(t *testing.T) {
	nodes := startCluster(t, 2)
	in, closeIn, err := nodes[0].Receive("jobs", 4)
	require.NoError(t, err)
	defer closeIn()
	require.NoError(t, nodes[0].SendContext(ctxFor(t, 5*time.Second), "jobs", Order{Seq: 1}))
	require.NoError(t, nodes[1].SendContext(ctxFor(t, 5*time.Second), "jobs", Order{Seq: 2}))
	assert.Equal(t, Order{Seq: 1}, recv(t, in))
	assert.Equal(t, Order{Seq: 2}, recv(t, in))
}
