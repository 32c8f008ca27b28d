package main

// dchan, as a user runs it: every process is a node of one cluster; the
// first (a receiver) bootstraps it and the others join through it. Values
// are Msg, sent with dchan's default gob codec (channel.WithTypes).

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/dchan-io/dchan/channel"
	"github.com/dchan-io/dchan/channel/dchanprom"
)

// startupTimeout bounds a node's start and its wait for receivers.
const startupTimeout = 60 * time.Second

// startNode starts a node on a free loopback port: it bootstraps a cluster,
// or with join set joins the one there.
func startNode(id, join string) (*channel.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	opts := []channel.Option{
		channel.WithNodeID(id),
		channel.WithListenAddr("127.0.0.1:0"),
		channel.WithTypes(Msg{}),
	}
	if join != "" {
		opts = append(opts, channel.WithPeers(join))
	}
	return channel.New(ctx, opts...)
}

// closeNode shuts n down, giving it a second to drain.
func closeNode(n *channel.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = n.Shutdown(ctx)
}

// scrapeEvery gathers n's metrics every d, as a Prometheus server scraping
// it would (the text encoding included), until stop closes; d 0 does
// nothing.
func scrapeEvery(c *child, n *channel.Node, d time.Duration) {
	if d <= 0 {
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(dchanprom.NewCollector(n))
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			families, err := reg.Gather()
			if err != nil {
				c.fail(fmt.Errorf("scrape: %w", err))
				return
			}
			enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range families {
				if err := enc.Encode(mf); err != nil {
					c.fail(fmt.Errorf("scrape: %w", err))
					return
				}
			}
		}
	}()
}

