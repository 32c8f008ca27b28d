package channel_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dchan-io/dchan/channel"
)

type Foo struct{ N int }

type Oof struct{ Note string }

// The seed example, made real: two nodes in one process (in production,
// two processes on two machines).
func Example() {
	ctx := context.Background()
	seed, err := channel.New(ctx, channel.WithNodeID("n0"), channel.WithTypes(Foo{}, Oof{}))
	if err != nil {
		panic(err)
	}
	defer seed.Close()

	node, err := channel.New(ctx,
		channel.WithNodeID("n1"),
		channel.WithListenAddr("127.0.0.1:0"),
		channel.WithPeers(seed.Addr()),
		channel.WithTypes(Foo{}, Oof{}),
	)
	if err != nil {
		panic(err)
	}
	defer node.Close()

	// n1 receives FooChannel; n0 sends to it.
	fooCh, closeFoo, err := node.Receive("FooChannel", 16)
	if err != nil {
		panic(err)
	}
	defer closeFoo()
	toFoo, closeToFoo, err := seed.Send("FooChannel", 16)
	if err != nil {
		panic(err)
	}
	defer closeToFoo()
	toFoo <- Foo{N: 42}
	item := <-fooCh
	fmt.Printf("n1 got %+v\n", item)

	// n0 receives OofChannel; n1 sends with a confirmation handle.
	oofIn, closeOofIn, err := seed.Receive("OofChannel", 16)
	if err != nil {
		panic(err)
	}
	defer closeOofIn()
	oofCh, closeOof, err := node.Send("OofChannel", 16)
	if err != nil {
		panic(err)
	}
	defer closeOof()
	m := channel.WithMessage(Oof{Note: "hello"}, 2*time.Minute)
	select {
	case oofCh <- m:
	case <-m.Done(): // gave up before the channel took it
	}
	<-m.Done()
	if err := m.Err(); err != nil {
		fmt.Println("not confirmed:", err)
	}
	fmt.Printf("confirmed: %v; n0 got %+v\n", m.Err() == nil, <-oofIn)
	// Output:
	// n1 got {N:42}
	// confirmed: true; n0 got {Note:hello}
}

