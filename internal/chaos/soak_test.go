package chaos

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dchan-io/dchan/channel"
	"github.com/dchan-io/dchan/channel/channeltest"
)

// soakValue is what the soak sends: a sender, a sequence and some payload.
type soakValue struct {
	Sender int
	Seq    uint64
	Pad    []byte
}

// Figures of the slow receiver soak.
const (
	soakSenders    = 40                    // sending goroutines, each with its own send channel
	soakOfferEvery = 20 * time.Millisecond // each sender offers a value this often: 2000 values/s in all...
	soakDrainEvery = 50 * time.Millisecond // ...to a receiver that takes one value this often: 20/s
	soakBuf        = 16
	// soakHeapBound bounds the test process's heap in use: two nodes, their
	// links and 40 senders, all in this process, under the race detector.
	soakHeapBound = 32 << 20
	// soakGoroutineSlack bounds the goroutines beyond those running when
	// the load starts.
	soakGoroutineSlack = 200
)

// TestSlowReceiverSoak runs two in-process nodes: 40 senders on one offer
// values WithMessage (36 of them giving up after 20ms, 4 waiting up to 5s)
// to a name whose
// only receiver, on the other, takes one value every 50ms — 100 times more
// offered than drained. It asserts that the process's heap in use and
// goroutines stay under fixed bounds while it runs (backpressure: nothing
// buffers the excess), that no value is received twice, that per-sender
// order holds, and that every value whose handle reported success is
// received.
func TestSlowReceiverSoak(t *testing.T) {
	duration := envDuration(t, "DCHAN_CHAOS_SOAK", 10*time.Second)
	nodes := channeltest.Cluster(t, 2, channel.WithTypes(soakValue{}))
	in, closeIn, err := nodes[1].Receive("soak", soakBuf)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		received  = make(map[[2]uint64]int)
		last      = make(map[int]uint64)
		fifo      []string
		confirmed [][2]uint64
	)
	var fast atomic.Bool // the load is over: drain at full speed
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for v := range in {
			s := v.(soakValue)
			mu.Lock()
			received[[2]uint64{uint64(s.Sender), s.Seq}]++
			if prev := last[s.Sender]; s.Seq <= prev {
				fifo = append(fifo, fmt.Sprintf("sender %d: seq %d after %d", s.Sender, s.Seq, prev))
			}
			last[s.Sender] = s.Seq
			mu.Unlock()
			if !fast.Load() {
				time.Sleep(soakDrainEvery) // the slow receiver
			}
		}
	}()

	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	stop := make(chan struct{})
	var offered, gaveUp atomic.Uint64
	var senders sync.WaitGroup
	for i := range soakSenders {
		out, closeOut, err := nodes[0].Send("soak", soakBuf)
		if err != nil {
			t.Fatal(err)
		}
		// Every tenth sender waits its turn (5s handles): its values are
		// the ones confirmed. The others give up after one offer period.
		timeout := soakOfferEvery
		if i%10 == 0 {
			timeout = 5 * time.Second
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			defer func() { _ = closeOut() }()
			tick := time.NewTicker(soakOfferEvery)
			defer tick.Stop()
			var pending []*channel.Message
			for seq := uint64(1); ; seq++ {
				select {
				case <-stop:
					for _, m := range pending {
						<-m.Done()
						if m.Err() == nil {
							v := m.Value().(soakValue)
							mu.Lock()
							confirmed = append(confirmed, [2]uint64{uint64(v.Sender), v.Seq})
							mu.Unlock()
						}
					}
					return
				case <-tick.C:
				}
				m := channel.WithMessage(soakValue{Sender: i, Seq: seq, Pad: make([]byte, 256)}, timeout)
				offered.Add(1)
				select {
				case out <- m:
				case <-m.Done():
					gaveUp.Add(1)
				}
				// Keep the handles that may still succeed; drop resolved failures.
				pending = append(pending, m)
				kept := pending[:0]
				for _, p := range pending {
					select {
					case <-p.Done():
						if p.Err() == nil {
							v := p.Value().(soakValue)
							mu.Lock()
							confirmed = append(confirmed, [2]uint64{uint64(v.Sender), v.Seq})
							mu.Unlock()
						}
					default:
						kept = append(kept, p)
					}
				}
				pending = kept
			}
		}()
	}

	var maxHeap uint64
	maxGoroutines := 0
	samples := 0
	start := time.Now()
	for time.Since(start) < duration {
		time.Sleep(200 * time.Millisecond) // the sampling period
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		maxHeap = max(maxHeap, ms.HeapInuse)
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		samples++
	}
	elapsed := time.Since(start)
	mu.Lock()
	drainedDuringLoad := 0
	for _, n := range received {
		drainedDuringLoad += n
	}
	mu.Unlock()
	fast.Store(true)
	close(stop)
	senders.Wait()

	// Every confirmed value was accepted by the receiver's buffer: it
	// reaches the user.
	deadline := time.Now().Add(20 * time.Second)
	lost := 0
	for {
		mu.Lock()
		lost = 0
		for _, k := range confirmed {
			if received[k] == 0 {
				lost++
			}
		}
		mu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := closeIn(); err != nil {
		t.Errorf("closing the receiver: %v", err)
	}
	<-recvDone

	mu.Lock()
	defer mu.Unlock()
	dups, total := 0, 0
	for _, n := range received {
		total += n
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("soak: %v; offered %d (%.0f/s), gave up before the send channel took them %d, confirmed %d, received %d "+
		"(%.1f/s while loaded: %.0f× fewer than offered); duplicates %d; confirmed not received %d; FIFO violations %d; "+
		"heap in use max %.1f MiB (bound %d MiB, %d samples); goroutines max %d (%d at start, bound +%d)",
		elapsed.Round(time.Second), offered.Load(), float64(offered.Load())/elapsed.Seconds(), gaveUp.Load(),
		len(confirmed), total, float64(drainedDuringLoad)/elapsed.Seconds(),
		float64(offered.Load())/max(float64(drainedDuringLoad), 1), dups, lost, len(fifo),
		float64(maxHeap)/(1<<20), soakHeapBound>>20, samples, maxGoroutines, baseGoroutines, soakGoroutineSlack)

	if dups > 0 {
		t.Errorf("at most once: %d duplicates", dups)
	}
	if lost > 0 {
		t.Errorf("%d confirmed values never received", lost)
	}
	if len(fifo) > 0 {
		t.Errorf("per-sender FIFO: %d violations, e.g. %v", len(fifo), fifo[:min(len(fifo), 5)])
	}
	if len(confirmed) == 0 {
		t.Errorf("no value confirmed: the receiver took nothing")
	}
	if ratio := float64(offered.Load()) / max(float64(drainedDuringLoad), 1); ratio < 50 {
		t.Errorf("offered only %.0f× what the receiver drained: the soak did not overload it", ratio)
	}
	if maxHeap > soakHeapBound {
		t.Errorf("heap in use reached %.1f MiB (bound %d MiB)", float64(maxHeap)/(1<<20), soakHeapBound>>20)
	}
	if maxGoroutines > baseGoroutines+soakGoroutineSlack {
		t.Errorf("goroutines reached %d (%d at start, bound +%d)", maxGoroutines, baseGoroutines, soakGoroutineSlack)
	}
}
