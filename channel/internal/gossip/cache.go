package gossip

import (
	"slices"
	"time"
)

// valueCache keeps recent values of one origin to answer grafts and joins:
// at most Config.CacheMax of them, none older than Config.CacheFor.
type valueCache struct {
	vals  map[uint64]cached
	order []uint64 // insertion order, for eviction
}

type cached struct {
	bvalue
	at        time.Time
	forwarded bool // passed on down the tree already
}

func (c *valueCache) put(seq uint64, v bvalue, now time.Time, cfg *Config) {
	if c.vals == nil {
		c.vals = make(map[uint64]cached)
	}
	if _, ok := c.vals[seq]; ok {
		return
	}
	c.vals[seq] = cached{bvalue: v, at: now}
	c.order = append(c.order, seq)
	c.evict(now, cfg)
}

// forward marks seq's value as passed on down the tree, and reports
// whether it was not already (a value no longer cached is taken for one
// that was).
func (c *valueCache) forward(seq uint64) bool {
	e, ok := c.vals[seq]
	if !ok || e.forwarded {
		return false
	}
	e.forwarded = true
	c.vals[seq] = e
	return true
}

// drop forgets seq's value; its place in order goes with the next evict
// (a missing value is as old as can be).
func (c *valueCache) drop(seq uint64) { delete(c.vals, seq) }

func (c *valueCache) evict(now time.Time, cfg *Config) {
	i := 0
	for ; i < len(c.order); i++ {
		e, ok := c.vals[c.order[i]]
		if ok && len(c.order)-i <= cfg.CacheMax && now.Sub(e.at) < cfg.CacheFor {
			break
		}
		delete(c.vals, c.order[i])
	}
	if i > 0 {
		c.order = slices.Delete(c.order, 0, i)
	}
}
