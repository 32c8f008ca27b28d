package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/dchan-io/dchan/channel"
)

// lostAfter is how long a ping waits for its pong before it counts as
// lost and another takes its place: values are delivered at most once, so
// a ping to a node that went away mid-flight may never be answered.
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

// respond answers every Ping received on "ping" with a Pong to its sender.
// A pong whose send channel is full (its pinger has gone, and nobody
// receives its pongs) is dropped, so that one absent pinger never stops
// the answers to the others.
func respond(n *channel.Node) (stop func(), err error) {
	pings, closePings, err := channel.ReceiveOf[Ping](n, "ping", 256)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		senders := map[string]chan<- any{}
		var closers []channel.CloseFunc
		defer func() {
			for _, c := range closers {
				_ = c()
			}
		}()
		for p := range pings {
			out, ok := senders[p.From]
			if !ok {
				var closeOut channel.CloseFunc
				var serr error
				out, closeOut, serr = n.Send("pong."+p.From, 256)
				if serr != nil {
					continue
				}
				senders[p.From] = out
				closers = append(closers, closeOut)
			}
			select {
			case out <- Pong(p):
			default:
			}
		}
	}()
	return func() {
		_ = closePings()
		<-done
	}, nil
}

// play sends pings from n with o.inflight outstanding and measures the
// round trips until o.duration passes (or, for 0, until ctx ends).
func play(ctx context.Context, n *channel.Node, o options, out io.Writer) error {
	pongs, closePongs, err := channel.ReceiveOf[Pong](n, "pong."+n.ID(), 1024)
	if err != nil {
		return err
	}
	defer closePongs()
	pings, closePings, err := n.Send("ping", 1024)
	if err != nil {
		return err
	}
	defer closePings()

	rtts := make([]time.Duration, 0, 1<<16)
	pending := make(map[int64]time.Time, o.inflight) // seq → sent
	var seq, lost int64
	start := time.Now()
	var deadline <-chan time.Time
	if o.duration > 0 {
		t := time.NewTimer(o.duration)
		defer t.Stop()
		deadline = t.C
	}
	playing := true
	send := func() bool {
		seq++
		now := time.Now()
		select {
		case pings <- Ping{From: n.ID(), Seq: seq, Sent: now.UnixNano()}:
			pending[seq] = now
			return true
		case <-ctx.Done():
			return false
		}
	}
	for range o.inflight {
		if !send() {
			break
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := 0
	var cl channel.Cluster // the cluster as it was when playing ended
	for playing || len(pending) > 0 {
		select {
		case p, ok := <-pongs:
			if !ok {
				return fmt.Errorf("pong channel closed")
			}
			if _, ok := pending[p.Seq]; !ok {
				continue // counted as lost already
			}
			delete(pending, p.Seq)
			rtts = append(rtts, time.Duration(time.Now().UnixNano()-p.Sent))
			if playing {
				send()
			}
		case now := <-tick.C:
			for s, sent := range pending {
				if now.Sub(sent) > lostAfter {
					delete(pending, s)
					lost++
					if playing {
						send()
					}
				}
			}
			if !o.asJSON {
				fmt.Fprintf(out, "%6.1fs  %9d round trips  %9d/s  %d lost\n", now.Sub(start).Seconds(), len(rtts), len(rtts)-last, lost)
				last = len(rtts)
			}
		case <-deadline:
			playing, deadline = false, nil
			cl = n.Cluster()
		case <-ctx.Done():
			// Interrupted: report what was played.
			if playing {
				cl = n.Cluster()
			}
			lost += int64(len(pending))
			clear(pending)
			playing = false
		}
	}
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
