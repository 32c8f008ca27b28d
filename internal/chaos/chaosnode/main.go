// Command chaosnode runs one dchan node for the fault suite in
// internal/chaos. The suite starts several of these as separate OS
// processes, kills (SIGKILL), pauses (SIGSTOP) and restarts them, and reads
// what each one did from its standard output, one event per line:
//
//	UP <addr>                          the node joined (or bootstrapped) the cluster; addr is the one it advertises
//	ROLE <leader|follower|candidate>   the node's Raft state changed (from Raft's log)
//	EXPIRE <node> <unix-µs>            this node, leading, is about to expire node
//	EXPIRED <node> <unix-µs>           ... and has (committed)
//	EXPIRE_FAILED <node>               ... or could not
//	RESTORED <sender> <unix-µs>        it has registered its receivers again after a rejoin
//	REJOINING <sender> <unix-µs>       this node is about to send a join after the cluster expired it
//	                                   (again, if an earlier join's reply was lost: it may have landed)
//	REJOIN <sender> <unix-µs>          this node rejoined after the cluster expired it
//	RESTORE_FAILED <sender> <name>     it could not register a receiver of name again
//	JOINDROP <node> <unix-µs>          this node, leading, committed a join of node that dropped receivers
//	                                   of its previous incarnation (a restart; or a rejoin while that
//	                                   incarnation was alive, which the registry history does not model)
//	R <receiver> <name> <sender> <seq> a receiver of name handed this value to user code
//	M <name> <sender> <seq> <ok|err> <latency-µs> <writtenAt-unix-µs> <error>
//	                                   the outcome of a WithMessage handle
//	W <tag> <ok|err> <unix-µs> <latency-µs> <error>
//	                                   the outcome of a registry write (the probe command)
//	LI <owner> <op> <name> <member> <call-unix-µs>
//	                                   a registry operation of the linearizability client began
//	                                   (op: register, unregister or read; member "-" for a read)
//	LR <owner> <ok|err> <return-unix-µs> <count>
//	                                   it returned (count: a read's result, else "-")
//	S <goroutines> <heap-in-use>       a periodic resource sample
//	STOPPED <sent>                     every sender ended and every handle is resolved
//	D <digest>                         this node's view of the registry after a Sync (the digest command)
//
// Each line is one write(2) on the pipe, made before the value it reports
// is acknowledged to anyone else: when the process is killed, the lines it
// wrote are already in the pipe.
//
// Commands arrive on standard input, one per line:
//
//	probe <tag>   register a receiver of a fresh name (a registry write), report it as W, close it
//	stop          stop sending, wait for every handle, report STOPPED
//	digest        Sync, then report the registry view as D
//	quit          close the node gracefully and exit (also on EOF)
//
// With -redirect the process sends its connection to each listed peer
// address through another address (a fault proxy owned by the test): it
// replaces gRPC's "dns" resolver, which resolves the plain host:port
// targets dchan dials, for this process only.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dchan-io/dchan/channel"
)

// Stamp is the value senders send: who sent it and its place in the
// sender's sequence (one sequence per sender and name).
type Stamp struct {
	Sender string
	Seq    uint64
}

