package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dchan-io/dchan/channel"
)

// lostAfter is how long a ping waits for its pong before it counts as
// lost and another takes its place.
const lostAfter = 5 * time.Second

type report struct {
	Messages  int64    `json:"messages"`
	Lost      int64    `json:"lost"`
	Seconds   float64  `json:"seconds"`
	MsgsPerS  float64  `json:"msgs_per_s"`
	RTTP50us  float64  `json:"rtt_p50_us"`
	RTTP99us  float64  `json:"rtt_p99_us"`
	RTTP999us float64  `json:"rtt_p999_us"`
	InFlight  int      `json:"in_flight"`
	Members   []string `json:"members"`
	Names     []string `json:"names"`
}

// respond answers every Ping requested on "ping" with its Pong.
func respond(n *channel.Node) (stop func() error, err error) {
	return channel.Serve(n, "ping", 256, func(_ context.Context, p Ping) (Pong, error) {
		return Pong(p), nil
	})
}

// play requests pongs from n with o.inflight requests outstanding and
// measures the round trips until o.duration passes (or, for 0, until ctx
// ends). A request that fails (its responder's node was lost, or no pong
// within lostAfter) counts as lost; another takes its place.
func play(ctx context.Context, n *channel.Node, o options, out io.Writer) error {
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer stopPlaying()
	if o.duration > 0 {
		t := time.AfterFunc(o.duration, stopPlaying)
		defer t.Stop()
	}
	var (
		mu   sync.Mutex
		rtts = make([]time.Duration, 0, 1<<16)
		lost int64
		cl   channel.Cluster // the cluster as it was when playing ended
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range o.inflight {
		wg.Go(func() {
			// The last request of each finishes after play ends, unless
			// ctx (a signal) ends first.
			for seq := int64(0); playCtx.Err() == nil; seq++ {
				rctx, cancel := context.WithTimeout(ctx, lostAfter)
				sent := time.Now()
				_, err := channel.Request[Pong](rctx, n, "ping", Ping{From: n.ID(), Seq: seq, Sent: sent.UnixNano()})
				rtt := time.Since(sent)
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					rtts = append(rtts, rtt)
				case ctx.Err() == nil || errors.Is(err, channel.ErrNodeLost):
					lost++ // not just a signal interrupting it
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := 0
	for {
		select {
		case now := <-tick.C:
			mu.Lock()
			trips, l := len(rtts), lost
			mu.Unlock()
			if !o.asJSON {
				fmt.Fprintf(out, "%6.1fs  %9d round trips  %9d/s  %d lost\n", now.Sub(start).Seconds(), trips, trips-last, l)
			}
			last = trips
			continue
		case <-playCtx.Done():
			cl = n.Cluster()
		}
		break
	}
	<-done
	return writeReport(cl, o, out, rtts, lost, time.Since(start))
}

func writeReport(cl channel.Cluster, o options, out io.Writer, rtts []time.Duration, lost int64, elapsed time.Duration) error {
	slices.Sort(rtts)
	r := report{
		Messages:  int64(2 * len(rtts)),
		Lost:      lost,
		Seconds:   elapsed.Seconds(),
		MsgsPerS:  float64(2*len(rtts)) / elapsed.Seconds(),
		RTTP50us:  micros(percentile(rtts, 0.50)),
		RTTP99us:  micros(percentile(rtts, 0.99)),
		RTTP999us: micros(percentile(rtts, 0.999)),
		InFlight:  o.inflight,
	}
	for _, m := range cl.Members {
		role := "voter"
		if !m.Voter {
			role = "non-voter"
		}
		r.Members = append(r.Members, fmt.Sprintf("%s@%s (%s)", m.ID, m.Addr, role))
	}
	for name, count := range cl.Names {
		r.Names = append(r.Names, fmt.Sprintf("%s×%d", name, count))
	}
	sort.Strings(r.Names)
	if o.asJSON {
		return json.NewEncoder(out).Encode(r)
	}
	fmt.Fprintf(out, "\nmessages %d in %.1fs: %.0f msgs/s (%d pings in flight, %d lost)\n", r.Messages, r.Seconds, r.MsgsPerS, r.InFlight, r.Lost)
	fmt.Fprintf(out, "round trip p50 %.0fµs  p99 %.0fµs  p999 %.0fµs\n", r.RTTP50us, r.RTTP99us, r.RTTP999us)
	fmt.Fprintf(out, "members: %v\nnames (receivers): %v\n", r.Members, r.Names)
	return nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(float64(len(sorted))*p), len(sorted)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
