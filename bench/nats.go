package main

// NATS core: an embedded nats-server in a process of its own, a publisher
// process and a queue-subscriber process (nats.go), default options. NATS
// moves bytes, so each value goes as 40 bytes: ID big-endian, then the
// 32-byte payload; the subscriber decodes and checks them. That is cheaper
// than the gob encoding dchan and the raw baseline do.
//
// NATS core has no flow control from the subscriber back to the publisher:
// a subscriber that falls behind is a slow consumer, and the server or its
// client drops what it cannot hold. The dropped column counts those values.

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const natsSubject = "bench"

// natsServer is the role "nats-server": an embedded server on a free
// loopback port; it counts slow consumers as dropped.
func natsServer(c *child, _ *roleFlags) error {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(startupTimeout) {
		return fmt.Errorf("nats-server: not ready")
	}
	c.ready(srv.ClientURL())
	for {
		select {
		case <-c.stop:
			srv.Shutdown()
			return nil
		case <-time.After(100 * time.Millisecond):
			c.dropped.Store(int64(srv.NumSlowConsumers()))
		}
	}
}

// natsSub is the role "nats-sub": a queue subscriber on natsSubject that
// decodes and counts the values.
func natsSub(c *child, f *roleFlags) error {
	nc, err := nats.Connect(f.peers)
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.QueueSubscribe(natsSubject, "workers", func(m *nats.Msg) {
		if len(m.Data) != 8+len(payload) {
			c.fail(fmt.Errorf("nats-sub: bad value %q", m.Data))
		}
		if v := (Msg{ID: int64(binary.BigEndian.Uint64(m.Data)), Payload: string(m.Data[8:])}); !valid(v) {
			c.fail(fmt.Errorf("nats-sub: bad value %+v", v))
		}
		c.count.Add(1)
	})
	if err != nil {
		return err
	}
	if err := nc.Flush(); err != nil { // the server has the subscription
		return err
	}
	c.ready("")
	for {
		select {
		case <-c.stop:
			return nil
		case <-time.After(100 * time.Millisecond):
			if n, err := sub.Dropped(); err == nil {
				c.dropped.Store(int64(n))
			}
		}
	}
}

// natsPub is the role "nats-pub": it publishes values on natsSubject as
// fast as it can.
func natsPub(c *child, f *roleFlags) error {
	nc, err := nats.Connect(f.peers)
	if err != nil {
		return err
	}
	defer nc.Close()
	c.ready("")
	buf := make([]byte, 8+len(payload))
	copy(buf[8:], payload)
	for id := uint64(0); !c.stopping(); {
		for range countEvery {
			binary.BigEndian.PutUint64(buf, id)
			if err := nc.Publish(natsSubject, buf); err != nil {
				return err
			}
			id++
		}
		c.count.Add(countEvery)
	}
	return nil
}

// natsOneWay is the NATS candidate: server, subscriber, then publisher.
func natsOneWay(t *trial) (measurement, error) {
	srv, err := t.start("nats-server")
	if err != nil {
		return measurement{}, err
	}
	sub, err := t.start("nats-sub", "-peers", srv.addr)
	if err != nil {
		return measurement{}, err
	}
	if _, err := t.start("nats-pub", "-peers", srv.addr); err != nil {
		return measurement{}, err
	}
	return t.throughput(sub)
}