type options struct {
	id, listen, dataDir string
	advertise, token    string
	bootstrapExpect     int
	peers               []string
	redirect            map[string]string
	receive             []string // names this node receives
	send                []string // names this node sends to
	sender              string   // the sender's identity (node ID and incarnation)
	buf                 int
	rate                int // values per second per name
	messageEvery        int // every n-th value is sent WithMessage
	timeout             time.Duration
	drain               time.Duration // pause after each received value (a slow receiver)
	expire              time.Duration
	heartbeat, election time.Duration
	registryChurn       time.Duration // period of Receive/close of a private name; 0: none
	linEvery            time.Duration // period of the linearizability client's operations; 0: none
	linNames            int           // how many names ("lin-0", ...) it operates on
	statsEvery          time.Duration
	joinTimeout         time.Duration
	maxReplicas         int // channel.WithMaxReplicas; -1: the default
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaosnode:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chaosnode:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("chaosnode", flag.ContinueOnError)
	var peers, redirect, receive, send string
	fs.StringVar(&o.id, "id", "", "node ID")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "listen address")
	fs.StringVar(&o.dataDir, "data", "", "data dir")
	fs.StringVar(&o.advertise, "advertise", "", "address peers dial (default: the listen address, or the host's private IPv4 on 0.0.0.0)")
	fs.IntVar(&o.bootstrapExpect, "bootstrap-expect", 0, "form one cluster once this many nodes see each other")
	fs.StringVar(&o.token, "token", "", "cluster token")
	fs.StringVar(&peers, "peers", "", "comma-separated peer addresses, DNS names allowed (none: bootstrap)")
	fs.StringVar(&redirect, "redirect", "", "comma-separated addr=via pairs: dial via instead of addr")
	fs.StringVar(&receive, "receive", "", "comma-separated names to receive")
	fs.StringVar(&send, "send", "", "comma-separated names to send to")
	fs.StringVar(&o.sender, "sender", "", "sender identity stamped into values (default: the node ID)")
	fs.IntVar(&o.buf, "buf", 16, "receiver and send channel buffer")
	fs.IntVar(&o.rate, "rate", 100, "values per second per sent name")
	fs.IntVar(&o.messageEvery, "message-every", 2, "send every n-th value WithMessage (1: all)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "WithMessage timeout")
	fs.DurationVar(&o.drain, "drain", 0, "pause after each received value")
	fs.DurationVar(&o.expire, "expire", 2*time.Second, "channel.WithExpireAfter")
	fs.DurationVar(&o.heartbeat, "heartbeat", 250*time.Millisecond, "Raft heartbeat timeout")
	fs.DurationVar(&o.election, "election", 500*time.Millisecond, "Raft election timeout")
	fs.DurationVar(&o.registryChurn, "registry-churn", 0, "period of a Receive/close of a private name")
	fs.DurationVar(&o.linEvery, "lin-every", 0, "period of the linearizability client's registry operations (0: none)")
	fs.IntVar(&o.linNames, "lin-names", 2, "names the linearizability client operates on")
	fs.DurationVar(&o.statsEvery, "stats", time.Second, "period of S lines")
	fs.DurationVar(&o.joinTimeout, "join-timeout", 30*time.Second, "bound on channel.New")
	fs.IntVar(&o.maxReplicas, "max-replicas", -1, "channel.WithMaxReplicas (-1: the default)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.id == "" {
		return o, errors.New("-id is required")
	}
	if o.sender == "" {
		o.sender = o.id
	}
	if o.messageEvery < 1 || o.rate < 1 {
		return o, errors.New("-message-every and -rate must be positive")
	}
	o.peers = split(peers)
	o.receive = split(receive)
	o.send = split(send)
	o.redirect = make(map[string]string)
	for _, kv := range split(redirect) {
		from, to, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("bad -redirect entry %q", kv)
		}
		o.redirect[from] = to
	}
	return o, nil
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// out writes one event line per write(2).
type out struct{ mu sync.Mutex }

func (w *out) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = os.Stdout.WriteString(line)
}

func run(o options) error {
	var w out
	if len(o.redirect) > 0 {
		installRedirect(o.redirect)
	}
	log := newLogger(&w, o.sender)
	ctx, cancel := context.WithTimeout(context.Background(), o.joinTimeout)
	opts := []channel.Option{
		channel.WithNodeID(o.id),
		channel.WithListenAddr(o.listen),
		channel.WithAdvertiseAddr(o.advertise),
		channel.WithBootstrapExpect(o.bootstrapExpect),
		channel.WithToken(o.token),
		channel.WithTypes(Stamp{}),
		channel.WithLogger(log),
		channel.WithExpireAfter(o.expire),
		channel.WithRaftTimeouts(o.heartbeat, o.election),
	}
	if len(o.peers) > 0 {
		opts = append(opts, channel.WithPeers(o.peers...))
	}
	if o.dataDir != "" {
		opts = append(opts, channel.WithDataDir(o.dataDir))
	}
	if o.maxReplicas >= 0 {
		opts = append(opts, channel.WithMaxReplicas(o.maxReplicas))
	}
	node, err := channel.New(ctx, opts...)
	cancel()
	if err != nil {
		return err
	}
	w.printf("UP %s", node.AdvertiseAddr())

	done := make(chan struct{})
	var bg sync.WaitGroup
	goFunc := func(f func()) {
		bg.Add(1)
		go func() { defer bg.Done(); f() }()
	}
	goFunc(func() { sample(&w, o.statsEvery, done) })

	var closers []channel.CloseFunc
	for _, name := range o.receive {
		ch, closeFn, err := node.Receive(name, o.buf)
		if err != nil {
			return fmt.Errorf("receive %q: %w", name, err)
		}
		closers = append(closers, closeFn)
		receiverID := o.sender
		goFunc(func() { receive(&w, ch, receiverID, name, o.drain) })
	}

	stopSend := make(chan struct{})
	churnDone := make(chan struct{})
	var senders sync.WaitGroup
	var sent atomic.Uint64
	for _, name := range o.send {
		ch, closeFn, err := node.Send(name, o.buf)
		if err != nil {
			return fmt.Errorf("send %q: %w", name, err)
		}
		senders.Add(1)
		go func() {
			defer senders.Done()
			send(&w, o, name, ch, stopSend, &sent)
			_ = closeFn()
		}()
	}
	if o.registryChurn > 0 {
		goFunc(func() { defer close(churnDone); churnRegistry(node, o, stopSend) }) // ends with the senders
	} else {
		close(churnDone)
	}
	stopLin := make(chan struct{})
	linDone := make(chan struct{})
	if o.linEvery > 0 {
		goFunc(func() { defer close(linDone); linClient(&w, node, o, stopLin) })
	} else {
		close(linDone)
	}

	var probes sync.WaitGroup
	stopped := false
	stopSenders := func() {
		if !stopped {
			stopped = true
			close(stopSend)
			close(stopLin)
			senders.Wait()
			<-linDone
			<-churnDone
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "probe":
			probes.Add(1)
			go func() { defer probes.Done(); probe(&w, node, arg) }()
		case "stop":
			stopSenders()
			w.printf("STOPPED %d", sent.Load())
		case "digest":
			w.printf("D %s", digest(node))
		case "quit":
			goto quit
		}
	}
quit:
	stopSenders()
	for _, c := range closers {
		_ = c()
	}
	close(done)
	err = node.Close()
	probes.Wait()
	bg.Wait()
	return err
}