func ExampleReceiveOf() {
	ctx := context.Background()
	node, err := channel.New(ctx, channel.WithTypes(Foo{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()
	foos, closeFoos, err := channel.ReceiveOf[Foo](node, "foos", 4)
	if err != nil {
		panic(err)
	}
	defer closeFoos()
	send, closeSend, err := channel.SendOf[Foo](node, "foos", 4)
	if err != nil {
		panic(err)
	}
	defer closeSend()
	send <- Foo{N: 7}
	fmt.Println((<-foos).N)
	// Output: 7
}

func ExampleNode_SendContext() {
	ctx := context.Background()
	node, err := channel.New(ctx, channel.WithTypes(Foo{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()
	in, closeIn, err := node.Receive("jobs", 1)
	if err != nil {
		panic(err)
	}
	defer closeIn()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fmt.Println(node.SendContext(ctx, "jobs", Foo{N: 1})) // returns once accepted
	fmt.Println(<-in)
	// Output:
	// <nil>
	// {1}
}

func ExampleNode_Publish() {
	ctx := context.Background()
	seed, err := channel.New(ctx, channel.WithNodeID("p0"), channel.WithTypes(Foo{}))
	if err != nil {
		panic(err)
	}
	defer seed.Close()
	node, err := channel.New(ctx, channel.WithNodeID("p1"), channel.WithPeers(seed.Addr()), channel.WithTypes(Foo{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()

	// A subscriber on each node: every value published reaches both.
	here, closeHere, err := seed.Subscribe("ticks", 16)
	if err != nil {
		panic(err)
	}
	defer closeHere()
	there, closeThere, err := node.Subscribe("ticks", 16)
	if err != nil {
		panic(err)
	}
	defer closeThere()

	ticks, closeTicks, err := seed.Publish("ticks", 16)
	if err != nil {
		panic(err)
	}
	defer closeTicks()
	for i := 1; i <= 3; i++ {
		ticks <- Foo{N: i}
	}
	for i := 1; i <= 3; i++ {
		fmt.Println((<-here).(Foo).N, (<-there).(Foo).N)
	}
	// Output:
	// 1 1
	// 2 2
	// 3 3
}

// A node's view of the cluster comes from its replica of the registry,
// which may be a round trip behind; Sync brings it up to date first.
func ExampleNode_Sync() {
	ctx := context.Background()
	seed, err := channel.New(ctx, channel.WithNodeID("s0"))
	if err != nil {
		panic(err)
	}
	defer seed.Close()
	node, err := channel.New(ctx, channel.WithNodeID("s1"), channel.WithPeers(seed.Addr()))
	if err != nil {
		panic(err)
	}
	defer node.Close()

	_, closeJobs, err := seed.Receive("jobs", 1) // registered on s0
	if err != nil {
		panic(err)
	}
	defer closeJobs()
	if err := node.Sync(ctx); err != nil { // s1's replica now holds it too
		panic(err)
	}
	c := node.Cluster()
	fmt.Println(len(c.Members), "members;", c.Names["jobs"], "receiver of jobs")
	// Output: 2 members; 1 receiver of jobs
}

type Add struct{ A, B int }

// Serve answers the requests made to a name; Request, on any node, sends
// one and waits for its answer. No registry write is made per request.
func ExampleServe() {
	ctx := context.Background()
	seed, err := channel.New(ctx, channel.WithNodeID("q0"), channel.WithTypes(Add{}))
	if err != nil {
		panic(err)
	}
	defer seed.Close()
	node, err := channel.New(ctx, channel.WithNodeID("q1"), channel.WithPeers(seed.Addr()), channel.WithTypes(Add{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()

	stop, err := channel.Serve(seed, "add", 16, func(_ context.Context, r Add) (int, error) {
		if r.A < 0 || r.B < 0 {
			return 0, errors.New("negative operand")
		}
		return r.A + r.B, nil
	})
	if err != nil {
		panic(err)
	}
	defer stop()

	sum, err := channel.Request[int](ctx, node, "add", Add{A: 2, B: 3})
	fmt.Println(sum, err)
	_, err = channel.Request[int](ctx, node, "add", Add{A: -1, B: 3})
	fmt.Println(errors.Is(err, channel.ErrHandler), err)
	// Output:
	// 5 <nil>
	// true channel: request to "add": channel: the responder's handler failed: negative operand
}

// A plain receiver sees each request as a Call and may answer it at its
// ReplyTo with SendTo.
func ExampleRequest() {
	ctx := context.Background()
	node, err := channel.New(ctx, channel.WithTypes(Add{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()

	calls, closeCalls, err := node.Receive("add", 16)
	if err != nil {
		panic(err)
	}
	defer closeCalls()
	go func() {
		for v := range calls {
			c := v.(channel.Call)
			r := c.Request.(Add)
			_ = node.SendTo(ctx, c.ReplyTo, r.A+r.B)
		}
	}()

	sum, err := channel.Request[int](ctx, node, "add", Add{A: 40, B: 2})
	fmt.Println(sum, err)
	// Output: 42 <nil>
}

type Job struct {
	N       int
	ReplyTo channel.Ref // where the result goes
}

// A Ref is a reply address: a private receiver, made without a registry
// write, that can travel inside any message to any node.
func ExampleNode_ReceiveRef() {
	ctx := context.Background()
	seed, err := channel.New(ctx, channel.WithNodeID("w0"), channel.WithTypes(Job{}))
	if err != nil {
		panic(err)
	}
	defer seed.Close()
	node, err := channel.New(ctx, channel.WithNodeID("w1"), channel.WithPeers(seed.Addr()), channel.WithTypes(Job{}))
	if err != nil {
		panic(err)
	}
	defer node.Close()

	// A worker on w0 squares the jobs it receives and sends each result
	// to the job's ReplyTo.
	jobs, closeJobs, err := seed.Receive("jobs", 16)
	if err != nil {
		panic(err)
	}
	defer closeJobs()
	go func() {
		for v := range jobs {
			j := v.(Job)
			_ = seed.SendTo(ctx, j.ReplyTo, j.N*j.N)
		}
	}()

	// w1 sends jobs that name its own private receiver.
	results, ref, closeResults, err := node.ReceiveRef(16)
	if err != nil {
		panic(err)
	}
	defer closeResults()
	toJobs, closeToJobs, err := node.Send("jobs", 16)
	if err != nil {
		panic(err)
	}
	defer closeToJobs()
	for i := 1; i <= 3; i++ {
		toJobs <- Job{N: i, ReplyTo: ref}
	}
	for range 3 {
		fmt.Println(<-results)
	}
	// Output:
	// 1
	// 4
	// 9
}
