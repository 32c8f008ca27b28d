package main

import "time"

// Msg is the value every shape moves: an int64 and a 32-byte string, the
// value of dchan's own benchmarks. dchan sends it with its default gob codec
// (channel.WithTypes(Msg{})), the raw gRPC baseline with one gob encoder per
// stream; NATS, which has no codec of its own, gets it as 40 bytes (see
// nats.go), and protoactor-go its own empty protobuf Ping and Pong.
type Msg struct {
	ID      int64
	Payload string
}

// payload is every Msg's Payload.
const payload = "0123456789abcdef0123456789abcdef"

// valid reports whether v is a Msg as the senders make them.
func valid(v any) bool {
	m, ok := v.(Msg)
	return ok && len(m.Payload) == len(payload)
}

// pacer holds a receiver to one value per interval on average. time.Sleep
// overshoots short sleeps (on a busy machine by up to a millisecond), so
// the pacer keeps a schedule from the first value on and sleeps only while
// it is ahead of it.
type pacer struct {
	every time.Duration // 0: no pacing
	next  time.Time
}

// wait returns when the next value is due.
func (p *pacer) wait() {
	if p.every <= 0 {
		return
	}
	now := time.Now()
	if p.next.IsZero() {
		p.next = now
	}
	p.next = p.next.Add(p.every)
	if d := p.next.Sub(now); d > 0 {
		time.Sleep(d)
	}
}