// receive hands each value to the event stream. With drain > 0 it is a
// slow receiver.
func receive(w *out, ch <-chan any, receiverID, name string, drain time.Duration) {
	for v := range ch {
		s, ok := v.(Stamp)
		if !ok {
			w.printf("X %s %s %T", receiverID, name, v)
			continue
		}
		w.printf("R %s %s %s %d", receiverID, name, s.Sender, s.Seq)
		if drain > 0 {
			time.Sleep(drain)
		}
	}
}

// send writes stamped values at o.rate, every o.messageEvery-th one as a
// Message, and reports each Message's outcome as it resolves.
func send(w *out, o options, name string, ch chan<- any, stop <-chan struct{}, sent *atomic.Uint64) {
	type pending struct {
		m       *channel.Message
		seq     uint64
		written time.Time
	}
	// Outcomes resolve roughly in order; one waiter per name keeps the
	// number of goroutines flat. The queue bounds the handles in flight.
	queue := make(chan pending, 4096)
	var waiter sync.WaitGroup
	waiter.Add(1)
	go func() {
		defer waiter.Done()
		for p := range queue {
			<-p.m.Done()
			err := p.m.Err()
			res, msg := "ok", "-"
			if err != nil {
				res, msg = "err", strings.ReplaceAll(err.Error(), " ", "_")
			}
			w.printf("M %s %s %d %s %d %d %s", name, o.sender, p.seq, res,
				time.Since(p.written).Microseconds(), p.written.UnixMicro(), msg)
		}
	}()
	defer func() { close(queue); waiter.Wait() }()

	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		v := Stamp{Sender: o.sender, Seq: seq}
		if seq%uint64(o.messageEvery) != 0 {
			select {
			case ch <- v:
				sent.Add(1)
			case <-stop:
				return
			}
			continue
		}
		m := channel.WithMessage(v, o.timeout)
		written := time.Now()
		select {
		case ch <- m:
			sent.Add(1)
		case <-m.Done(): // gave up before the channel took it
		case <-stop:
			return
		}
		select {
		case queue <- pending{m: m, seq: seq, written: written}:
		case <-stop:
			return
		}
	}
}

// probe makes one registry write (registering a receiver of a fresh name),
// reports when it was committed, and closes the receiver again.
func probe(w *out, node *channel.Node, tag string) {
	start := time.Now()
	_, closeFn, err := node.Receive("probe-"+tag, 1)
	end := time.Now()
	if err != nil {
		w.printf("W %s err %d %d %s", tag, end.UnixMicro(), end.Sub(start).Microseconds(),
			strings.ReplaceAll(err.Error(), " ", "_"))
		return
	}
	w.printf("W %s ok %d %d -", tag, end.UnixMicro(), end.Sub(start).Microseconds())
	_ = closeFn()
}

