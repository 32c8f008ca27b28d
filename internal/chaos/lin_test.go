package chaos

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/dchan-io/dchan/internal/regmodel"
)

// linHistory collects the registry operations the node processes' linearizability
// clients report (LI/LR lines, see chaosnode) and the kills, as a porcupine
// history over regmodel.
type linHistory struct {
	ops     []porcupine.Operation
	pending map[string]*porcupine.Operation // owner → its operation without an answer yet
	names   map[string]bool
	clients map[string]int
	faults  []linFault
	// owners maps a node ID to the owners (sender identities) its
	// processes reported, in order: an expiry of the node applies to its
	// latest owner.
	owners map[string][]string
	// rejoining maps an owner to its REJOINING lines since its last
	// REJOIN: when each join of the rejoin under way was sent.
	rejoining map[string][]time.Time
}

// linFault is what a fault may do to an owner's registrations: a kill or
// a cut may remove them (regmodel.Expire), a heal may bring them back
// (regmodel.Restore: the rejoined node registers its live receivers
// again).
type linFault struct {
	kind      string
	owner     string
	at, until time.Time // until: zero for an open operation
	cut       time.Time // Restore: when the fault that may have hidden the receivers began
	// joins: Restore: when each join of the rejoin was sent (REJOINING).
	// A join whose reply was lost or late lands before the node reports
	// the rejoin (REJOIN, at), and a Register that was waiting for the
	// rejoin commits under the join's incarnation from then on: a
	// receiver it registered before an expiry hid it may be back before
	// at. (A join that landed may even be expired before the node hears
	// of it, and the rejoin go on under another incarnation.)
	joins   []time.Time
	certain bool     // it happened (between at and until); else it may have
	failed  []string // Restore: names for which it may have failed
}

// never is the return time of an open operation: after every other.
const never = math.MaxInt64 / 2

func newLinHistory() *linHistory {
	return &linHistory{pending: make(map[string]*porcupine.Operation), names: make(map[string]bool),
		clients: make(map[string]int), owners: make(map[string][]string), rejoining: make(map[string][]time.Time)}
}

