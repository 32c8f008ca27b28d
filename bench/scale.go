package main

// The scale table: clusters of many nodes in this one process, as the
// scale issue measured them through the public API. The first node
// bootstraps, the others join through it; then receivers are opened 64
// at a time, spread over the nodes (Receive(name, 1)), each returning
// once its registration is committed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dchan-io/dchan/channel"
)

// scaleProfile, if set (-cpuprofile), is where the first case's
// registrations are profiled.
var scaleProfile string

// scaleCase is one row: nodes in the cluster, names registered.
type scaleCase struct{ nodes, names int }

// parseScale reads "3:30000,10:2000" into cases.
func parseScale(spec string) ([]scaleCase, error) {
	var cs []scaleCase
	for _, part := range strings.Split(spec, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < 1 || m < 0 {
			return nil, fmt.Errorf("-scale %q: want nodes:names[,nodes:names...], e.g. 3:30000,65:100000", spec)
		}
		cs = append(cs, scaleCase{n, m})
	}
	return cs, nil
}

// scaleResult is one row's figures.
type scaleResult struct {
	scaleCase
	formed       time.Duration // first node started to the last joined
	regsPerSec   float64
	heapMB       float64 // the whole process, after GC, with every receiver open
	perNodeMB    float64
	bytesPerName float64 // heap added by the registrations, per name per replica
	rssMB        float64 // the process's resident memory then

	joinServe time.Duration // a new node: New called to its first value accepted
	expiry    expiryResult
	bcastP50  time.Duration // publish to the last subscriber's receipt
	bcastMax  time.Duration
	err       error
}

// runScale measures each case in turn and prints the tables to w.
func runScale(w io.Writer, cases []scaleCase) {
	fmt.Fprintf(w, "dchan scale: nodes in one process, %s %s/%s, %d CPUs\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	var rs []scaleResult
	for _, c := range cases {
		rs = append(rs, scaleOne(c))
	}
	fmt.Fprintln(w, "| nodes | names | cluster formed | registrations | heap, whole process | RSS | per node | heap added per name per node (receivers included) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(w, "| %d | %d | failed: %v | | | | | |\n", r.nodes, r.names, r.err)
			continue
		}
		fmt.Fprintf(w, "| %d | %d | %.2f s | %.0f /s | %.0f MB | %.0f MB | %.1f MB | %.0f B |\n",
			r.nodes, r.names, r.formed.Seconds(), r.regsPerSec, r.heapMB, r.rssMB, r.perNodeMB, r.bytesPerName)
	}
	fmt.Fprintf(w, "\nWith every name registered: a node joining and serving; a node of %d receivers killed (SIGKILL, a process of its own; failure detection grace 3 s, the default); a value published to a subscriber on every node.\n\n",
		victimReceivers)
	fmt.Fprintln(w, "| nodes | names | join, to the first value accepted | dead node's receivers gone on every node | its in-flight handles failed | broadcast, full coverage p50 / max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		fmt.Fprintf(w, "| %d | %d | %.2f s | %s | %s | %.1f / %.1f ms |\n",
			r.nodes, r.names, r.joinServe.Seconds(), r.expiry.gone, r.expiry.handles,
			float64(r.bcastP50.Microseconds())/1e3, float64(r.bcastMax.Microseconds())/1e3)
	}
}

// scaleOpts are options every node of the scale table gets (-max-replicas).
var scaleOpts []channel.Option

