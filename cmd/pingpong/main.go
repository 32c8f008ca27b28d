// Command pingpong plays ping/pong between two dchan actors and reports
// throughput and round-trip latency.
//
//	go run ./cmd/pingpong            # a 3-second run with a line per second
//	go run ./cmd/pingpong -d 10s     # longer
//	go run ./cmd/pingpong -json      # the report as one JSON line
//
// This version runs both players in one actor System on one node: it
// measures the local actor runtime. The cluster version (three nodes, named
// channels) replaces it when the channel facade lands.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/dchan-io/dchan/actor"
)

type ping struct{ Sent time.Time }

type pong struct{ Sent time.Time }

type report struct {
	Messages  int64    `json:"messages"`
	Seconds   float64  `json:"seconds"`
	MsgsPerS  float64  `json:"msgs_per_s"`
	RTTP50us  float64  `json:"rtt_p50_us"`
	RTTP99us  float64  `json:"rtt_p99_us"`
	RTTP999us float64  `json:"rtt_p999_us"`
	Nodes     []string `json:"nodes"`
	Actors    []string `json:"actors"`
}

func main() {
	duration := flag.Duration("d", 3*time.Second, "how long to play")
	asJSON := flag.Bool("json", false, "print the report as one JSON line")
	flag.Parse()
	if err := run(*duration, *asJSON, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, asJSON bool, out io.Writer) error {
	if duration <= 0 {
		return fmt.Errorf("duration %v must be positive", duration)
	}
	ctx := context.Background()
	sys, err := actor.NewSystem(actor.WithNode("n1"))
	if err != nil {
		return err
	}
	defer sys.Shutdown(ctx)

	ponger, err := sys.SpawnNamed("pong", func() actor.Actor {
		return actor.ReceiveFunc(func(c *actor.Context) {
			if p, ok := c.Message().(ping); ok {
				_ = c.Respond(pong(p))
			}
		})
	})
	if err != nil {
		return err
	}

	rtts := make([]time.Duration, 0, 1<<20)
	start := time.Now()
	deadline := start.Add(duration)
	nextTick := start.Add(time.Second)
	var lastCount int
	for time.Now().Before(deadline) {
		reply, err := sys.Request(ctx, ponger, ping{Sent: time.Now()})
		if err != nil {
			return err
		}
		rtts = append(rtts, time.Since(reply.(pong).Sent))
		if now := time.Now(); !asJSON && now.After(nextTick) {
			fmt.Fprintf(out, "%6.1fs  %9d round trips  %9.0f/s\n",
				now.Sub(start).Seconds(), len(rtts), float64(len(rtts)-lastCount)/time.Second.Seconds())
			lastCount = len(rtts)
			nextTick = nextTick.Add(time.Second)
		}
	}
	elapsed := time.Since(start)
	slices.Sort(rtts)
	r := report{
		Messages:  int64(2 * len(rtts)),
		Seconds:   elapsed.Seconds(),
		MsgsPerS:  float64(2*len(rtts)) / elapsed.Seconds(),
		RTTP50us:  micros(percentile(rtts, 0.50)),
		RTTP99us:  micros(percentile(rtts, 0.99)),
		RTTP999us: micros(percentile(rtts, 0.999)),
		Nodes:     []string{sys.Node()},
		Actors:    []string{ponger.String()},
	}
	if asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	fmt.Fprintf(out, "\nmessages %d in %.1fs: %.0f msgs/s\n", r.Messages, r.Seconds, r.MsgsPerS)
	fmt.Fprintf(out, "round trip p50 %.1fµs  p99 %.1fµs  p999 %.1fµs\n", r.RTTP50us, r.RTTP99us, r.RTTP999us)
	fmt.Fprintf(out, "nodes %v  actors %v\n", r.Nodes, r.Actors)
	return nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(float64(len(sorted))*p), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
