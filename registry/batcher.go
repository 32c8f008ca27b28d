package registry

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/dchan-io/dchan/internal/bin"
)

// Receiver writes (registerCmd, unregisterCmd) are committed in batches:
// the writes that wait on a node when a batch is taken go into one Raft
// entry (batchCmd), committed on the node if it leads, or forwarded to the
// leader in one RPC, so that a burst of registrations costs one RPC, one
// entry, one replication message per follower and one State per batch
// rather than per write. The leader batches the single writes its peers
// forward with its own. A write that arrives while
// maxBatchesInFlight batches are being committed waits for the next one;
// a write alone goes at once, in an entry of its own.
//
// Each writer still returns only once its own write is committed and
// applied on the leader, with its own result: a write refused in a batch
// (ErrStaleIncarnation, say) refuses that write alone.

// maxBatchesInFlight bounds the batches committing at once. One leaves the
// leader idle while a batch replicates; a few keep the pipeline full and
// let the next batch grow meanwhile.
const maxBatchesInFlight = 2

// batcher gathers a node's receiver writes into batches. Its loop runs
// on one goroutine (run), started with the registry.
type batcher struct {
	r    *Registry
	wake chan struct{} // capacity 1
	slot chan struct{} // a token per batch in flight

	mu    sync.Mutex
	queue []*pendingWrite
}

// pendingWrite is one write waiting for its batch's commit.
type pendingWrite struct {
	ctx  context.Context // its caller's: once it ends, nobody waits for the write
	cmd  command
	done chan error // capacity 1
}

func newBatcher(r *Registry) *batcher {
	return &batcher{r: r, wake: make(chan struct{}, 1), slot: make(chan struct{}, maxBatchesInFlight)}
}

// batched reports whether cmd goes through the batcher.
func batched(cmd command) bool {
	switch cmd.(type) {
	case registerCmd, unregisterCmd:
		return true
	}
	return false
}

// submit queues cmd, a valid registerCmd or unregisterCmd, for the next
// batch and returns its result once the batch is committed and applied on
// the leader, or the error that failed the batch (errNotLeader and the
// like: the caller retries), or ctx's error, or ErrClosed. A write whose
// caller gave up before its batch was taken is never sent (a retry of it
// must not race a stale copy sent later); one already sent may still
// commit.
func (b *batcher) submit(ctx context.Context, cmd command) error {
	w := &pendingWrite{ctx: ctx, cmd: cmd, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.r.ctx.Done():
		return ErrClosed
	}
}

// take removes up to maxBatch writes from the head of the queue, and
// drops the writes whose callers gave up meanwhile.
func (b *batcher) take() []*pendingWrite {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ws []*pendingWrite
	taken := 0
	for _, w := range b.queue {
		if len(ws) == maxBatch {
			break
		}
		taken++
		if w.ctx.Err() == nil {
			ws = append(ws, w)
		}
	}
	rest := copy(b.queue, b.queue[taken:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return ws
}

// run takes batches while writes wait, up to maxBatchesInFlight at once,
// until the registry closes.
func (b *batcher) run() {
	defer b.r.wg.Done()
	for {
		select {
		case <-b.wake:
		case <-b.r.ctx.Done():
			return
		}
		for {
			select {
			case b.slot <- struct{}{}:
			case <-b.r.ctx.Done():
				return
			}
			ws := b.take()
			if ws == nil {
				<-b.slot
				break
			}
			b.r.wg.Add(1)
			go b.commit(ws)
		}
	}
}

// commit commits ws as one entry (a batchCmd if there are several) and
// tells each writer its result, then frees the batch's slot.
func (b *batcher) commit(ws []*pendingWrite) {
	defer b.r.wg.Done()
	defer func() { <-b.slot }()
	cmd := ws[0].cmd
	if len(ws) > 1 {
		cmds := make([]command, len(ws))
		for i, w := range ws {
			cmds[i] = w.cmd
		}
		cmd = batchCmd{Cmds: cmds}
	}
	b.r.counters.batches.Add(1)
	b.r.counters.writes.Add(uint64(len(ws)))
	errs, err := b.send(appendCommand(nil, cmd), len(ws))
	for i, w := range ws {
		if err != nil {
			w.done <- err
		} else {
			w.done <- errs[i]
		}
	}
}

// send commits data, the entry of n writes, on this node if it leads, or
// through the leader. It returns each write's result, or the error that
// failed them all (not leader, no leader, the leader unreachable).
func (b *batcher) send(data []byte, n int) ([]error, error) {
	r := b.r
	rf, err := r.raftNode()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.attemptTimeout())
	defer cancel()
	if rf.State() == raft.Leader {
		return r.applyWrites(ctx, rf, data, n)
	}
	addr, ok := r.leaderAddr()
	if !ok {
		return nil, r.notLeader()
	}
	body, err := r.callReply(ctx, addr, methodApply, data)
	if err != nil {
		return nil, err
	}
	if n == 1 {
		return []error{nil}, nil
	}
	return decodeResults(body, n)
}

// applyWrites commits data, the entry of n receiver writes, on this node,
// the leader, and returns each write's result, or Raft's error when the
// entry was not committed.
func (r *Registry) applyWrites(ctx context.Context, rf *raft.Raft, data []byte, n int) ([]error, error) {
	res, err := r.applyResult(ctx, rf, data)
	if err != nil && res.Err == nil {
		return nil, err
	}
	return resultErrs(res, n)
}

// resultErrs is the error of each of the n writes of an entry whose
// result is res.
func resultErrs(res result, n int) ([]error, error) {
	switch {
	case n == 1 || res.Err != nil:
		return slices.Repeat([]error{res.Err}, n), nil
	case len(res.Batch) != n:
		return nil, fmt.Errorf("registry: a batch of %d writes had %d results", n, len(res.Batch))
	}
	errs := make([]error, n)
	for i, r := range res.Batch {
		errs[i] = r.Err
	}
	return errs, nil
}

// encodeResults encodes the results of a forwarded batch's writes, the
// body of its reply: for each, its status and, unless stOK, its error.
func encodeResults(errs []error) []byte {
	w := bin.Writer{}
	for _, err := range errs {
		w.Byte(statusOf(err))
		if err != nil {
			w.Str(err.Error())
		}
	}
	return w.B
}

// decodeResults decodes encodeResults' body of n writes.
func decodeResults(b []byte, n int) ([]error, error) {
	rd := bin.NewReader(b, ErrMalformed)
	errs := make([]error, n)
	for i := range errs {
		st := rd.Byte()
		var msg string
		if st != stOK {
			msg = rd.Str("error", 4096)
		}
		if rd.Err() != nil {
			return nil, rd.Err()
		}
		errs[i] = errorOf(st, msg, nil)
	}
	rd.End()
	return errs, rd.Err()
}
