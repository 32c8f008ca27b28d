//go:build race

package channel

// raceEnabled: the race detector slows the value path about tenfold.
const raceEnabled = true