// line takes one LI or LR line's fields; it reports false for a malformed one.
func (h *linHistory) line(f []string) bool {
	switch {
	case f[0] == "LI" && len(f) == 6:
		call, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			return false
		}
		in := regmodel.Input{Kind: f[2], Name: f[3], Member: f[4]}
		switch in.Kind {
		case regmodel.Register, regmodel.Unregister:
		case regmodel.Read:
			in.Member = ""
		default:
			return false
		}
		h.names[in.Name] = true
		c, ok := h.clients[f[1]]
		if !ok {
			c = len(h.clients)
			h.clients[f[1]] = c
			node, _, _ := strings.Cut(f[1], ".")
			h.owners[node] = append(h.owners[node], f[1])
		}
		h.pending[f[1]] = &porcupine.Operation{ClientId: c, Input: in, Call: call}
		return true
	case f[0] == "EXPIRE" && len(f) == 3: // EXPIRE node µs: the leader is about to expire node
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return false
		}
		if owners := h.owners[f[1]]; len(owners) > 0 {
			// Open until EXPIRED reports the commit.
			h.fault(linFault{kind: regmodel.Expire, owner: owners[len(owners)-1], at: time.UnixMicro(at), certain: true})
		}
		return true
	case f[0] == "EXPIRED" && len(f) == 3: // EXPIRED node µs: the expiry is committed
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return false
		}
		if owners := h.owners[f[1]]; len(owners) > 0 {
			if i := h.lastFault(regmodel.Expire, owners[len(owners)-1]); i >= 0 {
				h.faults[i].until = time.UnixMicro(at)
			}
		}
		return true
	case f[0] == "RESTORED" && len(f) == 3: // RESTORED owner µs: its receivers are registered again
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return false
		}
		// The re-registrations of one rejoin may still run when the node
		// rejoins again (each rejoin starts its own): the line does not
		// say which rejoin's ended, so it ends the earliest still open.
		// That is sound: of the first k RESTORED lines one at least comes
		// from the k-th rejoin or a later one, which registered again
		// every receiver the k-th rejoin had to, by the k-th line.
		// Ending the last rejoin instead would let an earlier rejoin's
		// line end a later rejoin whose receivers are still being
		// registered, and leave the earlier one open for good.
		if i := h.firstOpen(regmodel.Restore, f[1]); i >= 0 {
			h.faults[i].until = time.UnixMicro(at)
		}
		return true
	case f[0] == "EXPIRE_FAILED" && len(f) == 2: // the last expiry of the node may not have happened
		if owners := h.owners[f[1]]; len(owners) > 0 {
			if i := h.lastFault(regmodel.Expire, owners[len(owners)-1]); i >= 0 {
				h.faults[i].certain = false
			}
		}
		return true
	case f[0] == "RESTORE_FAILED" && len(f) == 3: // a receiver of name was not registered again
		// By one of the rejoins still open, which one is not said: all
		// of them may have failed to.
		open := false
		for i := range h.faults {
			if g := &h.faults[i]; g.kind == regmodel.Restore && g.owner == f[1] && g.until.IsZero() {
				g.failed = append(g.failed, f[2])
				open = true
			}
		}
		if i := h.lastFault(regmodel.Restore, f[1]); !open && i >= 0 {
			h.faults[i].failed = append(h.faults[i].failed, f[2])
		}
		return true
	case f[0] == "REJOIN" && len(f) == 3: // REJOIN owner µs: owner rejoined and registers its receivers again
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return false
		}
		// Open until RESTORED reports the re-registrations done.
		joins := h.rejoining[f[1]]
		delete(h.rejoining, f[1])
		h.fault(linFault{kind: regmodel.Restore, owner: f[1], at: time.UnixMicro(at), joins: joins, certain: true})
		return true
	case f[0] == "REJOINING" && len(f) == 3: // REJOINING owner µs: owner is about to send a join under a new incarnation
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return false
		}
		h.rejoining[f[1]] = append(h.rejoining[f[1]], time.UnixMicro(at))
		return true
	case f[0] == "LR" && len(f) == 5:
		op, ok := h.pending[f[1]]
		ret, err := strconv.ParseInt(f[3], 10, 64)
		if !ok || err != nil || (f[2] != "ok" && f[2] != "err") {
			return false
		}
		delete(h.pending, f[1])
		in := op.Input.(regmodel.Input)
		switch {
		case in.Kind == regmodel.Read && f[2] == "err":
			return true // a failed read tells nothing
		case in.Kind == regmodel.Read:
			n, err := strconv.Atoi(f[4])
			if err != nil {
				return false
			}
			op.Output, op.Return = regmodel.Output{Counted: true, Count: n}, ret
		case f[2] == "err":
			op.Output, op.Return = regmodel.Output{Unknown: true}, never
		default:
			op.Output, op.Return = regmodel.Output{}, ret
		}
		h.ops = append(h.ops, *op)
		return true
	}
	return false
}

// fault records a regmodel.Expire (owner's process was killed, or the
// leader expired it: its receivers may vanish from at on) or a
// regmodel.Restore (owner rejoined: what vanished may come back from at
// on), which, if it happens at all, happens before until (zero: no
// bound). EXPIRE and REJOIN lines record them as they happen; the churn
// test records its kills.
func (h *linHistory) fault(f linFault) { h.faults = append(h.faults, f) }

// lastFault returns the index of the last fault of kind for owner, or -1.
func (h *linHistory) lastFault(kind, owner string) int {
	for i := len(h.faults) - 1; i >= 0; i-- {
		if h.faults[i].kind == kind && h.faults[i].owner == owner {
			return i
		}
	}
	return -1
}

// firstOpen returns the index of the first fault of kind for owner not
// reported finished (until zero), or -1.
func (h *linHistory) firstOpen(kind, owner string) int {
	for i, f := range h.faults {
		if f.kind == kind && f.owner == owner && f.until.IsZero() {
			return i
		}
	}
	return -1
}

