package faultproxy

import "errors"

var (
	// ErrNotLoopback is returned for a listen or target address that is not
	// an IP literal in 127.0.0.0/8 or ::1. Host names are refused without
	// being resolved.
	ErrNotLoopback = errors.New("faultproxy: address is not loopback")

	// ErrClosed is returned by a Network that has been closed.
	ErrClosed = errors.New("faultproxy: closed")
)
