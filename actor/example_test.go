package actor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/supervisor"
)

type greet struct{ Name string }

func Example() {
	ctx := context.Background()
	sys, err := actor.NewSystem(actor.WithNode("n1"))
	if err != nil {
		panic(err)
	}
	defer sys.Shutdown(ctx)

	done := make(chan struct{})
	pid, err := sys.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				fmt.Println("started as", c.Self())
			case greet:
				fmt.Println("hello,", m.Name)
				close(done)
			}
		})
	})
	if err != nil {
		panic(err)
	}
	if err := sys.Send(ctx, pid, greet{Name: "gopher"}); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// started as n1/$1
	// hello, gopher
}

func ExampleSystem_Request() {
	ctx := context.Background()
	sys, _ := actor.NewSystem()
	defer sys.Shutdown(ctx)

	doubler, _ := sys.SpawnNamed("doubler", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if n, ok := c.Message().(int); ok {
				_ = c.Respond(2 * n)
			}
		})
	})
	reply, err := sys.Request(ctx, doubler, 21)
	fmt.Println(reply, err)
	// Output: 42 <nil>
}

var errFlaky = errors.New("flaky")

func ExampleWithGuardian() {
	ctx := context.Background()
	strategy, err := supervisor.OneForOne(supervisor.WithDecider(func(reason error) supervisor.Directive {
		if errors.Is(reason, errFlaky) {
			return supervisor.Restart
		}
		return supervisor.Stop
	}))
	if err != nil {
		panic(err)
	}
	sys, _ := actor.NewSystem(actor.WithGuardian(strategy))
	defer sys.Shutdown(ctx)

	done := make(chan struct{})
	pid, _ := sys.Spawn(func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			switch m := c.Message().(type) {
			case actor.Started:
				fmt.Println("started")
			case string:
				if m == "fail" {
					panic(errFlaky) // recovered; the strategy restarts the actor
				}
				fmt.Println("got", m)
				close(done)
			}
		})
	})
	_ = sys.Send(ctx, pid, "fail")
	_ = sys.Send(ctx, pid, "work") // queued behind the failure: kept across the restart
	<-done
	// Output:
	// started
	// started
	// got work
}
