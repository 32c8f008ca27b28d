// Package route is the policy by which a node's send channels pick, for
// each value, one receiver of a name: the router behind channel.Send,
// SendContext and Request.
//
// A Router tries the name's queue receivers round-robin, each without
// waiting; the first that takes the value wins. If none can take it now,
// it waits on the next in turn for up to RetrySlice, then looks again;
// with no receiver at all it waits for one to register. A receiver that
// turns a value away at once — its actor gone, its node lost or unknown —
// is passed over ("benched") for a while: the registry may list it a
// while yet, and asking it again value after value would spin. With
// every receiver benched, the Router waits until the first may be tried
// again or the name's receivers change.
//
// The Router holds no network and no actors: what handing a value to a
// receiver means is the caller's (Hand's try and block, over the caller's
// targets, one per receiver, made by Config.TargetOf and kept for as long
// as the registry does not change). Its tests drive it with a fake
// registry and fake targets.
//
// # Goroutines
//
// None. A Router is safe for concurrent use; Hand blocks its caller.
package route
