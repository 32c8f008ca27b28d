package main

// The scale table: clusters of many nodes in this one process, as the
// scale issue measured them through the public API. The first node
// bootstraps, the others join through it; then receivers are opened 64
// at a time, spread over the nodes (Receive(name, 1)), each returning
// once its registration is committed.

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
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
	err          error
}

// runScale measures each case in turn and prints the table to w.
func runScale(w io.Writer, cases []scaleCase) {
	fmt.Fprintf(w, "dchan scale: nodes in one process, %s %s/%s, %d CPUs\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintln(w, "| nodes | names | cluster formed | registrations | heap, whole process | per node | heap added per name per node (receivers included) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, c := range cases {
		r := scaleOne(c)
		if r.err != nil {
			fmt.Fprintf(w, "| %d | %d | failed: %v | | | | |\n", c.nodes, c.names, r.err)
			continue
		}
		fmt.Fprintf(w, "| %d | %d | %.2f s | %.0f /s | %.0f MB | %.1f MB | %.0f B |\n",
			c.nodes, c.names, r.formed.Seconds(), r.regsPerSec, r.heapMB, r.perNodeMB, r.bytesPerName)
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
	nodes := make([]*channel.Node, 0, c.nodes)
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
		opts := []channel.Option{channel.WithNodeID(fmt.Sprintf("s%d", i+1)), channel.WithListenAddr("127.0.0.1:0")}
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
	if scaleProfile != "" {
		if f, err := os.Create(scaleProfile); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer f.Close()
				defer pprof.StopCPUProfile()
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
	if err, _ := failed.Load().(error); err != nil {
		r.err = err
		return r
	}
	r.regsPerSec = float64(c.names) / elapsed.Seconds()
	after := heapNow()
	r.heapMB = float64(after) / 1e6
	r.perNodeMB = r.heapMB / float64(c.nodes)
	if c.names > 0 {
		r.bytesPerName = float64(int64(after)-int64(before)) / float64(c.names) / float64(c.nodes)
	}
	return r
}
