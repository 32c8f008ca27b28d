// Package chaos is dchan's fault, load and bad-input suite at the level of
// whole processes: its tests start real nodes as separate OS processes
// (the chaosnode command beside this file), kill them with SIGKILL, pause
// them with SIGSTOP, cut the links between them with internal/faultproxy,
// and load them with a receiver far slower than its senders, and then
// check the contract's guarantees on what every process reported.
//
// The package has no code of its own besides this documentation; see
// docs/reliability.md for the scenarios, what each asserts, the figures of
// the last long run and the commands that reproduce them.
//
// Every test has a short form that runs under go test (about a minute in
// all) and a long form chosen by environment variables:
//
//	DCHAN_CHAOS_DURATION=10m  length of the crash churn (default 30s)
//	DCHAN_CHAOS_ROUNDS=10     partition rounds (default 4)
//	DCHAN_CHAOS_SOAK=60s      length of the slow receiver soak (default 10s)
//	DCHAN_CHAOS_SEED=n        the random seed (default: time; every test logs it)
package chaos
