// Command bench compares dchan, across separate processes on loopback, with
// raw gRPC + gob, protoactor-go and NATS core, shape by shape, at the buffers
// users pick. See README.md.
//
//	go run . -rounds 3
//
// Every round runs each shape's candidates one after the other, so that
// each ratio compares figures measured minutes apart at most on a noisy
// machine; the table gives the median over the rounds and the range of the
// per-round ratios. Each candidate's processes are this binary run again
// with -role (the role flags below are for those runs).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// options are the suite's flags.
type options struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	memDuration time.Duration
	slow        time.Duration
	echoN       int
	shapes      string
	json        bool
	profileDir  string
	exe         string // this binary, run again for each process
}

// roleFlags configure one process of a candidate (see the role functions).
type roleFlags struct {
	listen     string
	join       string
	peers      string
	id         string
	name       string
	reply      string
	mode       string
	buf        int
	senders    int
	streams    int
	expect     int
	confirm    int
	n          int
	warm       int
	inflight   int
	pace       time.Duration
	scrape     time.Duration
	cpuprofile string
}

// roles are the processes the candidates are made of.
var roles = map[string]func(*child, *roleFlags) error{
	"raw-recv":    rawRecv,
	"raw-send":    rawSend,
	"raw-rtt":     rawRoundTrip,
	"dchan-recv":  dchanRecv,
	"dchan-send":  dchanSend,
	"dchan-echo":  dchanEcho,
	"dchan-rtt":   dchanRoundTrip,
	"dchan-serve": dchanServe,
	"dchan-req":   dchanRequest,
	"pa-echo":     paEcho,
	"pa-ping":     paPing,
	"nats-server": natsServer,
	"nats-sub":    natsSub,
	"nats-pub":    natsPub,

	"scale-victim": scaleVictim,
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every selected shape's candidates in turn")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "measuring window of each throughput and latency measurement")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "time discarded after the first value arrives")
	flag.DurationVar(&o.memDuration, "mem-duration", 20*time.Second, "how long slowrecv-mem samples the sender's memory")
	flag.DurationVar(&o.slow, "slow", 100*time.Microsecond, "slowrecv-mem: the receiver takes one value per this interval (on average)")
	flag.IntVar(&o.echoN, "echo-n", 1000000, "echo shapes: pings per measurement")
	flag.StringVar(&o.shapes, "shapes", "", "comma-separated shapes to run, by name or name prefix (\"oneway\"); all if empty")
	flag.BoolVar(&o.json, "json", false, "print every measurement and the summary as JSON instead of the table")
	flag.StringVar(&o.profileDir, "cpuprofile-dir", "", "make every process write a CPU profile of its measuring window into this directory")
	maxReplicas := flag.Int("max-replicas", -1, "with -scale: channel.WithMaxReplicas for every node (-1: the default, 9; 0: every node a replica)")
	scale := flag.String("scale", "", "instead of the shapes, the scale table: nodes:names cases, comma-separated, each a cluster in this process (e.g. 3:30000,65:100000)")

	var role string
	var rf roleFlags
	flag.StringVar(&role, "role", "", "role flags: run as this process of a candidate (the suite does)")
	flag.StringVar(&rf.listen, "listen", "127.0.0.1:0", "role flags: listen address")
	flag.StringVar(&rf.join, "join", "", "role flags: dchan: a member's address to join; none bootstraps")
	flag.StringVar(&rf.peers, "peers", "", "role flags: addresses (raw: comma-separated) or URL to connect to")
	flag.StringVar(&rf.id, "id", "", "role flags: dchan node ID")
	flag.StringVar(&rf.name, "name", "bench", "role flags: dchan channel name")
	flag.StringVar(&rf.reply, "reply", "", "role flags: dchan-recv echo: the name to send values back on")
	flag.StringVar(&rf.mode, "mode", "count", "role flags: receivers: count, or echo (send each value back)")
	flag.IntVar(&rf.buf, "buf", 1024, "role flags: dchan Send and Receive buffer")
	flag.IntVar(&rf.senders, "senders", 1, "role flags: dchan-send: goroutines, each with its own send channel")
	flag.IntVar(&rf.streams, "streams", 1, "role flags: raw-send: goroutines, each with its own streams")
	flag.IntVar(&rf.expect, "expect", 1, "role flags: dchan-send: receivers to wait for")
	flag.IntVar(&rf.confirm, "confirm", 0, "role flags: dchan-send: WithMessage handles outstanding; 0 sends bare values")
	flag.IntVar(&rf.n, "n", 0, "role flags: echo: pings; scale-victim: receivers")
	flag.IntVar(&rf.warm, "warm", 0, "role flags: echo: untimed pings first")
	flag.IntVar(&rf.inflight, "inflight", 1, "role flags: raw-rtt, dchan-req: requests in flight")
	flag.DurationVar(&rf.pace, "pace", 0, "role flags: receivers: take one value per this interval at most (on average)")
	flag.DurationVar(&rf.scrape, "scrape", 0, "role flags: dchan-recv, dchan-send: gather the node's dchanprom metrics this often, as a Prometheus scrape would")
	flag.StringVar(&rf.cpuprofile, "cpuprofile", "", "role flags: CPU profile file")
	flag.Parse()

	if role != "" {
		runRole(role, &rf)
		return
	}
	if *scale != "" {
		cases, err := parseScale(*scale)
		if err != nil {
			fail(err)
		}
		scaleProfile = rf.cpuprofile
		setScaleMaxReplicas(*maxReplicas)
		runScale(os.Stdout, cases)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		fail(err)
	}
	o.exe = exe
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			fail(err)
		}
	}
	run := selected(o.shapes)
	if len(run) == 0 {
		fail(fmt.Errorf("no shape matches -shapes %q", o.shapes))
	}
	ms := measure(&o, run)
	rows := summarise(run, ms)
	if o.json {
		if err := printJSON(os.Stdout, &o, ms, rows); err != nil {
			fail(err)
		}
		return
	}
	printTable(os.Stdout, &o, run, rows)
}

