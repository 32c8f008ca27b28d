package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A role is one process of a candidate: a receiver, a sender, a server. It
// takes commands from the suite one per line on stdin and reports to it as
// JSON lines on file descriptor 3, so that nothing a library prints on
// stdout or stderr can be taken for a report. Closing stdin tells the role
// to stop.
//
// Commands:
//
//	count  report the counters
//	mark   the same; the first mark also starts the CPU profile (-cpuprofile),
//	       the second stops it, so that a profile covers the measured window
//	       and, with latencies, the latencies recorded since the previous mark

// report is one line from a role to the suite.
type report struct {
	Kind    string   `json:"kind"`              // ready, count, mark, result, fail
	Addr    string   `json:"addr,omitempty"`    // ready: the address others reach this process at
	Count   int64    `json:"count"`             // values counted so far (received, sent or round trips)
	Nanos   int64    `json:"nanos"`             // when, in the role's monotonic clock
	Dropped int64    `json:"dropped,omitempty"` // values lost (NATS slow consumer) or not confirmed
	Lat     *latency `json:"lat,omitempty"`     // mark: round trips since the previous mark
	Seconds float64  `json:"seconds,omitempty"` // result: how long the fixed count took
	Err     string   `json:"err,omitempty"`     // fail
}

// latency summarises round-trip times, in microseconds.
type latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// child is a role's link to the suite and its counters.
type child struct {
	start   time.Time
	count   atomic.Int64
	dropped atomic.Int64
	stopped atomic.Bool
	stop    chan struct{} // closed when stdin closes

	outMu sync.Mutex
	out   *json.Encoder

	latMu sync.Mutex
	lats  []time.Duration

	profMu   sync.Mutex
	profile  string   // CPU profile file, "" for none
	marks    int      // marks seen
	profFile *os.File // open while profiling
}

// newChild connects to the suite and starts reading its commands.
func newChild(profile string) *child {
	c := &child{
		start:   time.Now(),
		stop:    make(chan struct{}),
		out:     json.NewEncoder(os.NewFile(3, "reports")),
		profile: profile,
	}
	go c.commands()
	return c
}

func (c *child) commands() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "count":
			c.send(c.counters("count"))
		case "mark":
			r := c.counters("mark")
			r.Lat = c.takeLatencies()
			c.toggleProfile()
			c.send(r)
		}
	}
	c.stopProfile()
	c.stopped.Store(true)
	close(c.stop)
}

// stopping reports whether the suite has told the role to stop.
func (c *child) stopping() bool { return c.stopped.Load() }

func (c *child) counters(kind string) report {
	return report{Kind: kind, Count: c.count.Load(), Dropped: c.dropped.Load(), Nanos: time.Since(c.start).Nanoseconds()}
}

func (c *child) send(r report) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	_ = c.out.Encode(r)
}

// ready tells the suite the role has started; addr is where others reach it.
func (c *child) ready(addr string) { c.send(report{Kind: "ready", Addr: addr}) }

// result reports a fixed-count run: count values in d.
func (c *child) result(count int64, d time.Duration) {
	c.send(report{Kind: "result", Count: count, Seconds: d.Seconds()})
}

// fail reports err and ends the process.
func (c *child) fail(err error) {
	c.stopProfile()
	c.send(report{Kind: "fail", Err: err.Error()})
	os.Exit(1)
}

// recordLatency adds one round trip.
func (c *child) recordLatency(d time.Duration) {
	c.latMu.Lock()
	c.lats = append(c.lats, d)
	c.latMu.Unlock()
}

// takeLatencies summarises the round trips recorded since the last call.
func (c *child) takeLatencies() *latency {
	c.latMu.Lock()
	lats := c.lats
	c.lats = nil
	c.latMu.Unlock()
	if len(lats) == 0 {
		return nil
	}
	slices.Sort(lats)
	at := func(q float64) float64 {
		return float64(lats[min(int(q*float64(len(lats))), len(lats)-1)].Nanoseconds()) / 1e3
	}
	return &latency{N: len(lats), P50: at(0.50), P99: at(0.99), P999: at(0.999)}
}

// toggleProfile starts the CPU profile at the first mark and stops it at
// the second.
func (c *child) toggleProfile() {
	c.profMu.Lock()
	c.marks++
	marks := c.marks
	if c.profile != "" && marks == 1 {
		f, err := os.Create(c.profile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			c.profMu.Unlock()
			c.fail(fmt.Errorf("cpu profile: %w", err))
		}
		c.profFile = f
	}
	c.profMu.Unlock()
	if marks == 2 {
		c.stopProfile()
	}
}

func (c *child) stopProfile() {
	c.profMu.Lock()
	defer c.profMu.Unlock()
	if c.profFile != nil {
		pprof.StopCPUProfile()
		_ = c.profFile.Close()
		c.profFile = nil
	}
}