// setScaleMaxReplicas gives every node of the scale table
// channel.WithMaxReplicas(n), unless n is negative.
func setScaleMaxReplicas(n int) {
	if n >= 0 {
		scaleOpts = append(scaleOpts, channel.WithMaxReplicas(n))
	}
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func scaleOne(c scaleCase) (r scaleResult) {
	r.scaleCase = c
	nodes := make([]*channel.Node, 0, c.nodes+1)
	defer func() {
		// Forced past a second: a graceful close of every receiver is
		// not what is measured.
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = n.Shutdown(ctx)
			})
		}
		wg.Wait()
	}()
	start := time.Now()
	for i := range c.nodes {
		opts := append([]channel.Option{channel.WithNodeID(fmt.Sprintf("s%d", i+1)), channel.WithListenAddr("127.0.0.1:0")}, scaleOpts...)
		if i > 0 {
			opts = append(opts, channel.WithPeers(nodes[0].Addr()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
		n, err := channel.New(ctx, opts...)
		cancel()
		if err != nil {
			r.err = fmt.Errorf("node %d: %w", i+1, err)
			return r
		}
		nodes = append(nodes, n)
	}
	r.formed = time.Since(start)

	before := heapNow()
	const inFlight = 64
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	stopProfile := func() {}
	if scaleProfile != "" {
		if f, err := os.Create(scaleProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				stopProfile = func() {
					pprof.StopCPUProfile()
					f.Close()
				}
			}
			scaleProfile = ""
		}
	}
	start = time.Now()
	for range inFlight {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= c.names {
					return
				}
				n := nodes[i%len(nodes)]
				if _, _, err := n.Receive(fmt.Sprintf("scale.%d", i), 1); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProfile()
	if err, _ := failed.Load().(error); err != nil {
		r.err = err
		return r
	}
	r.regsPerSec = float64(c.names) / elapsed.Seconds()
	after := heapNow()
	r.heapMB = float64(after) / 1e6
	r.rssMB, _ = residentMB(os.Getpid())
	r.perNodeMB = r.heapMB / float64(c.nodes)
	if c.names == 0 {
		return r
	}
	r.bytesPerName = float64(int64(after)-int64(before)) / float64(c.names) / float64(c.nodes)

	took, err := joinAndServe(nodes[0].Addr(), "j1", "scale.1")
	if err != nil {
		r.err = err
		return r
	}
	r.joinServe = took
	if r.expiry, err = expireVictim(nodes); err != nil {
		r.err = err
		return r
	}
	if r.bcastP50, r.bcastMax, err = coverage(nodes); err != nil {
		r.err = err
	}
	return r
}

// joinAndServe starts a node that joins through addr and sends name one
// value: it returns the time from its start to the value's acceptance.
// The node leaves again before it returns. (The heap a replica holds per
// name is registry's BenchmarkBytesPerName: in this process a join's heap
// delta is lost among the other nodes' log compactions.)
func joinAndServe(addr, id, name string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	n, err := channel.New(ctx, channel.WithNodeID(id), channel.WithListenAddr("127.0.0.1:0"), channel.WithPeers(addr))
	if err != nil {
		return 0, fmt.Errorf("joining %s: %w", id, err)
	}
	defer closeNode(n)
	if err := n.SendContext(ctx, name, 1); err != nil {
		return 0, fmt.Errorf("%s sending to %s: %w", id, name, err)
	}
	return time.Since(start), nil
}

// victimReceivers is how many receivers the killed node holds.
const victimReceivers = 10_000

// expiryResult is what the kill of a node showed.
type expiryResult struct {
	gone    string // time to its receivers gone on every node
	handles string // time to the failure of the last handle in flight to it
}

// expireVictim starts a node of victimReceivers receivers as a process of
// its own, holds WithMessage handles in flight to one of them, kills the
// process and times the cluster's recovery.
func expireVictim(nodes []*channel.Node) (expiryResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return expiryResult{}, err
	}
	t := &trial{o: &options{exe: exe}, shape: "scale", cand: "victim"}
	defer t.close()
	base := nodes[0].Stats().Registry.Names
	p, err := t.start("scale-victim", "-join", nodes[0].Addr(), "-id", "victim", "-n", fmt.Sprint(victimReceivers))
	if err != nil {
		return expiryResult{}, err
	}
	var counts []int // each node's count of names, as last seen
	namesOnAll := func(want int) bool {
		counts = counts[:0]
		all := true
		for _, n := range nodes {
			c := n.Stats().Registry.Names
			counts = append(counts, c)
			all = all && c == want
		}
		return all
	}
	deadline := time.Now().Add(startupTimeout)
	for !namesOnAll(base + victimReceivers) {
		if time.Now().After(deadline) {
			return expiryResult{}, fmt.Errorf("the victim's %d names did not reach every node: want %d names, the nodes hold %v",
				victimReceivers, base+victimReceivers, counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Values to a receiver that never reads: the first few fill its
	// buffer, the rest stay in flight.
	in, closeIn, err := nodes[0].Send("victim.0", 1)
	if err != nil {
		return expiryResult{}, err
	}
	defer closeIn()
	var handles []*channel.Message
	for i := range 16 {
		m := channel.WithMessage(i, time.Minute)
		in <- m
		handles = append(handles, m)
	}
	time.Sleep(200 * time.Millisecond) // the accepted ones are confirmed
	var pending []*channel.Message
	for _, m := range handles {
		if errors.Is(m.Err(), channel.ErrPending) {
			pending = append(pending, m)
		}
	}
	expiredBefore := nodes[0].Stats().Registry.Expired
	killed := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		return expiryResult{}, err
	}
	var res expiryResult
	var handlesDone time.Duration
	for _, m := range pending {
		select {
		case <-m.Done():
			handlesDone = time.Since(killed)
		case <-time.After(time.Minute):
			return expiryResult{}, fmt.Errorf("a handle in flight to the killed node did not end within a minute")
		}
	}
	res.handles = fmt.Sprintf("%.2f s (%d of %d)", handlesDone.Seconds(), len(pending), len(handles))
	if len(pending) == 0 {
		res.handles = "none in flight"
	}
	// When the first node's replica counts the victim expired, and when
	// every replica has dropped its names.
	var expired time.Duration
	for !namesOnAll(base) {
		if expired == 0 && nodes[0].Stats().Registry.Expired > expiredBefore {
			expired = time.Since(killed)
		}
		if time.Since(killed) > time.Minute {
			return expiryResult{}, fmt.Errorf("the killed node's names were still listed after a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.gone = fmt.Sprintf("%.2f s (declared dead at %.2f s)", time.Since(killed).Seconds(), expired.Seconds())
	return res, nil
}

// scaleVictim is the killed node's role: it joins, opens -n receivers
// that never read, reports ready and waits to be killed.
func scaleVictim(c *child, f *roleFlags) error {
	n, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= f.n {
					return
				}
				if _, _, err := n.Receive(fmt.Sprintf("victim.%d", i), 1); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	c.ready(n.Addr())
	<-c.stop
	closeNode(n)
	return nil
}

// coverageRounds is how many values coverage publishes.
const coverageRounds = 20

// coverage subscribes on every node and publishes coverageRounds values
// from the first, one at a time: the p50 and the longest of the times
// from a Publish to the last subscriber's receipt.
func coverage(nodes []*channel.Node) (p50, longest time.Duration, err error) {
	const name = "scale.broadcast"
	arrived := make(chan struct{}, len(nodes)*coverageRounds)
	var closers []channel.CloseFunc
	defer func() {
		for _, cl := range closers {
			_ = cl()
		}
	}()
	for _, n := range nodes {
		out, cl, err := n.Subscribe(name, coverageRounds)
		if err != nil {
			return 0, 0, err
		}
		closers = append(closers, cl)
		go func() {
			for range out {
				arrived <- struct{}{}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	for _, n := range nodes {
		if err := n.Sync(ctx); err != nil {
			return 0, 0, err
		}
	}
	pub, closePub, err := nodes[0].Publish(name, 1)
	if err != nil {
		return 0, 0, err
	}
	defer closePub()
	var times []time.Duration
	for i := range coverageRounds {
		start := time.Now()
		pub <- i
		for range nodes {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				return 0, 0, fmt.Errorf("broadcast %d did not reach every node within 10 s", i)
			}
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], times[len(times)-1], nil
}
