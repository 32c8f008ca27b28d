// Command pingpong is dchan's example cluster: nodes play ping/pong over
// named channels and report throughput and round-trip latency.
//
// With no flags it starts a 3-node cluster in this process: n1 sends pings
// to the name "ping", whose receivers live on n2 and n3; each answers on
// "pong.n1", which n1 receives.
//
//	go run ./cmd/pingpong                 # 3 nodes, 3 seconds, a line per second
//	go run ./cmd/pingpong -d 10s -json    # the report as one JSON line
//
// With -id it runs one node per process, so that terminals form a real
// cluster; every node answers pings and sends its own:
//
//	go run ./cmd/pingpong -id n1 -listen 127.0.0.1:7001 -data /tmp/dchan/n1
//	go run ./cmd/pingpong -id n2 -listen 127.0.0.1:7002 -join 127.0.0.1:7001 -data /tmp/dchan/n2
//	go run ./cmd/pingpong -id n3 -listen 127.0.0.1:7003 -join 127.0.0.1:7001 -data /tmp/dchan/n3
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dchan-io/dchan/channel"
)

// Ping goes from a pinger to any receiver of "ping"; Pong comes back on
// "pong.<From>".
type Ping struct {
	From string
	Seq  int64
	Sent int64 // unix nanoseconds on the pinger's clock
}

// Pong answers a Ping.
type Pong Ping

type report struct {
	Messages  int64    `json:"messages"`
	Seconds   float64  `json:"seconds"`
	MsgsPerS  float64  `json:"msgs_per_s"`
	RTTP50us  float64  `json:"rtt_p50_us"`
	RTTP99us  float64  `json:"rtt_p99_us"`
	RTTP999us float64  `json:"rtt_p999_us"`
	InFlight  int      `json:"in_flight"`
	Members   []string `json:"members"`
	Names     []string `json:"names"`
}

type options struct {
	duration time.Duration
	inflight int
	asJSON   bool
	id       string
	listen   string
	join     string
	data     string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "d", 3*time.Second, "how long to play")
	flag.IntVar(&o.inflight, "inflight", 16, "pings in flight at once")
	flag.BoolVar(&o.asJSON, "json", false, "print the report as one JSON line")
	flag.StringVar(&o.id, "id", "", "run one node with this ID (multi-process mode)")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:0", "listen address (with -id)")
	flag.StringVar(&o.join, "join", "", "address of any member to join (with -id; none bootstraps)")
	flag.StringVar(&o.data, "data", "", "data directory (with -id; none keeps everything in memory)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if o.id == "" {
		err = runLocalCluster(ctx, o, os.Stdout)
	} else {
		err = runNode(ctx, o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(1)
	}
}

func validate(o options) error {
	if o.duration <= 0 {
		return fmt.Errorf("duration %v must be positive", o.duration)
	}
	if o.inflight < 1 {
		return fmt.Errorf("inflight %d must be at least 1", o.inflight)
	}
	return nil
}

// runLocalCluster starts three nodes in this process and plays from n1.
func runLocalCluster(ctx context.Context, o options, out io.Writer) error {
	if err := validate(o); err != nil {
		return err
	}
	var nodes []*channel.Node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			_ = nodes[i].Close()
		}
	}()
	for i := 1; i <= 3; i++ {
		opts := []channel.Option{channel.WithNodeID(fmt.Sprintf("n%d", i)), channel.WithTypes(Ping{}, Pong{})}
		if i > 1 {
			opts = append(opts, channel.WithPeers(nodes[0].Addr()))
		}
		n, err := channel.New(ctx, opts...)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	stopResponders := make([]func(), 0, 2)
	for _, n := range nodes[1:] {
		stop, err := respond(n)
		if err != nil {
			return err
		}
		stopResponders = append(stopResponders, stop)
	}
	defer func() {
		for _, stop := range stopResponders {
			stop()
		}
	}()
	return play(ctx, nodes[0], o, out)
}

// runNode runs one node of a multi-process cluster: it answers pings and
// plays its own.
func runNode(ctx context.Context, o options, out io.Writer) error {
	if err := validate(o); err != nil {
		return err
	}
	opts := []channel.Option{channel.WithNodeID(o.id), channel.WithListenAddr(o.listen), channel.WithTypes(Ping{}, Pong{})}
	if o.join != "" {
		opts = append(opts, channel.WithPeers(o.join))
	}
	if o.data != "" {
		opts = append(opts, channel.WithDataDir(o.data))
	}
	n, err := channel.New(ctx, opts...)
	if err != nil {
		return err
	}
	defer n.Close()
	if !o.asJSON {
		fmt.Fprintf(out, "node %s listening on %s\n", n.ID(), n.Addr())
	}
	stop, err := respond(n)
	if err != nil {
		return err
	}
	defer stop()
	return play(ctx, n, o, out)
}

// respond answers every Ping received on "ping" with a Pong to its sender.
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
			out <- Pong(p)
		}
	}()
	return func() {
		_ = closePings()
		<-done
	}, nil
}

// play sends pings from n with o.inflight outstanding and measures the
// round trips until o.duration passes.
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

	var (
		mu   sync.Mutex
		rtts = make([]time.Duration, 0, 1<<20)
	)
	start := time.Now()
	deadline := start.Add(o.duration)
	var seq int64
	send := func() {
		seq++
		pings <- Ping{From: n.ID(), Seq: seq, Sent: time.Now().UnixNano()}
	}
	for i := 0; i < o.inflight; i++ {
		send()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := 0
	outstanding := o.inflight
	for outstanding > 0 {
		select {
		case p, ok := <-pongs:
			if !ok {
				return errors.New("pong channel closed")
			}
			mu.Lock()
			rtts = append(rtts, time.Duration(time.Now().UnixNano()-p.Sent))
			mu.Unlock()
			outstanding--
			if time.Now().Before(deadline) && ctx.Err() == nil {
				send()
				outstanding++
			}
		case now := <-tick.C:
			if !o.asJSON {
				mu.Lock()
				c := len(rtts)
				mu.Unlock()
				fmt.Fprintf(out, "%6.1fs  %9d round trips  %9.0f/s\n", now.Sub(start).Seconds(), c, float64(c-last))
				last = c
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no pong for 10s with %d pings outstanding", outstanding)
		}
	}
	elapsed := time.Since(start)
	slices.Sort(rtts)
	cl := n.Cluster()
	r := report{
		Messages:  int64(2 * len(rtts)),
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
	fmt.Fprintf(out, "\nmessages %d in %.1fs: %.0f msgs/s (%d pings in flight)\n", r.Messages, r.Seconds, r.MsgsPerS, r.InFlight)
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