// awaitReceivers returns once n's registry replica lists at least want
// receivers of name: Sync makes every registration that was committed
// before it visible here.
func awaitReceivers(n *channel.Node, name string, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	for {
		if err := n.Sync(ctx); err != nil {
			return err
		}
		if n.Cluster().Names[name] >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d receivers of %q: %w", want, name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dchanRecv is the role "dchan-recv": Receive(-name, -buf), and count the
// values, with -pace at most one per -pace on average; with -mode echo, send
// each on to the name -reply.
func dchanRecv(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	in, _, err := node.Receive(f.name, f.buf)
	if err != nil {
		return err
	}
	var out chan<- any
	if f.mode == "echo" {
		if out, _, err = node.Send(f.reply, f.buf); err != nil {
			return err
		}
	}
	c.ready(node.Addr())
	scrapeEvery(c, node, f.scrape)
	go func() {
		pace := pacer{every: f.pace}
		for v := range in {
			if !valid(v) {
				c.fail(fmt.Errorf("dchan-recv: bad value %#v", v))
			}
			pace.wait()
			if out != nil {
				out <- v
			}
			c.count.Add(1)
		}
	}()
	<-c.stop
	return nil
}

// dchanSend is the role "dchan-send": once -expect receivers of -name are
// registered, -senders goroutines, each with its own Send(-name, -buf)
// channel, write values as fast as they can. With -confirm N, each value
// goes as channel.WithMessage(v, 30s), N handles outstanding: a sender
// waits on the oldest's Done before it sends another.
func dchanSend(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	if err := awaitReceivers(node, f.name, f.expect); err != nil {
		return err
	}
	chans := make([]chan<- any, f.senders)
	for i := range chans {
		if chans[i], _, err = node.Send(f.name, f.buf); err != nil {
			return err
		}
	}
	c.ready(node.Addr())
	scrapeEvery(c, node, f.scrape)
	for _, ch := range chans {
		if f.confirm > 0 {
			go sendConfirmed(c, ch, f.confirm)
		} else {
			go sendBare(c, ch)
		}
	}
	<-c.stop
	return nil
}

// countEvery is how many values a sender counts at once.
const countEvery = 128

func sendBare(c *child, ch chan<- any) {
	for id := int64(0); !c.stopping(); {
		for range countEvery {
			ch <- Msg{ID: id, Payload: payload}
			id++
		}
		c.count.Add(countEvery)
	}
}

func sendConfirmed(c *child, ch chan<- any, window int) {
	ring := make([]*channel.Message, window)
	for id := int64(0); !c.stopping(); id++ {
		slot := int(id % int64(window))
		if old := ring[slot]; old != nil {
			<-old.Done()
			if old.Err() != nil {
				c.dropped.Add(1)
			} else {
				c.count.Add(1)
			}
		}
		m := channel.WithMessage(Msg{ID: id, Payload: payload}, 30*time.Second)
		ch <- m
		ring[slot] = m
	}
}

// dchanEcho is the role "dchan-echo", node A of the echo: it sends -n
// pings on "ping" as fast as the windows allow while it receives the pongs
// on "pong" (a dchan-recv in mode echo answers), and reports the time from
// the first ping to the last pong. -warm pings go first, untimed.
func dchanEcho(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	pongs, _, err := node.Receive("pong", f.buf)
	if err != nil {
		return err
	}
	pings, _, err := node.Send("ping", f.buf)
	if err != nil {
		return err
	}
	if err := awaitReceivers(node, "ping", 1); err != nil {
		return err
	}
	c.ready(node.Addr())
	exchange := func(n int) {
		go func() {
			for id := range n {
				pings <- Msg{ID: int64(id), Payload: payload}
			}
		}()
		for range n {
			if v := <-pongs; !valid(v) {
				c.fail(fmt.Errorf("dchan-echo: bad pong %#v", v))
			}
			c.count.Add(1)
		}
	}
	exchange(f.warm)
	start := time.Now()
	exchange(f.n)
	c.result(int64(2*f.n), time.Since(start)) // pings and pongs
	<-c.stop
	return nil
}

// dchanRoundTrip is the role "dchan-rtt", node A of request/reply: it
// sends a value on "req" and waits for it back on "rep.<-id>" (a dchan-recv
// in mode echo answers), one in flight, each round trip timed.
func dchanRoundTrip(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	replies, _, err := node.Receive("rep."+f.id, f.buf)
	if err != nil {
		return err
	}
	reqs, _, err := node.Send("req", f.buf)
	if err != nil {
		return err
	}
	if err := awaitReceivers(node, "req", 1); err != nil {
		return err
	}
	c.ready(node.Addr())
	for id := int64(0); ; id++ {
		start := time.Now()
		var v any
		select {
		case reqs <- Msg{ID: id, Payload: payload}:
		case <-c.stop:
			return nil
		}
		select {
		case v = <-replies:
		case <-c.stop:
			return nil
		}
		c.recordLatency(time.Since(start))
		if m, ok := v.(Msg); !ok || m.ID != id {
			return fmt.Errorf("dchan-rtt: reply %#v to request %d", v, id)
		}
		c.count.Add(1)
	}
}

// dchanServe is the role "dchan-serve": channel.Serve(-name, -buf) with a
// handler that answers each Msg with itself.
func dchanServe(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	stop, err := channel.Serve(node, f.name, f.buf, func(_ context.Context, m Msg) (Msg, error) {
		c.count.Add(1)
		return m, nil
	})
	if err != nil {
		return err
	}
	defer stop()
	c.ready(node.Addr())
	<-c.stop
	return nil
}

// dchanRequest is the role "dchan-req": -inflight goroutines, each making
// channel.Request(-name) calls one after another, each round trip timed.
func dchanRequest(c *child, f *roleFlags) error {
	node, err := startNode(f.id, f.join)
	if err != nil {
		return err
	}
	defer closeNode(node)
	if err := awaitReceivers(node, f.name, 1); err != nil {
		return err
	}
	c.ready(node.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-c.stop; cancel() }()
	for g := range f.inflight {
		go func() {
			for id := int64(g) << 40; !c.stopping(); id++ {
				start := time.Now()
				m, err := channel.Request[Msg](ctx, node, f.name, Msg{ID: id, Payload: payload})
				if err != nil {
					if !c.stopping() {
						c.fail(fmt.Errorf("dchan-req: %w", err))
					}
					return
				}
				c.recordLatency(time.Since(start))
				if m.ID != id {
					c.fail(fmt.Errorf("dchan-req: answer %d to request %d", m.ID, id))
					return
				}
				c.count.Add(1)
			}
		}()
	}
	<-c.stop
	return nil
}

// The dchan candidates, as the shapes run them.

// dchanOneWay: a receiving node and a sending node; sendArgs add to the
// sender's flags (-senders, -confirm).
func dchanOneWay(t *trial, buf int, sendArgs ...string) (measurement, error) {
	return dchanOneWayWith(t, buf, nil, sendArgs)
}

// dchanOneWayWith is dchanOneWay with flags for the receiver too.
func dchanOneWayWith(t *trial, buf int, recvArgs, sendArgs []string) (measurement, error) {
	b := strconv.Itoa(buf)
	recv, err := t.start("dchan-recv", append([]string{"-id", "recv", "-name", "bench", "-buf", b}, recvArgs...)...)
	if err != nil {
		return measurement{}, err
	}
	args := append([]string{"-id", "send", "-join", recv.addr, "-name", "bench", "-buf", b}, sendArgs...)
	if _, err := t.start("dchan-send", args...); err != nil {
		return measurement{}, err
	}
	return t.throughput(recv)
}

// dchanManyToMany: one cluster of receivers+senders nodes; every sender
// sends on "bench", which every receiver receives.
func dchanManyToMany(t *trial, senders, receivers, buf int) (measurement, error) {
	b := strconv.Itoa(buf)
	var recvs []*proc
	var first string
	for i := range receivers {
		args := []string{"-id", fmt.Sprintf("recv%d", i+1), "-name", "bench", "-buf", b}
		if first != "" {
			args = append(args, "-join", first)
		}
		p, err := t.start("dchan-recv", args...)
		if err != nil {
			return measurement{}, err
		}
		if first == "" {
			first = p.addr
		}
		recvs = append(recvs, p)
	}
	for i := range senders {
		if _, err := t.start("dchan-send", "-id", fmt.Sprintf("send%d", i+1), "-join", first,
			"-name", "bench", "-buf", b, "-expect", strconv.Itoa(receivers)); err != nil {
			return measurement{}, err
		}
	}
	return t.throughput(recvs...)
}

// dchanEchoPair: node B echoes "ping" to "pong"; node A pings.
func dchanEchoPair(t *trial, buf int) (measurement, error) {
	b := strconv.Itoa(buf)
	echo, err := t.start("dchan-recv", "-id", "B", "-name", "ping", "-buf", b, "-mode", "echo", "-reply", "pong")
	if err != nil {
		return measurement{}, err
	}
	a, err := t.start("dchan-echo", "-id", "A", "-join", echo.addr, "-buf", b,
		"-n", strconv.Itoa(t.o.echoN), "-warm", strconv.Itoa(t.o.echoN/100))
	if err != nil {
		return measurement{}, err
	}
	return t.fixedCount(a)
}

// dchanRequestReply: node B receives "req" and answers on "rep.A".
func dchanRequestReply(t *trial, buf int) (measurement, error) {
	b := strconv.Itoa(buf)
	serve, err := t.start("dchan-recv", "-id", "B", "-name", "req", "-buf", b, "-mode", "echo", "-reply", "rep.A")
	if err != nil {
		return measurement{}, err
	}
	a, err := t.start("dchan-rtt", "-id", "A", "-join", serve.addr, "-buf", b)
	if err != nil {
		return measurement{}, err
	}
	return t.roundTrip(a)
}

// dchanSlowReceiver: one-way to a receiver paced at one value per -slow.
func dchanSlowReceiver(t *trial, buf int) (measurement, error) {
	b := strconv.Itoa(buf)
	recv, err := t.start("dchan-recv", "-id", "recv", "-name", "bench", "-buf", b,
		"-pace", t.o.slow.String())
	if err != nil {
		return measurement{}, err
	}
	send, err := t.start("dchan-send", "-id", "send", "-join", recv.addr, "-name", "bench", "-buf", b)
	if err != nil {
		return measurement{}, err
	}
	return t.memory(send, recv)
}

// dchanRequestServe: node B serves "req" (channel.Serve); node A makes
// inflight Requests at a time.
func dchanRequestServe(t *trial, buf, inflight int) (measurement, error) {
	serve, err := t.start("dchan-serve", "-id", "B", "-name", "req", "-buf", strconv.Itoa(buf))
	if err != nil {
		return measurement{}, err
	}
	a, err := t.start("dchan-req", "-id", "A", "-join", serve.addr, "-name", "req", "-inflight", strconv.Itoa(inflight))
	if err != nil {
		return measurement{}, err
	}
	if inflight == 1 {
		return t.roundTrip(a)
	}
	return t.throughput(a)
}
