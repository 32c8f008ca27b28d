package main

// protoactor-go, running the shape of its examples/remote-benchmark (node1
// pings, node2 echoes) with that example's protobuf messages (package
// messages), its actors' Bounded(1000000) mailboxes, and the default remote
// configuration (remote.Configure(host, port), protobuf serializer).

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/dchan-io/dchan/bench/messages"
)

// paMailbox is the example's mailbox for both actors.
const paMailbox = 1000000

// paEchoActor is the example's node2 actor: it learns the pinger from
// StartRemote and answers each Ping with a Pong.
type paEchoActor struct{ sender *actor.PID }

func (a *paEchoActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *messages.StartRemote:
		a.sender = msg.Sender
		ctx.Respond(&messages.Start{})
	case *messages.Ping:
		ctx.Send(a.sender, &messages.Pong{})
	}
}

// paPongCounter is the example's node1 actor: it counts Pongs and closes
// done at the target-th.
type paPongCounter struct {
	count  *atomic.Int64
	target *atomic.Int64
	done   chan struct{}
}

func (a *paPongCounter) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*messages.Pong); ok {
		if a.count.Add(1) == a.target.Load() {
			a.done <- struct{}{}
		}
	}
}

// startRemote starts an actor system with remoting on a free loopback port.
func startRemote(kinds map[string]*actor.Props) (*actor.ActorSystem, *remote.Remote) {
	system := actor.NewActorSystem()
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0))
	for kind, props := range kinds {
		r.Register(kind, props)
	}
	r.Start()
	return system, r
}

// paEcho is the role "pa-echo", the example's node2: it registers the kind
// "echo" for remote spawning.
func paEcho(c *child, _ *roleFlags) error {
	props := actor.PropsFromProducer(func() actor.Actor { return &paEchoActor{} },
		actor.WithMailbox(actor.Bounded(paMailbox)))
	system, r := startRemote(map[string]*actor.Props{"echo": props})
	c.ready(system.Address())
	<-c.stop
	r.Shutdown(false)
	return nil
}

// paPing is the role "pa-ping", the example's node1: it spawns an "echo"
// actor on -peers, introduces its counter with StartRemote, sends -n Pings
// and reports the time until the -n-th Pong. -warm pings go first, untimed.
func paPing(c *child, f *roleFlags) error {
	system, r := startRemote(nil)
	defer r.Shutdown(false)
	counter := &paPongCounter{count: &c.count, target: new(atomic.Int64), done: make(chan struct{}, 1)}
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return counter },
		actor.WithMailbox(actor.Bounded(paMailbox))))
	resp, err := r.Spawn(f.peers, "echo", startupTimeout)
	if err != nil {
		return err
	}
	if resp.StatusCode != 0 {
		return fmt.Errorf("pa-ping: remote spawn: status %d", resp.StatusCode)
	}
	echo := resp.Pid
	if _, err := system.Root.RequestFuture(echo, &messages.StartRemote{Sender: pid}, startupTimeout).Result(); err != nil {
		return err
	}
	c.ready(system.Address())
	ping := &messages.Ping{}
	exchange := func(n int) {
		if n == 0 {
			return
		}
		counter.target.Store(c.count.Load() + int64(n))
		for range n {
			system.Root.Send(echo, ping)
		}
		<-counter.done
	}
	exchange(f.warm)
	start := time.Now()
	exchange(f.n)
	c.result(int64(2*f.n), time.Since(start)) // pings and pongs
	<-c.stop
	return nil
}

// protoactorEcho is the protoactor candidate of the echo shapes.
func protoactorEcho(t *trial) (measurement, error) {
	echo, err := t.start("pa-echo")
	if err != nil {
		return measurement{}, err
	}
	ping, err := t.start("pa-ping", "-peers", echo.addr,
		"-n", strconv.Itoa(t.o.echoN), "-warm", strconv.Itoa(t.o.echoN/100))
	if err != nil {
		return measurement{}, err
	}
	return t.fixedCount(ping)
}
