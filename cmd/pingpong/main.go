// Command pingpong is dchan's example cluster, and a deployable dchan node:
// nodes play ping/pong over named channels and report throughput and
// round-trip latency.
//
// With no flags it starts a 3-node cluster in this process: n1 requests
// pongs from the name "ping", which n2 and n3 serve (channel.Request and
// channel.Serve: each pong goes back to its ping's reply address, with no
// name or registry write per pinger).
//
//	go run ./cmd/pingpong                 # 3 nodes, 3 seconds, a line per second
//	go run ./cmd/pingpong -d 10s -json    # the report as one JSON line
//	go run ./cmd/pingpong -d 1m -metrics 127.0.0.1:9090   # and serve /metrics, /debug/dchan
//
// With any of -id, -listen, -join, -data or -bootstrap-expect it runs one
// node per process, so that terminals, hosts or pods form a real cluster;
// every node answers pings and sends its own:
//
//	pingpong -id n1 -listen 0.0.0.0:7001 -join 10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001 -bootstrap-expect 3 -d 0
//
// -d 0 runs until SIGINT or SIGTERM, then leaves the cluster gracefully.
// docs/deploy.md shows it under systemd and in Kubernetes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dchan-io/dchan/channel"
)

// Ping is requested from any server of "ping"; its Pong answers it.
type Ping struct {
	From string
	Seq  int64
	Sent int64 // unix nanoseconds on the pinger's clock
}

// Pong answers a Ping.
type Pong Ping

type options struct {
	duration        time.Duration // 0: until a signal (node mode)
	inflight        int
	asJSON          bool
	id              string
	listen          string
	advertise       string
	join            []string
	bootstrapExpect int
	joinTimeout     time.Duration
	token           string
	tlsCert         string
	tlsKey          string
	tlsCA           string
	data            string
	metrics         string // -metrics: the admin listener's address, or ""

	adminReady func(addr string) // tests: told the admin listener's address
}

// nodeFlags are the flags that select node mode (one node per process).
var nodeFlags = []string{"id", "listen", "advertise", "join", "data", "bootstrap-expect"}