// lastExpire returns when the last expiry of owner recorded before t began
// (zero: none).
func (h *linHistory) lastExpire(owner string, t time.Time) time.Time {
	var last time.Time
	for _, f := range h.faults {
		if f.kind == regmodel.Expire && f.owner == owner && f.at.Before(t) && f.at.After(last) {
			last = f.at
		}
	}
	return last
}

// faultSummary says how many expiries and rejoins the history holds, and
// how many of them were reported finished (committed, re-registered).
func (h *linHistory) faultSummary() string {
	counts := map[string][2]int{}
	for _, f := range h.faults {
		c := counts[f.kind]
		c[0]++
		if !f.until.IsZero() {
			c[1]++
		}
		counts[f.kind] = c
	}
	return fmt.Sprintf("%d expiries (%d reported done), %d rejoins (%d reported done)",
		counts[regmodel.Expire][0], counts[regmodel.Expire][1], counts[regmodel.Restore][0], counts[regmodel.Restore][1])
}

// pendingOps returns the writes that never answered (their process was
// killed), as open operations.
func (h *linHistory) pendingOps() []porcupine.Operation {
	var ops []porcupine.Operation
	for _, op := range h.pending {
		if in := op.Input.(regmodel.Input); in.Kind != regmodel.Read {
			o := *op
			o.Output, o.Return = regmodel.Output{Unknown: true}, never
			ops = append(ops, o)
		}
	}
	return ops
}

// history returns the operations, with what the kills imply as open
// operations.
func (h *linHistory) history() (ops []porcupine.Operation, unknown int) {
	ops = append(ops, h.ops...)
	ops = append(ops, h.pendingOps()...)
	// A Restore applies to each receiver its owner had when the cut began
	// or registered until the heal: the rejoined node registers each of its
	// live receivers again, one commit each. (A registration called during
	// the cut may commit before the node is expired: a node whose replies
	// are dropped still reaches the leader.)
	type reg struct {
		in                    regmodel.Input
		call, ret, unregister int64 // unregister: when an unregistration of it returned; 0: none
	}
	var regs []reg
	index := make(map[string]int)
	for _, op := range h.ops {
		// Only registrations that returned ok: a failed Receive's
		// receiver is not registered again after a rejoin.
		if in := op.Input.(regmodel.Input); in.Kind == regmodel.Register && !op.Output.(regmodel.Output).Unknown {
			index[in.Member] = len(regs)
			regs = append(regs, reg{in: in, call: op.Call, ret: op.Return})
		}
	}
	for _, op := range h.ops {
		if in := op.Input.(regmodel.Input); in.Kind == regmodel.Unregister && !op.Output.(regmodel.Output).Unknown {
			if i, ok := index[in.Member]; ok {
				regs[i].unregister = op.Return
			}
		}
	}
	client := len(h.clients)
	for _, f := range h.faults {
		ret := int64(never)
		if !f.until.IsZero() {
			ret = f.until.UnixMicro()
		}
		add := func(in regmodel.Input, call time.Time) {
			unknown := !f.certain || slices.Contains(f.failed, in.Name)
			r := ret
			if unknown {
				r = never // it may still happen, any time
			}
			ops = append(ops, porcupine.Operation{ClientId: client, Input: in,
				Call: call.UnixMicro(), Output: regmodel.Output{Unknown: unknown}, Return: r})
			client++
		}
		if f.kind == regmodel.Restore {
			cut, heal := f.cut.UnixMicro(), f.at.UnixMicro()
			if f.cut.IsZero() {
				cut = h.lastExpire(f.owner, f.at).UnixMicro()
			}
			for _, r := range regs {
				if strings.HasPrefix(r.in.Member, f.owner+"/") && r.call < heal && (r.unregister == 0 || r.unregister > cut) {
					in := regmodel.Input{Kind: regmodel.Restore, Name: r.in.Name, Member: r.in.Member}
					add(in, f.at)
					// A Register in flight when a join of the rejoin was
					// sent may commit again under that join's incarnation
					// as soon as it lands, before REJOIN, and returns after
					// that commit: a Restore of its receiver that may
					// happen between the two, for each such join (once per
					// expiry in between: one from the first such join
					// covers the later ones). Every other receiver comes
					// back through the re-registration that REJOIN starts
					// (or an earlier rejoin's, still open, whose own
					// Restore covers that).
					var last time.Time
					for _, j := range f.joins {
						at := j.UnixMicro()
						if at >= heal || r.call >= at || r.ret <= at {
							continue
						}
						if last.IsZero() || h.lastExpire(f.owner, j).After(last) {
							ops = append(ops, porcupine.Operation{ClientId: client, Input: in, Call: at,
								Output: regmodel.Output{Unknown: true}, Return: r.ret})
							client++
							last = j
						}
					}
				}
			}
			continue
		}
		for name := range h.names {
			add(regmodel.Input{Kind: f.kind, Name: name, Member: f.owner}, f.at)
		}
	}
	for _, op := range ops {
		if op.Output.(regmodel.Output).Unknown {
			unknown++
		}
	}
	return ops, unknown
}

