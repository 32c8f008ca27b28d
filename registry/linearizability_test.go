package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// The model: the set of receivers ("node/actor") of one name, as a sorted,
// comma-joined string so that states compare with ==.
type linOp struct {
	kind   string // "register", "unregister", "lookup"
	member string // register, unregister
}

type linResult struct {
	unknown bool   // the call failed or timed out: it may or may not have happened
	set     string // lookup
}

func setWith(state, member string, add bool) string {
	var members []string
	if state != "" {
		members = strings.Split(state, ",")
	}
	i, found := slices.BinarySearch(members, member)
	switch {
	case add && !found:
		members = slices.Insert(members, i, member)
	case !add && found:
		members = slices.Delete(members, i, i+1)
	}
	return strings.Join(members, ",")
}

var registryModel = porcupine.NondeterministicModel{
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(linOp), output.(linResult)
		switch in.kind {
		case "lookup":
			if out.unknown || out.set == s {
				return []any{s}
			}
			return nil
		case "expire":
			// The killed node's receivers vanish when the leader expires it.
			var kept []string
			for _, m := range strings.Split(s, ",") {
				if m != "" && !strings.HasPrefix(m, in.member+"/") {
					kept = append(kept, m)
				}
			}
			return []any{s, strings.Join(kept, ",")}
		default:
			next := setWith(s, in.member, in.kind == "register")
			if out.unknown {
				return []any{s, next} // happened or not
			}
			return []any{next}
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linOp), output.(linResult)
		if out.unknown {
			return fmt.Sprintf("%s(%s) -> ?", in.kind, in.member)
		}
		if in.kind == "lookup" {
			return fmt.Sprintf("lookup -> {%s}", out.set)
		}
		return fmt.Sprintf("%s(%s)", in.kind, in.member)
	},
}

// TestRegistryIsLinearizable runs 5 clients, one per node, doing Register,
// Unregister and linearizable Lookup on one name while the leader is killed
// once, and checks the history with porcupine. Failed calls are open
// operations: they may or may not have taken effect.
func TestRegistryIsLinearizable(t *testing.T) {
	nodes := startCluster(t, 5)
	const name = "lin"
	start := time.Now()
	deadline := start.Add(4 * time.Second)
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		wg      sync.WaitGroup
		unknown int
	)
	never := int64(time.Hour) * 1000 // the return time of an operation with no answer
	for c, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) && !n.down.Load() {
				in := linOp{kind: []string{"register", "unregister", "lookup"}[rng.IntN(3)]}
				actor := fmt.Sprintf("a%d", rng.IntN(2))
				in.member = n.id + "/" + actor
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				call := time.Since(start).Nanoseconds()
				var out linResult
				var err error
				switch in.kind {
				case "register":
					err = n.reg.Register(ctx, name, actor, Queue)
				case "unregister":
					err = n.reg.Unregister(ctx, name, actor)
				case "lookup":
					in.member = ""
					var rs []Receiver
					rs, err = n.reg.LookupLinearizable(ctx, name)
					var members []string
					for _, r := range rs {
						members = append(members, r.Node+"/"+r.ActorID)
					}
					slices.Sort(members)
					out.set = strings.Join(members, ",")
				}
				cancel()
				ret := time.Since(start).Nanoseconds()
				if err != nil {
					out = linResult{unknown: true}
					ret = never
				}
				mu.Lock()
				if err != nil {
					unknown++
				}
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	leader := waitLeaderOf(t, nodes...)
	killed := time.Since(start).Nanoseconds()
	leader.kill()
	wg.Wait()
	history = append(history, porcupine.Operation{
		ClientId: len(nodes), Input: linOp{kind: "expire", member: leader.id},
		Call: killed, Output: linResult{unknown: true}, Return: never,
	})

	res := porcupine.CheckOperationsTimeout(registryModel.ToModel(), history, 60*time.Second)
	t.Logf("%d operations, %d with unknown outcome (leader %s killed)", len(history), unknown, leader.id)
	require.Greater(t, len(history), 50, "too few operations to mean anything")
	require.Equal(t, porcupine.Ok, res, "history is not linearizable")
}
