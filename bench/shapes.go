package main

// The shapes the suite measures. Each shape's first candidate is its
// reference: every other candidate's figure is divided by the reference's
// figure of the same round.

import "strconv"

// metric is what a shape's figure is, and so how to read its ratios.
type metric int

const (
	msgsPerSec metric = iota // values per second: higher is better, a ratio above 1× beats the reference
	p50Micros                // round-trip p50 in µs: lower is better, a ratio above 1× is slower
	rssMB                    // the sender's resident memory at the end, MB: lower is better
)

type shape struct {
	name   string
	about  string // what its rows measure
	metric metric
	cands  []candidate // the first is the reference
}

type candidate struct {
	id    string // in file names: CPU profiles
	label string // in the table
	run   func(*trial) (measurement, error)
}

var shapes = []shape{
	oneWay(128),
	oneWay(1024),
	oneWay(4096),
	echo(1024),
	echo(4096),
	{
		name: "withmessage-1024",
		about: "one-way throughput at buffer 1024, every value sent as channel.WithMessage(v, 30s) " +
			"with 1024 handles outstanding (the sender waits on the oldest's Done before sending another); " +
			"values received per second, against plain one-way in the same round",
		metric: msgsPerSec,
		cands: []candidate{
			{"dchan", "dchan, bare values", func(t *trial) (measurement, error) { return dchanOneWay(t, 1024) }},
			{"dchan-withmessage", "dchan, WithMessage", func(t *trial) (measurement, error) {
				return dchanOneWay(t, 1024, "-confirm", "1024")
			}},
		},
	},
	{
		name: "metrics-1024",
		about: "one-way throughput at buffer 1024 with both nodes' dchanprom collectors gathered and " +
			"encoded every second (-scrape 1s), as a Prometheus server scraping them would, against " +
			"the same without; values received per second",
		metric: msgsPerSec,
		cands: []candidate{
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanOneWay(t, 1024) }},
			{"dchan-scraped", "dchan, scraped every 1 s", func(t *trial) (measurement, error) {
				scrape := []string{"-scrape", "1s"}
				return dchanOneWayWith(t, 1024, scrape, scrape)
			}},
		},
	},
	{
		name: "rtt",
		about: "request/reply, one in flight: the requester's round-trip p50, p99 and p999. " +
			"dchan Request/Serve: node A calls channel.Request on \"req\", node B answers with channel.Serve; " +
			"dchan, two names: node A sends on \"req\", node B receives it and sends it back on \"rep.A\", " +
			"buffers 1024; raw: one long-lived bidi stream, one value per frame each way",
		metric: p50Micros,
		cands: []candidate{
			{"raw", "raw gRPC bidi-stream echo", rawRequestReply},
			{"dchan-request", "dchan, Request/Serve", func(t *trial) (measurement, error) { return dchanRequestServe(t, 1024, 1) }},
			{"dchan", "dchan, two names", func(t *trial) (measurement, error) { return dchanRequestReply(t, 1024) }},
		},
	},
	{
		name: "request-256",
		about: "request/reply throughput with 256 requests in flight: requests answered per second. " +
			"dchan: 256 goroutines on node A each calling channel.Request on \"req\" in turn, node B's " +
			"channel.Serve answering (buffer 1024, 64 handlers at once); raw: one bidi stream with 256 " +
			"values pipelined to an echoing server",
		metric: msgsPerSec,
		cands: []candidate{
			{"raw", "raw gRPC bidi-stream echo, 256 pipelined", func(t *trial) (measurement, error) { return rawPipelined(t, 256) }},
			{"dchan", "dchan, Request/Serve", func(t *trial) (measurement, error) { return dchanRequestServe(t, 1024, 256) }},
		},
	},
	{
		name: "m2m-3x3",
		about: "3 sending processes to 3 receiving processes, buffers 1024; values received per second by " +
			"the three together. dchan: one cluster of 6 nodes, one name; raw: each sender has a stream " +
			"to each receiver and sends its frames to them in turn",
		metric: msgsPerSec,
		cands: []candidate{
			{"raw", "raw gRPC + gob", func(t *trial) (measurement, error) { return rawManyToMany(t, 3, 3) }},
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanManyToMany(t, 3, 3, 1024) }},
		},
	},
	{
		name: "senders-8",
		about: "8 goroutines in one process, each with its own send channel (raw: its own client stream " +
			"on the one connection), to one receiving process, buffers 1024; values received per second",
		metric: msgsPerSec,
		cands: []candidate{
			{"raw", "raw gRPC + gob, 8 streams", func(t *trial) (measurement, error) { return rawOneWay(t, 8) }},
			{"dchan", "dchan, 8 Send channels", func(t *trial) (measurement, error) {
				return dchanOneWay(t, 1024, "-senders", "8")
			}},
		},
	},
	{
		name: "nats-1024",
		about: "one-way throughput against NATS core (embedded nats-server in its own process, a publisher " +
			"and a queue subscriber, 40-byte values); dchan at buffers 1024; values received per second",
		metric: msgsPerSec,
		cands: []candidate{
			{"nats", "NATS core", natsOneWay},
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanOneWay(t, 1024) }},
		},
	},
	{
		name: "slowrecv-mem",
		about: "a receiver paced at one value per 100 µs (-slow; 10 k values/s, ~100× slower than a sender can go), " +
			"buffers 1024: the sender's resident memory at the start, halfway and the end of -mem-duration " +
			"(flat = bounded; the ratio is of the sender's), the receiver's at the same times, and the values received per second",
		metric: rssMB,
		cands: []candidate{
			{"raw", "raw gRPC + gob", rawSlowReceiver},
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanSlowReceiver(t, 1024) }},
		},
	},
}

func oneWay(buf int) shape {
	return shape{
		name: "oneway-" + strconv.Itoa(buf),
		about: "one-way throughput: one sending process writes values as fast as it can, one receiving " +
			"process counts them; dchan's Send and Receive with buffers " + strconv.Itoa(buf) + ", raw gRPC batching " +
			"128 values per frame; values received per second",
		metric: msgsPerSec,
		cands: []candidate{
			{"raw", "raw gRPC + gob", func(t *trial) (measurement, error) { return rawOneWay(t, 1) }},
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanOneWay(t, buf) }},
		},
	}
}

func echo(buf int) shape {
	return shape{
		name: "echo-" + strconv.Itoa(buf),
		about: "protoactor-go's remote-benchmark shape: node A sends -echo-n pings as fast as the windows " +
			"allow, node B echoes each; pings and pongs per second from the first ping to the last pong " +
			"(after -echo-n/100 untimed). dchan: \"ping\" and \"pong\" with buffers " + strconv.Itoa(buf) +
			"; protoactor-go: its example's messages and mailboxes, default remote config",
		metric: msgsPerSec,
		cands: []candidate{
			{"protoactor", "protoactor-go", protoactorEcho},
			{"dchan", "dchan", func(t *trial) (measurement, error) { return dchanEchoPair(t, buf) }},
		},
	}
}