// digest returns this node's view of the registry after a Sync, as one
// word: its members (ID, alive, voter, client) and its names with their numbers of
// receivers, sorted; or "sync-failed".
func digest(node *channel.Node) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Sync(ctx); err != nil {
		return "sync-failed"
	}
	c := node.Cluster()
	var parts []string
	for _, m := range c.Members {
		parts = append(parts, fmt.Sprintf("m:%s@%s:%t:%t:%t", m.ID, m.Addr, m.Alive, m.Voter, m.Client))
	}
	for name, n := range c.Names {
		parts = append(parts, fmt.Sprintf("n:%s:%d", name, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// linClient is one client of the linearizability check: every linEvery it
// registers a receiver of one of the names lin-0, lin-1, ... (Receive),
// closes one it registered (unregister), or reads how many receivers the
// name has (Sync, then Cluster), one operation at a time, and reports each
// as an LI line before it starts and an LR line when it returns. The
// receivers it registers are never sent to.
func linClient(w *out, node *channel.Node, o options, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	open := make(map[string][]linReg)
	next := 0
	for {
		select {
		case <-stop:
			return
		case <-time.After(o.linEvery):
		}
		name := fmt.Sprintf("lin-%d", rng.IntN(o.linNames))
		switch op := rng.IntN(3); {
		case op == 0 && len(open[name]) > 0:
			i := rng.IntN(len(open[name]))
			r := open[name][i]
			open[name] = append(open[name][:i], open[name][i+1:]...)
			w.printf("LI %s unregister %s %s %d", o.sender, name, r.member, time.Now().UnixMicro())
			err := r.close()
			w.printf("LR %s %s %d -", o.sender, okErr(err), time.Now().UnixMicro())
		case op == 1:
			w.printf("LI %s read %s - %d", o.sender, name, time.Now().UnixMicro())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := node.Sync(ctx)
			cancel()
			count := node.Cluster().Names[name]
			w.printf("LR %s %s %d %d", o.sender, okErr(err), time.Now().UnixMicro(), count)
		default:
			next++
			member := fmt.Sprintf("%s/%d", o.sender, next)
			w.printf("LI %s register %s %s %d", o.sender, name, member, time.Now().UnixMicro())
			_, closeFn, err := node.Receive(name, 1)
			w.printf("LR %s %s %d -", o.sender, okErr(err), time.Now().UnixMicro())
			if err == nil {
				open[name] = append(open[name], linReg{member: member, close: closeFn})
			}
		}
	}
}

type linReg struct {
	member string
	close  channel.CloseFunc
}

func okErr(err error) string {
	if err != nil {
		return "err"
	}
	return "ok"
}

// churnRegistry registers and unregisters a private name over and over:
// registry writes alongside the traffic.
func churnRegistry(node *channel.Node, o options, done <-chan struct{}) {
	name := "reg-" + o.sender
	for {
		select {
		case <-done:
			return
		case <-time.After(o.registryChurn):
		}
		_, closeFn, err := node.Receive(name, 1)
		if err == nil {
			_ = closeFn()
		}
	}
}

func sample(w *out, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.printf("S %d %d", runtime.NumGoroutine(), ms.HeapInuse)
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

// newLogger logs to stderr (the test keeps it in a file) and turns
// Raft's state changes into ROLE lines and the registry's expiries and
// rejoins into EXPIRE and REJOIN lines.
func newLogger(w *out, owner string) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.InfoLevel)
	return zap.New(eventCore{Core: core, w: w, owner: owner})
}

// eventCore passes every entry on to Core and reports the ones the test
// follows on the event stream.
type eventCore struct {
	zapcore.Core
	w     *out
	owner string
}

func (c eventCore) With(fields []zapcore.Field) zapcore.Core {
	return eventCore{Core: c.Core.With(fields), w: c.w, owner: c.owner}
}

func (c eventCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c eventCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	switch e.Message {
	case "entering leader state":
		c.w.printf("ROLE leader")
	case "entering follower state":
		c.w.printf("ROLE follower")
	case "entering candidate state":
		c.w.printf("ROLE candidate")
	case "expiring unreachable member": // on the leader, before it commits the expiry
		for _, f := range fields {
			if f.Key == "node" {
				c.w.printf("EXPIRE %s %d", f.String, time.Now().UnixMicro())
			}
		}
	case "expired member": // committed
		for _, f := range fields {
			if f.Key == "node" {
				c.w.printf("EXPIRED %s %d", f.String, time.Now().UnixMicro())
			}
		}
	case "registered receivers again after rejoining":
		c.w.printf("RESTORED %s %d", c.owner, time.Now().UnixMicro())
	case "expire failed", "expiry had no effect: the member rejoined":
		for _, f := range fields {
			if f.Key == "node" {
				c.w.printf("EXPIRE_FAILED %s", f.String)
			}
		}
	case "join dropped the receivers of the member's previous incarnation": // on the leader
		for _, f := range fields {
			if f.Key == "node" {
				c.w.printf("JOINDROP %s %d", f.String, time.Now().UnixMicro())
			}
		}
	case "rejoining after expiry": // before it sends a join (possibly again) under a new incarnation
		c.w.printf("REJOINING %s %d", c.owner, time.Now().UnixMicro())
	case "rejoined the cluster after expiry": // before it registers its receivers again
		c.w.printf("REJOIN %s %d", c.owner, time.Now().UnixMicro())
	case "registering a receiver again after rejoining failed":
		for _, f := range fields {
			if f.Key == "name" {
				c.w.printf("RESTORE_FAILED %s %s", c.owner, f.String)
			}
		}
	}
	return c.Core.Write(e, fields)
}