// runRole runs this process as one process of a candidate.
func runRole(name string, f *roleFlags) {
	role, ok := roles[name]
	if !ok {
		fail(fmt.Errorf("unknown role %q", name))
	}
	c := newChild(f.cpuprofile)
	if err := role(c, f); err != nil {
		c.fail(fmt.Errorf("%s: %w", name, err))
	}
	c.stopProfile()
}

// selected returns the shapes -shapes names, in the table's order.
func selected(names string) []shape {
	if names == "" {
		return shapes
	}
	var run []shape
	for _, s := range shapes {
		for n := range strings.SplitSeq(names, ",") {
			if n = strings.TrimSpace(n); n != "" && strings.HasPrefix(s.name, n) {
				run = append(run, s)
				break
			}
		}
	}
	return run
}

// measure runs the rounds. Within a round each shape's candidates run one
// after the other, starting one candidate further on each round, so that no
// candidate always runs first.
func measure(o *options, run []shape) []measurement {
	var ms []measurement
	for round := 1; round <= o.rounds; round++ {
		for _, s := range run {
			for i := range s.cands {
				c := s.cands[(i+round-1)%len(s.cands)]
				t := &trial{o: o, shape: s.name, cand: c.id, round: round}
				m, err := c.run(t)
				t.close()
				m.Shape, m.Candidate, m.Round = s.name, c.label, round
				if err != nil {
					m.Err = err.Error()
					fmt.Fprintf(os.Stderr, "round %d %s %s: FAILED: %v\n", round, s.name, c.label, err)
				} else {
					fmt.Fprintf(os.Stderr, "round %d %s %s: %s\n", round, s.name, c.label, brief(s.metric, m))
				}
				ms = append(ms, m)
			}
		}
	}
	return ms
}

// brief is a measurement as the progress lines show it.
func brief(mt metric, m measurement) string {
	switch mt {
	case p50Micros:
		return fmt.Sprintf("p50 %.1f µs p99 %.1f µs p999 %.1f µs", m.Lat.P50, m.Lat.P99, m.Lat.P999)
	case rssMB:
		return fmt.Sprintf("RSS %.1f → %.1f → %.1f MB, %s msgs/s", m.RSS[0], m.RSS[len(m.RSS)/2], m.RSS[len(m.RSS)-1], perSecond(m.Rate))
	}
	s := perSecond(m.Rate) + " msgs/s"
	if m.Dropped > 0 {
		s += fmt.Sprintf(", %d dropped", m.Dropped)
	}
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
