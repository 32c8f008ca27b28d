package faultproxy

import (
	"fmt"
	"time"
)

// Option configures a Proxy.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	listenAddr  string
	dialTimeout time.Duration
	seed        uint64
	seeded      bool
}

func defaultConfig() config {
	return config{
		listenAddr:  "127.0.0.1:0",
		dialTimeout: 5 * time.Second,
	}
}

func (c *config) validate() error {
	addr, err := loopbackAddr(c.listenAddr)
	if err != nil {
		return fmt.Errorf("listen address: %w", err)
	}
	c.listenAddr = addr
	if c.dialTimeout <= 0 {
		return fmt.Errorf("faultproxy: dial timeout %v must be positive", c.dialTimeout)
	}
	return nil
}

// WithListenAddr sets the loopback address the proxy listens on. The default
// is "127.0.0.1:0", a free port.
func WithListenAddr(addr string) Option {
	return optionFunc(func(c *config) { c.listenAddr = addr })
}

// WithDialTimeout bounds each dial of the target. The default is 5s.
func WithDialTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.dialTimeout = d })
}

// WithSeed makes the random reset fault deterministic: the same seed and the
// same sequence of forwarded chunks reset the same connections. By default
// the seed is random.
func WithSeed(seed uint64) Option {
	return optionFunc(func(c *config) { c.seed, c.seeded = seed, true })
}
