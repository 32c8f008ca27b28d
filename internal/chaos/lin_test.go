package chaos

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
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
}

// linFault is what a fault may do to an owner's registrations: a kill or
// a cut may remove them (regmodel.Expire), a heal may bring them back
// (regmodel.Restore: the rejoined node registers its live receivers
// again).
type linFault struct {
	kind      string
	owner     string
	at, until time.Time // until: zero for an open operation
}

// never is the return time of an open operation: after every other.
const never = math.MaxInt64 / 2

func newLinHistory() *linHistory {
	return &linHistory{pending: make(map[string]*porcupine.Operation), names: make(map[string]bool), clients: make(map[string]int)}
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
		}
		h.pending[f[1]] = &porcupine.Operation{ClientId: c, Input: in, Call: call}
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

// fault records a regmodel.Expire (owner's process was killed or cut off:
// its receivers may vanish from at on) or a regmodel.Restore (owner's
// process was healed: what vanished may come back from at on), which, if
// it happens at all, happens before until (zero: no bound).
func (h *linHistory) fault(kind, owner string, at, until time.Time) {
	h.faults = append(h.faults, linFault{kind: kind, owner: owner, at: at, until: until})
}

// history returns the operations, with what the kills imply as open
// operations.
func (h *linHistory) history() (ops []porcupine.Operation, unknown int) {
	ops = append(ops, h.ops...)
	for _, op := range h.pending {
		if in := op.Input.(regmodel.Input); in.Kind != regmodel.Read {
			o := *op
			o.Output, o.Return = regmodel.Output{Unknown: true}, never
			ops = append(ops, o)
		}
	}
	for i, f := range h.faults {
		ret := int64(never)
		if !f.until.IsZero() {
			ret = f.until.UnixMicro()
		}
		for name := range h.names {
			ops = append(ops, porcupine.Operation{
				ClientId: len(h.clients) + i,
				Input:    regmodel.Input{Kind: f.kind, Name: name, Member: f.owner},
				Call:     f.at.UnixMicro(), Output: regmodel.Output{Unknown: true}, Return: ret,
			})
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
	return res, path
}