func main() {
	o, nodeMode, err := parseFlags(flag.CommandLine, os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if nodeMode {
		err = runNode(ctx, o, os.Stdout, os.Stderr)
	} else {
		err = runLocalCluster(ctx, o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pingpong:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into options and reports whether it
// asks for node mode.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (options, bool, error) {
	var o options
	var join string
	fs.DurationVar(&o.duration, "d", 3*time.Second, "how long to play; 0 runs until SIGINT or SIGTERM (node mode)")
	fs.IntVar(&o.inflight, "inflight", 16, "pings in flight at once")
	fs.BoolVar(&o.asJSON, "json", false, "print the report as one JSON line")
	fs.StringVar(&o.id, "id", "", "node ID (node mode; default: random, kept in the data dir)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "listen address, for messages, Raft and health alike (e.g. 0.0.0.0:7001)")
	fs.StringVar(&o.advertise, "advertise", "", "address peers dial (default: the listen address; on 0.0.0.0, the host's single private IPv4)")
	fs.StringVar(&join, "join", "", "comma-separated members to join through, host:port; DNS names are looked up on every attempt (none: bootstrap)")
	fs.IntVar(&o.bootstrapExpect, "bootstrap-expect", 0, "wait for this many nodes started alike, then form one cluster of them")
	fs.DurationVar(&o.joinTimeout, "join-timeout", 60*time.Second, "give up joining (or forming) the cluster after this long")
	fs.StringVar(&o.token, "token", "", "cluster token checked on every RPC (default: $DCHAN_TOKEN)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "this node's certificate (PEM); with -tls-key and -tls-ca: mutual TLS for every byte between nodes")
	fs.StringVar(&o.tlsKey, "tls-key", "", "this node's private key (PEM)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "the cluster CA's certificate (PEM), which every peer's certificate must chain to")
	fs.StringVar(&o.data, "data", "", "data directory: Raft log, snapshots, node ID (none keeps everything in memory)")
	fs.StringVar(&o.metrics, "metrics", "", "serve /metrics (Prometheus) and /debug/dchan (JSON) over HTTP on this address, e.g. 127.0.0.1:9090; unauthenticated, keep it private")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	if fs.NArg() > 0 {
		return o, false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, p := range strings.Split(join, ",") {
		if p = strings.TrimSpace(p); p != "" {
			o.join = append(o.join, p)
		}
	}
	if o.token == "" {
		o.token = getenv("DCHAN_TOKEN")
	}
	nodeMode := false
	fs.Visit(func(f *flag.Flag) {
		for _, name := range nodeFlags {
			if f.Name == name {
				nodeMode = true
			}
		}
	})
	return o, nodeMode, nil
}

func validate(o options, nodeMode bool) error {
	switch {
	case o.duration < 0 || (o.duration == 0 && !nodeMode):
		return fmt.Errorf("duration %v must be positive (0 runs until a signal, in node mode)", o.duration)
	case o.inflight < 1:
		return fmt.Errorf("inflight %d must be at least 1", o.inflight)
	case nodeMode && o.joinTimeout <= 0:
		return fmt.Errorf("join timeout %v must be positive", o.joinTimeout)
	case (o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != "") && (o.tlsCert == "" || o.tlsKey == "" || o.tlsCA == ""):
		return errors.New("-tls-cert, -tls-key and -tls-ca go together")
	}
	return nil
}

// runLocalCluster starts three nodes in this process and plays from n1.
func runLocalCluster(ctx context.Context, o options, out io.Writer) error {
	if err := validate(o, false); err != nil {
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
	stopResponders := make([]func() error, 0, 2)
	for _, n := range nodes[1:] {
		stop, err := respond(n)
		if err != nil {
			return err
		}
		stopResponders = append(stopResponders, stop)
	}
	defer func() {
		for _, stop := range stopResponders {
			_ = stop()
		}
	}()
	if o.metrics != "" {
		a, err := startAdmin(o.metrics, nodes)
		if err != nil {
			return err
		}
		defer a.Close()
		announceAdmin(a, o, out)
	}
	return play(ctx, nodes[0], o, out)
}

// announceAdmin says where the admin listener is.
func announceAdmin(a *admin, o options, out io.Writer) {
	if !o.asJSON {
		fmt.Fprintf(out, "metrics on http://%s/metrics, state on http://%s/debug/dchan\n", a.Addr(), a.Addr())
	}
	if o.adminReady != nil {
		o.adminReady(a.Addr())
	}
}

// runNode runs one node of a multi-process cluster: it joins (or forms) the
// cluster within the join timeout, answers pings and plays its own until
// the duration ends or a signal arrives, then leaves gracefully.
func runNode(ctx context.Context, o options, out, logOut io.Writer) error {
	if err := validate(o, true); err != nil {
		return err
	}
	opts := []channel.Option{
		channel.WithListenAddr(o.listen),
		channel.WithAdvertiseAddr(o.advertise),
		channel.WithPeers(o.join...),
		channel.WithBootstrapExpect(o.bootstrapExpect),
		channel.WithTypes(Ping{}, Pong{}),
		channel.WithToken(o.token),
		channel.WithLogger(newLogger(logOut)),
	}
	if o.id != "" {
		opts = append(opts, channel.WithNodeID(o.id))
	}
	if o.data != "" {
		opts = append(opts, channel.WithDataDir(o.data))
	}
	if o.tlsCert != "" {
		server, client, err := loadTLS(o.tlsCert, o.tlsKey, o.tlsCA)
		if err != nil {
			return err
		}
		opts = append(opts, channel.WithTLS(server, client))
	}
	jctx, cancel := context.WithTimeout(ctx, o.joinTimeout)
	n, err := channel.New(jctx, opts...)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted while joining: %w", err)
		}
		return err
	}
	defer n.Close()
	if !o.asJSON {
		fmt.Fprintf(out, "node %s listening on %s, advertised as %s\n", n.ID(), n.Addr(), n.AdvertiseAddr())
	}
	stop, err := respond(n)
	if err != nil {
		return err
	}
	defer stop()
	if o.metrics != "" {
		a, err := startAdmin(o.metrics, []*channel.Node{n})
		if err != nil {
			return err
		}
		defer a.Close()
		announceAdmin(a, o, out)
	}
	return play(ctx, n, o, out)
}

// newLogger logs Info and above to w: a node's progress (joining,
// forming the cluster, elections) and its problems.
func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel))
}
