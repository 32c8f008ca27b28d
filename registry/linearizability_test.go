package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"

	"github.com/dchan-io/dchan/internal/regmodel"
)

// TestRegistryIsLinearizable runs 10 clients, two per node, doing
// Register, Unregister and linearizable Lookup on one name while the leader
// is killed once, and checks the history with porcupine. Two clients per
// node put writes of one node in one batch (registry writes are batched)
// as well as batches of several nodes in one entry. Failed calls are open
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
	const perNode = 2
	for i := range len(nodes) * perNode {
		c, n := i, nodes[i/perNode]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) && !n.down.Load() {
				in := regmodel.Input{Kind: []string{regmodel.Register, regmodel.Unregister, regmodel.Read}[rng.IntN(3)], Name: name}
				actor := fmt.Sprintf("a%d", rng.IntN(2))
				in.Member = n.id + "/" + actor
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				call := time.Since(start).Nanoseconds()
				var out regmodel.Output
				var err error
				switch in.Kind {
				case regmodel.Register:
					err = n.reg.Register(ctx, name, actor, Queue)
				case regmodel.Unregister:
					err = n.reg.Unregister(ctx, name, actor)
				case regmodel.Read:
					in.Member = ""
					var rs []Receiver
					rs, err = n.reg.LookupLinearizable(ctx, name)
					var members []string
					for _, r := range rs {
						members = append(members, r.Node+"/"+r.ActorID)
					}
					out.Set = regmodel.SetOf(members)
				}
				cancel()
				ret := time.Since(start).Nanoseconds()
				if err != nil {
					out = regmodel.Output{Unknown: true}
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
		ClientId: len(nodes) * perNode, Input: regmodel.Input{Kind: regmodel.Expire, Name: name, Member: leader.id},
		Call: killed, Output: regmodel.Output{Unknown: true}, Return: never,
	})

	res := porcupine.CheckOperationsTimeout(regmodel.Model.ToModel(), history, 60*time.Second)
	t.Logf("%d operations, %d with unknown outcome (leader %s killed)", len(history), unknown, leader.id)
	require.Greater(t, len(history), 50, "too few operations to mean anything")
	require.Equal(t, porcupine.Ok, res, "history is not linearizable")
}