// checkLinearizable checks the history; on failure it writes porcupine's
// visualization into dir and returns its path.
func checkLinearizable(ops []porcupine.Operation, dir string) (porcupine.CheckResult, string) {
	res, info := porcupine.CheckOperationsVerbose(regmodel.Model.ToModel(), ops, 60*time.Second)
	if res == porcupine.Ok {
		return res, ""
	}
	path := filepath.Join(dir, "registry-history.html")
	if f, err := os.Create(path); err == nil {
		_ = porcupine.Visualize(regmodel.Model.ToModel(), info, f)
		_ = f.Close()
	}
	// The same history as text, one operation a line, in call order.
	sorted := slices.Clone(ops)
	slices.SortFunc(sorted, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	var b strings.Builder
	for _, op := range sorted {
		ret := "never"
		if op.Return != never {
			ret = time.UnixMicro(op.Return).Format("15:04:05.000000")
		}
		fmt.Fprintf(&b, "%s %s client %d %s\n", time.UnixMicro(op.Call).Format("15:04:05.000000"), ret, op.ClientId,
			regmodel.Model.DescribeOperation(op.Input, op.Output))
	}
	if i, ok := firstIllegal(sorted); ok {
		fmt.Fprintf(&b, "\nthe history stops being linearizable at the return of operation %d: %s, called at %s\n", i,
			regmodel.Model.DescribeOperation(sorted[i].Input, sorted[i].Output), time.UnixMicro(sorted[i].Call).Format("15:04:05.000000"))
	}
	_ = os.WriteFile(filepath.Join(dir, "registry-history.txt"), []byte(b.String()), 0o600)
	return res, path
}

// firstIllegal finds the operation at which a history stops being
// linearizable: where to start reading a failed one. It bisects on
// return time: the sub-history up to time T holds every operation that
// returned by T and every write called before T (whose effect may come
// before T); a read that returned later is left out, since what it saw may
// depend on writes called after T. It returns the index, in ops sorted by
// call time, of the last operation to return in the shortest illegal
// sub-history.
func firstIllegal(ops []porcupine.Operation) (int, bool) {
	byReturn := make([]int, len(ops))
	for i := range byReturn {
		byReturn[i] = i
	}
	slices.SortFunc(byReturn, func(a, b int) int { return cmp.Compare(ops[a].Return, ops[b].Return) })
	upTo := func(n int) []porcupine.Operation {
		if n == 0 {
			return nil
		}
		t := ops[byReturn[n-1]].Return
		var sub []porcupine.Operation
		for _, op := range ops {
			if op.Return <= t || (op.Call < t && op.Input.(regmodel.Input).Kind != regmodel.Read) {
				sub = append(sub, op)
			}
		}
		return sub
	}
	legal := func(n int) bool {
		return porcupine.CheckOperationsTimeout(regmodel.Model.ToModel(), upTo(n), 10*time.Second) != porcupine.Illegal
	}
	if legal(len(ops)) {
		return 0, false
	}
	lo, hi := 0, len(ops) // legal(lo), !legal(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if legal(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return byReturn[hi-1], true
}
