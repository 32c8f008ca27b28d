package channel

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dchan-io/dchan/actor"
	"github.com/dchan-io/dchan/channel/internal/reply"
	"github.com/dchan-io/dchan/remoting"
)

// refActorPrefix begins the actor IDs of private receivers.
const refActorPrefix = "dchan.ref."

// Ref names one private receiver (ReceiveRef): a reply address. It is a
// small comparable value; put it in any field of any message, send it to
// other nodes, keep it and use it later with SendTo. A Ref stays valid as
// long as its receiver is open; once the receiver is closed, or its node
// has restarted or left, values sent to it fail with ErrGone, and never
// reach another receiver. The zero Ref names nothing.
//
// A Ref made by Request for its reply also carries the request's
// correlation: what is sent to it answers that request.
type Ref struct {
	node string
	id   string // the receiver's actor: random, so a restarted node has none of its old ones
	tag  string // a request's correlation, or ""
}

// IsZero reports whether r names nothing.
func (r Ref) IsZero() bool { return r == Ref{} }

// Node returns the ID of the node the Ref's receiver lives on.
func (r Ref) Node() string { return r.node }

// String returns a printable form of r.
func (r Ref) String() string {
	if r.IsZero() {
		return "Ref{}"
	}
	return fmt.Sprintf("Ref{%s/%s}", r.node, r.id)
}

func (r Ref) pid() actor.PID { return actor.PID{Node: r.node, ID: r.id} }

// GobEncode makes a Ref gob-encodable (in any message field): its node,
// actor ID and correlation, each a uvarint length and the bytes.
func (r Ref) GobEncode() ([]byte, error) {
	return r.appendTo(make([]byte, 0, 3*binary.MaxVarintLen16+len(r.node)+len(r.id)+len(r.tag))), nil
}

func (r Ref) appendTo(b []byte) []byte {
	for _, f := range [...]string{r.node, r.id, r.tag} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// maxRefField bounds each field of a decoded Ref: node IDs and actor IDs
// are short (the registry's limits), correlation tags shorter.
const maxRefField = 1024

// GobDecode is GobEncode's inverse.
func (r *Ref) GobDecode(b []byte) error {
	ref, err := parseRef(b)
	if err != nil {
		return err
	}
	*r = ref
	return nil
}

func parseRef(b []byte) (Ref, error) {
	var f [3]string
	for i := range f {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > maxRefField || n > uint64(len(b)-k) {
			return Ref{}, errors.New("channel: decoding a Ref: a field is cut short or too long")
		}
		f[i], b = string(b[k:k+int(n)]), b[k+int(n):]
	}
	if len(b) != 0 {
		return Ref{}, errors.New("channel: decoding a Ref: trailing bytes")
	}
	return Ref{node: f[0], id: f[1], tag: f[2]}, nil
}

// Requests and answers travel as remoting.Tagged values: the request or
// answer itself keeps the codec's compact encoding (a flat struct skips
// gob), and the tag says what it is. The tag's first byte is its kind:
// 'C' a request, the rest the Ref to answer at; answers are package
// reply's ('A' and 'E').
const tagCall = 'C'

// callMessage is how a request travels to the receiver of a name.
func callMessage(req any, replyTo Ref) remoting.Tagged {
	return remoting.Tagged{Tag: replyTo.appendTo([]byte{tagCall}), Value: req}
}

// asCall returns the Call a request's message stands for, or v itself if
// it is not a request.
func asCall(v any) any {
	t, ok := v.(remoting.Tagged)
	if !ok || len(t.Tag) == 0 || t.Tag[0] != tagCall {
		return v
	}
	ref, err := parseRef(t.Tag[1:])
	if err != nil {
		return v // not one of ours: handed on as it came
	}
	return Call{Request: t.Value, ReplyTo: ref}
}

// randomHex returns 128 random bits in hex: unguessable, never repeated.
func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ReceiveRef opens a private receiver: no registry write, reachable only
// through the returned Ref (SendTo), which can be passed along in any
// message. buf is its buffer, as for Receive. Close it with the CloseFunc:
// then the channel delivers what it accepted and closes, and values sent
// to the Ref fail with ErrGone.
func (n *Node) ReceiveRef(buf int) (<-chan any, Ref, CloseFunc, error) {
	chanBuf, mailbox := receiveBuffers(buf)
	out := make(chan any, chanBuf)
	r, err := n.startReceiver(receiverSpec{ctx: n.ctx, private: true, buf: buf, mailbox: mailbox,
		hand:     func(done <-chan struct{}, v any) bool { return handOff(n, "", out, v, done) },
		try:      func(v any) bool { return tryHand(out, v) },
		closeOut: func() { close(out) }, queued: func() int { return len(out) }})
	if err != nil {
		return nil, Ref{}, nil, err
	}
	return out, n.refOf(r.pid, ""), r.close, nil
}

// refOf returns the Ref of this node's receiver pid, with a correlation
// tag (or none).
func (n *Node) refOf(pid actor.PID, tag string) Ref {
	return Ref{node: n.id, id: pid.ID, tag: tag}
}

// SendTo delivers v to the receiver of ref and returns once its buffer
// accepted v, or with an error: ErrGone (the Ref's receiver was closed, or
// its node has restarted or is no longer a member), ErrNodeLost (the
// node was lost while v was on its way: v may or may not have arrived),
// ctx's error, or why v cannot be sent (ErrEncode, ErrTooLarge).
func (n *Node) SendTo(ctx context.Context, ref Ref, v any) error {
	if n.isClosed() {
		return ErrClosed
	}
	if ref.IsZero() {
		return fmt.Errorf("%w: the zero Ref", ErrGone)
	}
	if ref.tag != "" {
		v = reply.Message(ref.tag, v, nil)
	}
	return n.sendTo(ctx, ref, v, nil)
}

// sendTo sends v to ref's receiver. With out, a value to another node
// goes as a value of a batch: sendTo returns once it is queued, and out
// hears whether it was accepted.
func (n *Node) sendTo(ctx context.Context, ref Ref, v any, out *remoting.Outcomes) error {
	pid := ref.pid()
	from := actor.PID{Node: n.id}
	var err error
	switch {
	case ref.node == n.id:
		err = n.sys.SendFrom(ctx, from, pid, v)
	case !n.isLiveMember(ref.node):
		return fmt.Errorf("channel: send to %v: %w: %s is not a live member", ref, ErrGone, ref.node)
	case out != nil:
		_, err = n.ep.SendMany(ctx, pid, from, []any{v}, out)
	default:
		res := make(chan error, 1)
		if err = n.ep.SendTracked(ctx, pid, from, v, func(err error) { res <- err }); err == nil {
			select {
			case err = <-res:
			case <-ctx.Done():
				return fmt.Errorf("channel: send to %v: %w", ref, ctx.Err())
			}
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, actor.ErrNotFound), errors.Is(err, actor.ErrStopped), errors.Is(err, remoting.ErrUnknownNode):
		return fmt.Errorf("channel: send to %v: %w: %w", ref, ErrGone, err)
	case ctx.Err() != nil:
		return fmt.Errorf("channel: send to %v: %w", ref, ctx.Err())
	}
	return fmt.Errorf("channel: send to %v: %w", ref, wrongType(err))
}
