package gossip

import (
	"fmt"
	"time"
)

// Config tunes broadcast. DefaultConfig suits a LAN.
type Config struct {
	Fanout      int           // children per hop; 0: ⌊log2 N⌋+1 for N participating nodes (at most MaxFanout)
	Tick        time.Duration // anti-entropy period: digests, gap checks, expiry
	DigestPeers int           // nodes each name's digest goes to per tick
	ActiveFor   time.Duration // digests continue this long after a node's last graft or join answered; joins are kept this long
	GapWait     time.Duration // how long values wait behind a missing one before it is given up
	CacheFor    time.Duration // how long a node keeps values to answer grafts
	CacheMax    int           // values kept per origin
	HoldMax     int           // values waiting behind gaps per origin
	DedupeFor   time.Duration // an origin's dedupe state outlives its last value by this
	OutboxMax   int           // messages queued per peer, in each of its two queues
	DownFor     time.Duration // after a failed send, a peer's queue is rerouted for this long
	SendTimeout time.Duration // a send waiting longer for credit counts as failed

	// Drop, in tests, loses a message silently, as a lossy link would.
	Drop func(from, to string) bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Tick:        200 * time.Millisecond,
		DigestPeers: 2,
		ActiveFor:   3 * time.Second,
		GapWait:     3 * time.Second,
		CacheFor:    10 * time.Second,
		CacheMax:    4096,
		HoldMax:     4096,
		DedupeFor:   2 * time.Minute,
		OutboxMax:   1024,
		DownFor:     time.Second,
		SendTimeout: 5 * time.Second,
	}
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	switch {
	case c.Fanout < 0:
		return fmt.Errorf("negative gossip fanout %d", c.Fanout)
	case c.Tick <= 0 || c.CacheMax < 1 || c.HoldMax < 1 || c.OutboxMax < 1 || c.DigestPeers < 0:
		return fmt.Errorf("gossip config out of range: %+v", c)
	}
	return nil
}
